"""Where the campaign gets its update: the interface the agent needs from the update layer.

The default is ``otalink.host.gateway.update.client.UpdateClient`` (python-tuf,
Director/Image cross-check, resumable downloads), built from the agent configuration by
``make_source``. Tests and tools may pass any object with these two methods.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from otalink.host.gateway.config import AgentConfig
from otalink.host.gateway.update.types import (
    DownloadProgress,
    EcuInfo,
    Network,
    UpdateConfig,
    UpdatePlan,
)


class UpdateSource(Protocol):
    """Verified update plans and their images."""

    def check(self, installed: Mapping[str, int] | None = None) -> UpdatePlan | None:
        """Refresh trusted metadata; the vehicle's verified plan, or None if nothing to do.

        ``installed``: ecu_id -> release counter running now (from the ECUs' signed reports).
        """
        ...

    def download(
        self,
        plan: UpdatePlan,
        progress: Callable[[DownloadProgress], None] | None = None,
        should_stop: Callable[[], bool] = ...,
        *,
        network: Network = "wifi",
        allow_metered: bool = False,
    ) -> dict[str, Path]:
        """Download (resuming) and verify every target; ``{target name: local path}``.

        Raises the update layer's errors: ConnectivityError (no stable connection),
        NeedsPermissionError (metered link not allowed), DownloadInterrupted (should_stop),
        TrustError subclasses (refused), HttpStatusError.
        """
        ...

    def discard(self, keep: UpdatePlan | None = None) -> None:
        """Delete downloads (complete or partial) that ``keep`` does not need."""
        ...


def update_config(config: AgentConfig, release_floors: dict[str, int]) -> UpdateConfig:
    """The update layer's configuration derived from the agent's."""
    from otalink.host.gateway.update.types import EcuInfo as UEcu

    trust = config.trust

    def p(key: str) -> Path | None:
        v = trust.get(key)
        if not isinstance(v, str) or not v:
            return None
        q = Path(v).expanduser()
        return q if q.is_absolute() else config.base_dir / q

    ecus: tuple[EcuInfo, ...] = tuple(
        UEcu(e.ecu_id, e.hardware_id, release_floors.get(e.ecu_id, 0)) for e in config.ecus
    )
    keys = trust.get("instruction_keys", [])
    return UpdateConfig(
        server_url=config.server_url,
        vehicle_id=config.vehicle_id,
        state_dir=config.state_dir,
        image_root=p("image_root"),
        director_root=p("director_root"),
        ecus=ecus,
        instruction_keys=tuple(str(k) for k in keys) if isinstance(keys, list) else (),
    )

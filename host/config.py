"""Agent configuration: one TOML file (read with ``tomllib``); schema in docs/host.md.

```toml
[agent]
vehicle_id = "VIN0001"              # required
state_dir = "/var/lib/otalink"      # required; relative paths resolve against the file's folder
server_url = "http://127.0.0.1:8080"
gateway_key = "gateway.key"         # ed25519 seed (32 raw bytes or 64 hex chars); created if absent
api_host = "127.0.0.1"
api_port = 8765
check_interval_s = 3600             # background update check (0 = only on request)

[trust]                             # passed to the trust engineer's UpdateClient untouched
image_root = "image-root.json"
director_root = "director-root.json"

[policy]
min_soc_percent = 30                # or charging / cable connected
signal_max_age_s = 30               # older signals are stale = not satisfied
driver_assistance = ["Vehicle.ADAS.CruiseControl.IsActive"]
cellular_allowed = false            # driver may allow it at run time
schedule_retry_s = 900              # missed schedule: retry after this long ...
schedule_max_retries = 3            # ... this many times, then back to downloaded
restart_timeout_s = 60              # ECU back after REBOOT
ecu_timeout_s = 10                  # one ECU request (the client adds erase time itself)

[vehicle]
source = "simulated"                # the embedded signal simulator
simulated_live = true               # simulated values never go stale unless set with a timestamp

[[ecu]]
ecu_id = "bms"
hardware_id = "bms-v1"
port = "/dev/ttyUSB0"               # any serial.serial_for_url URL: tty, pty, socket://, rfc2217://
baud = 115200
public_key = "hex..."               # the ECU's ed25519 report key (64 hex chars)
```
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otalink.host.campaign.errors import ConfigError
from otalink.host.vehicle.signals import ADAS_CRUISE


@dataclass(frozen=True)
class EcuConfig:
    """One ECU of the vehicle's inventory."""

    ecu_id: str
    hardware_id: str
    port: str
    public_key: bytes  # 32 bytes ed25519
    baud: int = 115200


@dataclass(frozen=True)
class PolicyConfig:
    """Thresholds and retry policy of the campaign."""

    min_soc_percent: float = 30.0
    signal_max_age_s: float = 30.0
    driver_assistance: tuple[str, ...] = (ADAS_CRUISE,)
    cellular_allowed: bool = False
    schedule_retry_s: float = 900.0
    schedule_max_retries: int = 3
    restart_timeout_s: float = 60.0
    ecu_timeout_s: float = 10.0


@dataclass(frozen=True)
class AgentConfig:
    """The whole agent configuration."""

    vehicle_id: str
    state_dir: Path
    server_url: str = "http://127.0.0.1:8080"
    gateway_key: Path | None = None
    api_host: str = "127.0.0.1"
    api_port: int = 8765
    check_interval_s: float = 3600.0
    ecus: tuple[EcuConfig, ...] = ()
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    simulated_signals: bool = True
    simulated_live: bool = True
    trust: dict[str, Any] = field(default_factory=dict)
    base_dir: Path = Path(".")

    @property
    def gateway_key_path(self) -> Path:
        """Where the gateway's ed25519 seed lives (default: state_dir/gateway.key)."""
        return self.gateway_key if self.gateway_key is not None else self.state_dir / "gateway.key"

    def ecu(self, ecu_id: str) -> EcuConfig | None:
        """The inventory entry of ``ecu_id``."""
        for e in self.ecus:
            if e.ecu_id == ecu_id:
                return e
        return None


def _get(table: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any) -> Any:
    value = table.get(key, default)
    if value is None:
        return None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ConfigError(detail=f"{key}: expected {kind}, got {value!r}")
    return value


def _key(hexkey: str, where: str) -> bytes:
    try:
        raw = bytes.fromhex(hexkey)
    except ValueError:
        raise ConfigError(detail=f"{where}: public_key is not hex") from None
    if len(raw) != 32:
        raise ConfigError(detail=f"{where}: public_key must be 32 bytes (64 hex chars)")
    return raw


def parse_config(data: dict[str, Any], base_dir: Path) -> AgentConfig:
    """Validate a decoded TOML document into an AgentConfig."""
    agent = data.get("agent", {})
    if not isinstance(agent, dict):
        raise ConfigError(detail="[agent] must be a table")
    vehicle_id = _get(agent, "vehicle_id", str, None)
    if not vehicle_id:
        raise ConfigError(detail="agent.vehicle_id is required")
    state_dir_s = _get(agent, "state_dir", str, None)
    if not state_dir_s:
        raise ConfigError(detail="agent.state_dir is required")

    def path(s: str) -> Path:
        p = Path(s).expanduser()
        return p if p.is_absolute() else (base_dir / p)

    gk = _get(agent, "gateway_key", str, None)
    pol = data.get("policy", {})
    if not isinstance(pol, dict):
        raise ConfigError(detail="[policy] must be a table")
    das = pol.get("driver_assistance", [ADAS_CRUISE])
    if not isinstance(das, list) or not all(isinstance(x, str) for x in das):
        raise ConfigError(detail="policy.driver_assistance must be a list of VSS paths")
    policy = PolicyConfig(
        min_soc_percent=_get(pol, "min_soc_percent", float, 30.0),
        signal_max_age_s=_get(pol, "signal_max_age_s", float, 30.0),
        driver_assistance=tuple(das),
        cellular_allowed=_get(pol, "cellular_allowed", bool, False),
        schedule_retry_s=_get(pol, "schedule_retry_s", float, 900.0),
        schedule_max_retries=_get(pol, "schedule_max_retries", int, 3),
        restart_timeout_s=_get(pol, "restart_timeout_s", float, 60.0),
        ecu_timeout_s=_get(pol, "ecu_timeout_s", float, 10.0),
    )
    ecus: list[EcuConfig] = []
    raw_ecus = data.get("ecu", [])
    if not isinstance(raw_ecus, list):
        raise ConfigError(detail="[[ecu]] must be an array of tables")
    for i, e in enumerate(raw_ecus):
        where = f"ecu[{i}]"
        if not isinstance(e, dict):
            raise ConfigError(detail=f"{where} must be a table")
        ecu_id = _get(e, "ecu_id", str, None)
        hw = _get(e, "hardware_id", str, None)
        port = _get(e, "port", str, None)
        pk = _get(e, "public_key", str, None)
        if not (ecu_id and hw and port and pk):
            raise ConfigError(detail=f"{where}: ecu_id, hardware_id, port, public_key required")
        if any(x.ecu_id == ecu_id for x in ecus):
            raise ConfigError(detail=f"{where}: duplicate ecu_id {ecu_id!r}")
        ecus.append(EcuConfig(ecu_id, hw, port, _key(pk, where), _get(e, "baud", int, 115200)))
    veh = data.get("vehicle", {})
    trust = data.get("trust", {})
    if not isinstance(veh, dict) or not isinstance(trust, dict):
        raise ConfigError(detail="[vehicle] and [trust] must be tables")
    return AgentConfig(
        vehicle_id=vehicle_id,
        state_dir=path(state_dir_s),
        server_url=_get(agent, "server_url", str, "http://127.0.0.1:8080"),
        gateway_key=path(gk) if gk else None,
        api_host=_get(agent, "api_host", str, "127.0.0.1"),
        api_port=_get(agent, "api_port", int, 8765),
        check_interval_s=_get(agent, "check_interval_s", float, 3600.0),
        ecus=tuple(ecus),
        policy=policy,
        simulated_signals=_get(veh, "source", str, "simulated") == "simulated",
        simulated_live=_get(veh, "simulated_live", bool, True),
        trust=dict(trust),
        base_dir=base_dir,
    )


def load_config(path: str | Path) -> AgentConfig:
    """Read and validate the agent's TOML configuration file."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(detail=f"{p}: not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(detail=f"{p}: {exc}") from None
    return parse_config(data, p.resolve().parent)

"""Agent configuration: one TOML file (read with ``tomllib``), one pydantic model per table.

```toml
[agent]
vehicle_id = "VIN0001"              # required
state_dir = "/var/lib/otalink"      # required; relative paths resolve against the file's folder
server_url = "http://127.0.0.1:8080"
gateway_key = "gateway.key"         # ed25519 seed (32 raw bytes or 64 hex chars); created if absent
command_key = "command.key"         # ed25519 seed signing ECU commands (ACTIVATE, REBOOT, CONFIRM,
                                    #   REVERT, ABORT); absent: the development command key
api_host = "127.0.0.1"
api_port = 8765
check_interval_s = 3600             # background update check (0 = only on request)

[trust]                             # handed to the update layer's UpdateClient
image_root = "image-root.json"
director_root = "director-root.json"
instruction_keys = ["hex..."]       # Director instruction keys (64 hex chars each)

[policy]
min_soc_percent = 30                # or charging / cable connected
signal_max_age_s = 30               # older signals are stale = not satisfied
driver_assistance = ["Vehicle.ADAS.CruiseControl.IsActive"]
cellular_allowed = false            # driver may allow it at run time
schedule_retry_s = 900              # missed schedule: retry after this long ...
schedule_max_retries = 3            # ... this many times, then back to downloaded
restart_timeout_s = 60              # ECU back after REBOOT
ecu_timeout_s = 10                  # one ECU request (the client adds erase time itself)
defer_max_s = 300                   # an ECU application deferring the update: retried this long

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

Every key is checked (type, range, unknown keys refused) by :class:`ConfigFile`; a bad file is a
``ConfigError`` (``config.invalid``) naming the key (``policy.min_soc_percent``,
``ecu[1].public_key``). :class:`AgentConfig` is what the agent runs with (paths resolved).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypedDict

from otalink.host.errors import ConfigError
from otalink.host.gateway.vehicle.signals import ADAS_CRUISE
from otalink.host.keys import DEV_COMMAND_SEED, BadKeyError, load_private_key
from otalink.host.validation import NonEmpty, Section, describe
from pydantic import (
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    WithJsonSchema,
    field_validator,
)
from pydantic import dataclasses as pd

_TABLE = ConfigDict(extra="forbid")  # (frozen: by the dataclass decorator)
Seconds = Annotated[StrictFloat, Field(ge=0)]
HexKey = Annotated[StrictStr, Field(pattern=r"^[0-9a-fA-F]{64}$")]
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")


def _public_key(value: object) -> bytes:
    """A 32-byte ed25519 public key: 64 hex chars in the file, bytes from Python callers."""
    if isinstance(value, str) and _HEX_KEY.fullmatch(value):
        return bytes.fromhex(value)
    if isinstance(value, bytes) and len(value) == 32:
        return value
    raise ValueError("must be 32 bytes (64 hex chars)")


PublicKey = Annotated[
    bytes,
    PlainValidator(_public_key),
    PlainSerializer(bytes.hex),
    WithJsonSchema({"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}),
]


@pd.dataclass(frozen=True, config=_TABLE)
class EcuConfig:
    """One ECU of the vehicle's inventory (a ``[[ecu]]`` table)."""

    ecu_id: NonEmpty
    hardware_id: NonEmpty
    port: NonEmpty
    public_key: PublicKey  # 32 bytes ed25519
    baud: Annotated[StrictInt, Field(gt=0)] = 115200


@pd.dataclass(frozen=True, config=_TABLE)
class PolicyConfig:
    """Thresholds and retry policy of the campaign (the ``[policy]`` table)."""

    min_soc_percent: Annotated[StrictFloat, Field(ge=0, le=100)] = 30.0
    signal_max_age_s: Seconds = 30.0
    driver_assistance: tuple[NonEmpty, ...] = (ADAS_CRUISE,)
    cellular_allowed: StrictBool = False
    schedule_retry_s: Seconds = 900.0
    schedule_max_retries: Annotated[StrictInt, Field(ge=0)] = 3
    restart_timeout_s: Seconds = 60.0
    ecu_timeout_s: Seconds = 10.0
    defer_max_s: Seconds = 300.0


class AgentSection(Section):
    """The ``[agent]`` table."""

    vehicle_id: NonEmpty
    state_dir: NonEmpty
    server_url: NonEmpty = "http://127.0.0.1:8080"
    gateway_key: NonEmpty | None = None
    command_key: NonEmpty | None = None
    api_host: NonEmpty = "127.0.0.1"
    api_port: Annotated[StrictInt, Field(ge=0, le=65535)] = 8765
    check_interval_s: Seconds = 3600.0


class TrustSection(Section):
    """The ``[trust]`` table (roots provisioned at manufacture, instruction keys)."""

    image_root: NonEmpty | None = None
    director_root: NonEmpty | None = None
    instruction_keys: list[HexKey] = []


class TrustSettings(TypedDict, total=False):
    """The ``[trust]`` keys the file sets (paths as written: relative to the file's folder)."""

    image_root: str
    director_root: str
    instruction_keys: list[str]


def _trust_settings(t: TrustSection) -> TrustSettings:
    """The keys of ``[trust]`` the file sets (TOML has no null: a set key holds a value)."""
    out = TrustSettings()
    given = t.model_fields_set
    if "image_root" in given and t.image_root is not None:
        out["image_root"] = t.image_root
    if "director_root" in given and t.director_root is not None:
        out["director_root"] = t.director_root
    if "instruction_keys" in given:
        out["instruction_keys"] = list(t.instruction_keys)
    return out


class VehicleSection(Section):
    """The ``[vehicle]`` table."""

    source: NonEmpty = "simulated"
    simulated_live: StrictBool = True


class ConfigFile(Section):
    """The whole TOML file."""

    agent: AgentSection
    trust: TrustSection = TrustSection()
    policy: PolicyConfig = PolicyConfig()
    vehicle: VehicleSection = VehicleSection()
    ecu: tuple[EcuConfig, ...] = ()

    @field_validator("ecu")
    @classmethod
    def _unique_ids(cls, ecus: tuple[EcuConfig, ...]) -> tuple[EcuConfig, ...]:
        ids = [e.ecu_id for e in ecus]
        if dup := sorted({i for i in ids if ids.count(i) > 1}):
            raise ValueError(f"duplicate ecu_id {', '.join(dup)}")
        return ecus


@dataclass(frozen=True)
class AgentConfig:
    """The whole agent configuration, as the agent runs with it (paths resolved)."""

    vehicle_id: str
    state_dir: Path
    server_url: str = "http://127.0.0.1:8080"
    gateway_key: Path | None = None
    command_key: Path | None = None
    api_host: str = "127.0.0.1"
    api_port: int = 8765
    check_interval_s: float = 3600.0
    ecus: tuple[EcuConfig, ...] = ()
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    simulated_signals: bool = True
    simulated_live: bool = True
    trust: TrustSettings = field(default_factory=lambda: TrustSettings())
    base_dir: Path = Path(".")

    @property
    def gateway_key_path(self) -> Path:
        """Where the gateway's ed25519 seed lives (default: state_dir/gateway.key)."""
        return self.gateway_key if self.gateway_key is not None else self.state_dir / "gateway.key"

    def command_seed(self) -> bytes:
        """The seed the gateway signs ECU commands with: the ``command_key`` file (any private
        key file :func:`otalink.host.keys.load_private_key` reads: PEM, hex seed or 32 raw
        bytes), else the development command key, which only development ECUs trust (a
        production ECU refuses its commands with E_CMD_AUTH)."""
        if self.command_key is None:
            return DEV_COMMAND_SEED
        try:
            return load_private_key(self.command_key)
        except (OSError, BadKeyError) as exc:
            raise ConfigError(detail=f"agent.command_key: {exc}") from None

    def ecu(self, ecu_id: str) -> EcuConfig | None:
        """The inventory entry of ``ecu_id``."""
        for e in self.ecus:
            if e.ecu_id == ecu_id:
                return e
        return None


def parse_config(data: dict[str, Any], base_dir: Path) -> AgentConfig:
    """Validate a decoded TOML document into an AgentConfig (``ConfigError`` naming the key)."""
    try:
        doc = ConfigFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(detail=describe(exc)) from None
    a = doc.agent

    def path(s: str) -> Path:
        p = Path(s).expanduser()
        return p if p.is_absolute() else (base_dir / p)

    return AgentConfig(
        vehicle_id=a.vehicle_id,
        state_dir=path(a.state_dir),
        server_url=a.server_url,
        gateway_key=path(a.gateway_key) if a.gateway_key else None,
        command_key=path(a.command_key) if a.command_key else None,
        api_host=a.api_host,
        api_port=a.api_port,
        check_interval_s=a.check_interval_s,
        ecus=doc.ecu,
        policy=doc.policy,
        simulated_signals=doc.vehicle.source == "simulated",
        simulated_live=doc.vehicle.simulated_live,
        trust=_trust_settings(doc.trust),
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

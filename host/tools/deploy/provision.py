"""``otalink device provision``: an ECU's ed25519 key, and its record for the Director.

Public interface (stable):
    ecu_key(keys_dir: Path, ecu_id: str, *, create: bool = True) -> tuple[bytes, int]
        the ECU's 32-byte seed from ``<keys_dir>/<ecu_id>.seed`` (hex, mode 0600), made on first
        use; plus its creation time (unix s), used as the agent's ``time_floor``
    provision(ecu_id, hw_id, *, keys_dir, registry=None, board=None, force=False) -> EcuRecord
    write_record(registry: Path, record: EcuRecord, force: bool = False) -> Path
    read_record(path: Path) -> EcuRecord
    EcuRecord(ecu_id, hw_id, public_key: bytes, board: str | None, created: int)
        .keyid, .agent_toml(port, baud=115200) -> str  ([[ecu]] table of the host agent config)
        .to_dict()   JSON (format "otalink-ecu/1"):
        {"format", "ecu_id", "hw_id", "board", "key_type": "ed25519", "public_key": hex,
         "keyid": hex (SHA-256(public)[:8]), "created"}
    valid_ecu_id(text) -> str   (1..32 of [A-Za-z0-9._-]; KeyFileError otherwise)
    default_keys_dir() -> Path  ($OTALINK_KEYS_DIR, else ~/.otalink/ecu-keys)

The seed is generated on the host (libsodium's CSPRNG) and leaves it only inside the board's
ECU config; the Director learns the public key from ``<registry>/ecus/<ecu_id>.json``, the
record the trust/campaign tools read to check signed version reports (docs/hil.md).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from otalink.host.fsutil import PRIVATE, write_atomic
from otalink.host.keys import BadKeyError, KeyPair, keyid, load_seed, public_key, save_seed
from otalink.host.tools.deploy.errors import EcuExistsError, KeyFileError

RECORD_FORMAT = "otalink-ecu/1"
_ID = re.compile(r"^[A-Za-z0-9._-]{1,32}$")


def valid_ecu_id(text: str) -> str:
    """An ECU or hardware id as the wire allows it (<= 32 chars, no path separators)."""
    if not _ID.match(text) or text in (".", ".."):
        raise KeyFileError(f"bad id {text!r}: 1..32 characters of A-Z a-z 0-9 . _ -")
    return text


def default_keys_dir() -> Path:
    env = os.environ.get("OTALINK_KEYS_DIR")
    return Path(env) if env else Path.home() / ".otalink" / "ecu-keys"


class RecordDoc(TypedDict):
    """An ECU record file (``ecus/<id>.json``, format ``otalink-ecu/1``)."""

    format: str
    ecu_id: str
    hw_id: str
    board: str | None
    key_type: str
    public_key: str
    keyid: str
    created: int


@dataclass(frozen=True)
class EcuRecord:
    ecu_id: str
    hw_id: str
    public_key: bytes
    board: str | None
    created: int

    @property
    def keyid(self) -> bytes:
        return keyid(self.public_key)

    def agent_toml(self, port: str, baud: int = 115200) -> str:
        """The ``[[ecu]]`` table of the host agent's config for this ECU (docs/host.md)."""
        return (
            "[[ecu]]\n"
            f'ecu_id = "{self.ecu_id}"\n'
            f'hardware_id = "{self.hw_id}"\n'
            f'port = "{port}"\n'
            f"baud = {baud}\n"
            f'public_key = "{self.public_key.hex()}"\n'
        )

    def to_dict(self) -> RecordDoc:
        return {
            "format": RECORD_FORMAT,
            "ecu_id": self.ecu_id,
            "hw_id": self.hw_id,
            "board": self.board,
            "key_type": "ed25519",
            "public_key": self.public_key.hex(),
            "keyid": self.keyid.hex(),
            "created": self.created,
        }


def ecu_key(keys_dir: Path, ecu_id: str, *, create: bool = True) -> tuple[bytes, int]:
    """The ECU's seed (made and saved on first use) and when it was made."""
    path = Path(keys_dir) / f"{valid_ecu_id(ecu_id)}.seed"
    if path.exists():
        try:
            return load_seed(path), int(path.stat().st_mtime)
        except (OSError, BadKeyError) as exc:
            raise KeyFileError(f"{path}: {exc}") from exc
    if not create:
        raise KeyFileError(f"no key for ECU {ecu_id} in {keys_dir}: run `otalink device provision`")
    seed = KeyPair.generate().seed
    save_seed(path, seed)
    return seed, int(path.stat().st_mtime)


def write_record(registry: Path, record: EcuRecord, force: bool = False) -> Path:
    """Write ``<registry>/ecus/<ecu_id>.json`` atomically; refuse to replace another key."""
    path = Path(registry) / "ecus" / f"{record.ecu_id}.json"
    if path.exists() and not force:
        old = read_record(path)
        if old.public_key != record.public_key:
            raise EcuExistsError(
                f"{path} registers another key for {record.ecu_id} (use --force to rotate it)"
            )
    data = (json.dumps(record.to_dict(), indent=2, sort_keys=True) + "\n").encode()
    write_atomic(path, data, mode=PRIVATE)
    return path


def read_record(path: Path) -> EcuRecord:
    """Parse an ECU record file (KeyFileError when malformed)."""
    try:
        d = json.loads(Path(path).read_text())
        if d.get("format") != RECORD_FORMAT:
            raise ValueError(f"format is not {RECORD_FORMAT}")
        pub = bytes.fromhex(d["public_key"])
        if len(pub) != 32:
            raise ValueError("public_key is not 32 bytes")
        board = d.get("board")
        return EcuRecord(
            ecu_id=valid_ecu_id(str(d["ecu_id"])),
            hw_id=str(d["hw_id"]),
            public_key=pub,
            board=str(board) if board is not None else None,
            created=int(d.get("created", 0)),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise KeyFileError(f"{path}: not an ECU record: {exc}") from exc


def provision(
    ecu_id: str,
    hw_id: str,
    *,
    keys_dir: Path,
    registry: Path | None = None,
    board: str | None = None,
    force: bool = False,
) -> EcuRecord:
    """Make (or reuse) the ECU key and register its public key in ``registry``."""
    valid_ecu_id(hw_id)
    seed, created = ecu_key(keys_dir, ecu_id)
    record = EcuRecord(ecu_id, hw_id, public_key(seed), board, created)
    if registry is not None:
        write_record(registry, record, force=force)
    return record

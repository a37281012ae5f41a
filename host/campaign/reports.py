"""Vehicle version manifests: signed by the gateway key, queued on disk, POSTed to the server.

A manifest is canonical JSON (sorted keys, no spaces) carrying each ECU's signed report as the
exact bytes it sent (``body``) and its ed25519 signature, base64, plus the campaign result. The
gateway signs the manifest's exact bytes; what goes over HTTP is the envelope::

    {"manifest": base64(bytes), "keyid": hex(sha256(gateway_pub)[:8]),
     "public_key": hex(gateway_pub), "sig": base64(ed25519(bytes))}

``POST {server_url}/reports/{vehicle_id}`` (the trust engineer's server stores it). While the
server is unreachable the envelope waits in ``state_dir/reports/outbox/`` and is sent later,
oldest first; a 4xx answer moves it to ``rejected/`` (retrying cannot help), 5xx/no connection
keeps it queued.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import nacl.signing
from otalink.host.campaign.store import atomic_write_bytes

MANIFEST_FORMAT = 1
MAX_OUTBOX = 200  # oldest dropped beyond this (a car offline for months)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def load_or_create_key(path: Path) -> nacl.signing.SigningKey:
    """The gateway's ed25519 key: 32-byte seed as hex or raw; created (0600) if absent."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        key = nacl.signing.SigningKey.generate()
        atomic_write_bytes(path, bytes(key).hex().encode() + b"\n")
        return key
    text = raw.strip()
    seed = bytes.fromhex(text.decode()) if len(text) == 64 else raw
    if len(seed) != 32:
        raise ValueError(f"{path}: gateway key must be a 32-byte ed25519 seed")
    return nacl.signing.SigningKey(seed)


def ecu_entry(ecu_id: str, body: bytes, sig: bytes, verified: bool) -> dict[str, Any]:
    """One ECU's signed report as the manifest carries it (exact bytes)."""
    return {"ecu_id": ecu_id, "body": b64(body), "sig": b64(sig), "sig_verified": verified}


def build_manifest(
    vehicle_id: str,
    campaign_id: str | None,
    result: dict[str, Any],
    ecus: Iterable[dict[str, Any]],
    ts: float,
) -> bytes:
    """Canonical JSON bytes of a vehicle version manifest."""
    doc = {
        "format": MANIFEST_FORMAT,
        "vehicle_id": vehicle_id,
        "campaign_id": campaign_id,
        "generated": int(ts),
        "result": result,
        "ecus": list(ecus),
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def sign_manifest(manifest: bytes, key: nacl.signing.SigningKey) -> dict[str, str]:
    """The envelope sent to the server."""
    pub = bytes(key.verify_key)
    return {
        "manifest": b64(manifest),
        "keyid": hashlib.sha256(pub).digest()[:8].hex(),
        "public_key": pub.hex(),
        "sig": b64(key.sign(manifest).signature),
    }


def verify_envelope(env: dict[str, Any], public_key: bytes) -> dict[str, Any]:
    """Check an envelope's signature by ``public_key``; returns the decoded manifest."""
    manifest = base64.b64decode(env["manifest"], validate=True)
    nacl.signing.VerifyKey(public_key).verify(manifest, base64.b64decode(env["sig"]))
    doc: dict[str, Any] = json.loads(manifest)
    return doc


class Outbox:
    """On-disk queue of signed envelopes waiting to be POSTed."""

    def __init__(self, state_dir: Path, server_url: str, vehicle_id: str) -> None:
        self.dir = state_dir / "reports" / "outbox"
        self.sent_dir = state_dir / "reports" / "sent"
        self.rejected_dir = state_dir / "reports" / "rejected"
        self.url = f"{server_url.rstrip('/')}/reports/{vehicle_id}"
        self.dir.mkdir(parents=True, exist_ok=True)

    def enqueue(self, envelope: dict[str, str], name: str) -> Path:
        """Store an envelope durably (idempotent by ``name``)."""
        path = self.dir / f"{name}.json"
        atomic_write_bytes(path, json.dumps(envelope, sort_keys=True).encode())
        pending = self.pending()
        for old in pending[: max(0, len(pending) - MAX_OUTBOX)]:
            old.unlink(missing_ok=True)
        return path

    def pending(self) -> list[Path]:
        """Queued envelopes, oldest first."""
        return sorted(self.dir.glob("*.json"), key=lambda p: (p.stat().st_mtime, p.name))

    def flush(self, timeout: float = 5.0) -> tuple[int, str | None]:
        """Send what is queued; returns (sent count, last error or None)."""
        sent = 0
        for path in self.pending():
            try:
                body = path.read_bytes()
            except FileNotFoundError:
                continue
            try:
                r = httpx.post(
                    self.url,
                    content=body,
                    headers={"content-type": "application/json"},
                    timeout=timeout,
                )
            except httpx.HTTPError as exc:
                return sent, f"no_connection: {type(exc).__name__}"
            if 200 <= r.status_code < 300:
                self._move(path, self.sent_dir)
                sent += 1
            elif 400 <= r.status_code < 500:
                self._move(path, self.rejected_dir)
            else:
                return sent, f"http_{r.status_code}"
        return sent, None

    @staticmethod
    def _move(path: Path, to: Path) -> None:
        to.mkdir(parents=True, exist_ok=True)
        os.replace(path, to / path.name)
        for old in sorted(to.glob("*.json"))[:-50]:
            old.unlink(missing_ok=True)


def report_name(campaign_id: str | None, state: str) -> str:
    """File name of a campaign's final report (same campaign + result = same name)."""
    return f"{campaign_id or 'none'}-{state}"

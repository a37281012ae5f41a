"""Vehicle version manifests: signed by the gateway key, queued on disk, POSTed to the server.

A manifest is canonical JSON (sorted keys, no spaces) carrying each ECU's signed report as the
exact bytes it sent (``body``) and its ed25519 signature, base64, plus the campaign result. The
gateway signs the manifest's exact bytes; what goes over HTTP is the envelope::

    {"manifest": base64(bytes), "keyid": hex(sha256(gateway_pub)[:8]),
     "public_key": hex(gateway_pub), "sig": base64(ed25519(bytes))}

``POST {server_url}/reports/{vehicle_id}`` (the update server stores it). While the
server is unreachable the envelope waits in ``state_dir/reports/outbox/`` and is sent later,
oldest first; a 4xx answer moves it to ``rejected/`` (retrying cannot help), 5xx/no connection
keeps it queued.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import httpx
import nacl.signing
from otalink.host.fsutil import PRIVATE, write_atomic
from otalink.host.keys import keyid
from otalink.host.retry import RetryPolicy
from pydantic import JsonValue
from typing_extensions import TypedDict

MANIFEST_FORMAT = 1
MAX_OUTBOX = 200  # oldest dropped beyond this (a car offline for months)
#: Waits between outbox flushes while the server is away or failing (the host's one retry
#: policy; the outbox never gives up, so only the waits apply): 10 s doubling up to 10 min.
OUTBOX_RETRY = RetryPolicy(base_s=10.0, cap_s=600.0)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def load_or_create_key(path: Path) -> nacl.signing.SigningKey:
    """The gateway's ed25519 key: 32-byte seed as hex or raw; created (0600) if absent."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        key = nacl.signing.SigningKey.generate()
        write_atomic(path, bytes(key).hex().encode() + b"\n", mode=PRIVATE)
        return key
    text = raw.strip()
    seed = bytes.fromhex(text.decode()) if len(text) == 64 else raw
    if len(seed) != 32:
        raise ValueError(f"{path}: gateway key must be a 32-byte ed25519 seed")
    return nacl.signing.SigningKey(seed)


class EcuEntry(TypedDict):
    """One ECU's signed report in a manifest (exact bytes, base64)."""

    ecu_id: str
    body: str
    sig: str
    sig_verified: bool


def ecu_entry(ecu_id: str, body: bytes, sig: bytes, verified: bool) -> EcuEntry:
    """One ECU's signed report as the manifest carries it (exact bytes)."""
    return {"ecu_id": ecu_id, "body": b64(body), "sig": b64(sig), "sig_verified": verified}


def build_manifest(
    vehicle_id: str,
    campaign_id: str | None,
    result: Mapping[str, JsonValue],
    ecus: Iterable[EcuEntry],
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
        "keyid": keyid(pub).hex(),
        "public_key": pub.hex(),
        "sig": b64(key.sign(manifest).signature),
    }


def verify_envelope(env: Mapping[str, object], public_key: bytes) -> dict[str, JsonValue]:
    """Check an envelope's signature by ``public_key``; returns the decoded manifest."""
    manifest = base64.b64decode(str(env["manifest"]), validate=True)
    nacl.signing.VerifyKey(public_key).verify(manifest, base64.b64decode(str(env["sig"])))
    doc: dict[str, JsonValue] = json.loads(manifest)
    return doc


class Outbox:
    """On-disk queue of signed envelopes waiting to be POSTed."""

    def __init__(
        self, state_dir: Path, server_url: str, vehicle_id: str, retry: RetryPolicy = OUTBOX_RETRY
    ) -> None:
        self.dir = state_dir / "reports" / "outbox"
        self.sent_dir = state_dir / "reports" / "sent"
        self.rejected_dir = state_dir / "reports" / "rejected"
        self.url = f"{server_url.rstrip('/')}/reports/{vehicle_id}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.retry = retry
        self.failures = 0  # flushes in a row that ended in an error (no connection, 5xx)
        self.next_try = 0.0  # the caller's clock time before which flush_due does not flush

    def enqueue(self, envelope: dict[str, str], name: str) -> Path:
        """Store an envelope durably (idempotent by ``name``)."""
        path = self.dir / f"{name}.json"
        write_atomic(path, json.dumps(envelope, sort_keys=True).encode(), mode=PRIVATE)
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

    def flush_due(self, now: float, timeout: float = 5.0) -> tuple[int, str | None] | None:
        """``flush`` if envelopes wait and the retry wait is over (``now``: the caller's clock);
        None when it did not try. After a failed flush the next waits ``retry.delay(failures)``."""
        if now < self.next_try or not self.pending():
            return None
        sent, err = self.flush(timeout)
        self.failures = self.failures + 1 if err else 0
        self.next_try = now + self.retry.delay(self.failures) if err else now
        return sent, err

    @staticmethod
    def _move(path: Path, to: Path) -> None:
        to.mkdir(parents=True, exist_ok=True)
        os.replace(path, to / path.name)
        for old in sorted(to.glob("*.json"))[:-50]:
            old.unlink(missing_ok=True)


def report_name(campaign_id: str | None, state: str) -> str:
    """File name of a campaign's final report (same campaign + result = same name)."""
    return f"{campaign_id or 'none'}-{state}"

"""``otalink device info``: what an ECU agent answers to HELLO, as a dict.

Public interface (stable):
    hello_info(url: str, *, baud: int | None = None, timeout: float = 2.0,
               verify_key: bytes | None = None) -> HelloInfo
        EcuInfo.to_dict() plus "port" and "signature" ("valid" | "unchecked");
        HelloError when nothing answers, PortNotFoundError when the port cannot be opened,
        HelloError(bad signature) when ``verify_key`` is given and does not match.
    format_info(info: HelloInfo) -> str     the human-readable lines printed without --json
"""

from __future__ import annotations

from otalink.host.gateway.ecu.info import InfoDoc
from otalink.host.tools.deploy.errors import HelloError, PortNotFoundError


class HelloInfo(InfoDoc):
    """What ``hello_info`` returns: the report as JSON, the port and whether its signature was
    checked (``"valid"``) or not (``"unchecked"``)."""

    port: str
    signature: str


_BOOT = {0: "normal", 1: "trial", 2: "reverted"}
_SLOT = {
    0: "empty",
    1: "receiving",
    2: "verified",
    3: "pending",
    4: "trial",
    5: "confirmed",
    6: "rejected",
}


def hello_info(
    url: str, *, baud: int | None = None, timeout: float = 2.0, verify_key: bytes | None = None
) -> HelloInfo:
    """One HELLO round trip with the agent on ``url``; its signed INFO decoded."""
    from otalink.host.gateway.ecu.client import EcuClient
    from otalink.host.gateway.ecu.errors import EcuError, EcuLinkError

    try:
        client = EcuClient(url, baud=baud, timeout=timeout)
    except EcuLinkError as exc:
        raise PortNotFoundError(str(exc)) from exc
    try:
        info = client.hello()
        signature = "unchecked"
        if verify_key is not None:
            try:
                info.verify(verify_key)
            except EcuError as exc:
                raise HelloError(f"INFO from {url} is not signed by the expected ECU key") from exc
            signature = "valid"
    except EcuError as exc:
        raise HelloError(f"no HELLO answer on {url}: {exc}") from exc
    finally:
        client.close()
    return {**info.to_dict(), "port": url, "signature": signature}


def format_info(info: HelloInfo) -> str:
    """A short human summary of an INFO dict."""
    lines = [
        f"ECU {info.get('ecu_id')}  hardware {info.get('hw_id')}  on {info.get('port')}",
        f"protocol v{info.get('proto_ver')}  boot {_BOOT.get(info.get('boot_state', -1), '?')}"
        f"  active slot {info.get('active_slot')}  last error {info.get('last_error')}"
        f"  signature {info.get('signature')}",
    ]
    for i, slot in enumerate(info.get("slots") or []):
        if isinstance(slot, dict):
            lines.append(
                f"slot {i}: {_SLOT.get(slot.get('state', -1), '?'):9s} "
                f"version {slot.get('version') or '-'}  release {slot.get('release_counter')}  "
                f"{slot.get('image_len')} bytes"
            )
    caps = info.get("caps")
    if isinstance(caps, dict):
        lines.append(
            "caps: "
            + "  ".join(
                f"{k} {caps.get(k)}"
                for k in ("max_payload", "window", "slot_size", "erase_size", "deflate_wbits")
            )
        )
    return "\n".join(lines)

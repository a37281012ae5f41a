"""What the receive probe sends (docs/protocol.md 7.1, docs/host.md "Receive probe").

Before CONFIRM the installer probes every ECU whose new image brought another agent: a dry-run
transfer through the new agent's receive path. What it sends depends neither on how the ECU was
updated (a patch or the full image) nor on any file on disk: ``payload(caps)`` is built from the
new agent's own caps (its trial-boot report). A patch is no probe: PROBE carries no patch
(a patch needs a base, and a probe touches no slot), and sent as an image it is mostly zeros that
deflate into one DATA frame, so a new agent whose window or DATA path broke past the first
frames would pass it and be confirmed; the full image is not held for a patched ECU and costs a
whole transfer on the trial boot. The payload is hex text of pseudo-random bytes with a repeated
block every ``REPEAT_EVERY`` (Huffman-coded literals and back-references for the decoder), of
at least ``SEGMENTS`` deflate segments of the device's segment size and ``WINDOWS`` receive
windows, within the slot size: several segment boundaries, a window that slides, a short last
segment. It is the same for every probe of the same caps (deterministic).
"""

from __future__ import annotations

import random

from otalink.host.gateway.ecu.errors import EcuRejected
from otalink.host.gateway.ecu.info import Caps
from otalink.host.gateway.ecu.line import Line
from otalink.host.gateway.ecu.uploader import ProbeResult, segment_size
from otalink.protocol import codes

SEGMENTS = 2.5  # deflate segments the payload spans at least (and a short last one)
WINDOWS = 3  # receive windows of payload: the wire (about half of it, deflated) slides the window
BLOCK = 1024
REPEAT_EVERY = 4  # every fourth block repeats the one before it (a back-reference)
SEED = "otalink receive probe"


def payload_len(caps: Caps) -> int:
    """How many bytes the probe of a device with ``caps`` decodes."""
    seg = segment_size(caps.erase_size)
    n = max(int(seg * SEGMENTS), WINDOWS * max(caps.window, 0))
    n = -(-n // seg) * seg + seg // 2  # whole segments and a short last one
    return max(1, min(n, caps.slot_size)) if caps.slot_size > 0 else n


def payload(caps: Caps) -> bytes:
    """The probe's bytes for a device with ``caps`` (module doc)."""
    n = payload_len(caps)
    rng = random.Random(SEED)
    out = bytearray()
    i = 0
    while len(out) < n:
        if i % REPEAT_EVERY == REPEAT_EVERY - 1:
            out += out[-BLOCK:]
        else:
            out += rng.randbytes(BLOCK // 2).hex().encode()
        i += 1
    return bytes(out[:n])


def probe_once(line: Line) -> ProbeResult:
    """A receive probe of the ECU on ``line`` with ``payload`` of its latest report's caps.

    A probe left live by a host that died inside it makes the ECU refuse the next one (E_BUSY
    until its keep_ms idle timeout): ABORT it (a probe writes nothing, the ECU's slots are
    untouched) and probe again, once."""
    with line.lock:
        client = line.client()
        info = client.info if client.info is not None else client.hello()
        data = payload(info.caps)  # the caps of the agent that answers now: the new one
        try:
            return client.probe(data)
        except EcuRejected as exc:
            if exc.wire_code != codes.E_BUSY:
                raise
            client.abort()
            return client.probe(data)

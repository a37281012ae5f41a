"""What an ECU was sent, kept in the campaign record and repeated in its result (issue 13), and
the receive probe's payload (sans I/O; the campaign end to end: ``test_delta_campaign.py``)."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
from otalink.host.gateway.campaign import probe
from otalink.host.gateway.campaign import record as rc
from otalink.host.gateway.campaign.events import EventLog
from otalink.host.gateway.campaign.machine import Machine
from otalink.host.gateway.campaign.progress import InstallTracker, LiveProgress
from otalink.host.gateway.campaign.record import EcuOutcome, EcuProgress, Phase
from otalink.host.gateway.ecu import segments
from otalink.host.gateway.ecu.info import Caps
from otalink.host.gateway.ecu.uploader import segment_size
from otalink.protocol import codes

PATCH = {
    "delivery": "1 kB, delta from 1.0",
    "delivery_kind": "patch",
    "delivery_size": 1234,
    "delta_from": "1.0",
    "delivery_reason": None,
    "sent_bytes": None,
}
FALLBACK = {
    **PATCH,
    "delivery": "70 kB, full image",
    "delivery_kind": "full",
    "delivery_size": 70_000,
    "delta_from": None,
    "delivery_reason": "delta.refused:ecu_rejected.e_patch",
}


def _tracker(path: Path) -> tuple[Machine, InstallTracker]:
    m = Machine(path, lambda: 1000.0)
    return m, InstallTracker(m, LiveProgress(), EventLog(None, lambda: 1000.0))


def test_a_fallback_within_the_transfer_is_durable_at_once(tmp_path: Path) -> None:
    """The fallback to the full image happens without a phase change (still transferring): it
    is written to the record then, so a host that dies before the ECU's next phase does not
    restart believing (and later reporting) that the patch was sent."""
    path = tmp_path / "campaign.json"
    _m, t = _tracker(path)
    t.start(["bms"])
    t.on_progress("bms", {"phase": "transferring", "percent": 0.0, **PATCH})
    t.on_progress("bms", {"phase": "transferring", "percent": 0.0, **FALLBACK})
    t.on_progress("bms", {"phase": "transferring", "percent": 100.0, "sent_bytes": 48_000})
    kept = rc.load(path).install["bms"]  # what a restarted host reads
    assert kept.delivery_kind == "full" and kept.delivery_reason == FALLBACK["delivery_reason"]
    assert kept.delivery_size == 70_000 and kept.delta_from is None and kept.sent_bytes == 48_000


def test_outcome_repeats_what_was_sent() -> None:
    p = EcuProgress(phase=Phase.CONFIRMED, percent=100.0, **{**PATCH, "sent_bytes": 129})
    o = EcuOutcome.of("2.0", "2.0", 0, p)
    assert (o.outcome, o.delivery_kind, o.delta_from, o.delivery_size, o.sent_bytes) == (
        Phase.CONFIRMED, "patch", "1.0", 1234, 129,
    )  # fmt: skip
    assert o.delivery == PATCH["delivery"] and o.delivery_reason is None
    # an ECU that was not sent anything (already up to date, or never reached)
    none = EcuOutcome.of("2.0", None, None, None)
    assert none.delivery is None and none.delivery_kind is None and none.outcome is None
    # the record's JSON round trip keeps it (the report and the history are built from it)
    res = rc.CampaignResult(state=rc.State.SUCCEEDED, ecus={"bms": o})
    assert rc.CampaignResult.model_validate_json(res.model_dump_json()) == res


def test_delivery_kind_is_closed() -> None:
    with pytest.raises(ValueError):
        EcuOutcome(to_version="2.0", delivery_kind="delta")  # type: ignore[arg-type]


CAPS = Caps(4096, 16256, 1 << 18, 4096, 8, 15, codes.CAP_DEFLATE_SEG | codes.CAP_PATCH)


@pytest.mark.parametrize(
    "caps",
    [
        CAPS,
        Caps(1024, 4096, 1 << 17, 4096, 8, 12, codes.CAP_DEFLATE_SEG),  # small device
        Caps(4096, 65536, 1 << 20, 65536, 8, 15, codes.CAP_DEFLATE_SEG),  # big sectors, window
    ],
)
def test_probe_payload_spans_segments_and_windows(caps: Caps) -> None:
    """The probe decodes several deflate segments of the device's segment size and its wire
    (deflated as a transfer is) slides the device's receive window; the content has literals
    and back-references, and it is the same for every probe of the same caps."""
    data = probe.payload(caps)
    assert data == probe.payload(caps) and len(data) == probe.payload_len(caps)
    seg = segment_size(caps.erase_size)
    wire = segments.encode(data, min(caps.deflate_wbits, 15), seg)
    assert len(segments.boundaries(wire, caps.deflate_wbits)) >= 3
    assert len(data) % seg  # a short last segment
    assert len(wire) > caps.window + caps.max_payload  # more than one window of frames
    assert len(data) <= caps.slot_size
    blocks = [data[i : i + probe.BLOCK] for i in range(0, len(data), probe.BLOCK)]
    assert blocks[probe.REPEAT_EVERY - 1] == blocks[probe.REPEAT_EVERY - 2]  # a back-reference
    assert len(set(blocks)) > len(blocks) // 2  # mostly distinct
    raw = zlib.compressobj(9, zlib.DEFLATED, -15)
    ratio = len(raw.compress(data) + raw.flush()) / len(data)
    assert 0.3 < ratio < 0.8, ratio  # Huffman-coded, neither stored nor a run of zeros


def test_probe_payload_fits_a_small_slot() -> None:
    small = Caps(4096, 16256, 20_000, 4096, 8, 15, codes.CAP_DEFLATE_SEG)
    assert len(probe.payload(small)) == 20_000

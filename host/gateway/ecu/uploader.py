"""The uploader: one image into an ECU's inactive slot, the transfer engine driven over a session.

Public interface (stable):
    Uploader(session)
      .install(instr, sigs, image, *, compress=None, progress=None) -> TransferResult
           BEGIN (the exact signed instruction), windowed DATA, END -> RESULT OK (the device's
           hash check); resumes at the offset the device reports after any link loss.
           ``image`` may be a ``Patch`` (a delta update): the patch crosses the line
           (compression 4, the patch in deflate segments, or 3, raw) and the ECU applies it to
           its active image; the instruction must bind that base (format 2), else the ECU
           refuses (E_BASE_MISMATCH, as for another active image: fall back to the full image)
      .probe(image, *, compress=None) -> ProbeResult
           a receive probe (docs/protocol.md 7.1): the same stream into a scratch state, nothing
           written; the device's decoded length and SHA-256 against what was sent
      .prepare_stream(image, compress) -> (wire bytes, compression code)
      .prepare_patch(patch, compress) -> (wire bytes, compression code)
      .begin_acks: list[int]   the offset every BEGIN's ACK of the last install named (the first
                               is ``TransferResult.resumed_from``; later ones: resumes)

The window, the offsets, go-back, the RTT / RTO estimate and the first-data (slot erase) timeout
are the engine's (``otalink.protocol.transfer.TxWindow``, sans-I/O); this module only moves its
frames and feeds it what the line says, with the time. The first window goes out right behind
BEGIN, from the durable offset and window in INFO: it crosses the line while the device erases.
After a link loss (silence, a device that forgot the session: ERROR E_BAD_STATE, a lost line)
the session is re-opened (HELLO until a valid INFO) and the same BEGIN sent again: the device
answers with its durable offset, and the stream goes on from there, until ``recover_timeout``
passes without progress (then EcuLinkError). A refused BEGIN / END is EcuRejected with the wire
code; a BEGIN the ECU's application defers is EcuDeferred (the caller's policy retries).

Compression: ``compress=None`` deflates (raw, wbits <= the device's deflate_wbits) only when
that helps; a device whose caps flags carry ``CAP_DEFLATE_SEG`` gets deflate segments
(compression 2, resumable after a device reboot), an older one a single raw-deflate stream.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from otalink.host.gateway.ecu import segments
from otalink.host.gateway.ecu.errors import (
    EcuDeferred,
    EcuLinkError,
    EcuProtocolError,
    EcuRejected,
)
from otalink.host.gateway.ecu.result import TransferResult
from otalink.host.gateway.ecu.session import Session
from otalink.host.gateway.ecu.wire import (
    Ack,
    Begin,
    Data,
    Defer,
    End,
    Error,
    Probe,
    Progress,
    Result,
    WireMessage,
)
from otalink.protocol import codes, transfer
from otalink.protocol.errors import ProtocolError

Progress_ = Callable[[int, int], None]
PATCH_SEGMENT = 65536  # patch bytes per deflate segment (ADR 0006: fewer restarts than 16 KiB)


class _Resync(Exception):
    """The device lost our transfer session: re-HELLO and re-BEGIN."""


@dataclass(frozen=True)
class ProbeResult:
    """A receive probe: what was sent and what the device says it decoded."""

    ok: bool  # decoded length and SHA-256 equal the image's
    image_len: int
    sha256: bytes
    decoded_len: int
    decoded_sha256: bytes
    compression: int
    wire_bytes: int
    seconds: float


@dataclass(frozen=True)
class Patch:
    """A delta update for ``Uploader.install``: a detools sequential patch (bsdiff, compression
    none: ``otalink repo add-image --delta-from`` makes them) and the RESULT it makes, which is
    what the signed instruction names (its image_len and sha256)."""

    data: bytes
    result_len: int
    result_sha256: bytes


def segment_size(erase_size: int) -> int:
    """Segment length for a device: the default, rounded up to whole erase sectors (the device
    checkpoints only at segment ends on a sector boundary)."""
    size = segments.SEGMENT_SIZE
    if erase_size > 0 and erase_size % 4096 == 0 and size % erase_size:
        size = -(-size // erase_size) * erase_size
    return size


class Uploader:
    """Streams images over a ``Session`` with the one transfer engine."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.begin_acks: list[int] = []
        # A stream left mid-way (an exception) may still have DATA on the line whose ACKs would
        # be taken for the next BEGIN's answer (an ACK names no request): sync first.
        self._unsynced = False

    def prepare_stream(self, image: bytes, compress: bool | None) -> tuple[bytes, int]:
        """The wire stream for ``image`` and its compression code.

        Deflate segments (resumable after a device reboot) when the device announces
        ``CAP_DEFLATE_SEG``, else one raw-deflate stream; either within the device's window.
        Raw when compression is off, impossible (wbits < 9: zlib has no smaller window) or, with
        ``compress=None``, does not help.
        """
        info = self.session.info
        caps = info.caps if info else None
        wbits = caps.deflate_wbits if caps else 0
        if compress is False or wbits < 9:
            return image, codes.COMP_NONE
        wb = min(wbits, 15)
        if caps is not None and caps.flags & codes.CAP_DEFLATE_SEG:
            packed = segments.encode(image, wb, segment_size(caps.erase_size))
            comp = codes.COMP_DEFLATE_SEG
        else:
            co = zlib.compressobj(9, zlib.DEFLATED, -wb, 9)
            packed = co.compress(image) + co.flush()
            comp = codes.COMP_DEFLATE
        if compress is None and len(packed) >= len(image) * 0.98:
            return image, codes.COMP_NONE
        return packed, comp

    def prepare_patch(self, patch: Patch, compress: bool | None) -> tuple[bytes, int]:
        """The wire stream of a patch: in deflate segments (``COMP_PATCH_DEFLATE_SEG``, a
        bsdiff patch is mostly zeros) when the device decodes them and that helps, else raw
        (``COMP_PATCH``). ``EcuRejected(E_BAD_MESSAGE)`` for a device that announces no patch
        support (caps flag ``CAP_PATCH``): send it the full image."""
        info = self.session.info
        caps = info.caps if info else None
        if caps is None or not caps.flags & codes.CAP_PATCH:
            raise EcuRejected(codes.E_BAD_MESSAGE, codes.COMP_PATCH, "the ECU applies no patches")
        if compress is False or caps.deflate_wbits < 9 or not caps.flags & codes.CAP_DEFLATE_SEG:
            return patch.data, codes.COMP_PATCH
        packed = segments.encode(patch.data, min(caps.deflate_wbits, 15), PATCH_SEGMENT)
        if compress is None and len(packed) >= len(patch.data) * 0.98:
            return patch.data, codes.COMP_PATCH
        return packed, codes.COMP_PATCH_DEFLATE_SEG

    def _engine(self, wire_len: int) -> transfer.TxWindow:
        s = self.session
        p = s.policy
        baud = s.transport.baud
        return transfer.TxWindow(
            wire_len,
            s.payload - transfer.DATA_OVERHEAD,
            reply_timeout=p.reply_timeout,
            first_timeout=p.first_data_timeout,
            stall_timeout=p.recover_timeout,
            byte_time=10.0 / baud if baud else 0.0,
        )

    def install(
        self,
        instr: bytes,
        sigs: list[tuple[bytes, bytes]],
        image: bytes | Patch,
        *,
        compress: bool | None = None,
        progress: Progress_ | None = None,
    ) -> TransferResult:
        """Stream ``image`` (or a ``Patch`` whose result it makes) into the inactive slot and
        wait for the device's verified RESULT."""
        s = self.session
        if s.info is None:
            s.reopen(s.clock.monotonic())
        if isinstance(image, Patch):
            stream, comp = self.prepare_patch(image, compress)
            sha, image_len = image.result_sha256, image.result_len
        else:
            stream, comp = self.prepare_stream(image, compress)
            sha, image_len = hashlib.sha256(image).digest(), len(image)
        begin = Begin(instr, tuple(sigs), image_len, sha, comp, len(stream))
        tx = self._engine(len(stream))
        self.begin_acks = []
        tx0, rx0 = s.transport.bytes_written, s.transport.bytes_read
        t0 = s.clock.monotonic()
        reconnects = 0
        last_progress = t0
        mark = 0  # the highest offset acknowledged when progress was last noted
        reported = [-1]
        while True:
            try:
                self._stream(begin, tx, stream, progress, reported)
                self._end(len(stream), sha)
                break
            except (EcuLinkError, _Resync) as exc:
                if tx.acked_max > mark:
                    mark = tx.acked_max
                    last_progress = s.clock.monotonic()
                if s.clock.monotonic() - last_progress > s.policy.recover_timeout:
                    if isinstance(exc, EcuLinkError):
                        raise
                    raise EcuLinkError("transfer session lost and not recovered") from exc
                reconnects += 1
                s.reopen(last_progress)
                self._unsynced = False  # HELLO's round trip was the sync
        return TransferResult(
            image_bytes=image_len,
            wire_bytes=len(stream),
            compression=comp,
            tx_bytes=s.transport.bytes_written - tx0,
            rx_bytes=s.transport.bytes_read - rx0,
            seconds=s.clock.monotonic() - t0,
            baud=s.transport.baud,
            resumed_from=max(0, tx.resumed_from),
            retransmitted_bytes=tx.retransmitted,
            reconnects=reconnects,
            frames=tx.frames,
            sha256=sha,
        )

    def probe(self, image: bytes, *, compress: bool | None = None) -> ProbeResult:
        """A receive probe of ``image``: one attempt (a probe is never resumed), from 0."""
        s = self.session
        if s.info is None:
            s.reopen(s.clock.monotonic())
        stream, comp = self.prepare_stream(image, compress)
        sha = hashlib.sha256(image).digest()
        t0 = s.clock.monotonic()
        tx = self._engine(len(stream))
        try:
            self._stream(Probe(len(image), sha, comp, len(stream)), tx, stream, None, [-1])
        except _Resync as exc:
            raise EcuLinkError("the device dropped the probe") from exc
        got = s.request(
            End(len(stream)), Probe, timeout=max(s.policy.reply_timeout, s.policy.end_timeout)
        )
        ok = got.image_len == len(image) and got.sha256 == sha
        return ProbeResult(ok, len(image), sha, got.image_len, got.sha256, comp, len(stream),
                           s.clock.monotonic() - t0)  # fmt: skip

    def _stream(
        self,
        begin: Begin | Probe,
        tx: transfer.TxWindow,
        stream: bytes,
        progress: Progress_ | None,
        reported: list[int],
    ) -> None:
        """BEGIN (or PROBE), then windowed DATA until the device has ACKed every wire byte.

        The device owns the offset: if BEGIN's ACK names another one than the guess, the frames
        sent on the guess are duplicates / gaps it drops, and the engine goes back to it."""
        s = self.session
        total = tx.wire_len
        guess, window = 0, 0
        info = s.info
        if info is not None and isinstance(begin, Begin):
            window = info.caps.window
            t = info.transfer
            if t.wire_len == total and t.image_len == begin.image_len and t.wire_offset <= total:
                guess = t.wire_offset
        if self._unsynced:
            s.status()  # every frame the device sent before its STATUS arrives before it
        s.drain()
        s.send(begin)
        tx.start(s.clock.monotonic(), guess, window)
        self._unsynced = True
        while not tx.done:
            now = s.clock.monotonic()
            if tx.overdue(now):
                if tx.begun:
                    raise EcuLinkError("the device does not advance the transfer offset")
                raise EcuLinkError("BEGIN not answered in time (slot erase)")
            # each frame stamped when its write starts (a full line FIFO blocks the writes): the
            # RTT samples are the frame's own round trip, not the burst's
            while (r := tx.next_range(s.clock.monotonic())) is not None:
                off, n = r
                s.send(Data(off, stream[off : off + n]))
            msg = s.next(tx.deadline(s.clock.monotonic()))
            now = s.clock.monotonic()
            if msg is None:
                if tx.on_timeout(now) == transfer.RECOVER:
                    raise EcuLinkError(
                        "no ACK from the device" if tx.begun else "BEGIN not answered"
                    )
                s.flush_line(tx.flush_bytes)
            elif isinstance(msg, Ack):
                self._ack(tx, msg, now, progress, reported)
            else:
                tx.heard(now)
                self._other(tx, begin, msg, now)
        self._unsynced = False

    def _ack(
        self,
        tx: transfer.TxWindow,
        msg: Ack,
        now: float,
        progress: Progress_ | None,
        reported: list[int],
    ) -> None:
        try:
            if not tx.begun:
                # The answer to BEGIN (the device handles frames in order).
                tx.on_begin_ack(msg.offset, msg.window, now)
                self.begin_acks.append(msg.offset)
                return
            tx.on_ack(msg.offset, msg.window, now)
        except ProtocolError as exc:
            raise EcuProtocolError(f"ACK offset {msg.offset} beyond the stream") from exc
        if progress and msg.offset > reported[0]:
            reported[0] = msg.offset
            progress(msg.offset, tx.wire_len)

    def _other(
        self, tx: transfer.TxWindow, begin: WireMessage, msg: WireMessage, now: float
    ) -> None:
        """A frame in the stream that is no ACK."""
        if isinstance(msg, Progress):
            return  # the slot erase (before BEGIN's ACK) or a read-back announcing itself
        if isinstance(msg, Defer) and msg.request_type == begin.type and not tx.begun:
            raise EcuDeferred(msg.request_type, msg.retry_after_s, msg.reason)
        if not isinstance(msg, Error):
            self.session.stale(msg)  # RESULT / INFO / STATUS of an earlier request
            return
        if msg.request_type == begin.type and not tx.begun:
            raise EcuRejected(msg.code, msg.detail)  # BEGIN refused: authenticity, policy, busy
        if msg.request_type != codes.MSG_DATA:
            self.session.stale(msg)  # answers an earlier request, not this stream
        elif msg.code == codes.E_BAD_STATE:
            if tx.begun:
                raise _Resync()  # the device dropped our session (reset, idle)
            # DATA that overtook a lost BEGIN: BEGIN's fate decides
        elif not tx.begun:
            pass  # DATA sent on a guess before BEGIN's answer: BEGIN decides
        elif msg.code in (codes.E_OUT_OF_WINDOW, codes.E_BAD_OFFSET):
            tx.on_window_error(now)
        else:
            raise EcuRejected(msg.code, msg.detail)  # E_FLASH, E_DECOMPRESS ...: it ended

    def _end(self, wire_len: int, sha: bytes) -> None:
        """END -> RESULT OK: the device has checked the image hash."""
        s = self.session
        try:
            reply = s.request(
                End(wire_len),
                Result,
                lambda m: m.request_type == codes.MSG_END,
                timeout=max(s.policy.reply_timeout, s.policy.end_timeout),
            )
        except EcuRejected as exc:
            if exc.wire_code == codes.E_BAD_STATE and self._verified_by_status(sha):
                return  # a repeated END after the first was acted on
            if exc.wire_code in (codes.E_BAD_STATE, codes.E_WIRE_LENGTH):
                raise _Resync() from exc
            raise
        if reply.code != codes.OK:
            raise EcuRejected(reply.code, reply.detail)

    def _verified_by_status(self, sha: bytes) -> bool:
        slot = self.session.status().inactive
        return slot.state == codes.SLOT_VERIFIED and slot.sha256 == sha

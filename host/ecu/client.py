"""ECU client: one session with one ECU over a serial link (the code path every host tool uses).

Public interface (stable):
    EcuClient(url: str | None = None, *, transport: Transport | None = None,
              baud: int | None = None,
              timeout: float = T_REPLY_MS/1000, first_data_timeout: float = T_FIRST_DATA_MS/1000,
              recover_timeout: float = 60.0, max_payload: int = DEFAULT_PAYLOAD,
              verify_key: bytes | None = None)
      .hello(nonce: bytes | None = None) -> EcuInfo          (HELLO -> signed INFO)
      .status(nonce: bytes | None = None) -> EcuInfo         (STATUS_REQ -> signed STATUS)
      .install(instr: bytes, sigs: list[tuple[bytes, bytes]], image: bytes, *,
               compress: bool | None = None,
               progress: Callable[[int, int], None] | None = None) -> TransferResult
      .activate() / .reboot() / .confirm() / .revert() / .abort() -> int   (RESULT detail)
      .info -> EcuInfo | None (last INFO), .close(), context manager
    Errors: EcuError family (otalink.host.ecu.errors) with ``wire_code`` from protocol/codes.py.

``install`` sends BEGIN, streams DATA inside the window the device grants from the offset the
device owns, goes back on gap ACKs, shrinks frames while the line loses them, and after any link
loss (timeouts, device reset, ERROR E_BAD_STATE) re-HELLOs and re-BEGINs to resume from the
device's durable offset, until ``recover_timeout`` passes without progress. END must be answered
by RESULT OK (the device's hash check) before the transfer counts as verified.
``compress=None`` deflates (raw, wbits <= the device's deflate_wbits) only when that helps.
A device whose INFO caps flags carry ``CAP_DEFLATE_SEG`` gets deflate segments (compression 2,
``otalink.host.ecu.segments``), which it resumes from a segment end even after a reboot; an older
device (flags 0) gets one raw-deflate stream (compression 1).
Added: ``.begin_acks: list[int]`` — the offset every BEGIN's ACK of the last ``install`` named
(the first is ``TransferResult.resumed_from``; later ones are resumes after a link loss/reset).
"""

from __future__ import annotations

import collections
import hashlib
import os
import time
import zlib
from collections.abc import Callable
from typing import Any

from otalink.host.ecu import segments
from otalink.host.ecu.errors import EcuLinkError, EcuProtocolError, EcuRejected
from otalink.host.ecu.info import EcuInfo
from otalink.host.ecu.result import TransferResult
from otalink.host.ecu.transport import SerialTransport, Transport
from otalink.host.ecu.wire import Deframer, encode
from otalink.protocol import cbor, codes
from otalink.protocol.errors import ProtocolError

Progress = Callable[[int, int], None]

_DATA_OVERHEAD = 16  # DATA's bstr may carry max_payload - 16 bytes (docs/protocol.md)
_MIN_CHUNK = 64
_GROW_AFTER = 8  # clean ACKs before a shrunk frame size doubles again
_MIN_RTO = 0.1  # s; ACKs normally follow DATA within milliseconds


class _Resync(Exception):
    """The device lost our transfer session: re-HELLO and re-BEGIN."""


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class EcuClient:
    """Request/reply session plus the windowed transfer, over any ``Transport``."""

    def __init__(
        self,
        url: str | None = None,
        *,
        transport: Transport | None = None,
        baud: int | None = None,
        timeout: float = codes.T_REPLY_MS / 1000,
        first_data_timeout: float = codes.T_FIRST_DATA_MS / 1000,
        recover_timeout: float = 60.0,
        max_payload: int = codes.DEFAULT_PAYLOAD,
        verify_key: bytes | None = None,
    ) -> None:
        if transport is None:
            if url is None:
                raise ValueError("EcuClient needs a url or a transport")
            transport = SerialTransport(url, baud)
        self.transport: Transport = transport
        self.timeout = timeout
        self.first_data_timeout = first_data_timeout
        self.recover_timeout = recover_timeout
        self.host_max_payload = max(codes.MIN_PAYLOAD, min(max_payload, codes.MAX_PAYLOAD_ABS))
        self.verify_key = verify_key
        self.info: EcuInfo | None = None
        self.payload = self.host_max_payload  # negotiated at HELLO
        self._deframer = Deframer(codes.MAX_PAYLOAD_ABS)
        self._inbox: collections.deque[list[Any]] = collections.deque()
        self.on_message: Callable[[list[Any]], None] | None = None
        self.begin_acks: list[int] = []  # offsets BEGIN's ACKs named in the last install

    # ---- plumbing -----------------------------------------------------------
    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> EcuClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, msg: list[Any]) -> None:
        self.transport.write(encode(msg))

    def _flush_line(self, n: int | None = None) -> None:
        """Complete any partial frame the device's parser is still waiting for.

        Bytes lost inside a frame leave the receiver holding a candidate whose LEN promises more
        than arrives; it only resynchronises once that many bytes came. Zero bytes never start a
        frame, so a run of them completes the stale candidate and is then skipped.
        """
        self.transport.write(bytes(n if n is not None else self.payload + codes.FRAME_OVERHEAD))

    def _next(self, deadline: float) -> list[Any] | None:
        """The next decoded message, or None once ``deadline`` (monotonic) passes."""
        while not self._inbox:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            data = self.transport.read(left)
            if data:
                self._inbox.extend(self._deframer.feed(data))
        msg = self._inbox.popleft()
        if self.on_message is not None:
            self.on_message(msg)
        return msg

    def _poll(self) -> list[Any] | None:
        """A message if one is already here or arrives at once; never blocks."""
        if not self._inbox:
            data = self.transport.read(0)
            if data:
                self._inbox.extend(self._deframer.feed(data))
        return self._next(0) if self._inbox else None

    def _drain(self) -> None:
        """Forget stale input (replies to requests we gave up on)."""
        self._inbox.clear()
        while self.transport.read(0):
            pass
        self._deframer.reset()

    @staticmethod
    def _raise_for(msg: list[Any]) -> None:
        if msg[0] == codes.MSG_ERROR:
            code = msg[1] if len(msg) > 1 and _is_int(msg[1]) else codes.E_INTERNAL
            detail = msg[2] if len(msg) > 2 and _is_int(msg[2]) else 0
            raise EcuRejected(code, detail)
        if msg[0] == codes.MSG_RESULT and len(msg) >= 4 and msg[2] != codes.OK:
            raise EcuRejected(msg[2], msg[3])

    def _request(
        self,
        msg: list[Any],
        accept: Callable[[list[Any]], bool],
        timeout: float,
        tries: int = 3,
        cap: float | None = None,
    ) -> list[Any]:
        """Send ``msg`` until a reply ``accept`` takes (or an ERROR) arrives.

        Each try waits ``timeout`` s of silence; a PROGRESS message restarts that wait, up to
        ``cap`` s in all (a slot erase announces itself with PROGRESS).
        """
        self._drain()
        for attempt in range(tries):
            if attempt:
                self._flush_line()
            self._send(msg)
            start = time.monotonic()
            deadline = start + timeout
            while True:
                reply = self._next(deadline)
                if reply is None:
                    break
                if reply[0] == codes.MSG_PROGRESS:
                    deadline = time.monotonic() + timeout
                    if cap is not None:
                        deadline = min(deadline, start + cap)
                    continue
                if reply[0] == codes.MSG_ERROR:
                    if _answers_data(reply):
                        continue  # a late answer to DATA frames, not to this request
                    self._raise_for(reply)
                if accept(reply):
                    return reply
        raise EcuLinkError(f"no reply to message type {msg[0]} after {tries} tries")

    # ---- session --------------------------------------------------------------
    def _report(self, reply: list[Any], nonce: bytes) -> EcuInfo:
        if len(reply) < 3 or not isinstance(reply[1], bytes) or not isinstance(reply[2], bytes):
            raise EcuProtocolError("malformed INFO/STATUS")
        info = EcuInfo.from_wire(reply[1], reply[2])
        if info.nonce != nonce:
            raise EcuProtocolError("report nonce does not match the request")
        if self.verify_key is not None:
            info.verify(self.verify_key)
        return info

    def hello(self, nonce: bytes | None = None) -> EcuInfo:
        """HELLO: open a session, learn the ECU's capabilities; returns its signed INFO."""
        nonce = nonce or os.urandom(16)
        reply = self._request(
            [codes.MSG_HELLO, codes.PROTOCOL_VERSION, nonce, self.host_max_payload],
            lambda m: m[0] == codes.MSG_INFO and len(m) >= 3 and _nonce_of(m[1]) == nonce,
            self.timeout,
        )
        info = self._report(reply, nonce)
        self.info = info
        device_max = info.caps.max_payload or codes.DEFAULT_PAYLOAD
        self.payload = max(codes.MIN_PAYLOAD, min(self.host_max_payload, device_max))
        return info

    def status(self, nonce: bytes | None = None) -> EcuInfo:
        """STATUS_REQ: the ECU's signed report for a fresh nonce."""
        nonce = nonce or os.urandom(16)
        reply = self._request(
            [codes.MSG_STATUS_REQ, nonce],
            lambda m: m[0] == codes.MSG_STATUS and len(m) >= 3 and _nonce_of(m[1]) == nonce,
            self.timeout,
        )
        return self._report(reply, nonce)

    def _command(self, mtype: int, timeout: float | None = None) -> int:
        reply = self._request(
            [mtype],
            lambda m: m[0] == codes.MSG_RESULT and len(m) >= 4 and m[1] == mtype,
            timeout or self.timeout,
        )
        self._raise_for(reply)
        return int(reply[3])

    def activate(self) -> int:
        """Mark the verified slot pending: the next boot runs it on trial."""
        return self._command(codes.MSG_ACTIVATE)

    def reboot(self) -> int:
        return self._command(codes.MSG_REBOOT)

    def confirm(self) -> int:
        return self._command(codes.MSG_CONFIRM)

    def revert(self) -> int:
        return self._command(codes.MSG_REVERT)

    def abort(self) -> int:
        return self._command(codes.MSG_ABORT)

    # ---- transfer ---------------------------------------------------------------
    def prepare_stream(self, image: bytes, compress: bool | None) -> tuple[bytes, int]:
        """The wire stream for ``image`` and its compression code.

        Deflate segments (resumable after a device reboot) when the device announces
        ``CAP_DEFLATE_SEG``, else one raw-deflate stream; either within the device's window.
        Raw when compression is off, impossible (wbits < 9: zlib has no smaller window) or, with
        ``compress=None``, does not help.
        """
        caps = self.info.caps if self.info else None
        wbits = caps.deflate_wbits if caps else 0
        if compress is False or wbits < 9:
            return image, codes.COMP_NONE
        wb = min(wbits, 15)
        if caps is not None and caps.flags & codes.CAP_DEFLATE_SEG:
            packed = segments.encode(image, wb, _segment_size(caps.erase_size))
            comp = codes.COMP_DEFLATE_SEG
        else:
            co = zlib.compressobj(9, zlib.DEFLATED, -wb, 9)
            packed = co.compress(image) + co.flush()
            comp = codes.COMP_DEFLATE
        if compress is None and len(packed) >= len(image) * 0.98:
            return image, codes.COMP_NONE
        return packed, comp

    def install(
        self,
        instr: bytes,
        sigs: list[tuple[bytes, bytes]],
        image: bytes,
        *,
        compress: bool | None = None,
        progress: Progress | None = None,
    ) -> TransferResult:
        """Stream ``image`` into the inactive slot and wait for the device's verified RESULT."""
        if self.info is None:
            self._recover(time.monotonic())
        stream, comp = self.prepare_stream(image, compress)
        sha = hashlib.sha256(image).digest()
        begin = [
            codes.MSG_BEGIN,
            instr,
            [[k, s] for k, s in sigs],
            len(image),
            sha,
            comp,
            len(stream),
        ]
        st = _TxState(stream, self.payload - _DATA_OVERHEAD)
        self.begin_acks = []
        tx0, rx0 = self.transport.bytes_written, self.transport.bytes_read
        t0 = time.monotonic()
        reconnects = 0
        last_progress = time.monotonic()
        while True:
            try:
                self._stream(begin, st, len(image), progress)
                self._end(len(stream), sha)
                break
            except (EcuLinkError, _Resync) as exc:
                if st.acked_max > st.progress_mark:
                    st.progress_mark = st.acked_max
                    last_progress = time.monotonic()
                if time.monotonic() - last_progress > self.recover_timeout:
                    if isinstance(exc, EcuLinkError):
                        raise
                    raise EcuLinkError("transfer session lost and not recovered") from exc
                reconnects += 1
                self._recover(last_progress)
        seconds = time.monotonic() - t0
        return TransferResult(
            image_bytes=len(image),
            wire_bytes=len(stream),
            compression=comp,
            tx_bytes=self.transport.bytes_written - tx0,
            rx_bytes=self.transport.bytes_read - rx0,
            seconds=seconds,
            baud=self.transport.baud,
            resumed_from=max(0, st.resumed_from),
            retransmitted_bytes=st.retransmitted,
            reconnects=reconnects,
            frames=st.frames,
            sha256=sha,
        )

    def _recover(self, last_progress: float) -> None:
        """Re-open the session after a link loss (re-HELLO until it answers)."""
        while True:
            try:
                self.hello()
                return
            except EcuLinkError:
                if time.monotonic() - last_progress > self.recover_timeout:
                    raise
            except EcuProtocolError:
                continue

    def _stream(
        self, begin: list[Any], st: _TxState, image_len: int, progress: Progress | None
    ) -> None:
        """BEGIN, then windowed DATA until the device has ACKed every wire byte.

        The first window goes out right behind BEGIN, from the durable offset and window the
        device announced in INFO: it crosses the line while the device erases, instead of one
        round trip later. The device owns the offset: if BEGIN's ACK names another one, those
        frames are duplicates/gaps it drops, and the host goes back to the ACKed offset.
        """
        total = len(st.stream)
        info = self.info
        guess, window = 0, 0
        if info is not None:
            window = info.caps.window
            t = info.transfer
            if t.wire_len == total and t.image_len == image_len and t.wire_offset <= total:
                guess = t.wire_offset
        self._drain()
        self._send(begin)
        st.restart(guess, window)
        begun = False
        begin_sent = time.monotonic()
        timeouts = 0
        baud = self.transport.baud
        # Until an RTT has been measured: the time to carry one window, plus a margin.
        carry = window * 10.0 / baud if baud else 0.0
        rto = base_rto = min(self.timeout, max(4 * _MIN_RTO, 2 * carry + _MIN_RTO))
        srtt = rttvar = 0.0
        sent_at: dict[int, float] = {}  # frame end offset -> time of its latest send
        silent_since = time.monotonic()
        while not begun or st.acked < total:
            while st.next_send < total and st.next_send < st.limit:
                n = min(st.chunk, total - st.next_send, st.limit - st.next_send)
                off = st.next_send
                if off < st.sent_max:
                    st.retransmitted += min(n, st.sent_max - off)
                # RTT samples from retransmissions too (from the latest send): after a go-back
                # the first copy is lost or discarded, and heavy loss would otherwise leave the
                # timer without any sample.
                sent_at[off + n] = time.monotonic()
                self._send([codes.MSG_DATA, off, st.stream[off : off + n]])
                st.frames += 1
                st.inflight += 1
                st.max_frame = max(st.max_frame, n + 16)
                st.next_send = off + n
                st.sent_max = max(st.sent_max, st.next_send)
            wait = rto if begun else self.timeout
            msg = self._next(time.monotonic() + wait)
            now = time.monotonic()
            if msg is None:
                if not begun:
                    raise EcuLinkError("BEGIN not answered")
                # Nothing within the retransmit time: the tail of the window or the line is
                # lost. Go back to the last ACKed offset; hand over to link recovery once the
                # device has been silent for longer than its reply time.
                timeouts += 1
                if now - silent_since >= 2 * self.timeout:
                    raise EcuLinkError("no ACK from the device")
                # Frames may only be delayed (a stall): their ACKs are still due.
                st.rewind(st.acked, st.inflight, loss=False)
                self._flush_line(st.max_frame + codes.FRAME_OVERHEAD)
                st.max_frame = 0
                rto = min(self.timeout, rto * 2)
                continue
            silent_since = now
            kind = msg[0]
            if kind == codes.MSG_PROGRESS:
                if not begun and now - begin_sent > self.first_data_timeout:
                    raise EcuLinkError("slot erase did not finish in time")
                continue
            if kind == codes.MSG_ACK and len(msg) >= 4 and _is_int(msg[1]) and _is_int(msg[2]):
                off, win = msg[1], msg[2]
                if not begun:
                    # The answer to BEGIN (the device handles frames in order).
                    if off > total:
                        raise EcuProtocolError("ACK offset beyond the stream")
                    begun = True
                    self.begin_acks.append(off)
                    st.on_begin_ack(off, win)
                    continue
                t_sent = sent_at.pop(off, None)
                if t_sent is not None:
                    sample = now - t_sent
                    if srtt <= 0:
                        srtt, rttvar = sample, sample / 2
                    else:
                        rttvar = 0.75 * rttvar + 0.25 * abs(srtt - sample)
                        srtt = 0.875 * srtt + 0.125 * sample
                    base_rto = min(self.timeout, max(_MIN_RTO, srtt + 4 * rttvar))
                    st.srtt = srtt
                if off > st.acked:
                    rto = base_rto  # the line is alive: drop any timeout back-off
                    if len(sent_at) > 64:
                        for end in [e for e in sent_at if e <= off]:
                            del sent_at[end]
                st.on_ack(off, win)
                if progress and off > st.reported:
                    st.reported = off
                    progress(min(off, total), total)
            elif kind == codes.MSG_ERROR and len(msg) >= 3:
                code, detail = msg[1], msg[2]
                if code == codes.E_BAD_STATE and detail == codes.MSG_DATA:
                    if begun:
                        raise _Resync()  # the device dropped our session (reset, idle)
                    continue  # DATA that overtook a lost BEGIN: BEGIN's fate decides
                if not begun:
                    self._raise_for(msg)  # BEGIN refused: authenticity, policy, busy
                if code in (codes.E_OUT_OF_WINDOW, codes.E_BAD_OFFSET):
                    st.rewind(st.acked, st.inflight)
                elif code in (codes.E_BAD_STATE, codes.E_TIMEOUT):
                    raise _Resync()
                else:
                    self._raise_for(msg)
            elif kind == codes.MSG_RESULT:
                self._raise_for(msg)

    def _end(self, wire_len: int, sha: bytes) -> None:
        """END -> RESULT OK: the device has checked the image hash."""
        try:
            reply = self._request(
                [codes.MSG_END, wire_len],
                lambda m: m[0] == codes.MSG_RESULT and len(m) >= 4 and m[1] == codes.MSG_END,
                max(self.timeout, 5.0),
            )
        except EcuRejected as exc:
            if exc.wire_code == codes.E_BAD_STATE and self._verified_by_status(sha):
                return  # a repeated END after the first was acted on
            if exc.wire_code in (codes.E_BAD_STATE, codes.E_WIRE_LENGTH):
                raise _Resync() from exc
            raise
        self._raise_for(reply)

    def _verified_by_status(self, sha: bytes) -> bool:
        info = self.status()
        slot = info.inactive
        return slot.state == codes.SLOT_VERIFIED and slot.sha256 == sha


def _segment_size(erase_size: int) -> int:
    """Segment length for a device: the default, rounded up to whole erase sectors (the device
    checkpoints only at segment ends on a sector boundary)."""
    size = segments.SEGMENT_SIZE
    if erase_size > 0 and erase_size % 4096 == 0 and size % erase_size:
        size = -(-size // erase_size) * erase_size
    return size


def _answers_data(msg: list[Any]) -> bool:
    """ERRORs that only ever answer DATA frames (stale once the stream is over)."""
    code = msg[1] if len(msg) > 1 else None
    detail = msg[2] if len(msg) > 2 else None
    return code == codes.E_OUT_OF_WINDOW or (code == codes.E_BAD_STATE and detail == codes.MSG_DATA)


def _nonce_of(body: Any) -> bytes | None:
    """The nonce field of a report body, without a full decode (for reply matching)."""
    if not isinstance(body, bytes):
        return None
    try:
        f = cbor.loads(body, True)
    except ProtocolError:
        return None
    if isinstance(f, list) and len(f) > 3 and isinstance(f[3], bytes):
        return f[3]
    return None


class _TxState:
    """Send-side bookkeeping of one windowed stream: go-back-N, adaptive frame size and a
    congestion window that shrinks while the line loses frames (each loss costs what is in flight).
    """

    def __init__(self, stream: bytes, max_chunk: int) -> None:
        self.stream = stream
        self.max_chunk = max(_MIN_CHUNK, max_chunk)
        self.chunk = self.max_chunk
        self.cwnd = 1 << 30  # bytes in flight allowed on top of the device's window
        self.acked = 0
        self.acked_max = 0
        self.progress_mark = 0
        self.reported = -1
        self.window_end = 0  # device grant: offset + window
        self.next_send = 0
        self.sent_max = 0
        self.inflight = 0  # frames sent since the last go-back whose ACK is still due
        self.stale = 0  # ACKs still due for frames sent before the last go-back
        self.clean = 0
        self.frames = 0
        self.retransmitted = 0
        self.losses = 0
        self.max_frame = self.max_chunk + 16  # largest frame since the last timeout
        self.resumed_from = -1
        self.rewound_to = -1
        self.rewound_at = 0.0
        self.srtt = 0.0  # smoothed round trip, kept by the stream loop

    @property
    def limit(self) -> int:
        return min(self.window_end, self.acked + self.cwnd)

    def on_begin_ack(self, offset: int, window: int) -> None:
        """BEGIN's ACK: the device's offset and window; frames sent on a wrong guess are stale."""
        if self.resumed_from < 0:
            self.resumed_from = offset
        guessed = self.acked
        self.acked = offset
        self.acked_max = max(self.acked_max, offset)
        self.window_end = offset + window
        if offset != guessed:
            self.next_send = offset
            self.stale = self.inflight
            self.inflight = 0

    def restart(self, offset: int, window: int) -> None:
        self.acked = offset
        self.acked_max = max(self.acked_max, offset)
        self.next_send = offset
        self.window_end = offset + window
        self.inflight = 0
        self.stale = 0

    def rewind(self, offset: int, stale: int, loss: bool = True) -> None:
        """Go back to ``offset``; ``stale`` ACKs are still due for frames sent before.

        Every go-back halves the frame size (a frame that keeps being hit must get smaller to
        get through). ``loss`` (a gap the device reported) also halves the congestion window,
        since on a lossy line each loss costs what is in flight; a timeout does not, it may be
        a stall that only delays frames.
        """
        self.losses += 1
        in_flight_bytes = self.next_send - offset
        self.next_send = offset
        self.stale = max(0, stale)
        self.inflight = 0
        self.clean = 0
        self.chunk = max(_MIN_CHUNK, self.chunk // 2)
        if loss:
            self.rewound_to = offset
            self.rewound_at = time.monotonic()
            self.cwnd = max(2 * self.chunk, min(self.cwnd, in_flight_bytes) // 2)

    def on_ack(self, offset: int, window: int) -> None:
        was_stale = self.stale > 0
        if was_stale:
            self.stale -= 1
        else:
            self.inflight = max(0, self.inflight - 1)
        if offset > self.acked:
            self.acked = offset
            self.acked_max = max(self.acked_max, offset)
            self.window_end = offset + window
            if self.next_send < offset:
                self.next_send = offset
            self.clean += 1
            if self.cwnd < (1 << 30):
                self.cwnd += self.chunk
            if self.clean >= _GROW_AFTER and self.chunk < self.max_chunk:
                self.chunk = min(self.max_chunk, self.chunk * 2)
                self.clean = 0
            return
        if offset == self.acked:
            self.window_end = offset + window
            echo_time = max(_MIN_RTO, 2 * self.srtt)
            recent = offset == self.rewound_to and time.monotonic() - self.rewound_at < echo_time
            if not was_stale and not recent and self.next_send > offset:
                # A gap ACK: the frame at ``offset`` was lost (it will never be ACKed); every
                # other frame still in flight answers with this same offset. Repeats of the
                # offset just gone back to, within a round trip, are echoes of that loss.
                self.rewind(offset, self.inflight - 1)

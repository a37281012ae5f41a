"""esptool's ``write-flash`` on an ESP32, COMPUTED: esptool's own code against an emulated chip.

    esptool_run(image, baud, latency_s, compress=True) -> dict

esptool cannot run here (no ESP32). Instead of a formula, this runs esptool itself
(``esptool.main(["--chip", "esp32", "--baud", B, "write-flash", "0x10000", FILE], esp=...)``,
the PyPI package, default options: bootloader reset, stub flasher, deflate, MD5 verify, hard
reset) against ``VirtualEsp32``, an emulation of what the chip answers, on a virtual clock that
is advanced by exactly what the exchange costs:

* the line: every byte takes 10/baud s each way (8N1), both directions serialised, plus the
  one-way latency; 115200 until esptool's CHANGE_BAUDRATE, then ``baud`` (the ROM always starts
  at 115200, and esptool syncs there before switching);
* esptool's own waits, as its code does them (``time.sleep`` runs on the virtual clock): the
  bootloader reset sequence (esp_pylib's unix_tight_bootloader_reset: 0.1 s with EN low, 0.05 s
  after), the 0.05 s after a baud change, the 0.1 s EN pulse of the hard reset at the end;
* the ROM: its boot log at reset ("rst:... waiting for download", read by esptool), 8 replies to
  SYNC, register reads (chip magic, eFuses, UART divider, SPI flash ID) answered from a register
  file, MEM_BEGIN/MEM_DATA/MEM_END for the stub (esptool's own stub image, uploaded at 115200),
  then the stub's "OHAI";
* the stub flasher as its source behaves (esptool-legacy-flasher-stub, stub_flasher.c /
  stub_write_flash.c): each FLASH_(DEFL_)DATA is answered as soon as the previous one has been
  processed, then processed while the next one crosses the line; processing inflates into a 32 KiB
  buffer and, per full buffer, erases on demand (a 64 KiB block erase when aligned and more than
  a block remains, else 4 KiB sectors) and programs 256-byte pages. Flash times are the typical
  figures of the 4 MiB SPI NOR on ESP32-WROOM-32 modules (Winbond W25Q32JV datasheet: page program
  0.4 ms, 4 KiB sector erase 45 ms, 64 KiB block erase 150 ms). Inflate, MD5 and ROM processing
  take no time (in esptool's favour).

The emulated flash is real: esptool's MD5 verification compares the MD5 the stub computes over
what it wrote with the image's, so a model that lost or mangled data fails here.

``seconds``: FLASH_DEFL_BEGIN written -> MD5 verified (the "Wrote ... / Hash of data verified"
part, comparable to ours BEGIN -> verified); ``whole_seconds``: the whole esptool run, reset into
the bootloader to the hard reset after writing (comparable to our whole update minus the app's
boot). Breakdown: connect, stub, baud change, attach, flash, md5, reset.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import struct
import sys
import tempfile
import zlib
from collections import deque
from pathlib import Path
from typing import Any

import esptool
from esptool.targets.esp32 import ESP32ROM

# Typical SPI NOR timings (W25Q32JV datasheet, tPP / tSE / tBE2)
T_PAGE_PROGRAM = 0.0004
T_SECTOR_ERASE = 0.045
T_BLOCK_ERASE = 0.150
SECTOR = 4096
BLOCK = 65536
PAGE = 256
FLASH_SIZE = 4 << 20
FLASH_ID = 0x1640EF  # Winbond, 4 MiB
ROM_BAUD = 115200
BOOT_LOG = (
    b"ets Jun  8 2016 00:22:57\r\n\r\nrst:0x1 (POWERON_RESET),boot:0x3 "
    b"(DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))\r\nwaiting for download\r\n"
)
STUB_OUT_BUF = 32768  # handle_flash_deflated_data's out_buf


class VirtualTime:
    """A ``time`` module stand-in on a virtual clock (esptool's sleeps advance it)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.epoch = 1_780_000_000.0

    def sleep(self, s: float) -> None:
        if s > 0:
            self.now += s

    def time(self) -> float:
        return self.epoch + self.now

    def monotonic(self) -> float:
        return self.now

    def perf_counter(self) -> float:
        return self.now

    def __getattr__(self, name: str) -> Any:
        import time as real

        return getattr(real, name)


def _slip(packet: bytes) -> bytes:
    return b"\xc0" + packet.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"


class VirtualEsp32:
    """The chip: ROM loader, then the stub flasher, with a 4 MiB NOR flash; scheduled replies."""

    def __init__(self, clock: VirtualTime, latency_s: float) -> None:
        self.clock = clock
        self.latency = latency_s
        self.baud = ROM_BAUD  # the chip's UART rate
        self.stub = False
        self.flash = bytearray(b"\xff" * FLASH_SIZE)
        self.busy_until = 0.0  # the stub's command loop is processing until then
        self.d2h_free = 0.0
        self.out: deque[tuple[float, bytes]] = deque()  # (available to the host at, bytes)
        self.rx = bytearray()
        self.in_frame = False
        self.esc = False
        self.dl_mode = False
        self.regs: dict[int, int] = {
            ESP32ROM.CHIP_DETECT_MAGIC_REG_ADDR: ESP32ROM.MAGIC_VALUE,
            ESP32ROM.UART_CLKDIV_REG: round(40e6 / ROM_BAUD),
            ESP32ROM.SPI_REG_BASE + ESP32ROM.SPI_W0_OFFS: FLASH_ID,
        }
        self.flash_state: dict[str, Any] = {}
        self.stats = {"erase_seconds": 0.0, "program_seconds": 0.0, "stall_seconds": 0.0}

    # ---- pins ----------------------------------------------------------------------
    def pins(self, dtr: bool, rts: bool, t: float) -> None:
        en_low = rts and not dtr
        io0_low = dtr and not rts
        if en_low:
            self.dl_mode = False
            self.out.clear()
            self.stub = False
            self.baud = ROM_BAUD
            self._en_low = True
        elif getattr(self, "_en_low", False):
            self._en_low = False
            if io0_low:  # released from reset with IO0 low: the ROM's download mode
                self.dl_mode = True
                self._send(BOOT_LOG, t)

    # ---- line ------------------------------------------------------------------------
    def _send(self, data: bytes, t: float) -> None:
        start = max(t, self.d2h_free)
        end = start + len(data) * 10.0 / self.baud
        self.d2h_free = end
        self.out.append((end + self.latency, data))

    def receive(self, data: bytes, t_first: float, byte_time: float) -> None:
        """Host bytes; byte i arrives at t_first + i * byte_time (latency included)."""
        for i, b in enumerate(data):
            if b == 0xC0:
                if self.in_frame and self.rx:
                    self._command(bytes(self.rx), t_first + i * byte_time)
                    self.rx.clear()
                    self.in_frame = False
                else:
                    self.in_frame = True
                    self.rx.clear()
            elif self.in_frame:
                if self.esc:
                    self.rx.append(0xC0 if b == 0xDC else 0xDB)
                    self.esc = False
                elif b == 0xDB:
                    self.esc = True
                else:
                    self.rx.append(b)

    # ---- commands ----------------------------------------------------------------------
    def _reply(self, op: int, t: float, value: int = 0, data: bytes = b"", err: int = 0) -> None:
        status = bytes([1 if err else 0, err]) + (b"" if self.stub else b"\0\0")
        body = data + status
        self._send(_slip(struct.pack("<BBHI", 1, op, len(body), value) + body), t)

    def _command(self, pkt: bytes, t: float) -> None:
        if not self.dl_mode or len(pkt) < 8 or pkt[0] != 0:
            return
        op, size = pkt[1], struct.unpack_from("<H", pkt, 2)[0]
        data = pkt[8 : 8 + size]
        t = max(t, self.busy_until)  # the stub's loop takes the next command when free
        if op == 0x08:  # SYNC
            for _ in range(8):
                self._reply(op, t, value=0x20120707 if not self.stub else 0)
        elif op == 0x0A:  # READ_REG
            self._reply(op, t, value=self.regs.get(struct.unpack_from("<I", data)[0], 0))
        elif op in (0x09, 0x0B, 0x0D, 0x05, 0x07):  # WRITE_REG SPI_SET_PARAMS ATTACH MEM_*
            self._reply(op, t)
        elif op == 0x06:  # MEM_END: the ROM jumps to the stub, which greets
            self._reply(op, t)
            if struct.unpack_from("<II", data)[1]:
                self.stub = True
                self._send(_slip(b"OHAI"), t)
        elif op == 0x0F:  # CHANGE_BAUDRATE: reply at the old rate, switch ~11 ms later
            self._reply(op, t)
            self.busy_until = self.d2h_free + 0.011
            self.d2h_free = self.busy_until
            self.baud = struct.unpack_from("<I", data)[0]
        elif op in (0x02, 0x10):  # FLASH_BEGIN / FLASH_DEFL_BEGIN
            if op == 0x10:
                size, _n, _bs, offset = struct.unpack_from("<IIII", data)
                self.flash_state = {"inflate": zlib.decompressobj(), "pending": b""}
            else:
                _es, n, bs, offset = struct.unpack_from("<IIII", data)
                size = n * bs
                self.flash_state = {"inflate": None, "pending": b""}
            self.flash_state.update(next_write=offset, next_erase=offset // SECTOR,
                                    remaining_erase=-(-size // SECTOR), remaining=size)  # fmt: skip
            self._reply(op, t)
        elif op in (0x03, 0x11):  # FLASH_DATA / FLASH_DEFL_DATA: ACK first, then process
            self._reply(op, t)
            payload = data[16:]
            fs = self.flash_state
            work = 0.0
            if fs["inflate"] is None:
                work += self._write(payload)
            else:
                fs["pending"] += fs["inflate"].decompress(payload)
                while len(fs["pending"]) >= STUB_OUT_BUF:
                    work += self._write(fs["pending"][:STUB_OUT_BUF])
                    fs["pending"] = fs["pending"][STUB_OUT_BUF:]
                if fs["inflate"].eof and fs["pending"]:
                    work += self._write(fs["pending"])
                    fs["pending"] = b""
            self.busy_until = t + work
        elif op == 0x13:  # SPI_FLASH_MD5 (stub: 16 raw bytes)
            addr, size = struct.unpack_from("<II", data)
            self._reply(op, t, data=hashlib.md5(self.flash[addr : addr + size]).digest())
        elif op in (0x04, 0x12):  # FLASH_END / FLASH_DEFL_END
            self._reply(op, t)
        else:  # GET_SECURITY_INFO and others: the ESP32 ROM does not know them
            self._reply(op, t, err=0x05)

    def _write(self, chunk: bytes) -> float:
        """handle_flash_data: erase as far as the chunk reaches, then program it."""
        fs = self.flash_state
        cost = 0.0
        last = -(-(fs["next_write"] + len(chunk)) // SECTOR)
        while fs["next_erase"] < last:
            if (
                fs["next_erase"] % (BLOCK // SECTOR) == 0
                and fs["remaining_erase"] > BLOCK // SECTOR
            ):
                cost += T_BLOCK_ERASE
                fs["next_erase"] += BLOCK // SECTOR
                fs["remaining_erase"] -= BLOCK // SECTOR
                self.stats["erase_seconds"] += T_BLOCK_ERASE
            else:
                cost += T_SECTOR_ERASE
                fs["next_erase"] += 1
                fs["remaining_erase"] -= 1
                self.stats["erase_seconds"] += T_SECTOR_ERASE
        a = fs["next_write"]
        self.flash[a : a + len(chunk)] = chunk
        prog = -(-len(chunk) // PAGE) * T_PAGE_PROGRAM
        self.stats["program_seconds"] += prog
        fs["next_write"] += len(chunk)
        fs["remaining"] -= len(chunk)
        return cost + prog


class VirtualPort:
    """The host's serial port (the subset of pyserial esptool uses), on the virtual clock."""

    def __init__(self, clock: VirtualTime, chip: VirtualEsp32, latency_s: float) -> None:
        self.clock = clock
        self.chip = chip
        self.latency = latency_s
        self.port = self.name = "virtual-esp32"
        self._baud = ROM_BAUD
        self.timeout: float | None = 3.0
        self.write_timeout: float | None = None
        self.dtr = False
        self.rts = False
        self.h2d_free = 0.0
        self.buf = bytearray()
        self.tx_bytes = 0
        self.rx_bytes = 0

    # pyserial surface
    @property
    def baudrate(self) -> int:
        return self._baud

    @baudrate.setter
    def baudrate(self, v: int) -> None:
        self._baud = v

    def _pull(self, until: float) -> None:
        while self.chip.out and self.chip.out[0][0] <= until:
            self.buf += self.chip.out.popleft()[1]

    def write(self, data: bytes) -> int:
        now = self.clock.now
        start = max(now, self.h2d_free)
        bt = 10.0 / self._baud
        self.h2d_free = start + len(data) * bt
        self.tx_bytes += len(data)
        self.chip.receive(bytes(data), start + bt + self.latency, bt)
        return len(data)

    def read(self, n: int = 1) -> bytes:
        self._pull(self.clock.now)
        if not self.buf:
            deadline = self.clock.now + (self.timeout if self.timeout is not None else 1e9)
            if self.chip.out and self.chip.out[0][0] <= deadline:
                self.clock.now = self.chip.out[0][0]
                self._pull(self.clock.now)
            else:
                self.clock.now = deadline
                return b""
        out = bytes(self.buf[:n])
        del self.buf[:n]
        self.rx_bytes += len(out)
        return out

    def inWaiting(self) -> int:
        self._pull(self.clock.now)
        return len(self.buf)

    @property
    def in_waiting(self) -> int:
        return self.inWaiting()

    def flushInput(self) -> None:
        self._pull(self.clock.now)
        self.buf.clear()

    reset_input_buffer = flushInput

    def flushOutput(self) -> None:
        pass

    reset_output_buffer = flushOutput

    def flush(self) -> None:
        self.clock.now = max(self.clock.now, self.h2d_free)

    def setDTR(self, state: bool) -> None:
        self.dtr = bool(state)
        self.chip.pins(self.dtr, self.rts, self.clock.now)

    def setRTS(self, state: bool) -> None:
        self.rts = bool(state)
        self.chip.pins(self.dtr, self.rts, self.clock.now)

    def isOpen(self) -> bool:
        return True

    is_open = True

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass


def _set_dtr_rts(port: VirtualPort, dtr: bool = False, rts: bool = False) -> None:
    port.dtr, port.rts = bool(dtr), bool(rts)
    port.chip.pins(port.dtr, port.rts, port.clock.now)


@contextlib.contextmanager
def _virtual(clock: VirtualTime) -> Any:
    """esptool / esp_pylib on the virtual clock, atomic DTR+RTS on the virtual port."""
    import esp_pylib.serial_reset as sr

    mods = [m for n, m in sys.modules.items()
            if n.split(".")[0] in ("esptool", "esp_pylib") and hasattr(m, "time")]  # fmt: skip
    saved = [(m, m.time) for m in mods]
    saved_dtr_rts = sr.set_dtr_rts
    try:
        for m in mods:
            if getattr(m.time, "__name__", "") == "time":
                m.time = clock
        sr.set_dtr_rts = _set_dtr_rts  # type: ignore[assignment]
        yield
    finally:
        for m, t in saved:
            m.time = t
        sr.set_dtr_rts = saved_dtr_rts


def esptool_run(image: bytes, baud: int, latency_s: float, compress: bool = True) -> dict[str, Any]:
    """One computed ``esptool write-flash`` of ``image`` at 0x10000; figures as a dict."""
    clock = VirtualTime()
    chip = VirtualEsp32(clock, latency_s)
    port = VirtualPort(clock, chip, latency_s)
    marks: dict[str, float] = {}
    cls = esptool.targets.esp32.ESP32StubLoader
    orig = {n: getattr(cls, n) for n in ("flash_defl_begin", "flash_begin", "flash_md5sum")}
    orig_stub = ESP32ROM.run_stub
    orig_baud = cls.change_baud

    def mark(name: str, fn: Any) -> Any:
        def wrapped(self: Any, *a: Any, **kw: Any) -> Any:
            marks.setdefault(name + "_start", clock.now)
            r = fn(self, *a, **kw)
            marks[name + "_end"] = clock.now
            return r

        return wrapped

    with tempfile.TemporaryDirectory() as d, _virtual(clock):
        path = Path(d) / "image.bin"
        path.write_bytes(image)
        try:
            cls.flash_defl_begin = mark("flash", orig["flash_defl_begin"])  # type: ignore[method-assign]
            cls.flash_begin = mark("flash", orig["flash_begin"])  # type: ignore[method-assign]
            cls.flash_md5sum = mark("md5", orig["flash_md5sum"])  # type: ignore[method-assign]
            ESP32ROM.run_stub = mark("stub", orig_stub)  # type: ignore[method-assign]
            cls.change_baud = mark("baud", orig_baud)  # type: ignore[method-assign]
            with contextlib.redirect_stdout(io.StringIO()) as log:
                esp = ESP32ROM(port, ROM_BAUD)
                esp.connect("default-reset")
                marks["connect_end"] = clock.now
                esptool.main(
                    ["--chip", "esp32", "--port", port.port, "--baud", str(baud),
                     "write-flash", *([] if compress else ["--no-compress"]), "0x10000",
                     str(path)],
                    esp=esp,
                )  # fmt: skip
        finally:
            for n, f in orig.items():
                setattr(cls, n, f)
            ESP32ROM.run_stub = orig_stub  # type: ignore[method-assign]
            cls.change_baud = orig_baud  # type: ignore[method-assign]
    text = log.getvalue()
    if "Hash of data verified" not in text:
        raise RuntimeError("esptool did not verify the written image:\n" + text[-2000:])
    if chip.flash[0x10000 : 0x10000 + len(image)] != image:
        raise RuntimeError("the emulated flash does not hold the image")
    end = clock.now
    seconds = marks["md5_end"] - marks["flash_start"]
    return {
        "computed": True,
        "seconds": seconds,
        "whole_seconds": end,
        "ratio": len(image) / seconds / (baud / 10),
        "whole_ratio": len(image) / end / (baud / 10),
        "connect_seconds": marks["connect_end"],
        "stub_seconds": marks["stub_end"] - marks["stub_start"],
        "baud_seconds": marks.get("baud_end", 0.0) - marks.get("baud_start", 0.0),
        "flash_seconds": marks["md5_start"] - marks["flash_start"],
        "md5_seconds": marks["md5_end"] - marks["md5_start"],
        "erase_seconds": chip.stats["erase_seconds"],
        "program_seconds": chip.stats["program_seconds"],
        "tx_bytes": port.tx_bytes,
        "rx_bytes": port.rx_bytes,
    }

"""Application bundle builder/parser (format: device/bundle.py, docs/device.md "Bundle format")."""

from __future__ import annotations

import struct

MAGIC = b"OTB1"
_HDR = struct.Struct("<4sBBH32s32s")
_ROW = struct.Struct("<48sII")
MAX_FILES = 64


class BundleFormatError(ValueError):
    """A bundle that does not follow the format (too many files, long names, bad header)."""

    code = "bundle_format"


def _field(text: str, size: int, what: str) -> bytes:
    raw = text.encode()
    if len(raw) > size or b"\x00" in raw:
        raise BundleFormatError(f"{what} {text!r} longer than {size} bytes")
    return raw


def build_bundle(modules: dict[str, bytes], entry: str, selftest: str) -> bytes:
    """Archive ``modules`` (bundle path -> .py/.mpy bytes) with its entry module and self-test.

    ``entry`` is the module imported to boot the application (e.g. ``"app"``); ``selftest`` is
    ``"module.function"``, called once on a trial boot, which must return ``True``.
    """
    if not modules or len(modules) > MAX_FILES:
        raise BundleFormatError(f"a bundle holds 1..{MAX_FILES} files")
    if "." not in selftest:
        raise BundleFormatError("selftest must be 'module.function'")
    names = sorted(modules)
    for n in names:
        if n.startswith("/") or ".." in n or not n.endswith((".py", ".mpy")):
            raise BundleFormatError(f"bad file name {n!r}")
    head = _HDR.pack(
        MAGIC, 1, 0, len(names), _field(entry, 32, "entry"), _field(selftest, 32, "selftest")
    )
    offset = _HDR.size + _ROW.size * len(names)
    rows = []
    for n in names:
        rows.append(_ROW.pack(_field(n, 48, "name"), offset, len(modules[n])))
        offset += len(modules[n])
    return head + b"".join(rows) + b"".join(modules[n] for n in names)


def parse_bundle(data: bytes) -> tuple[str, str, dict[str, bytes]]:
    """Inverse of :func:`build_bundle`: (entry, selftest, files)."""
    if len(data) < _HDR.size:
        raise BundleFormatError("short bundle")
    magic, fmt, _flags, count, entry, selftest = _HDR.unpack_from(data)
    if magic != MAGIC or fmt != 1 or count > MAX_FILES:
        raise BundleFormatError("bad header")
    files: dict[str, bytes] = {}
    end = _HDR.size + count * _ROW.size
    for i in range(count):
        name, off, ln = _ROW.unpack_from(data, _HDR.size + i * _ROW.size)
        if off < end or off + ln > len(data):
            raise BundleFormatError("entry outside the bundle")
        files[name.rstrip(b"\x00").decode()] = data[off : off + ln]
    return entry.rstrip(b"\x00").decode(), selftest.rstrip(b"\x00").decode(), files

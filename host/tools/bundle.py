"""Slot image format (device/bundle.py, docs/device.md "Bundle format"): build and parse.

Public interface (stable; the ECU runner ``otalink.host.sim.ecusim`` and ``otalink device deploy
--app`` build on it):
    build_bundle(modules, entry, selftest) -> bytes      format 1: an application + self-test
    pack_image(app_modules, app, agent_files) -> bytes   format 2: the application (``app``: its
                                                         entry module, "" = agent-only) beside
                                                         the agent files (empty: none, the
                                                         loader's recovery agent runs it)
    agent_files(tree) -> dict    what of a compiled ``otalink/...`` tree an image carries (the
                                 host-side protocol layers and the storage bench left out)
    bundle_format(data) -> 1 | 2;  parse_bundle(data) -> (entry/app, selftest/agent, files)
    BundleFormatError (code ``bundle.format``); MAGIC, MAX_FILES, AGENT_ENTRY
"""

from __future__ import annotations

import struct

from otalink.host.errors import ToolError

MAGIC = b"OTB1"
_HDR = struct.Struct("<4sBBH32s32s")
_ROW = struct.Struct("<48sII")
MAX_FILES = 96
AGENT_ENTRY = "otalink.device.agent"
# What the agent tree leaves out of the staging tree: host-side protocol layers, the storage
# bench (tools/build_mpy.py builds them; the device never imports them)
NOT_AGENT = frozenset(
    {
        "otalink/protocol/codes.mpy",
        "otalink/protocol/frame.mpy",
        "otalink/protocol/messages.mpy",
        "otalink/protocol/transfer.mpy",
        "otalink/device/slotbench.mpy",
    }
)


class BundleFormatError(ToolError, ValueError):
    """A bundle that does not follow the format (too many files, long names, bad header)."""

    code = "bundle.format"


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
    if "." not in selftest:
        raise BundleFormatError("selftest must be 'module.function'")
    return _pack(1, modules, _field(entry, 32, "entry"), _field(selftest, 32, "selftest"))


def _pack(fmt: int, files: dict[str, bytes], first: bytes, second: bytes) -> bytes:
    """The archive of both formats: header (the two name fields), file table, file data."""
    if not files or len(files) > MAX_FILES:
        raise BundleFormatError(f"a bundle holds 1..{MAX_FILES} files")
    names = sorted(files)
    for n in names:
        if n.startswith("/") or ".." in n or not n.endswith((".py", ".mpy")):
            raise BundleFormatError(f"bad file name {n!r}")
    head = _HDR.pack(MAGIC, fmt, 0, len(names), first, second)
    offset = _HDR.size + _ROW.size * len(names)
    rows = []
    for n in names:
        rows.append(_ROW.pack(_field(n, 48, "name"), offset, len(files[n])))
        offset += len(files[n])
    return head + b"".join(rows) + b"".join(files[n] for n in names)


def agent_files(tree: dict[str, bytes]) -> dict[str, bytes]:
    """The agent's files of a compiled tree (``otalink/__init__.mpy``, ``otalink/device/*``,
    ``otalink/protocol/*``; paths as in the image) without the host-side modules."""
    keep = ("otalink/__init__.", "otalink/device/", "otalink/protocol/")
    return {n: d for n, d in tree.items() if n.startswith(keep) and n not in NOT_AGENT}


def pack_image(
    app_modules: dict[str, bytes] | None,
    app: str,
    agent_files: dict[str, bytes],
    agent_entry: str = AGENT_ENTRY,
) -> bytes:
    """A format-2 slot image: ``app_modules`` (bundle path -> .py/.mpy bytes) with ``app`` its
    entry module (``async def main(agent)`` or ``def poll(agent)``; ``""`` or no modules: an
    agent-only image) beside ``agent_files`` (none: the loader's recovery agent runs it)."""
    files = dict(app_modules or {})
    if not files:
        app = ""
    if agent_files:
        files.update(agent_files)
    else:
        agent_entry = ""
    return _pack(2, files, _field(app, 32, "app"), _field(agent_entry, 32, "agent"))


def bundle_format(data: bytes) -> int:
    """The format of an image (1 or 2)."""
    if len(data) < _HDR.size or data[:4] != MAGIC or data[4] not in (1, 2):
        raise BundleFormatError("bad header")
    return data[4]


def parse_bundle(data: bytes) -> tuple[str, str, dict[str, bytes]]:
    """Inverse of :func:`build_bundle` / :func:`build_image`: (entry, selftest, files) of format
    1, (app, agent entry, files) of format 2 (:func:`bundle_format` tells which)."""
    if len(data) < _HDR.size:
        raise BundleFormatError("short bundle")
    magic, fmt, _flags, count, entry, selftest = _HDR.unpack_from(data)
    if magic != MAGIC or fmt not in (1, 2) or count > MAX_FILES:
        raise BundleFormatError("bad header")
    files: dict[str, bytes] = {}
    end = _HDR.size + count * _ROW.size
    for i in range(count):
        name, off, ln = _ROW.unpack_from(data, _HDR.size + i * _ROW.size)
        if off < end or off + ln > len(data):
            raise BundleFormatError("entry outside the bundle")
        files[name.rstrip(b"\x00").decode()] = data[off : off + ln]
    return entry.rstrip(b"\x00").decode(), selftest.rstrip(b"\x00").decode(), files

"""Slot image builder/parser (format: device/bundle.py, docs/device.md "Bundle format").

Format 1 (``build_bundle``): an application and its self-test; booted with the loader's recovery
agent. Format 2 (``build_image``, issue 11): the application beside the agent tree that runs it
(``agent_tree``: the agent's .mpy files from the staging tree, ``make mpy``), so an update
replaces the agent with the application; an image without an agent boots with the recovery
agent, one without an application is an agent-only image."""

from __future__ import annotations

import struct
from pathlib import Path

from otalink.host.errors import ToolError

MAGIC = b"OTB1"
_HDR = struct.Struct("<4sBBH32s32s")
_ROW = struct.Struct("<48sII")
MAX_FILES = 96
AGENT_ENTRY = "otalink.device.agent"
# What the agent tree leaves out of the staging tree: host-side protocol layers, the storage
# bench (tools/build_mpy.py builds them; the device never imports them)
_NOT_AGENT = frozenset(
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


def agent_tree(root: Path | None = None, version: str | None = None) -> dict[str, bytes]:
    """The agent's files as a format-2 image carries them: ``otalink/__init__.mpy``,
    ``otalink/device/*.mpy``, ``otalink/protocol/*.mpy`` of the staging tree ``root`` (default:
    the runner's, ``make mpy``), without the host-side modules. ``version``: the agent's version
    (INFO field 14) written as ``otalink/device/version.py`` instead of the tree's."""
    from otalink.host.sim.ecusim.process import mpy_path

    base = (root or mpy_path()) / "otalink"
    if not (base / "device" / "agent.mpy").is_file():
        raise BundleFormatError(f"no agent tree in {base.parent} (run `make mpy`)")
    files: dict[str, bytes] = {"otalink/__init__.mpy": (base / "__init__.mpy").read_bytes()}
    for sub in ("device", "protocol"):
        for f in sorted((base / sub).glob("*.mpy")):
            name = f"otalink/{sub}/{f.name}"
            if name not in _NOT_AGENT:
                files[name] = f.read_bytes()
    if version is not None:
        files.pop("otalink/device/version.mpy", None)
        files["otalink/device/version.py"] = f"VERSION = {version!r}\n".encode()
    return files


def build_image(
    app_modules: dict[str, bytes] | None = None,
    app: str = "app",
    agent: bool | dict[str, bytes] = True,
    agent_version: str | None = None,
    agent_entry: str = AGENT_ENTRY,
) -> bytes:
    """A format-2 slot image: ``app_modules`` (bundle path -> .py/.mpy bytes) with ``app`` its
    entry module (``async def main(agent)`` or ``def poll(agent)``; ``""`` or no modules: an
    agent-only image) beside the agent tree (``agent=True``: :func:`agent_tree` of the staging
    tree, with ``agent_version``; a dict: those agent files; ``False``: no agent, the loader's
    recovery agent runs the application)."""
    files = dict(app_modules or {})
    if not files:
        app = ""
    if agent is True:
        files.update(agent_tree(version=agent_version))
    elif agent:
        files.update(agent)
    else:
        agent_entry = ""
    if not files or len(files) > MAX_FILES:
        raise BundleFormatError(f"a bundle holds 1..{MAX_FILES} files")
    names = sorted(files)
    for n in names:
        if n.startswith("/") or ".." in n or not n.endswith((".py", ".mpy")):
            raise BundleFormatError(f"bad file name {n!r}")
    head = _HDR.pack(
        MAGIC, 2, 0, len(names), _field(app, 32, "app"), _field(agent_entry, 32, "agent")
    )
    offset = _HDR.size + _ROW.size * len(names)
    rows = []
    for n in names:
        rows.append(_ROW.pack(_field(n, 48, "name"), offset, len(files[n])))
        offset += len(files[n])
    return head + b"".join(rows) + b"".join(files[n] for n in names)


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

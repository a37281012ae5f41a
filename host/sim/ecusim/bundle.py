"""Slot image builder/parser (format: device/bundle.py, docs/device.md "Bundle format").

Format 1 (``build_bundle``): an application and its self-test; booted with the loader's recovery
agent. Format 2 (``build_image``, issue 11): the application beside the agent tree that runs it
(``agent_tree``: the agent's .mpy files from the staging tree, ``make mpy``), so an update
replaces the agent with the application; an image without an agent boots with the recovery
agent, one without an application is an agent-only image. The format itself is
``otalink.host.tools.bundle`` (``otalink device deploy --app`` builds images too)."""

from __future__ import annotations

from pathlib import Path

from otalink.host.tools.bundle import (
    AGENT_ENTRY,
    MAGIC,
    MAX_FILES,
    BundleFormatError,
    agent_files,
    build_bundle,
    bundle_format,
    pack_image,
    parse_bundle,
)

__all__ = [
    "AGENT_ENTRY",
    "MAGIC",
    "MAX_FILES",
    "BundleFormatError",
    "agent_tree",
    "build_bundle",
    "build_image",
    "bundle_format",
    "parse_bundle",
]


def agent_tree(root: Path | None = None, version: str | None = None) -> dict[str, bytes]:
    """The agent's files as a format-2 image carries them: ``otalink/__init__.mpy``,
    ``otalink/device/*.mpy``, ``otalink/protocol/*.mpy`` of the staging tree ``root`` (default:
    the runner's, ``make mpy``), without the host-side modules. ``version``: the agent's version
    (INFO field 14) written as ``otalink/device/version.py`` instead of the tree's."""
    from otalink.host.sim.ecusim.process import mpy_path

    base = (root or mpy_path()) / "otalink"
    if not (base / "device" / "agent.mpy").is_file():
        raise BundleFormatError(f"no agent tree in {base.parent} (run `make mpy`)")
    tree = {"otalink/__init__.mpy": (base / "__init__.mpy").read_bytes()}
    for sub in ("device", "protocol"):
        for f in sorted((base / sub).glob("*.mpy")):
            tree[f"otalink/{sub}/{f.name}"] = f.read_bytes()
    files = agent_files(tree)
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
    if agent is True:
        tree = agent_tree(version=agent_version)
    elif agent:
        tree = dict(agent)
    else:
        tree = {}
    return pack_image(app_modules, app, tree, agent_entry)

"""``otalink tuf-client``: our TUF client behind the TUF conformance suite's client interface.

Same code path as the agent: python-tuf ngclient ``Updater`` with ``OtalinkFetcher`` for metadata
and the resumable ``Downloader`` for targets. Metadata is kept un-versioned in ``--metadata-dir``
(``root.json``, ``timestamp.json``, ...; ngclient also keeps ``root_history/``). Exit 0 on success,
1 on any failure (the reason on stderr, with the update error code).
"""

from __future__ import annotations

import argparse
import datetime
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib import parse

from otalink.host.errors import EXIT_FAILURE, EXIT_OK
from otalink.host.gateway.update.download import Downloader
from otalink.host.gateway.update.errors import UpdateError
from otalink.host.gateway.update.fetcher import OtalinkFetcher
from otalink.host.gateway.update.http import Transport
from otalink.host.gateway.update.repos import hashed_target_path, map_tuf_error
from tuf.api import exceptions as tuf_exc
from tuf.api._payload import TargetFile
from tuf.ngclient.config import UpdaterConfig
from tuf.ngclient.updater import Updater


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Global options and the three subcommands."""
    p.add_argument("--metadata-dir", required=True)
    p.add_argument("--metadata-url")
    p.add_argument("--target-name", action="append", default=[])
    p.add_argument("--target-base-url")
    p.add_argument("--target-dir")
    p.add_argument("--days-in-future", type=int, default=0, help="evaluate expiry in the future")
    p.add_argument("--max-root-rotations", type=int, default=32)
    sub = p.add_subparsers(dest="tuf_command", metavar="COMMAND", required=True)
    i = sub.add_parser("init", help="trust TRUSTED_ROOT (no network)")
    i.add_argument("trusted_root")
    sub.add_parser("refresh", help="update the top-level metadata")
    sub.add_parser("download", help="refresh, then download every --target-name")


def _updater(a: argparse.Namespace) -> Updater:
    if not a.metadata_url:
        raise UpdateError("--metadata-url is required")
    fetcher = OtalinkFetcher(Transport())
    cfg = UpdaterConfig(max_root_rotations=a.max_root_rotations)
    up = Updater(
        a.metadata_dir,
        a.metadata_url,
        a.target_dir,
        a.target_base_url,
        fetcher=fetcher,
        config=cfg,
        bootstrap=None,  # the root trusted by `init` (or rotated to since)
    )
    if a.days_in_future:
        # conformance hook: the suite checks expiry handling by moving the clock forward
        future = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=a.days_in_future)
        up._trusted_set.reference_time = future
    return up


def cmd_init(a: argparse.Namespace) -> None:
    d = Path(a.metadata_dir)
    d.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(a.trusted_root, d / "root.json.tmp")
    (d / "root.json.tmp").replace(d / "root.json")


def cmd_refresh(a: argparse.Namespace) -> None:
    _updater(a).refresh()


def cmd_download(a: argparse.Namespace) -> None:
    if not a.target_dir or not a.target_base_url:
        raise UpdateError("download needs --target-dir and --target-base-url")
    up = _updater(a)
    up.refresh()
    transport = Transport()
    dl = Downloader(transport)
    base = a.target_base_url if a.target_base_url.endswith("/") else a.target_base_url + "/"
    for name in a.target_name:
        info = up.get_targetinfo(name)
        if info is None:
            raise UpdateError(f"target {name!r} is not listed")
        dest = Path(a.target_dir) / parse.quote(info.path, "")
        if up.find_cached_target(info, str(dest)):
            continue
        remote = info.path
        if up._trusted_set.root.consistent_snapshot:
            remote = hashed_target_path(info.path, next(iter(info.hashes.values())))

        def verify(p: Path, _info: TargetFile = info) -> bool:
            try:
                with open(p, "rb") as f:
                    _info.verify_length_and_hashes(f)
            except tuf_exc.LengthOrHashMismatchError:
                return False
            return True

        identity = ",".join(f"{k}:{v}" for k, v in sorted(info.hashes.items()))
        dl.fetch(base + parse.quote(remote), dest, info.length, identity, verify=verify)


def run(a: argparse.Namespace) -> int:
    """Run a parsed command; 0 ok, 1 any failure (the conformance suite's interface)."""
    try:
        {"init": cmd_init, "refresh": cmd_refresh, "download": cmd_download}[a.tuf_command](a)
    except UpdateError as exc:
        print(f"tuf-client: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as exc:
        print(f"tuf-client: {map_tuf_error(exc, 'remote')}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point (``python -m otalink.host.tools.tufclient``)."""
    p = argparse.ArgumentParser(prog="otalink tuf-client", description=__doc__.splitlines()[0])
    add_arguments(p)
    return run(p.parse_args(argv))

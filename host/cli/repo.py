"""``otalink repo ...``: keys, Image/Director repositories, assignments, signing, publish."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, TypedDict

from otalink.host.errors import EXIT_OK, EXIT_USAGE, OtalinkError, exit_code
from otalink.host.tools.repo import keys as keymod
from otalink.host.tools.repo.api import DirectorRepo, ImageRepo, RepoError
from otalink.host.tools.repo.base import RepoBase
from otalink.host.tools.repo.delta import resolve_base
from otalink.host.tools.repo.quick import create_repos

_ROLE_VALUE = re.compile(r"([a-z]+)=(-?[0-9]{1,12})", re.ASCII)


def _role_value(item: str) -> tuple[str, int]:
    """``ROLE=N`` of ``--threshold``/``--expiry``, N in ASCII digits (``int()`` alone would take
    a "٢" and raise on a "²"); anything else is a usage error."""
    m = _ROLE_VALUE.fullmatch(item)
    if m is None:
        raise argparse.ArgumentTypeError(f"expected ROLE=N, got {item!r}")
    return m[1], int(m[2])


def _kv(items: list[tuple[str, int]] | None) -> dict[str, int]:
    return dict(items or [])


def _keys(paths: list[str] | None) -> list[keymod.KeyPair]:
    return [keymod.load(p) for p in paths or []]


def _abs(paths: list[str] | None) -> list[str]:
    return [str(keymod.key_path(p).resolve()) for p in paths or []]


def _open(path: str) -> RepoBase:
    kind = json.loads((Path(path) / "repo.json").read_text())["kind"]
    return DirectorRepo.from_dir(path) if kind == "director" else ImageRepo.from_dir(path)


def cmd_keygen(a: argparse.Namespace) -> int:
    for name in a.names:
        pair = keymod.generate(Path(a.dir), name, overwrite=a.force)
        key = Path(a.dir) / name
        print(
            f"{name}: {key}.key (private, PEM) {key}.pub (public) keyid {pair.keyid} "
            f"ed25519 {pair.public_raw.hex()}"
        )
    return EXIT_OK


class _RoleKeys(TypedDict):
    """What ``repo init`` gives either kind of repository: keys, thresholds and expiries."""

    root_keys: list[keymod.KeyPair]
    targets_keys: list[keymod.KeyPair]
    snapshot_keys: list[keymod.KeyPair]
    timestamp_keys: list[keymod.KeyPair]
    thresholds: dict[str, int]
    expiry: dict[str, int] | None


def cmd_init(a: argparse.Namespace) -> int:
    common: _RoleKeys = {
        "root_keys": _keys(a.root_key),
        "targets_keys": _keys(a.targets_key),
        "snapshot_keys": _keys(a.snapshot_key),
        "timestamp_keys": _keys(a.timestamp_key),
        "thresholds": _kv(a.threshold),
        "expiry": _kv(a.expiry) or None,
    }
    files = {
        "targets": _abs(a.targets_key),
        "snapshot": _abs(a.snapshot_key),
        "timestamp": _abs(a.timestamp_key),
    }
    if not common["root_keys"]:
        print("at least one --root-key", file=sys.stderr)
        return EXIT_USAGE
    if a.kind == "director":
        if not a.vehicle or not a.instruction_key:
            print("director needs --vehicle and --instruction-key", file=sys.stderr)
            return EXIT_USAGE
        files["instruction"] = _abs(a.instruction_key)
        repo: RepoBase = DirectorRepo.create(
            a.repo,
            vehicle_id=a.vehicle,
            instruction_keys=_keys(a.instruction_key),
            key_files=files,
            **common,
        )
    else:
        repo = ImageRepo.create(a.repo, key_files=files, **common)
    problems = repo.check()
    needs = f" (needs: {'; '.join(problems)})" if problems else ""
    print(f"{a.kind} repository in {a.repo}{needs}")
    return EXIT_OK


def cmd_add_image(a: argparse.Namespace) -> int:
    repo = ImageRepo.from_dir(a.repo)
    img = repo.add_image(
        a.name or Path(a.file).name,
        Path(a.file),
        hardware_ids=a.hw,
        version=a.version,
        release_counter=a.release_counter,
        title=a.title or "",
        release_notes=a.notes or "",
        est_install_s=a.est_install_s,
        unavailable_functions=a.unavailable or [],
        kind=a.kind,
        deflate_wbits=a.deflate_wbits,
        delta_from=a.delta_from or [],
    )
    print(f"{img.name}: {img.length} bytes sha256 {img.sha256} release {img.release_counter}")
    for d in repo.deltas(img.name):
        print(f"  {d['target']}: {d['length']} bytes, delta from {d['base_version']}")
    return EXIT_OK


def cmd_assign(a: argparse.Namespace) -> int:
    director = DirectorRepo.from_dir(a.repo)
    images = ImageRepo.from_dir(a.image_repo)
    image = images.image(a.target)
    base = resolve_base(images.deltas(image.name), a.delta_base) if a.delta_base else None
    data = director.assign(a.ecu, a.hw, image, delta_base=base)
    also = f", a patch from {base[:16]} allowed" if base else ""
    print(f"{director.vehicle_id}/{a.ecu} -> {a.target}; instruction {len(data)} bytes signed"
          f"{also}")  # fmt: skip
    return EXIT_OK


def cmd_unassign(a: argparse.Namespace) -> int:
    DirectorRepo.from_dir(a.repo).unassign(a.ecu)
    return EXIT_OK


def cmd_sign(a: argparse.Namespace) -> int:
    repo = _open(a.repo)
    for key in _keys(a.key):
        repo.sign(a.role, key)
    problems = repo.check()
    print("ok" if not problems else "still needed: " + "; ".join(problems))
    return EXIT_OK


def cmd_rotate(a: argparse.Namespace) -> int:
    repo = _open(a.repo)
    new = _keys(a.new_key)
    root_keys = _keys(a.root_key)
    if a.role == "root":
        role = repo.root().roles["root"]
        old = list(role.keyids)
        new_ids = {k.keyid for k in new}
        remove = [] if a.keep_old else [k for k in old if k not in new_ids]
        count = len((set(old) - set(remove)) | new_ids)
        version = repo.rotate_root(
            [*root_keys, *new],
            add={"root": new},
            remove={"root": remove},
            thresholds={"root": a.threshold or min(role.threshold, count)},
        )
    elif a.role == "instruction":
        if not isinstance(repo, DirectorRepo):
            print("instruction keys belong to a Director repository", file=sys.stderr)
            return EXIT_USAGE
        repo.set_online_keys("instruction", new, _abs(a.new_key))
        print("instruction key replaced: re-run `assign` and provision ECUs with the new key")
        return EXIT_OK
    else:
        version = repo.rotate_online_key(a.role, new, _abs(a.new_key), root_keys, a.threshold)
    problems = repo.check()
    print(f"root v{version}" + (f"; still needed: {'; '.join(problems)}" if problems else ""))
    return EXIT_OK


def cmd_publish(a: argparse.Namespace) -> int:
    repo = _open(a.repo)
    out = repo.publish_into_server(a.server_root) if a.server_root else repo.publish(a.out)
    print(f"published to {out}")
    return EXIT_OK


def cmd_refresh(a: argparse.Namespace) -> int:
    repo = _open(a.repo)
    for role in a.role or ["timestamp"]:
        repo.resign(role)
    return EXIT_OK


def cmd_status(a: argparse.Namespace) -> int:
    repo = _open(a.repo)
    doc: dict[str, Any] = {"kind": repo.config["kind"], "roles": {}, "problems": repo.check()}
    root = repo.root()
    for role in ("root", "targets", "snapshot", "timestamp"):
        md = repo.open(role)
        doc["roles"][role] = {
            "version": md.signed.version,
            "expires": md.signed.expires.isoformat(),
            "threshold": root.roles[role].threshold,
            "keys": len(root.roles[role].keyids),
            "signatures": len(md.signatures),
        }
    if isinstance(repo, DirectorRepo):
        doc["vehicle"] = repo.vehicle_id
        doc["assignments"] = {k: v["image"] for k, v in repo.assignments().items()}
    elif isinstance(repo, ImageRepo):
        doc["images"] = [i.name for i in repo.images()]
    print(json.dumps(doc, indent=1))
    return EXIT_OK


def cmd_quickstart(a: argparse.Namespace) -> int:
    rs = create_repos(a.workdir, a.vehicle)
    if a.server_root:
        rs.publish(a.server_root)
    print(f"keys in {rs.key_dir}; image repo {rs.image.path}; directors: {', '.join(rs.directors)}")
    return EXIT_OK


def _run(func: Any) -> Any:
    def wrapped(a: argparse.Namespace) -> int:
        err: OtalinkError
        try:
            return int(func(a))
        except (FileNotFoundError, KeyError) as exc:
            err = RepoError(f"not found: {exc}", code="repo.not_found")
        except RepoError as exc:
            err = RepoError(f"error: {exc}", code=exc.code)
        except (FileExistsError, ValueError) as exc:
            err = RepoError(f"error: {exc}")
        print(err.detail, file=sys.stderr)
        return exit_code(err)

    return wrapped


def register(subparsers: Any) -> None:
    """Add ``otalink repo``."""
    p = subparsers.add_parser("repo", help="TUF Image/Director repositories (keys, sign, publish)")
    sub = p.add_subparsers(dest="repo_command", metavar="ACTION", required=True)

    s = sub.add_parser(
        "keygen",
        help="create ed25519 key files NAME.key (PEM) / NAME.pub: every otalink command that "
        "takes a key reads them (docs/hil.md Keys)",
    )
    s.add_argument("--dir", required=True)
    s.add_argument("--force", action="store_true", help="overwrite existing keys")
    s.add_argument("names", nargs="+")
    s.set_defaults(func=_run(cmd_keygen))

    s = sub.add_parser("init", help="create an Image or a Director repository")
    s.add_argument("kind", choices=("image", "director"))
    s.add_argument("--repo", required=True, help="working directory of the repository")
    s.add_argument("--vehicle", help="vehicle id (director)")
    for role in ("root", "targets", "snapshot", "timestamp", "instruction"):
        s.add_argument(f"--{role}-key", action="append", metavar="KEYFILE")
    s.add_argument("--threshold", action="append", metavar="ROLE=N", type=_role_value)
    s.add_argument("--expiry", action="append", metavar="ROLE=SECONDS", type=_role_value)
    s.set_defaults(func=_run(cmd_init))

    s = sub.add_parser("add-image", help="add an image to the Image repository")
    s.add_argument("--repo", required=True)
    s.add_argument("--file", required=True)
    s.add_argument("--name", help="target name (default: file name)")
    s.add_argument("--hw", action="append", required=True, help="hardware id (repeatable)")
    s.add_argument("--version", required=True)
    s.add_argument("--release-counter", type=int, required=True)
    s.add_argument("--title")
    s.add_argument("--notes", help="release notes")
    s.add_argument("--est-install-s", type=int, default=60)
    s.add_argument("--unavailable", action="append", help="function unavailable while installing")
    s.add_argument("--kind", choices=("bundle", "firmware"), default="firmware")
    s.add_argument("--deflate-wbits", type=int, help="also publish a raw-deflate form (9..15)")
    s.add_argument("--delta-from", action="append", metavar="VERSION",
                   help="also publish a patch from this earlier release (repeatable)")  # fmt: skip
    s.set_defaults(func=_run(cmd_add_image))

    s = sub.add_parser("assign", help="assign an image to one ECU of the Director's vehicle")
    s.add_argument("--repo", required=True, help="Director repository")
    s.add_argument("--image-repo", required=True)
    s.add_argument("--ecu", required=True)
    s.add_argument("--hw", required=True)
    s.add_argument("--target", required=True)
    s.add_argument("--delta-base", metavar="VERSION|SHA256",
                   help="also allow the patch from this base (one the image lists): the "
                   "instruction binds its sha256")  # fmt: skip
    s.set_defaults(func=_run(cmd_assign))

    s = sub.add_parser("unassign", help="drop the assignment of one ECU (default: all)")
    s.add_argument("--repo", required=True)
    s.add_argument("--ecu")
    s.set_defaults(func=_run(cmd_unassign))

    s = sub.add_parser("sign", help="add signatures to a role (threshold signing)")
    s.add_argument("--repo", required=True)
    s.add_argument("--role", required=True, choices=("root", "targets", "snapshot", "timestamp"))
    s.add_argument("--key", action="append", required=True)
    s.set_defaults(func=_run(cmd_sign))

    s = sub.add_parser("rotate", help="rotate the keys of a role (new root version)")
    s.add_argument("--repo", required=True)
    s.add_argument(
        "--role", required=True, choices=("root", "targets", "snapshot", "timestamp", "instruction")
    )
    s.add_argument("--new-key", action="append", required=True)
    s.add_argument("--root-key", action="append", help="current root key(s) that sign")
    s.add_argument("--threshold", type=int)
    s.add_argument("--keep-old", action="store_true", help="root: add keys, keep the old ones")
    s.set_defaults(func=_run(cmd_rotate))

    s = sub.add_parser("publish", help="write the servable TUF layout")
    s.add_argument("--repo", required=True)
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--out", help="output directory (metadata/, targets/)")
    g.add_argument("--server-root", help="`otalink server` root (image/, director/VIN/)")
    s.set_defaults(func=_run(cmd_publish))

    s = sub.add_parser("refresh", help="re-sign online roles with fresh expiry (cron job)")
    s.add_argument("--repo", required=True)
    s.add_argument("--role", action="append", choices=("targets", "snapshot", "timestamp"))
    s.set_defaults(func=_run(cmd_refresh))

    s = sub.add_parser("status", help="versions, expiry, thresholds, problems (JSON)")
    s.add_argument("--repo", required=True)
    s.set_defaults(func=_run(cmd_status))

    s = sub.add_parser("quickstart", help="keys + Image repo + one Director per vehicle")
    s.add_argument("--workdir", required=True)
    s.add_argument("--vehicle", action="append", default=[])
    s.add_argument("--server-root")
    s.set_defaults(func=_run(cmd_quickstart))

"""The ``otalink`` command imports only the group of the command it runs (host/cli/__init__.py):
its table of commands agrees with what the groups register, and help still lists them all."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from otalink.host.cli import COMMANDS, GROUPS, build_parser, group


def test_the_command_table_is_what_the_groups_register() -> None:
    registered: dict[str, str] = {}
    for name in GROUPS:
        sub = argparse.ArgumentParser().add_subparsers()
        group(name).register(sub)
        for command in sub.choices:
            assert command not in registered, (command, name, registered[command])
            registered[command] = name
    assert registered == COMMANDS


def test_full_help_lists_every_command() -> None:
    text = build_parser().format_help()
    missing = [c for c in COMMANDS if c not in text]
    assert not missing, missing


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_a_command_imports_only_its_group() -> None:
    r = _run(
        "import json, sys\n"
        "from otalink.host.cli import main\n"
        "code = main(['device', 'boards', '--json'])\n"
        "mods = sorted(m for m in sys.modules if m.startswith(('otalink.host.cli.', 'tuf', "
        "'httpx', 'otalink.host.gateway.campaign')))\n"
        "print(json.dumps([code, mods]), file=sys.stderr)\n"
    )
    code, mods = json.loads(r.stderr.strip().splitlines()[-1])
    assert code == 0, r.stderr
    assert "otalink.host.cli.device" in mods, mods
    others = [m for m in mods if m.split(".")[:4] != ["otalink", "host", "cli", "device"]]
    assert others == ["otalink.host.cli.devicekeys", "otalink.host.cli.unixboard"], others


def test_a_group_without_its_action_and_an_unknown_command() -> None:
    r = _run("import sys; from otalink.host.cli import main; sys.exit(main(['repo']))")
    assert r.returncode == 2 and "ACTION" in r.stderr, r.stderr
    r = _run("import sys; from otalink.host.cli import main; sys.exit(main(['no-such']))")
    assert r.returncode == 2 and "invalid choice" in r.stderr and "tuf-client" in r.stderr, r.stderr

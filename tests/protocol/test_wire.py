"""The device's lean protocol modules agree with the full message layer.

wire.py keeps private copies of messages' field-index constants (so the device interns no names
for them), hotpath.parse_small() takes the uint-only messages without the CBOR codec, and
device/auth.py reads instruction fields by its own private indices: each must give exactly what
messages.py / messages.parse() give.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from otalink.protocol import codes, hotpath, messages, transfer
from otalink.protocol.errors import ProtocolError

from tests.vectors.vecio import rows, unhex

ROOT = Path(__file__).resolve().parent.parent.parent
_CONST = re.compile(r"^_([A-Z][A-Z0-9_]*) = const\((\w+)\)", re.M)


@pytest.mark.parametrize(
    ("path", "public", "least"),
    [
        ("protocol/wire.py", messages, 20),
        ("device/auth.py", messages, 10),
        ("protocol/datapath.py", transfer, 4),
        ("protocol/datapath.py", messages, 1),
        ("protocol/hotpath.py", messages, 1),
        ("device/session.py", transfer, 2),
        ("protocol/command.py", messages, 4),
    ],
)
def test_private_constants_equal_the_public_ones(path: str, public: Any, least: int) -> None:
    found = _CONST.findall((ROOT / path).read_text())
    mirrored = [(n, v) for n, v in found if hasattr(public, n)]
    assert len(mirrored) >= least, mirrored  # the check really looked at the copies
    for name, value in mirrored:
        assert getattr(public, name) == int(value, 0), name


_LEAN = sorted(
    str(p.relative_to(ROOT))
    for d in ("device", "protocol")
    for p in (ROOT / d).glob("*.py")
    if p.name != "codes.py"
)


@pytest.mark.parametrize("path", _LEAN)
def test_private_copies_of_codes_equal_codes(path: str) -> None:
    # Serving device modules keep private const() copies of the codes they use (named "_" + the
    # codes name) instead of importing codes.py: its ~100 names would stay in the heap.
    for name, value in _CONST.findall((ROOT / path).read_text()):
        if hasattr(codes, name):
            assert getattr(codes, name) == int(value, 0), f"{path}: _{name}"


def _full(payload: bytes) -> list[Any] | int:
    try:
        return messages.parse(payload, copy=True)
    except ProtocolError as e:
        return -e.code


def _small(payload: bytes) -> list[Any] | None:
    out = [0, 0, 0, 0]
    t = hotpath.parse_small(memoryview(payload), out)
    if t < 0:
        return None
    # (the nonce of HELLO / STATUS_REQ is a memoryview into the payload)
    return [bytes(v) if isinstance(v, memoryview) else v for v in out[: len(messages.SPECS[t]) + 1]]


SMALL = [
    messages.end(0),
    messages.end(70_000),
    messages.end(0xFFFFFFFF),
    messages.error(codes.E_TIMEOUT, 300),
    messages.error(codes.E_BAD_STATE, codes.MSG_END, codes.MSG_END),
    messages.ack(65536, 8192, codes.PH_RECEIVING),
    messages.progress(codes.PH_ERASING, 8, 128),
    messages.hello(bytes(range(16)), 4096),
    messages.hello(bytes(16), codes.MIN_PAYLOAD, proto_ver=300),
    messages.status_req(bytes(range(16, 32))),
]


@pytest.mark.parametrize("payload", SMALL, ids=lambda p: p.hex())
def test_parse_small_takes_uint_messages_like_parse(payload: bytes) -> None:
    got = _small(payload)
    assert got is not None
    assert got == _full(payload)


def test_parse_small_leaves_everything_else_to_parse() -> None:
    others = [
        cbor2.dumps([codes.MSG_HELLO, 1, bytes(16), codes.MIN_PAYLOAD - 1]),  # under the bound
        cbor2.dumps([codes.MSG_HELLO, 1, bytes(15), 4096]),
        cbor2.dumps([codes.MSG_STATUS_REQ, bytes(17)]),
        cbor2.dumps([codes.MSG_STATUS_REQ, "x" * 16]),  # text, not bytes
        messages.data(0, b"x"),
        cbor2.dumps([codes.MSG_END]),  # wrong arity
        cbor2.dumps([codes.MSG_END, 1, 2]),
        cbor2.dumps([codes.MSG_END, -1]),
        cbor2.dumps([codes.MSG_END, 2**32]),  # 8-byte head
        bytes.fromhex("82081817"),  # non-shortest head
        bytes.fromhex("820818"),  # truncated
        bytes.fromhex("8208010a"),  # trailing byte
        bytes.fromhex("9f08ff"),  # indefinite array
        cbor2.dumps([codes.MSG_ACTIVATE, 0]),
        # commands are signed and RESULT carries the command nonce: byte strings, full parser
        *(cbor2.dumps([t]) for t in messages.COMMANDS),  # unsigned (version 1): E_CMD_AUTH
        *(messages.command(t, b"\x01", bytes(8), bytes(64)) for t in messages.COMMANDS),
        messages.result(codes.MSG_END, codes.OK, 0, bytes(16)),
        cbor2.dumps([codes.MSG_ERROR, 20, 0]),  # version 1 ERROR: wrong arity
    ]
    for p in others:
        assert _small(p) is None, p.hex()
    for name, payload_hex, _code in rows("bad_messages.hex"):
        assert _small(unhex(payload_hex)) is None, name


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.integers(0, 2**33),
            st.integers(-5, -1),
            st.binary(max_size=3),
            st.binary(min_size=15, max_size=17),
        ),
        max_size=4,
    ),
    st.integers(0, 20),
)
def test_parse_small_never_disagrees_with_parse(fields: list[Any], t: int) -> None:
    payload = cbor2.dumps([t, *fields])
    got = _small(payload)
    if got is not None:
        assert got == _full(payload)
    elif t in messages.SPECS and all(isinstance(f, int) for f in fields):
        # declined although made of ints only: the full parser must reject it too
        assert isinstance(_full(payload), int), (t, fields)


def _private_consts(path: Path) -> dict[str, Any]:
    """Top-level ``_NAME = const(<literal>)`` of a module, evaluated."""
    out: dict[str, Any] = {}
    for node in ast.parse(path.read_text()).body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id.startswith("_")
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id == "const"
        ):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value.args[0])
            except ValueError:
                pass  # an expression of other consts
    return out


_AGENT_CONSTS = ("_IDLE", "_RECEIVING", "_RUN_STOP", "_RUN_RESET", "_TIMEOUT", "_CODEC", "_CRYPTO",
                 "_CMD", "_COLD", "_SERVE", "_SMALL", "_STORE", "_XFER", "_PATH")  # fmt: skip


def test_private_copies_of_the_agents_consts_equal_the_agents() -> None:
    # The agent's states, run results and lazy module groups are private const()s (no global
    # name interned, docs/device.md "Interned names"); a module that needs one keeps a copy of
    # the same name, which must hold the same value.
    agent = _private_consts(ROOT / "device" / "agent.py")
    assert set(_AGENT_CONSTS) <= set(agent), set(_AGENT_CONSTS) - set(agent)
    copies = 0
    for path in sorted((ROOT / "device").glob("*.py")):
        if path.name == "agent.py":
            continue
        for name, value in _private_consts(path).items():
            if name in _AGENT_CONSTS:
                copies += 1
                assert value == agent[name], f"{path.name}: {name}"
    assert copies >= 20, copies  # the check really looked at the copies
    # the group indices name the groups they say (the modules each one drops)
    groups = agent["_GROUPS"]
    want = {"_CODEC": "wire", "_CRYPTO": "auth", "_CMD": "command", "_COLD": "commands",
            "_SERVE": "serve", "_SMALL": "small", "_STORE": "slots", "_XFER": "session",
            "_PATH": "datapath"}  # fmt: skip
    for name, first in want.items():
        assert groups[agent[name]][1][0] == first, name

"""protocol/*.pyi (what mypy --strict sees from host code) match the modules they describe."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

PROTOCOL = Path(__file__).resolve().parent.parent.parent / "protocol"
MODULES = ["codes", "errors", "cbor", "frame", "messages", "transfer"]


def stub_names(name: str) -> dict[str, ast.AST]:
    tree = ast.parse((PROTOCOL / f"{name}.pyi").read_text())
    out: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = node
    return out


def public(name: str) -> dict[str, object]:
    mod = importlib.import_module(f"otalink.protocol.{name}")
    return {
        k: v
        for k, v in vars(mod).items()
        if not k.startswith("_")
        and k not in ("const", "RingIO", "sys", "binascii", "codes", "cbor", "ProtocolError")
        and not inspect.ismodule(v)
    }


@pytest.mark.parametrize("name", MODULES)
def test_stub_declares_every_public_name(name: str) -> None:
    stubs = stub_names(name)
    missing = sorted(set(public(name)) - set(stubs))
    assert not missing, f"add to protocol/{name}.pyi: {missing}"


@pytest.mark.parametrize("name", MODULES)
def test_stub_constants_have_the_module_values(name: str) -> None:
    mod = importlib.import_module(f"otalink.protocol.{name}")
    for key, node in stub_names(name).items():
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            assert getattr(mod, key) == ast.literal_eval(node.value), key


@pytest.mark.parametrize("name", MODULES)
def test_stub_signatures_match(name: str) -> None:
    mod = importlib.import_module(f"otalink.protocol.{name}")
    for key, node in stub_names(name).items():
        obj = getattr(mod, key, None)
        if isinstance(node, ast.FunctionDef) and key in vars(mod):
            params = [a.arg for a in node.args.args]
            assert params == list(inspect.signature(obj).parameters), key  # type: ignore[arg-type]
        if isinstance(node, ast.ClassDef) and obj is not None:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and not item.decorator_list:
                    meth = getattr(obj, item.name)
                    params = [a.arg for a in item.args.args]
                    assert params == list(inspect.signature(meth).parameters), (key, item.name)

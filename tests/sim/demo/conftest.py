"""Fixtures of the ui tests: real demo stacks (server, MicroPython ECUs, agent, API) and chromium.

Every stack is the one ``otalink demo`` runs (``otalink.host.sim.demo.stack.DemoStack``), shrunk
(``FAST``: small images, fast lines) and bound to free loopback ports in ``tmp_path``.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from otalink.host.sim.demo.stack import FAST, DemoOptions, DemoStack

ROOT = Path(__file__).resolve().parents[3]
SCREENS = ROOT / "test-artifacts" / "screens"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
StackFactory = Callable[..., DemoStack]


@pytest.fixture
def make_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackFactory]:
    """``make_stack(**DemoOptions overrides)`` -> a started stack, stopped after the test."""
    stacks: list[DemoStack] = []

    def make(base: DemoOptions = FAST, **overrides: Any) -> DemoStack:
        opts = dataclasses.replace(base, **overrides)
        stack = DemoStack(tmp_path_factory.mktemp("stack"), opts)
        stacks.append(stack)
        return stack.start()

    yield make
    for s in stacks:
        s.stop()


@pytest.fixture(scope="module")
def shared_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStack]:
    """One stack for a module whose tests only read, or leave the campaign where they found it."""
    stack = DemoStack(tmp_path_factory.mktemp("shared"), FAST).start()
    yield stack
    stack.stop()


def api(stack: DemoStack) -> httpx.Client:
    """A plain HTTP client on the stack's API (``/api/v1`` base), with the header every
    mutating request needs (docs/ui.md)."""
    return httpx.Client(base_url=stack.url + "/api/v1", timeout=30, headers={"X-Otalink": "1"})


def wait_status(
    stack: DemoStack, pred: Callable[[dict[str, Any]], bool], timeout: float = 60.0
) -> dict[str, Any]:
    """Poll the API status until ``pred`` holds."""
    import time

    deadline = time.monotonic() + timeout
    with api(stack) as c:
        while True:
            st: dict[str, Any] = c.get("/status").json()
            if pred(st):
                return st
            if time.monotonic() > deadline:
                raise AssertionError(f"status never matched; last: {st['state']} {st['reason']}")
            time.sleep(0.05)


@pytest.fixture(scope="session")
def screens_dir() -> Path:
    SCREENS.mkdir(parents=True, exist_ok=True)
    return SCREENS


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's chromium driven by Playwright (never a downloaded browser)."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError("chromium is missing: run `make sysdeps` (tools/sysdeps.sh)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


DOCS_SHOTS = ROOT / "test-artifacts" / "docs-img"


def copy_to_docs(shot: Path, name: str) -> None:
    """Set aside the best screenshots for the README as test-artifacts/docs-img/NAME.png.

    Tests never write docs/ (tracked files): ``make docs-figures`` copies these into docs/img
    when they are to be committed.
    """
    DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, DOCS_SHOTS / f"{name}.png")

"""Fixtures of the component tests: an ECU flash with version 1.0.0 installed and confirmed (the
example BMS application beside agent 1.0.0, a format-2 image), made once per worker and copied
for each test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from otalink.host.keys import KeyPair

from tests.device_component._ecu import Component, image


@dataclass
class Base:
    flash: Path
    director: list[KeyPair]
    ecu_key: KeyPair


@pytest.fixture(scope="session")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    d = tmp_path_factory.mktemp("component-v1")
    ecu = Component(d)
    try:
        ecu.start()
        ecu.hello()
        ecu.install(image(agent_version="1.0.0"), "1.0.0", 1)
    finally:
        ecu.close()
    return Base(d / "flash.bin", ecu.director, ecu.ecu_key)


def make(base: Base, tmp: Path, **kw: object) -> Component:
    shutil.copy(base.flash, tmp / "flash.bin")
    return Component(tmp, director=base.director, ecu_key=base.ecu_key, flash=tmp / "flash.bin",
                     **kw)  # type: ignore[arg-type]  # fmt: skip


@pytest.fixture
def ecu(base: Base, tmp_path: Path) -> Iterator[Component]:
    """The ECU on a copy of the v1 flash, running (HELLO done)."""
    e = make(base, tmp_path)
    e.start()
    e.hello()
    yield e
    e.close()

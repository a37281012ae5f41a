"""Fixtures of the device-session tests: an ECU flash with version 1.0.0 installed and confirmed,
made once per worker and copied for each test (so every test starts from a real, booted install)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from otalink.host.keys import KeyPair

from tests.device_session._agent import Ecu, app_bundle


@dataclass
class Installed:
    flash: Path
    director: list[KeyPair]
    ecu_key: KeyPair
    image: bytes
    status: list[object]


@pytest.fixture(scope="session")
def installed_v1(
    micropython: str, mpy_tree: Path, tmp_path_factory: pytest.TempPathFactory
) -> Installed:
    d = tmp_path_factory.mktemp("v1")
    image = app_bundle("1.0.0", pad=20000)
    ecu = Ecu(d, micropython, mpy_tree)
    try:
        ecu.start()
        ecu.hello()
        status = ecu.install(image, "1.0.0", 1)
        ecu.kill()
    finally:
        ecu.close()
    return Installed(d / "flash.bin", ecu.director, ecu.ecu_key, image, status)


@pytest.fixture
def ecu(installed_v1: Installed, micropython: str, mpy_tree: Path, tmp_path: Path) -> Iterator[Ecu]:
    """A running agent on a copy of the v1 flash, HELLO done."""
    shutil.copy(installed_v1.flash, tmp_path / "flash.bin")
    e = Ecu(
        tmp_path,
        micropython,
        mpy_tree,
        director=installed_v1.director,
        ecu_key=installed_v1.ecu_key,
        flash=tmp_path / "flash.bin",
    )
    e.start()
    e.hello()
    yield e
    e.close()

"""``otalink flash`` (the console script, a real process) against a real agent behind LineSim."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from otalink.host.keys import save_seed
from otalink.protocol import codes

from tests.gateway.ecu.conftest import RigFactory

OTALINK = str(Path(sys.executable).parent / "otalink")


def _flash(port: str, image: Path, key: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OTALINK, "flash", "--port", port, str(image), "--key", str(key), *extra],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_flash_json_figures_and_activate(rig_factory: RigFactory, tmp_path: Path) -> None:
    rig = rig_factory(baud=921600)
    key = tmp_path / "director.key"
    save_seed(key, rig.director.seed)
    image = tmp_path / "app-2.1.0.bin"
    data = os.urandom(60_000)
    image.write_bytes(data)
    r = _flash(
        rig.sim.host_path, image, key, "--ecu-id", rig.ecu_id, "--hardware-id", rig.hw_id,
        "--version", "2.1.0", "--activate", "--json", "--baud", "921600",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    fig = json.loads(r.stdout)
    assert fig["image_bytes"] == len(data) and fig["wire_bytes"] == len(data)
    assert fig["tx_bytes"] > len(data) and fig["rx_bytes"] > 0
    assert fig["seconds"] > 0 and 0.3 < fig["ratio"] < 1.0
    assert fig["activated"] is True and fig["release_counter"] == 1
    st = rig.client().status()
    pending = st.slots[st.active_slot ^ 1]
    assert pending.state == codes.SLOT_PENDING and pending.version == "2.1.0"
    assert rig.slot_bytes(st.active_slot ^ 1, len(data)) == data


def test_flash_refused_for_another_ecu(rig_factory: RigFactory, tmp_path: Path) -> None:
    rig = rig_factory()
    key = tmp_path / "director.key"
    save_seed(key, rig.director.seed)
    image = tmp_path / "img.bin"
    image.write_bytes(os.urandom(2000))
    r = _flash(rig.sim.host_path, image, key, "--ecu-id", "not-this-one", "--hardware-id",
               rig.hw_id)  # fmt: skip
    assert r.returncode == 3, r.stderr
    assert "E_ECU_MISMATCH" in r.stderr


def test_flash_untrusted_key_is_refused(rig_factory: RigFactory, tmp_path: Path) -> None:
    rig = rig_factory()
    key = tmp_path / "other.key"
    save_seed(key, os.urandom(32))
    image = tmp_path / "img.bin"
    image.write_bytes(os.urandom(2000))
    r = _flash(rig.sim.host_path, image, key, "--ecu-id", rig.ecu_id, "--hardware-id",
               rig.hw_id, "--json")  # fmt: skip
    assert r.returncode == 3, r.stderr
    assert r.stdout == ""


def test_flash_missing_port_is_a_link_error(tmp_path: Path) -> None:
    key = tmp_path / "k.key"
    save_seed(key, os.urandom(32))
    image = tmp_path / "img.bin"
    image.write_bytes(b"x")
    r = _flash("/dev/otalink-no-such-port", image, key, "--ecu-id", "e", "--hardware-id", "h")
    assert r.returncode == 5


def test_flash_compress_sends_deflate_segments(rig_factory: RigFactory, tmp_path: Path) -> None:
    rig = rig_factory(baud=921600)
    key = tmp_path / "director.key"
    save_seed(key, rig.director.seed)
    image = tmp_path / "app-2.2.0.bin"
    data = (b"otalink segment " * 5000)[:70_000]
    image.write_bytes(data)
    r = _flash(
        rig.sim.host_path, image, key, "--ecu-id", rig.ecu_id, "--hardware-id", rig.hw_id,
        "--version", "2.2.0", "--compress", "--json", "--baud", "921600",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    fig = json.loads(r.stdout)
    assert fig["compression"] == codes.COMP_DEFLATE_SEG and fig["wire_bytes"] < len(data) // 10
    st = rig.client().status()
    assert rig.slot_bytes(st.active_slot ^ 1, len(data)) == data

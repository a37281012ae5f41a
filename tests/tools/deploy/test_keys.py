"""One key file story: every command that takes a key reads what the others write.

``otalink repo keygen`` writes PEM (NAME.key) + NAME.pub, ``otalink device provision`` a hex seed
(<ecu_id>.seed); ``otalink.host.keys.load_private_key`` / ``load_public_key`` read them all, and
``otalink flash``, ``otalink device deploy|info`` and ``otalink repo`` go through them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from otalink.host.cli.flash import line_rate
from otalink.host.keys import (
    BadKeyError,
    KeyPair,
    load_private_key,
    load_public_key,
    public_key,
    save_seed,
)
from otalink.host.sim.line.rig import EcuRig
from otalink.host.sim.line.sim import LineSim
from otalink.host.tools.deploy.provision import provision
from otalink.host.tools.repo import keys as repokeys

OTALINK = str(Path(sys.executable).parent / "otalink")
HEAP = os.environ.get("OTALINK_TEST_HEAP", "80k")  # the board budget (tests/gateway/ecu too)


def _otalink(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OTALINK, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def _keygen(d: Path, *names: str) -> None:
    r = _otalink("repo", "keygen", "--dir", str(d), *names)
    assert r.returncode == 0, r.stderr


def test_every_written_format_loads(tmp_path: Path) -> None:
    _keygen(tmp_path, "director")
    pem, pub = tmp_path / "director.key", tmp_path / "director.pub"
    assert pem.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    seed = load_private_key(pem)
    expected = public_key(seed)
    assert json.loads(pub.read_text())["ed25519"] == expected.hex()
    # A public key from: the private PEM, keygen's .pub, hex on the command line.
    assert load_public_key(pem) == load_public_key(pub) == expected
    assert load_public_key(expected.hex()) == expected
    # The same key as a hex seed (save_seed / provision format), a hex public key file and a
    # PEM public key (SubjectPublicKeyInfo, e.g. from `openssl pkey -pubout`).
    save_seed(tmp_path / "director.seed", seed)
    assert load_private_key(tmp_path / "director.seed") == seed
    assert load_public_key(tmp_path / "director.seed") == expected  # .seed: a private key
    (tmp_path / "director.hex").write_text(expected.hex() + "\n")
    assert load_public_key(tmp_path / "director.hex") == expected
    spki = ed25519.Ed25519PublicKey.from_public_bytes(expected).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "spki.pem").write_bytes(spki)
    assert load_public_key(tmp_path / "spki.pem") == expected
    # The repository tool reads a hex seed file as well as its own PEM.
    assert repokeys.load(tmp_path / "director.seed").public_raw == expected
    assert repokeys.load(tmp_path / "director").seed == seed  # bare name: NAME.key
    # An ECU record names the ECU's public key.
    rec = provision("bms-1", "bms-hw", keys_dir=tmp_path / "k", registry=tmp_path / "reg")
    assert load_public_key(tmp_path / "reg" / "ecus" / "bms-1.json") == rec.public_key
    assert KeyPair.load(tmp_path / "k" / "bms-1.seed").public == rec.public_key


def _bad(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_wrong_key_files_get_clear_errors(tmp_path: Path) -> None:
    _keygen(tmp_path, "d")
    with pytest.raises(BadKeyError, match="public key file; a private key"):
        load_private_key(tmp_path / "d.pub")
    spki = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(BadKeyError, match="a public key; a private key"):
        load_private_key(_bad(tmp_path, "p.pem", spki))
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(BadKeyError, match="not ed25519"):
        load_private_key(_bad(tmp_path, "ec.key", ec_pem))
    locked = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    with pytest.raises(BadKeyError, match="unreadable PEM"):
        load_private_key(_bad(tmp_path, "locked.key", locked))
    raw = _bad(tmp_path, "raw.bin", bytes(range(200, 232)))
    assert load_private_key(raw) == bytes(range(200, 232))  # a raw seed (keys/ecu_key.bin)
    with pytest.raises(BadKeyError, match="binary file"):
        load_public_key(raw)  # 32 raw bytes: seed or public key? not guessed
    assert load_public_key(_bad(tmp_path, "raw.seed", raw.read_bytes())) == public_key(
        raw.read_bytes()
    )
    with pytest.raises(BadKeyError, match="binary file"):
        load_private_key(_bad(tmp_path, "raw33.bin", bytes(range(200, 233))))
    with pytest.raises(BadKeyError, match="64 hex digits"):
        load_private_key(_bad(tmp_path, "short.seed", b"abcd\n"))
    with pytest.raises(BadKeyError, match="cannot read"):
        load_private_key(tmp_path / "missing.key")
    with pytest.raises(BadKeyError, match="no such key file"):
        load_public_key(str(tmp_path / "missing.pub"))
    with pytest.raises(BadKeyError, match="not a public key file"):
        load_public_key(_bad(tmp_path, "x.json", b'{"format": "other"}'))
    with pytest.raises(BadKeyError, match="not a key file"):
        load_public_key(_bad(tmp_path, "big.key", b"0" * 70_000))


def test_cli_commands_read_what_keygen_and_provision_write(tmp_path: Path) -> None:
    """The bench path of docs/hil.md: `repo keygen` PEM keys go straight into `device deploy`
    (Director/command public keys from .pub or .key) and `flash --key` (the PEM private key);
    before, deploy wanted hex and flash said `key: not hex`."""
    _keygen(tmp_path, "director", "command")
    image = _bad(tmp_path, "img.bin", b"x" * 100)
    # flash reads the PEM and gets as far as the port (link error 5, not a key error 2).
    for key in ("director.key", "director.seed"):
        if key.endswith(".seed"):
            save_seed(tmp_path / key, load_private_key(tmp_path / "director.key"))
        r = _otalink(
            "flash", "--port", str(tmp_path / "no-port"), str(image), "--ecu-id", "e",
            "--hardware-id", "h", "--key", str(tmp_path / key),
            "--command-key", str(tmp_path / "command.key"),
        )  # fmt: skip
        assert r.returncode == 5, r.stderr
    r = _otalink(
        "flash", "--port", str(tmp_path / "no-port"), str(image), "--ecu-id", "e",
        "--hardware-id", "h", "--key", str(tmp_path / "director.pub"),
    )  # fmt: skip
    assert r.returncode == 2 and "[config.bad_key]" in r.stderr and "director.pub" in r.stderr
    # deploy takes every form for both keys (refused only later: no such port, exit 5).
    for director, command in (("director.pub", "command.pub"), ("director.key", "command.key")):
        r = _otalink(
            "device", "deploy", "--board", "unix", "--port", str(tmp_path / "ttyNOPE"),
            "--keys-dir", str(tmp_path / "ecu-keys"),
            "--director-key", str(tmp_path / director),
            "--command-key", str(tmp_path / command),
        )  # fmt: skip
        assert r.returncode == 5 and "[deploy.port_not_found]" in r.stderr, r.stderr
    r = _otalink(
        "device", "deploy", "--board", "unix", "--port", str(tmp_path / "ttyNOPE"),
        "--keys-dir", str(tmp_path / "ecu-keys"), "--director-key", str(image),
    )  # fmt: skip
    assert r.returncode == 2 and "[config.bad_key]" in r.stderr and "img.bin" in r.stderr
    # A real board has no default command key: deploy says which option is missing.
    r = _otalink(
        "device", "deploy", "--board", "esp32", "--port", str(tmp_path / "ttyNOPE"),
        "--keys-dir", str(tmp_path / "ecu-keys"), "--director-key", str(tmp_path / "director.pub"),
    )  # fmt: skip
    assert r.returncode == 2 and "--command-key" in r.stderr
    # The repository tool takes the ECU-style hex seed as an instruction key.
    seed_file = tmp_path / "instr.seed"
    save_seed(seed_file, os.urandom(32))
    r = _otalink(
        "repo", "init", "director", "--repo", str(tmp_path / "drepo"), "--vehicle", "VIN1",
        "--root-key", str(tmp_path / "director.key"), "--targets-key", str(tmp_path / "director"),
        "--snapshot-key", str(tmp_path / "director"), "--timestamp-key", str(tmp_path / "director"),
        "--instruction-key", str(seed_file),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert _otalink("repo", "status", "--repo", str(tmp_path / "drepo")).returncode == 0


def test_line_rate_known_only_for_a_real_port() -> None:
    sim = LineSim()
    sim.start()
    try:
        assert line_rate(sim.host_path, None) is None  # a pty: unpaced
        assert line_rate(sim.host_path, 921600) == 921600  # the user says what it is paced at
    finally:
        sim.stop()
    assert line_rate("socket://localhost:1", None) is None
    assert line_rate("/nonexistent/tty", None) is None


def test_flash_on_an_unpaced_line_prints_no_ratio(tmp_path: Path, mpy_tree: Path) -> None:
    """Before: `goodput/line rate 104.146` against a 115200 baud nobody set."""
    rig = EcuRig(tmp_path / "ecu", baud=None, heapsize=HEAP).start()
    try:
        key = tmp_path / "director.seed"
        save_seed(key, rig.director.seed)
        image = _bad(tmp_path, "app.bin", os.urandom(20_000))
        args = ["flash", "--port", rig.sim.host_path, str(image), "--ecu-id", rig.ecu_id,
                "--hardware-id", rig.hw_id, "--key", str(key)]  # fmt: skip
        r = _otalink(*args)
        assert r.returncode == 0, r.stderr
        assert "goodput/line rate" not in r.stdout and "B/s; unpaced line" in r.stdout, r.stdout
        r = _otalink(*args, "--release-counter", "2", "--json")
        assert r.returncode == 0, r.stderr
        fig = json.loads(r.stdout)
        assert fig["ratio"] is None and fig["baud"] is None and fig["line_rate"] is None
        assert fig["goodput_bytes_per_s"] > 0
    finally:
        rig.stop()


def test_device_command_signs_with_the_key_file(tmp_path: Path, mpy_tree: Path) -> None:
    """`otalink device command` signs with a key file of any format; an untrusted key is
    refused by the ECU (exit 3), an unreadable one by the tool (exit 2), no agent is exit 5."""
    _keygen(tmp_path, "command", "other")
    trusted = KeyPair.load(tmp_path / "command.key")
    rig = EcuRig(tmp_path / "ecu", baud=None, heapsize=HEAP, command_key=trusted).start()
    try:
        port = rig.sim.host_path
        r = _otalink("device", "command", "abort", "--port", port,
                     "--command-key", str(tmp_path / "other.key"), "--json")  # fmt: skip
        assert r.returncode == 3, r.stdout + r.stderr
        assert json.loads(r.stdout)["error"]["code"] == "ecu_rejected.e_cmd_auth"
        r = _otalink("device", "command", "abort", "--port", port,
                     "--command-key", str(tmp_path / "command.pub"))  # fmt: skip
        assert r.returncode == 2 and "[config.bad_key]" in r.stderr
        for key in ("command.key", "command.seed"):
            save_seed(tmp_path / "command.seed", trusted.seed)
            r = _otalink("device", "command", "abort", "--port", port,
                         "--command-key", str(tmp_path / key))  # fmt: skip
            assert r.returncode == 0 and f"{rig.ecu_id}: abort accepted" in r.stdout, r.stderr
    finally:
        rig.stop()
    r = _otalink("device", "command", "reboot", "--port", str(tmp_path / "no-port"))
    assert r.returncode == 5 and "[ecu_link." in r.stderr

"""The differential fuzz of the protocol decoders (tests/fuzz/harness.py) on both runtimes:
20,000 inputs in `make test`, 1,000,000 in `make soak`; and the harness's own tests (it must
catch each kind of failure it is there for)."""

from __future__ import annotations

import os
import time

import pytest

from tests.fuzz import corpus, harness


def _run(total: int, seed: int, progress: bool = False) -> harness.Result:
    res = harness.fuzz(total, seed=seed, progress=progress)
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(res.counts.items()))
    print(f"\nfuzz: seed {seed}: {res.inputs} inputs ({kinds}) in {res.seconds:.1f} s")
    return res


def test_fuzz_short_run() -> None:
    res = _run(20_000, seed=20_260_101)
    assert res.inputs >= 20_000
    assert sum(res.counts.values()) == res.inputs  # every input judged, none lost on the way
    assert not res.failures, res.report()


@pytest.mark.slow
def test_fuzz_soak() -> None:
    seed = int(os.environ.get("OTALINK_FUZZ_SEED", int(time.time()) & 0xFFFFFF))
    res = _run(1_000_000, seed=seed, progress=True)  # a line per 100,000 on stderr
    assert res.inputs >= 1_000_000
    assert sum(res.counts.values()) == res.inputs
    assert not res.failures, f"(OTALINK_FUZZ_SEED={seed} reproduces)\n" + res.report()


# ---- the harness catches what it is there for ---------------------------------------------
@pytest.mark.parametrize(
    ("fault", "check", "minimal"),
    [
        # defect 2 put back into MicroPython's cbor: the runtimes differ, shrunk to one text
        (("MicroPython", "utf8"), "runtimes differ in cbor.loads", 3),
        # a fast path that answers another code than wire.parse (defect 3's kind), on CPython
        (("CPython", "fast"), "CPython: fast path differs from wire.parse", 4),
        # an exception other than ProtocolError
        (("MicroPython", "exc"), "MicroPython: exception in decode_instruction: XKeyError", 1),
    ],
    ids=["utf8", "fast", "exception"],
)
def test_harness_finds_and_shrinks(fault: tuple[str, str], check: str, minimal: int) -> None:
    res = harness.fuzz(3000, seed=7, fault=fault)
    hits = [f for f in res.failures if check in f.checks]
    assert hits, res.report()
    shrunk = [f.minimal for f in hits if f.minimal is not None]
    assert shrunk and min(len(m) for m in shrunk) <= minimal, res.report()
    assert check in res.report() and "minimal " in res.report()


def test_harness_catches_a_hang_and_goes_on() -> None:
    res = harness.fuzz(4500, seed=7, fault=("MicroPython", "hang"))
    hangs = [f for f in res.failures if "CPU" in f.checks[0]]
    assert len(hangs) == 1, res.report()
    assert hangs[0].record[3] == b"\xf7"  # the very input it hung on
    assert "MicroPython spent over 1.0 s of CPU" in hangs[0].checks[0]
    assert res.inputs == 4500  # the next batches ran on restarted runners
    assert res.counts.get("P", 0) >= 1500


def test_judge_flags_every_kind_of_difference() -> None:
    j = harness.judge
    ok_p = "V00000001 E10.2 E10.2 S- S-"
    assert j("P", ok_p, ok_p) == []
    assert j("P", ok_p, "V00000002 E10.2 E10.2 S- S-") == ["runtimes differ in cbor.loads"]
    assert j("P", "E13.0 E10.2 E10.3 S- S-", "E13.0 E10.2 E10.3 S- S-") == []  # same code
    assert "fast path differs" in j("P", "E13.0 E10.2 E13.3 S- S-", ok_p)[0]
    assert "parse_small differs" in j("P", "E10.0 V1 V1 V2 S-", "E10.0 V1 V1 V2 S-")[0]
    split_bad = j("P", "V1 E70.1 V2 S- V2", "V1 E70.1 V2 S- V2")  # (the fast path runs split)
    assert any("command.split differs" in x for x in split_bad), split_bad
    assert "outside the profile" in j("P", "E11.0 E11.0 E11.0 S- S-", "E11.0 E11.0 E11.0 S- S-")[0]
    assert "exception" in j("P", "M E10.2 E10.2 S- S-", "M E10.2 E10.2 S- S-")[0]
    ok_b = "E10.0 E39.255 E10.0 E10.255 S- E10.255"
    assert j("B", ok_b, "E10.0 E39.255 - - S- E10.255") == []  # "-": not run there
    assert "decode_instruction" in j("B", "E10.0 E10.0 E10.0 - S- E10.255", ok_b)[0]
    fields_bad = "E10.3 E39.255 E10.3 E10.255 V5 E10.3"
    assert "command.fields accepts" in j("B", fields_bad, fields_bad)[0]
    assert (
        "command.fields declines" in j("B", "V5 E39.255 E10.0 V5 S- V5", "V5 E39.255 - - S- V5")[0]
    )
    f_ok = "F1.0.0.0000abcd F1.0.0.0000abcd"
    assert j("F", f_ok, f_ok) == []
    assert j("F", f_ok, "- F1.0.0.0000abcd") == []  # FrameParser not run there
    assert "FrameReader differs" in j("F", "F1.0.0.0000abcd F1.0.1.0000abcd", f_ok)[0]


def test_corpus_is_seeded_and_covers_every_message_type() -> None:
    a = corpus.Corpus(3).batch(3000, first=True)
    b = corpus.Corpus(3).batch(3000, first=True)
    assert a == b
    assert corpus.Corpus(4).batch(3000) != corpus.Corpus(3).batch(3000)
    kinds = {r[0] for r in a}
    assert kinds == {"P", "B", "F"}
    # valid messages of every type in the table get generated (shapes from wire.SPECS)
    c = corpus.Corpus(5)
    seen = {c.message()[1] for _ in range(3000)}
    assert seen == set(corpus.wire.SPECS), sorted(set(corpus.wire.SPECS) - seen)
    assert all(len(r[3]) <= corpus.MAX_REC for r in a)

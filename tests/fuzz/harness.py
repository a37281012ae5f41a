"""Differential fuzz of the protocol decoders: CPython against MicroPython, fast path against the
full parser, the device's frame reader against the host's frame parser.

One runner process per runtime (tests/fuzz/runner.py, MicroPython at ``-X heapsize=64k``) takes
batches of inputs from tests/fuzz/corpus.py through a file and answers one line of compact
tokens per input. The controller (this module) fails an input when:
  - a decoder raised anything but ProtocolError ("X...") or ran out of memory ("M");
  - a runner spent more than 1 s of CPU on one input (a hang) or died;
  - the two runtimes' lines differ;
  - on either runtime, the session's fast path (DataView, parse_small, command.split, then the
    fallback to wire.parse, in device/session.py's order) answers another code or value than
    wire.parse; parse_small or command.split accepts something wire.parse decodes otherwise;
    command.fields (a command's signed bytes, on the device) accepts or declines otherwise than
    the profile's decoder with the documented layout; FrameParser.feed and
    FrameReader.readinto_from deliver other payloads or counters;
  - cbor.loads answers a code other than E_BAD_MESSAGE / E_TOO_LARGE, or decode_instruction
    one other than E_BAD_INSTRUCTION.
Decoders found only in messages.py (host-side: it loads codes.py) run on CPython alone ("-").
Each failing input is minimised (chunks removed while the same check still fails, both runtimes
re-run) and printed as hex.

CLI: python -m tests.fuzz.harness [-n INPUTS] [--seed S] [--batch B]  (make fuzz N=...)
"""

from __future__ import annotations

import argparse
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.fuzz import corpus
from tests.fuzz.corpus import Record

ROOT = Path(__file__).resolve().parent.parent.parent
RUNNER = Path(__file__).resolve().parent / "runner.py"
HANG_CPU_S = 1.0
HEAP = "80k"  # the device budget since the ECU component (tests/device_session/_agent.py)
_TICK = os.sysconf("SC_CLK_TCK")

# token positions per kind (tests/fuzz/runner.py)
P_CBOR, P_FULL, P_FAST, P_SMALL, P_SPLIT = 0, 1, 2, 3, 4
B_CBOR, B_INSTR, B_REPORT, B_CMD, B_FIELDS, B_CMDREF = 0, 1, 2, 3, 4, 5
NAMES = {
    "P": ("cbor.loads", "wire.parse", "fast path", "parse_small", "command.split"),
    "B": (
        "cbor.loads",
        "decode_instruction",
        "decode_report",
        "decode_command",
        "command.fields",
        "command reference",
    ),
    "F": ("FrameParser.feed", "FrameReader.readinto_from"),
}
CBOR_CODES = {"10", "13"}  # E_BAD_MESSAGE, E_TOO_LARGE
INSTR_CODES = {"39"}  # E_BAD_INSTRUCTION


class RunnerDied(Exception):
    pass


class Hang(Exception):
    def __init__(self, runtime: str, index: int) -> None:
        super().__init__(f"{runtime} spent over {HANG_CPU_S} s of CPU on input #{index}")
        self.runtime = runtime
        self.index = index


class Runner:
    """One long-lived runner process; run(path) -> its lines for that batch."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.proc: subprocess.Popen[str] | None = None
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.lines = queue.Queue()
        out = self.proc.stdout
        q = self.lines

        def pump() -> None:
            assert out is not None
            for line in out:
                q.put(line.rstrip("\n"))
            q.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def cpu(self) -> float:
        assert self.proc is not None
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                parts = f.read().rsplit(")", 1)[1].split()
            return (int(parts[11]) + int(parts[12])) / _TICK  # utime + stime
        except (OSError, IndexError, ValueError):
            return 0.0

    def submit(self, path: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(path + "\n")
        self.proc.stdin.flush()

    def stderr_tail(self) -> str:
        assert self.proc is not None
        try:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=5)
        except Exception:
            return ""
        return (err or "")[-2000:]

    def restart(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.start()

    def close(self) -> None:
        if self.proc is None:
            return
        try:
            if self.proc.poll() is None and self.proc.stdin is not None:
                self.proc.stdin.write("q\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=5)
        except Exception:
            pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def collect(runners: list[Runner], n: int) -> list[list[str]]:
    """Wait for every runner's n lines + END, watching each one's CPU time for hangs."""
    got: list[list[str]] = [[] for _ in runners]
    done = [False] * len(runners)
    base = [r.cpu() for r in runners]
    seen = [0] * len(runners)
    while not all(done):
        progressed = False
        for i, r in enumerate(runners):
            while not done[i]:
                try:
                    line = r.lines.get_nowait()
                except queue.Empty:
                    break
                progressed = True
                if line is None:
                    raise RunnerDied(f"{r.name} died at input #{len(got[i])}:\n{r.stderr_tail()}")
                if line.startswith("END "):
                    if int(line[4:]) != n or len(got[i]) != n:
                        raise RunnerDied(f"{r.name} answered {len(got[i])} of {n} inputs")
                    done[i] = True
                else:
                    got[i].append(line)
        if progressed:
            continue
        time.sleep(0.05)
        for i, r in enumerate(runners):
            if done[i]:
                continue
            c = r.cpu()
            if len(got[i]) != seen[i]:
                seen[i] = len(got[i])
                base[i] = c
            elif c - base[i] > HANG_CPU_S:
                raise Hang(r.name, len(got[i]))
    return got


# ---- judging ----------------------------------------------------------------------------------
def _code(tok: str) -> str | None:
    return tok[1:].split(".")[0] if tok.startswith("E") else None


def same_answer(a: str, b: str) -> bool:
    """Fast path vs full parser: the same value, or the same error code."""
    if a.startswith("V") or b.startswith("V"):
        return a == b
    return _code(a) == _code(b) and _code(a) is not None


def judge_one(kind: str, toks: list[str]) -> list[str]:
    """Checks that fail on one runtime's tokens (names of the checks)."""
    bad: list[str] = []
    names = NAMES[kind]
    for i, t in enumerate(toks):
        if t.startswith("X") or t == "M":
            bad.append(f"exception in {names[i] if i < len(names) else i}: {t}")
    if bad:
        return bad
    if kind == "P":
        if not same_answer(toks[P_FAST], toks[P_FULL]):
            bad.append("fast path differs from wire.parse")
        if toks[P_SMALL] != "S-" and toks[P_SMALL] != toks[P_FULL]:
            bad.append("parse_small differs from wire.parse")
        if toks[P_SPLIT] != "S-" and toks[P_SPLIT] != toks[P_FULL]:
            bad.append("command.split differs from wire.parse")
        if _code(toks[P_CBOR]) not in (None, *CBOR_CODES):
            bad.append("cbor.loads code outside the profile's")
    elif kind == "B":
        if _code(toks[B_CBOR]) not in (None, *CBOR_CODES):
            bad.append("cbor.loads code outside the profile's")
        if _code(toks[B_INSTR]) not in (None, *INSTR_CODES):
            bad.append("decode_instruction code other than E_BAD_INSTRUCTION")
        fields, ref = toks[B_FIELDS], toks[B_CMDREF]
        if "-" not in (fields, ref):
            if fields == "S-" and not ref.startswith("E"):
                bad.append("command.fields declines a command the profile accepts")
            elif fields != "S-" and fields != ref:
                bad.append(
                    "command.fields accepts what the profile refuses (or reads it otherwise)"
                )
        cmd = toks[B_CMD]
        if cmd != "-" and ref != "-" and cmd.startswith("V") != ref.startswith("V"):
            bad.append("decode_command differs from the profile")
    elif kind == "F" and toks[0] != "-" and toks[0] != toks[1]:
        bad.append("FrameReader differs from FrameParser")
    return bad


def judge(kind: str, cp: str, mp: str) -> list[str]:
    ct, mt = cp.split(), mp.split()
    bad = [f"CPython: {x}" for x in judge_one(kind, ct)]
    bad += [f"MicroPython: {x}" for x in judge_one(kind, mt)]
    if len(ct) != len(mt):
        bad.append("runtimes differ in token count")
    else:
        # ("-": not run on that runtime, see FEED_MAX_MPY in tests/fuzz/runner.py)
        which = [
            NAMES[kind][i]
            for i, (c, m) in enumerate(zip(ct, mt, strict=True))
            if c != m and "-" not in (c, m)
        ]
        if which:
            bad.append("runtimes differ in " + ", ".join(which))
    return bad


@dataclass
class Failure:
    record: Record
    checks: list[str]
    cp: str
    mp: str
    minimal: bytes | None = None
    minimal_lines: tuple[str, str] = ("", "")


@dataclass
class Result:
    inputs: int = 0
    seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def report(self, limit: int = 8) -> str:
        out = [f"fuzz: {self.inputs} inputs in {self.seconds:.1f} s, {len(self.failures)} failing"]
        shown: set[tuple[str, ...]] = set()
        for f in self.failures:
            key = (f.record[0], *f.checks)
            if key in shown:
                continue
            shown.add(key)
            if len(shown) > limit:
                out.append("  ...")
                break
            kind, a, b, data = f.record
            out.append(f"- kind {kind} a={a} b={b}: " + "; ".join(f.checks))
            out.append(f"  input   {data[:256].hex()}{'...' if len(data) > 256 else ''}")
            if f.minimal is not None:
                out.append(f"  minimal {f.minimal.hex()}")
                out.append(f"    CPython     {f.minimal_lines[0]}")
                out.append(f"    MicroPython {f.minimal_lines[1]}")
            else:
                out.append(f"    CPython     {f.cp}")
                out.append(f"    MicroPython {f.mp}")
        return "\n".join(out)


class Fuzzer:
    """Both runners; ``fault`` = (runtime, name) breaks a decoder in one of them on purpose
    (tests/fuzz/runner.py inject(), for the harness's own tests)."""

    def __init__(self, workdir: str | None = None, fault: tuple[str, str] | None = None) -> None:
        from tests.mpyrun import MPY_TREE, _ensure_tree, _micropython
        from tools.build_mpy import mpy_cross

        _ensure_tree()
        self.tmp = tempfile.TemporaryDirectory(prefix="otalink-fuzz-", dir=workdir)
        env = dict(os.environ)
        env["MICROPYPATH"] = str(MPY_TREE)
        env["PYTHONPATH"] = str(ROOT)
        # MicroPython loads the runner precompiled, as the agent loads .mpy files: compiling
        # source would leave the parser's garbage and a larger module in the 64k heap.
        mpy = os.path.join(self.tmp.name, "fuzzrun.mpy")
        subprocess.run(
            [mpy_cross(), "-O3", "-o", mpy, "-s", "fuzzrun.py", str(RUNNER)],
            check=True,
            capture_output=True,
        )
        mp_env = dict(env, MICROPYPATH=os.pathsep.join([self.tmp.name, str(MPY_TREE)]))
        cp_fault = fault[1] if fault and fault[0] == "CPython" else ""
        mp_fault = fault[1] if fault and fault[0] == "MicroPython" else ""
        boot = f"import fuzzrun\nfuzzrun.main({mp_fault!r})"
        self.runners = [
            Runner("CPython", [sys.executable, "-u", str(RUNNER), cp_fault], env),
            Runner("MicroPython", [_micropython(), "-X", "heapsize=" + HEAP, "-c", boot], mp_env),
        ]
        self.seq = 0

    def close(self) -> None:
        for r in self.runners:
            r.close()
        self.tmp.cleanup()

    def __enter__(self) -> Fuzzer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _path(self) -> str:
        self.seq += 1
        return os.path.join(self.tmp.name, f"batch-{self.seq % 4}.bin")

    def submit(self, records: list[Record]) -> None:
        path = self._path()
        corpus.write_batch(path, records)
        for r in self.runners:
            r.submit(path)

    def lines(self, records: list[Record]) -> list[list[str]]:
        """Run records through both runtimes; a hang or a death becomes a Hang/RunnerDied."""
        self.submit(records)
        try:
            return collect(self.runners, len(records))
        except (Hang, RunnerDied):
            for r in self.runners:
                r.restart()
            raise

    def check(self, records: list[Record], lines: list[list[str]], res: Result) -> None:
        cps, mps = lines
        for rec, cp, mp in zip(records, cps, mps, strict=True):
            res.counts[rec[0]] = res.counts.get(rec[0], 0) + 1
            bad = judge(rec[0], cp, mp)
            if bad:
                res.failures.append(Failure(rec, bad, cp, mp))

    # ---- minimisation ------------------------------------------------------------------------
    def _fails_alike(self, records: list[Record], checks: list[str]) -> list[int]:
        try:
            cps, mps = self.lines(records)
        except (Hang, RunnerDied):
            return []
        return [
            i
            for i, (rec, cp, mp) in enumerate(zip(records, cps, mps, strict=True))
            if judge(rec[0], cp, mp) == checks
        ]

    def minimise(self, f: Failure, budget: int = 60) -> None:
        kind, a, b, data = f.record
        n = 2
        rounds = 0
        while len(data) >= 1 and rounds < budget:
            rounds += 1
            size = max(1, -(-len(data) // n))
            cands = [data[:i] + data[i + size :] for i in range(0, len(data), size)]
            hits = self._fails_alike([(kind, a, b, c) for c in cands], f.checks)
            if hits:
                data = cands[hits[0]]
                n = max(2, n - 1)
            elif size == 1:
                break
            else:
                n = min(len(data), n * 2)
        rec = (kind, a, b, data)
        try:
            cps, mps = self.lines([rec])
        except (Hang, RunnerDied) as e:
            f.minimal, f.minimal_lines = data, (str(e), "")
            return
        f.minimal, f.minimal_lines = data, (cps[0], mps[0])

    def run(
        self,
        total: int,
        seed: int = 1,
        batch: int = 2000,
        minimise: int = 5,
        progress: bool = False,
    ) -> Result:
        res = Result()
        t0 = time.monotonic()
        gen = corpus.iter_records(seed, total, batch)
        cur = next(gen, None)
        if cur is not None:
            self.submit(cur)
        while cur is not None:
            nxt = next(gen, None)  # made while the runners decode the current batch
            try:
                lines = collect(self.runners, len(cur))
            except Hang as e:
                rec = cur[e.index]
                res.failures.append(Failure(rec, [str(e)], "", ""))
                for r in self.runners:
                    r.restart()
                lines = None
            except RunnerDied as e:
                res.failures.append(Failure(cur[0], [str(e)], "", ""))
                for r in self.runners:
                    r.restart()
                lines = None
            if lines is not None:
                self.check(cur, lines, res)
            step = res.inputs // 100_000
            res.inputs += len(cur)
            if progress and (res.inputs // 100_000 != step or nxt is None):
                rate = res.inputs / (time.monotonic() - t0)
                print(f"fuzz: {res.inputs} inputs, {len(res.failures)} failing ({rate:.0f}/s)",
                      file=sys.stderr, flush=True)  # fmt: skip
            cur = nxt
            if cur is not None:
                self.submit(cur)
        res.seconds = time.monotonic() - t0
        seen: set[tuple[str, ...]] = set()
        for f in res.failures:
            key = (f.record[0], *f.checks)
            if key in seen or len(seen) >= minimise or "CPU" in f.checks[0]:
                continue
            seen.add(key)
            self.minimise(f)
        return res


def fuzz(
    total: int,
    seed: int = 1,
    batch: int = 2000,
    progress: bool = False,
    fault: tuple[str, str] | None = None,
) -> Result:
    (ROOT / "build").mkdir(exist_ok=True)
    with Fuzzer(str(ROOT / "build"), fault) as fz:
        return fz.run(total, seed, batch, progress=progress)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=100_000, help="inputs (default 100000)")
    ap.add_argument("--seed", type=int, default=int(time.time()) & 0xFFFF)
    ap.add_argument("--batch", type=int, default=2000)
    args = ap.parse_args(argv)
    print(f"fuzz: seed {args.seed}", flush=True)
    res = fuzz(args.n, args.seed, args.batch, progress=True)
    print(res.report(), flush=True)
    return 1 if res.failures else 0


if __name__ == "__main__":
    sys.exit(main())

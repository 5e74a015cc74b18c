"""`make fuzz` and CI's fuzz step: every fuzz target of fuzz/ (libFuzzer for C, atheris for
Python), first over its regression inputs (fuzz/regressions/<target>/: inputs that once broke
a parser; each must now pass), then fuzzing for a bounded time from its checked-in corpus
(fuzz/corpus/<target>/) into a working corpus (out/fuzz/corpus/<target>/, kept between local
runs). A crash, a failed assertion, a leak or a timeout fails the run: the input is kept under
out/fuzz/crashes/ and printed, to be added to fuzz/regressions/ with the fix. Prints one table:
executions, executions per second, coverage and corpus size per target.

    python -m pointsmesh.fuzz [--seconds 15] [--targets request,py-health] [--merge]

--merge: afterwards, the working corpus's new inputs (minimised by libFuzzer's -merge=1) are
added to fuzz/corpus/, to be committed: the checked-in corpus grows with every long run.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import ROOT

FUZZ = ROOT / "fuzz"
OUT = ROOT / "out" / "fuzz"
C_TARGETS = ("request", "health", "reply", "settings")
PY_TARGETS = ("py-request", "py-reply", "py-health", "py-settings")
TARGETS = C_TARGETS + PY_TARGETS
# Per input: a parser that takes longer than this is hung (libFuzzer's -timeout).
INPUT_TIMEOUT_S = 10


@dataclass
class Result:
    target: str
    seconds: float
    executions: int
    per_second: int
    coverage: int
    corpus: int
    regressions: int
    failure: str = ""


def command(target: str) -> list[str]:
    if target.startswith("py-"):
        return [sys.executable, str(FUZZ / "py" / f"{target[3:]}.py")]
    return [str(FUZZ / "build" / target)]


def build() -> None:
    subprocess.run(["make", "-s", "-C", str(FUZZ), "-j2"], check=True)


def _stat(text: str, name: str) -> int:
    m = re.search(rf"^stat::{name}:\s+(\d+)", text, re.M)
    return int(m.group(1)) if m else 0


def _coverage(text: str) -> int:
    found = re.findall(r"\bcov: (\d+)", text)
    return int(found[-1]) if found else 0


def run_regressions(target: str) -> tuple[int, str]:
    """(inputs run, failure text or "")."""
    folder = FUZZ / "regressions" / target
    inputs = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
    if not inputs:
        return 0, ""
    proc = subprocess.run([*command(target), *map(str, inputs)], capture_output=True,
                          text=True, errors="replace", timeout=300, check=False)
    if proc.returncode != 0:
        return len(inputs), proc.stderr[-4000:]
    return len(inputs), ""


def fuzz(target: str, seconds: int) -> Result:
    n_reg, failure = run_regressions(target)
    if failure:
        return Result(target, 0, 0, 0, 0, 0, n_reg, "a regression input fails:\n" + failure)
    work = OUT / "corpus" / target
    seeds = FUZZ / "corpus" / target
    crashes = OUT / "crashes"
    for d in (work, seeds, crashes):
        d.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    proc = subprocess.run(
        [*command(target), f"-max_total_time={seconds}", "-print_final_stats=1",
         f"-timeout={INPUT_TIMEOUT_S}", "-rss_limit_mb=2048", "-max_len=4096",
         f"-artifact_prefix={crashes}/{target}-", str(work), str(seeds)],
        capture_output=True, text=True, errors="replace", timeout=seconds + 300, check=False)
    took = time.monotonic() - t0
    text = proc.stderr + proc.stdout
    result = Result(target, took, _stat(text, "number_of_executed_units"),
                    _stat(text, "average_exec_per_sec"), _coverage(text),
                    sum(1 for p in work.iterdir() if p.is_file()), n_reg)
    if proc.returncode != 0:
        found = re.findall(r"(?:Test unit|artifact_prefix.*?) written to (\S+)", text)
        where = found[-1] if found else "(no input written)"
        data = Path(where).read_bytes()[:300] if Path(where).is_file() else b""
        result.failure = (f"{text[-3000:]}\ninput: {where}\n  {data!r}\nadd it to "
                          f"fuzz/regressions/{target}/ with the fix")
    return result


def merge(target: str) -> int:
    """New inputs of the working corpus added to fuzz/corpus/<target>: how many."""
    seeds = FUZZ / "corpus" / target
    before = {p.name for p in seeds.iterdir()}
    subprocess.run([*command(target), "-merge=1", str(seeds), str(OUT / "corpus" / target)],
                   capture_output=True, timeout=600, check=True)
    return len({p.name for p in seeds.iterdir()} - before)


def table(results: list[Result]) -> str:
    lines = [f"{'target':<12} {'seconds':>7} {'executions':>11} {'exec/s':>8} {'coverage':>8} "
             f"{'corpus':>6} {'regressions':>11}  result"]
    for r in results:
        lines.append(f"{r.target:<12} {r.seconds:>7.1f} {r.executions:>11,} {r.per_second:>8,} "
                     f"{r.coverage:>8} {r.corpus:>6} {r.regressions:>11}  "
                     f"{'FAILED' if r.failure else 'ok'}")
    total = sum(r.executions for r in results)
    lines.append(f"{'all':<12} {sum(r.seconds for r in results):>7.1f} {total:>11,}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=15, help="fuzzing time per target")
    ap.add_argument("--targets", default=",".join(TARGETS),
                    help=f"comma-separated, of: {', '.join(TARGETS)}")
    ap.add_argument("--merge", action="store_true",
                    help="add the new inputs to the checked-in corpus (fuzz/corpus/)")
    args = ap.parse_args(argv)
    targets = [t for t in args.targets.split(",") if t]
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown:
        ap.error(f"unknown targets: {', '.join(unknown)}")
    if shutil.which("clang-16") is None:
        print("fuzz: clang-16 (with libFuzzer's runtime, libclang-rt-16-dev) is missing: "
              "run `make setup`", file=sys.stderr)
        return 2
    build()
    results = []
    for t in targets:
        r = fuzz(t, args.seconds)
        print(f"[fuzz] {t}: {r.executions:,} executions in {r.seconds:.0f} s, coverage "
              f"{r.coverage}, corpus {r.corpus}, {r.regressions} regression input(s): "
              f"{'FAILED' if r.failure else 'ok'}", flush=True)
        if r.failure:
            print(r.failure, file=sys.stderr)
        elif args.merge:
            print(f"[fuzz] {t}: {merge(t)} new input(s) in fuzz/corpus/{t}")
        results.append(r)
    print("\n" + table(results))
    return 1 if any(r.failure for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())

"""The fuzz targets (fuzz/) can fail: the health target, built from health.c as it was before
the fix of the issue that brought fuzzing in, crashes on the regression input kept for it (ASan:
a read far past the buffer); built from today's health.c it passes every regression input. And the
runner (pointsmesh.fuzz) reports the per-target numbers CI prints."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pointsmesh import ROOT, fuzz

FIX = "58f472d"  # "Health port: the request line alone is parsed ..."
REGRESSION = ROOT / "fuzz/regressions/health/issue-22-space-after-newline"


@pytest.fixture(scope="module")
def built() -> Path:
    if shutil.which("clang-16") is None:
        pytest.fail("clang-16 is missing: make setup installs it")
    fuzz.build()
    return ROOT / "fuzz" / "build"


def _pkg_libs() -> list[str]:
    """The libraries the server's objects link with: the database client's, then OpenSSL's."""
    def libs(pkg: str) -> list[str] | None:
        proc = subprocess.run(["pkg-config", "--libs", pkg], capture_output=True, text=True,
                              check=False)
        return proc.stdout.split() if proc.returncode == 0 else None

    db = libs("libmariadb") or libs("mysqlclient") or []
    return db + (libs("openssl") or ["-lssl", "-lcrypto"])


def test_health_target_crashes_on_the_parser_before_the_fix(built: Path, tmp_path: Path) -> None:
    old = tmp_path / "health.c"
    old.write_bytes(subprocess.run(["git", "show", f"{FIX}^:services/c-server/src/health.c"],
                                   cwd=ROOT, capture_output=True, check=True).stdout)
    objs = [str(p) for p in sorted((built / "lib").glob("*.o")) if p.name != "health.o"]
    binary = tmp_path / "health-before-fix"
    subprocess.run(
        ["clang-16", "-std=c11", "-D_GNU_SOURCE", '-DPTS_VERSION="fuzz"', "-g", "-O1",
         "-fsanitize=fuzzer,address,undefined", f"-I{ROOT / 'services/c-server/src'}",
         f"-I{ROOT / 'protocol/generated'}", f"-I{ROOT / 'protocol/c'}", "-o", str(binary),
         str(ROOT / "fuzz/c/health.c"), str(old), *objs, *_pkg_libs(), "-pthread", "-lm"],
        check=True, capture_output=True)
    before = subprocess.run([str(binary), str(REGRESSION)], capture_output=True, text=True,
                            errors="replace", timeout=60, check=False)
    assert before.returncode != 0, before.stderr[-2000:]
    # gcc's ASan build of the server reported a heap-buffer-overflow; under clang the negative
    # length reaches memchr's assembly first, a SEGV: the same read past the buffer.
    assert "ERROR: AddressSanitizer" in before.stderr and "health_respond" in before.stderr, \
        before.stderr[-2000:]
    # And fuzzing finds it by itself, from the checked-in seeds, in a bounded time (measured:
    # under 1,000 executions, well under a second).
    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "fuzz/corpus/health", corpus)
    found = subprocess.run([str(binary), "-max_total_time=60", f"-artifact_prefix={tmp_path}/",
                            str(corpus)], capture_output=True, text=True, errors="replace",
                           timeout=180, check=False)
    assert found.returncode != 0 and "ERROR: AddressSanitizer" in found.stderr, \
        found.stderr[-2000:]
    now = subprocess.run([str(built / "health"), str(REGRESSION)], capture_output=True,
                         text=True, errors="replace", timeout=60, check=False)
    assert now.returncode == 0, now.stderr[-2000:]


def test_every_target_passes_its_regressions_and_reports_numbers(built: Path) -> None:
    for target in fuzz.TARGETS:
        _, failure = fuzz.run_regressions(target)
        assert failure == "", (target, failure)
    assert fuzz.run_regressions("health")[0] >= 2
    result = fuzz.fuzz("reply", 1)
    assert result.failure == "" and result.executions > 1000 and result.coverage > 0, result
    assert "reply" in fuzz.table([result])

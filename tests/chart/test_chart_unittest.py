"""The chart's helm-unittest suites (helm/points-mesh/tests/*_test.yaml), one pytest test per
suite, run with the standalone helm-unittest binary (untt) that `make setup` builds. Its exit
code decides; its output is shown on failure."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from chartlib import CHART

from pointsmesh import charttools

SUITES = sorted((CHART / "tests").glob("*_test.yaml"))
EXPECTED_SUITES = {"naming", "roster", "secret", "schema", "notes"}


def untt(chart: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(charttools.helm_unittest()), "--strict", "--color=false", *args, str(chart)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def summary(output: str) -> tuple[int, int]:
    """(failed, passed) from the 'Tests:' line."""
    m = re.search(r"^Tests:\s+(?:(\d+) failed, )?(?:(\d+) passed, )?(\d+) total", output, re.M)
    assert m, f"no 'Tests:' summary in the output:\n{output}"
    return int(m.group(1) or 0), int(m.group(2) or 0)


def test_the_suites_are_there() -> None:
    names = {p.name.removesuffix("_test.yaml") for p in SUITES}
    assert names >= EXPECTED_SUITES


@pytest.mark.parametrize("suite", SUITES, ids=[p.name for p in SUITES])
def test_suite(suite: Path) -> None:
    proc = untt(CHART, "-f", str(suite.relative_to(CHART)))
    output = proc.stdout + proc.stderr
    failed, passed = summary(output)
    assert proc.returncode == 0 and failed == 0, f"untt exited {proc.returncode}:\n{output}"
    assert passed > 0, output


def test_a_failing_suite_fails(tmp_path: Path) -> None:
    """untt's exit code reports a failed assertion (so the tests above can fail)."""
    chart = tmp_path / "points-mesh"
    shutil.copytree(CHART, chart, ignore=shutil.ignore_patterns("tests", "ci"))
    (chart / "tests").mkdir()
    (chart / "tests" / "wrong_test.yaml").write_text(
        "suite: wrong on purpose\n"
        "templates: [templates/servers.yaml]\n"
        "capabilities: {majorVersion: 1, minorVersion: 34}\n"
        "tests:\n"
        "  - it: expects a Deployment that is not there\n"
        "    asserts:\n"
        "      - containsDocument: {kind: Deployment, apiVersion: apps/v1,"
        " name: c-server-nobody, any: true}\n")
    proc = untt(chart)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert summary(output) == (1, 0), output

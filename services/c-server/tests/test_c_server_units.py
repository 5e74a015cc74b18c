"""The C server's own unit tests (request parser, settings, metrics text, JSON logs, health
responses, the updater's wait_timeout), built and run with AddressSanitizer and
UndefinedBehaviorSanitizer by `make -C services/c-server test`."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from pointsmesh import ROOT

C_SERVER = ROOT / "services" / "c-server"


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_c_server_unit_tests_pass():
    res = subprocess.run(
        ["make", "-C", str(C_SERVER), "test"],
        capture_output=True, text=True, timeout=600,
    )
    assert res.returncode == 0, f"make test failed:\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}"
    # The harness's last line, "<n> checks, <m> failures": zero failures of a nonzero count
    # (a substring test would take "10 failures" for "0 failures").
    counts = re.search(r"^(\d+) checks, (\d+) failures$", res.stdout, re.M)
    assert counts and int(counts[1]) > 0 and int(counts[2]) == 0, res.stdout[-4000:]

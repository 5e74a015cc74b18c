"""The C server's own unit tests (request parser, settings, metrics text, JSON logs, health
responses, the updater's wait_timeout), built and run with AddressSanitizer and
UndefinedBehaviorSanitizer by `make -C services/c-server test`."""

from __future__ import annotations

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
    assert "0 failures" in res.stdout, res.stdout[-4000:]

"""How the ThreadSanitizer server kind is started (tools/pointsmesh/procs.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pointsmesh import procs


@pytest.mark.parametrize(("content", "needed"), [("28\n", False), ("32\n", True), ("", False)])
def test_aslr_off_only_above_28_random_bits(tmp_path: Path, content: str, needed: bool) -> None:
    f = tmp_path / "mmap_rnd_bits"
    f.write_text(content)
    assert procs.tsan_needs_aslr_off(f) is needed
    assert procs.tsan_needs_aslr_off(tmp_path / "absent") is False


def test_tsan_kind_runs_under_setarch_when_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    if not procs.C_SERVER["c-tsan"].exists():
        pytest.skip("build-tsan/c-server is not built (make build)")
    monkeypatch.setattr(procs, "tsan_needs_aslr_off", lambda: True)
    monkeypatch.setattr(procs.shutil, "which", lambda name: f"/usr/bin/{name}")
    cmd = procs.server_command("c-tsan")
    assert cmd[0] == "setarch" and cmd[2] == "-R" and cmd[3] == str(procs.C_SERVER["c-tsan"])
    assert procs.server_command("c-asan") == [str(procs.C_SERVER["c-asan"])]
    monkeypatch.setattr(procs, "tsan_needs_aslr_off", lambda: False)
    assert procs.server_command("c-tsan") == [str(procs.C_SERVER["c-tsan"])]


def test_tsan_reports_are_sanitizer_reports() -> None:
    assert "ThreadSanitizer" in procs.SANITIZER_MARKERS
    assert "suppressions=" in procs.SANITIZER_ENV["TSAN_OPTIONS"]
    assert procs.TSAN_SUPPRESSIONS.is_file()

"""pointsmesh.charttools: where helm and helm-unittest are, or a clear "run make setup"."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pointsmesh import charttools


@pytest.fixture
def record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A record file of our own (none written yet), no environment overrides."""
    path = tmp_path / charttools.RECORD_NAME
    monkeypatch.setattr(charttools, "record_candidates", lambda: [path])
    monkeypatch.delenv("HELM", raising=False)
    monkeypatch.delenv("HELM_UNITTEST", raising=False)
    return path


def executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\n")
    os.chmod(path, 0o755)
    return path


def test_missing_record_says_run_make_setup(record: Path) -> None:
    with pytest.raises(charttools.ChartToolMissing, match="run make setup"):
        charttools.helm()
    with pytest.raises(charttools.ChartToolMissing, match="run make setup"):
        charttools.helm_unittest()


def test_reads_the_record(record: Path, tmp_path: Path) -> None:
    helm = executable(tmp_path / "helm")
    untt = executable(tmp_path / "untt")
    record.write_text(f"# comment\nHELM={helm}\nHELM_VERSION=v3\nHELM_UNITTEST={untt}\n")
    assert charttools.helm() == helm
    assert charttools.helm_unittest() == untt


def test_recorded_binary_gone(record: Path, tmp_path: Path) -> None:
    record.write_text(f"HELM={tmp_path / 'gone'}\n")
    with pytest.raises(charttools.ChartToolMissing, match="not an executable file: run make setup"):
        charttools.helm()


def test_environment_overrides_the_record(record: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    record.write_text(f"HELM={executable(tmp_path / 'helm')}\n")
    other = executable(tmp_path / "other-helm")
    monkeypatch.setenv("HELM", str(other))
    assert charttools.helm() == other
    monkeypatch.setenv("HELM", str(tmp_path / "nope"))
    with pytest.raises(charttools.ChartToolMissing, match="HELM"):
        charttools.helm()

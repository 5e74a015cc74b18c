"""`python -m pointsmesh.devdb`, the command: a signal to the tool (SIGTERM from a supervisor or
`kill`, SIGINT from Ctrl-C, SIGHUP from a closed terminal) stops the database it started. The
database runs in a session of its own (a terminal's Ctrl-C never reaches it), so the tool is
the only one that can stop it: a tool that just dies leaves a mysqld nobody owns."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

import pytest
from testhelpers import wait_until

from pointsmesh import ROOT

STOP_SIGNALS = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP]


def alive(pid: int, datadir: Path) -> bool:
    """pid is still that database server (and not a process that reused the number)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return f"--datadir={datadir}".encode() in cmdline and "\nState:\tZ" not in status


class Lines:
    """A pipe read into a list of lines by a thread, so a test can wait for one."""

    def __init__(self, pipe: IO[str] | None) -> None:
        assert pipe is not None
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: IO[str]) -> None:
        for line in pipe:
            self.lines.append(line.rstrip("\n"))

    def match(self, pattern: str) -> re.Match[str] | None:
        return next(filter(None, (re.search(pattern, line) for line in list(self.lines))), None)

    def text(self) -> str:
        self._thread.join(5)
        return "\n".join(self.lines)


def start_tool(base: Path) -> tuple[subprocess.Popen[str], Lines, Lines]:
    """The tool in a session of its own (nothing of pytest's reaches it): process, out, err."""
    tool = subprocess.Popen(
        [sys.executable, "-m", "pointsmesh.devdb", "--dir", str(base)],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )
    return tool, Lines(tool.stdout), Lines(tool.stderr)


def cleanup(tool: subprocess.Popen[str], pid: int | None, datadir: Path) -> None:
    """Whatever a failed test left behind."""
    if tool.poll() is None:
        tool.kill()
        tool.wait()
    if pid is not None and alive(pid, datadir):
        os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("signum", STOP_SIGNALS, ids=lambda s: s.name)
def test_a_signal_to_the_tool_stops_its_database(tmp_path: Path, signum: signal.Signals) -> None:
    base = tmp_path / "db"
    tool, out, err = start_tool(base)
    pid = None
    try:
        ready = wait_until(
            lambda: err.match(r"on 127\.0\.0\.1:(\d+)") or tool.poll() is not None, timeout=90
        )
        assert isinstance(ready, re.Match), f"the tool did not start the database:\n{err.text()}"
        pid = int((base / "mysqld.pid").read_text())
        assert alive(pid, base / "data")

        tool.send_signal(signum)
        status = tool.wait(60)
        assert wait_until(lambda: not alive(pid, base / "data"), timeout=10), (
            f"the database (pid {pid}) outlived the tool (exit status {status})"
        )
        assert status == 0, err.text()
        assert out.match(rf"^DB_PORT={ready[1]}$"), out.text()
        assert "stopped" in err.text()
    finally:
        cleanup(tool, pid, base / "data")


def test_sigterm_while_the_database_starts_stops_it(tmp_path: Path) -> None:
    """The signal lands while the database is coming up (its pid file is there, the schema may
    still be loading): the half-started database is stopped too."""
    base = tmp_path / "db"
    tool, _, err = start_tool(base)
    pid = None
    try:
        pidfile = base / "mysqld.pid"
        assert wait_until(lambda: pidfile.exists() or tool.poll() is not None, timeout=90)
        pid = int(wait_until(lambda: pidfile.read_text().strip(), timeout=10))
        tool.send_signal(signal.SIGTERM)
        status = tool.wait(60)
        assert wait_until(lambda: not alive(pid, base / "data"), timeout=10), (
            f"the database (pid {pid}) outlived the tool (exit status {status})"
        )
        assert status == 0, err.text()
    finally:
        cleanup(tool, pid, base / "data")

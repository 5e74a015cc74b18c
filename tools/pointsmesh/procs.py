"""Start, talk to and stop the project's servers and clients as real processes.

Kinds of server: "c" (services/c-server/build/c-server), "c-asan" (the ASan+UBSan build in
build-asan/), "c-tsan" (the ThreadSanitizer build in build-tsan/) and "python" (the
points_server package). Clients: "c", "c-asan", "python".
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from . import ROOT, tlsclient
from .devdb import free_port, terminate
from .spec import load_protocol

C_SERVER = {
    "c": ROOT / "services/c-server/build/c-server",
    "c-asan": ROOT / "services/c-server/build-asan/c-server",
    "c-tsan": ROOT / "services/c-server/build-tsan/c-server",
}
C_CLIENT = {
    "c": ROOT / "clients/c-client/build/c-client",
    "c-asan": ROOT / "clients/c-client/build-asan/c-client",
}
# Suppressions for reports that are not races of ours (each entry says why).
TSAN_SUPPRESSIONS = ROOT / "services/c-server/tsan.supp"
SANITIZER_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:halt_on_error=1:exitcode=99",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:exitcode=99",
    "LSAN_OPTIONS": "exitcode=99",
    # ThreadSanitizer goes on after a report (every race of a run is in the log) and exits 66
    # at the end if it reported anything; the log marker fails the test either way.
    "TSAN_OPTIONS": f"halt_on_error=0:exitcode=66:second_deadlock_stack=1:"
                    f'suppressions="{TSAN_SUPPRESSIONS}"',
}
# "ThreadSanitizer" covers its reports ("WARNING: ThreadSanitizer: data race ...") and its
# fatal start-up errors ("FATAL: ThreadSanitizer: unexpected memory mapping ...").
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehavior",
                     "ThreadSanitizer")
REQUEST = (load_protocol().command + "\n").encode()
# strerror(EADDRINUSE), in both servers' start_failed event.
PORT_TAKEN = "Address already in use"


def tsan_needs_aslr_off(rnd_bits: Path = Path("/proc/sys/vm/mmap_rnd_bits")) -> bool:
    """Whether the TSan build must run with address space randomisation off.

    GCC 12's ThreadSanitizer runtime (Debian bookworm's libtsan2, LLVM 15 based) expects the
    x86_64 layout of at most 28 random mmap bits; kernels set to more (Ubuntu 23.10 and later
    use 32) make it die at start with "FATAL: ThreadSanitizer: unexpected memory mapping".
    Newer runtimes re-exec themselves without randomisation; this one does not, so the test
    harness does it (setarch -R). Only when needed: container seccomp profiles may refuse the
    personality(ADDR_NO_RANDOMIZE) that setarch -R asks for."""
    try:
        return int(rnd_bits.read_text()) > 28
    except (OSError, ValueError):
        return False


def server_command(kind: str) -> list[str]:
    if kind in C_SERVER:
        path = C_SERVER[kind]
        if not path.exists():
            raise FileNotFoundError(f"{path} is not built (run `make build`)")
        if kind == "c-tsan" and tsan_needs_aslr_off() and shutil.which("setarch"):
            # setarch execs the server: same pid, so signals and prlimit reach the server.
            return ["setarch", platform.machine(), "-R", str(path)]
        return [str(path)]
    if kind == "python":
        return [sys.executable, "-m", "points_server"]
    raise ValueError(f"unknown server kind {kind!r}")


def client_command(kind: str) -> list[str]:
    if kind in C_CLIENT:
        path = C_CLIENT[kind]
        if not path.exists():
            raise FileNotFoundError(f"{path} is not built (run `make build`)")
        return [str(path)]
    if kind == "python":
        return [sys.executable, "-m", "points_client"]
    raise ValueError(f"unknown client kind {kind!r}")


def language(kind: str) -> str:
    return "python" if kind == "python" else "c"


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on host:port now."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def mem_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB; zeros when it is gone."""
    rss = hwm = 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "SERVER_", "TARGET_"))}
    env.update(SANITIZER_ENV)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def exchange(port: int, payload: bytes = REQUEST, host: str = "127.0.0.1",
             timeout: float = 10.0, half_close: bool = False,
             tls: ssl.SSLContext | None = None) -> bytes:
    """Connect (over TLS with tls), send payload, optionally half-close, and read until the
    server closes."""
    with tlsclient.connect(host, port, timeout, tls) as s:
        s.settimeout(timeout)
        if payload:
            s.sendall(payload)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@dataclass
class ServerProc:
    """One server process with its own protocol and health ports."""

    kind: str
    env: dict[str, str]
    log_dir: Path
    name: str = ""
    port: int = 0
    health_port: int = 0
    proc: subprocess.Popen | None = None
    tls: ssl.SSLContext | None = None  # the client side, when the server speaks TLS
    nofile: int = 0  # RLIMIT_NOFILE (soft and hard) for the server, through prlimit(1); 0: as is
    log_path: Path = field(init=False)
    _log_file: BinaryIO | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        # Ports chosen here (not by the test) may be retaken before the server binds them.
        self._auto_ports = not self.port and not self.health_port
        self.port = self.port or free_port()
        self.health_port = self.health_port or free_port()
        self.name = self.name or f"{self.kind}-{self.port}"
        self.log_path = self.log_dir / f"{self.name}.log"

    @property
    def language(self) -> str:
        return language(self.kind)

    def command(self) -> list[str]:
        """The server's command line (a subclass may run another checkout's servers)."""
        return server_command(self.kind)

    def workdir(self) -> Path:
        return ROOT

    def full_env(self) -> dict[str, str]:
        env = base_env()
        env.update(
            {
                "SERVER_HOST": "127.0.0.1",
                "SERVER_PORT": str(self.port),
                "HEALTH_HOST": "127.0.0.1",
                "HEALTH_PORT": str(self.health_port),
            }
        )
        env.update(self.env)
        return env

    def start(self, wait: str = "ready", timeout: float = 30.0, args: list[str] | None = None
              ) -> ServerProc:
        """Start; wait for "ready" (/readyz 200), "listening" (port accepts) or "none".

        free_port() only finds a port free at that moment: another socket (an outgoing
        connection's ephemeral port) can take it before the server binds it. With ports chosen
        here, a start that fails with "Address already in use" is retried on new ports (twice
        at most); a port the test chose is never changed."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            seen = self.log_text().count(PORT_TAKEN)
            self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in _reap
            limit = ["prlimit", f"--nofile={self.nofile}:{self.nofile}", "--"] \
                if self.nofile else []
            self.proc = subprocess.Popen(
                limit + self.command() + (args or []),
                env=self.full_env(),
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                cwd=self.workdir(),
            )
            if wait == "none":
                return self
            try:
                self.wait_for(wait, timeout)
                return self
            except RuntimeError:
                lost_port = (self.proc.poll() is not None
                             and self.log_text().count(PORT_TAKEN) > seen)
                if not (self._auto_ports and lost_port and attempt < 2):
                    raise
                self._reap()
                self.port, self.health_port = free_port(), free_port()
        return self

    def wait_for(self, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log_text()[-3000:]}")
            if what == "listening" and port_open(self.port):
                return
            if what == "ready" and self._ready():
                return
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} not {what} after {timeout} s:\n{self.log_text()[-3000:]}")

    def _ready(self) -> bool:
        try:
            return self.http("/readyz")[0] == 200
        except OSError:
            return False

    def http(self, path: str) -> tuple[int, str]:
        return http_get(self.health_port, path)

    def metrics(self) -> dict[str, float]:
        """Parse /metrics into {'name{labels}': value} (labels as printed)."""
        status, body = self.http("/metrics")
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        out: dict[str, float] = {}
        for line in body.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def request(self, payload: bytes = REQUEST, **kw) -> bytes:
        kw.setdefault("tls", self.tls)
        return exchange(self.port, payload, **kw)

    def connect(self, timeout: float = 10.0) -> socket.socket | tlsclient.TlsSocket:
        """A connection to the protocol port; over TLS (handshake done) when the server
        speaks it (self.tls: the client context the suites use)."""
        return tlsclient.connect("127.0.0.1", self.port, timeout, self.tls)

    def fd_count(self) -> int:
        assert self.proc is not None
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def rss_kib(self) -> int:
        assert self.proc is not None
        return mem_kib(self.proc.pid)[0]

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; returns the exit status (SIGKILL after timeout: raises)."""
        if self.proc is None:
            return 0
        if not terminate(self.proc, timeout):
            self._reap()
            raise TimeoutError(f"{self.name} ignored SIGTERM for {timeout} s")
        return self._reap()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reap()

    def _reap(self) -> int:
        code = self.proc.returncode if self.proc is not None else 0
        self.proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return code

    def log_text(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")
        return ""

    def log_events(self) -> list[dict]:
        """The JSON log lines (other lines, e.g. sanitizer reports, are skipped)."""
        events = []
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    events.append(json.loads(line))
        return events

    def sanitizer_reports(self) -> list[str]:
        text = self.log_text()
        return [m for m in SANITIZER_MARKERS if m in text]


def run_client(kind: str, port: int, host: str = "127.0.0.1", extra_env: dict | None = None,
               args: list[str] | None = None, timeout: float = 60.0
               ) -> subprocess.CompletedProcess:
    env = base_env()
    env.update({"TARGET_HOST": host, "TARGET_PORT": str(port)})
    env.update(extra_env or {})
    return subprocess.run(
        client_command(kind) + (args or []), env=env, capture_output=True, text=True,
        timeout=timeout, cwd=ROOT,
    )

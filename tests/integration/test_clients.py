"""Both clients (C, C under ASan+UBSan, Python) against small servers this test starts.

Every server here is a plain Python socket server in a thread on 127.0.0.1 (or ::1), scripted
per test: a good reply, a late start, nothing listening, retryable then good, a non-retryable
error, silence, a reset, an unexpected answer. Timings are kept small so the module runs in
seconds.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pointsmesh import ROOT
from pointsmesh.devdb import DevDB, DevDBError, free_port
from pointsmesh.procs import REQUEST, SANITIZER_MARKERS, ServerProc, run_client
from pointsmesh.spec import load_protocol

KINDS = ["c", "c-asan", "python"]
PROGS = {"c": "c-client", "c-asan": "c-client", "python": "python-client"}
PROTOCOL = load_protocol()
REPLY = PROTOCOL.reply("c_user-azmeer", 42, "2026-01-05 10:00:00").encode()
DB_DOWN = PROTOCOL.error("db-unavailable").line.encode()
UNKNOWN = PROTOCOL.error("unknown-command").line.encode()
FAST = {"CLIENT_RETRY_DELAY": "0.05", "CLIENT_RETRY_MAX_DELAY": "0.2", "CLIENT_TIMEOUT": "2"}


@pytest.fixture(scope="module", autouse=True)
def _built() -> None:
    """Build the C client (normal and sanitizer) once; cheap when up to date."""
    res = subprocess.run(
        ["make", "-s", "-C", str(ROOT / "clients/c-client"), "all", "asan"],
        capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr


# -- scripted servers ------------------------------------------------------------------------

Handler = Callable[[socket.socket, int], None]


class ScriptServer:
    """Accepts connections in a thread and runs handler(conn, index) for each one in turn.

    Records the bytes each connection sent before the handler answered. Bounded: at most
    max_conns connections, and stop() ends it within ~0.2 s.
    """

    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 0,
                 delay: float = 0.0, max_conns: int = 50) -> None:
        self.handler = handler
        self.host = host
        self.port = port or free_port()
        self.delay = delay
        self.max_conns = max_conns
        self.requests: list[bytes] = []
        self.stopping = threading.Event()
        self.listening = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    @property
    def connections(self) -> int:
        return len(self.requests)

    def __enter__(self) -> ScriptServer:
        self.thread.start()
        if not self.delay:
            assert self.listening.wait(5), "test server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(10)

    def _run(self) -> None:
        try:
            if self.delay and self.stopping.wait(self.delay):
                return
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            with socket.socket(family, socket.SOCK_STREAM) as lsock:
                lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                lsock.bind((self.host, self.port))
                lsock.listen(64)
                lsock.settimeout(0.1)
                self.listening.set()
                while not self.stopping.is_set() and len(self.requests) < self.max_conns:
                    try:
                        conn, _ = lsock.accept()
                    except TimeoutError:
                        continue
                    with conn:
                        conn.settimeout(3)
                        index = len(self.requests)
                        self.requests.append(b"")
                        self.handler(conn, index)
        except BaseException as exc:  # reported by the test through .error
            self.error = exc

    # helpers for handlers
    def read_request(self, conn: socket.socket, index: int) -> bytes:
        """Read until a newline or EOF (at most 4 KiB, 3 s)."""
        data = b""
        with contextlib.suppress(OSError):
            while b"\n" not in data and len(data) < 4096:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
        self.requests[index] = data
        return data


def answer(conn: socket.socket, payload: bytes) -> None:
    """Send payload, half-close, and linger until the peer closes (as the real servers do)."""
    with contextlib.suppress(OSError):
        conn.sendall(payload)
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(2)
        while conn.recv(4096):
            pass


def replies(srv_ref: list[ScriptServer], *payloads: bytes) -> Handler:
    """A handler answering connection i with payloads[i] (the last one repeats)."""

    def handle(conn: socket.socket, index: int) -> None:
        srv_ref[0].read_request(conn, index)
        answer(conn, payloads[min(index, len(payloads) - 1)])

    return handle


def serve(*payloads: bytes, **kw) -> ScriptServer:
    ref: list[ScriptServer] = []
    srv = ScriptServer(replies(ref, *payloads), **kw)
    ref.append(srv)
    return srv


def client(kind: str, port: int, env: dict[str, str] | None = None, host: str = "127.0.0.1",
           args: list[str] | None = None, timeout: float = 60
           ) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    res = run_client(kind, port, host=host, extra_env={**FAST, **(env or {})}, args=args,
                     timeout=timeout)
    elapsed = time.monotonic() - t0
    if kind == "c-asan":
        found = [m for m in SANITIZER_MARKERS if m in res.stderr]
        assert not found and res.returncode != 99, res.stderr
    return res, elapsed


def progress_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " failed: " in line and "retrying" in line]


# -- tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_good_reply(kind: str) -> None:
    with serve(REPLY) as srv:
        res, _ = client(kind, srv.port)
    assert res.returncode == 0, res.stderr
    assert res.stdout == REPLY.decode()
    assert res.stderr == ""
    assert srv.requests == [REQUEST]  # exactly the request line, one connection
    assert srv.error is None


@pytest.mark.parametrize("kind", KINDS)
def test_server_starting_late(kind: str) -> None:
    with serve(REPLY, delay=0.6) as srv:
        res, _ = client(kind, srv.port, {"CLIENT_RETRIES": "40", "CLIENT_RETRY_DELAY": "0.1",
                                         "CLIENT_RETRY_MAX_DELAY": "0.1"})
    assert res.returncode == 0, res.stderr
    assert res.stdout == REPLY.decode()
    lines = progress_lines(res.stderr)
    assert lines, res.stderr
    assert lines[0].startswith(f"{PROGS[kind]}: attempt 1/40 to 127.0.0.1:{srv.port} failed: ")
    assert "refused" in lines[0]
    assert srv.requests == [REQUEST]


@pytest.mark.parametrize("kind", KINDS)
def test_nothing_listening(kind: str) -> None:
    port = free_port()
    res, elapsed = client(kind, port, {"CLIENT_RETRIES": "4"})
    assert res.returncode == 1
    assert res.stdout == ""
    assert len(progress_lines(res.stderr)) == 3, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"{PROGS[kind]}: giving up on 127.0.0.1:{port} after 4 attempts; last error: "
    ), last
    assert "Connection refused" in last
    # waits 0.05 + 0.1 + 0.2 (max) between the four attempts
    assert 0.3 <= elapsed < 10


@pytest.mark.parametrize("kind", KINDS)
def test_retryable_error_then_reply(kind: str) -> None:
    with serve(DB_DOWN, DB_DOWN, REPLY) as srv:
        res, _ = client(kind, srv.port, {"CLIENT_RETRIES": "5"})
    assert res.returncode == 0, res.stderr
    assert res.stdout == REPLY.decode()
    lines = progress_lines(res.stderr)
    assert len(lines) == 2, res.stderr
    assert "server answered: ERROR db-unavailable" in lines[0]
    assert srv.requests == [REQUEST] * 3


@pytest.mark.parametrize("kind", KINDS)
def test_retryable_error_exhausts_retries(kind: str) -> None:
    with serve(DB_DOWN) as srv:
        res, _ = client(kind, srv.port, {"CLIENT_RETRIES": "3"})
    assert res.returncode == 1
    assert srv.connections == 3
    assert "after 3 attempts; last error: server answered: ERROR db-unavailable" in res.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_non_retryable_error_exits_at_once(kind: str) -> None:
    with serve(UNKNOWN, REPLY) as srv:
        res, elapsed = client(kind, srv.port, {"CLIENT_RETRIES": "5", "CLIENT_RETRY_DELAY": "1"})
    assert res.returncode == 1
    assert res.stdout == ""
    assert srv.connections == 1
    assert res.stderr == (
        f"{PROGS[kind]}: 127.0.0.1:{srv.port}: server answered: {UNKNOWN.decode()}"
    )
    assert elapsed < 5


@pytest.mark.parametrize("kind", KINDS)
def test_unexpected_answer_is_fatal(kind: str) -> None:
    with serve(b"HTTP/1.0 400 Bad Request\r\n\r\n") as srv:
        res, _ = client(kind, srv.port, {"CLIENT_RETRIES": "5"})
    assert res.returncode == 1
    assert srv.connections == 1
    assert 'unexpected answer: "HTTP/1.0 400 Bad Request"' in res.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_server_that_never_answers(kind: str) -> None:
    ref: list[ScriptServer] = []

    def silent(conn: socket.socket, index: int) -> None:
        ref[0].read_request(conn, index)
        ref[0].stopping.wait(1.5)  # longer than the client's timeout

    srv = ScriptServer(silent)
    ref.append(srv)
    with srv:
        res, elapsed = client(kind, srv.port, {"CLIENT_RETRIES": "2", "CLIENT_TIMEOUT": "0.4"})
    assert res.returncode == 1
    assert "no reply within 0.4 s" in res.stderr
    assert "after 2 attempts" in res.stderr
    assert srv.requests[0] == REQUEST
    # two timeouts of 0.4 s and one wait of 0.05 s, but nowhere near the server's 1.5 s hold
    assert 0.8 <= elapsed < 6, elapsed


@pytest.mark.parametrize("kind", KINDS)
def test_reset_and_silent_close_are_retried(kind: str) -> None:
    ref: list[ScriptServer] = []

    def flaky(conn: socket.socket, index: int) -> None:
        ref[0].read_request(conn, index)
        if index == 0:  # reset: SO_LINGER 0 then close
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif index == 1:  # close without a reply
            answer(conn, b"")
        else:
            answer(conn, REPLY)

    srv = ScriptServer(flaky)
    ref.append(srv)
    with srv:
        res, _ = client(kind, srv.port, {"CLIENT_RETRIES": "5"})
    assert res.returncode == 0, res.stderr
    assert res.stdout == REPLY.decode()
    lines = progress_lines(res.stderr)
    assert len(lines) == 2, res.stderr
    assert "reset" in lines[0]
    assert "closed the connection without a reply" in lines[1]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("env", "args"),
    [
        ({"TARGET_PORT": "abc"}, []),
        ({"TARGET_PORT": "0"}, []),
        ({"TARGET_PORT": "65536"}, []),
        ({"TARGET_HOST": "a b"}, []),
        ({}, ["--target-port=-1"]),
        ({}, ["--target-port"]),
        ({"CLIENT_TIMEOUT": "-1"}, []),
        ({"CLIENT_RETRIES": "0"}, []),
        ({}, ["--no-such-flag", "1"]),
    ],
)
def test_bad_setting_exits_2(kind: str, env: dict[str, str], args: list[str]) -> None:
    t0 = time.monotonic()
    res = run_client(kind, 5001, extra_env=env, args=args, timeout=30)  # env wins over 5001
    assert res.returncode == 2, res.stderr
    assert f"{PROGS[kind]}: bad setting: " in res.stderr
    assert res.stdout == ""
    assert time.monotonic() - t0 < 20


@pytest.mark.parametrize("kind", KINDS)
def test_flags_override_environment(kind: str) -> None:
    with serve(REPLY) as srv:
        res, _ = client(kind, 1, args=[f"--target-port={srv.port}", "--target-host", "127.0.0.1"])
    assert res.returncode == 0, res.stderr
    assert res.stdout == REPLY.decode()


@pytest.mark.parametrize("kind", KINDS)
def test_help_and_version(kind: str) -> None:
    res = run_client(kind, 5001, args=["--help"])
    assert res.returncode == 0
    for env in ("TARGET_HOST", "TARGET_PORT", "CLIENT_RETRIES", "CLIENT_RETRY_DELAY",
                "CLIENT_RETRY_MAX_DELAY", "CLIENT_TIMEOUT"):
        assert env in res.stdout
    res = run_client(kind, 5001, args=["--version"])
    assert res.returncode == 0
    version = (ROOT / "VERSION").read_text().strip()
    assert res.stdout.startswith(f"{PROGS[kind]} {version} ")


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
@pytest.mark.parametrize("kind", KINDS)
def test_ipv6(kind: str) -> None:
    with serve(REPLY, host="::1") as srv:
        res, _ = client(kind, srv.port, host="::1")
        assert res.returncode == 0, res.stderr
        res2, _ = client(kind, srv.port, host="[::1]")
        assert res2.returncode == 0, res2.stderr
    assert res.stdout == REPLY.decode()


@pytest.mark.parametrize("scenario", ["refused", "non-retryable"])
def test_c_and_python_say_the_same(scenario: str) -> None:
    """Same stderr, stdout and exit status from both clients (program names aside)."""
    outputs = []
    for kind in ("c", "python"):
        if scenario == "refused":
            port = free_port()
            res, _ = client(kind, port, {"CLIENT_RETRIES": "3"})
        else:
            with serve(UNKNOWN) as srv:
                port = srv.port
                res, _ = client(kind, port)
        outputs.append((res.returncode, res.stdout,
                        res.stderr.replace(PROGS[kind], "CLIENT").replace(str(port), "PORT")))
    assert outputs[0] == outputs[1]


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind not installed")
def test_c_client_under_valgrind() -> None:
    binary = str(ROOT / "clients/c-client/build/c-client")
    cmd = ["valgrind", "--quiet", "--error-exitcode=98", "--leak-check=full",
           "--errors-for-leak-kinds=definite,indirect", "--track-fds=yes", binary]
    env_base = {"PATH": "/usr/bin:/bin", **FAST}
    with serve(DB_DOWN, REPLY) as srv:
        env = {**env_base, "TARGET_HOST": "localhost", "TARGET_PORT": str(srv.port)}
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout == REPLY.decode()
    port = free_port()
    env = {**env_base, "TARGET_HOST": "127.0.0.1", "TARGET_PORT": str(port),
           "CLIENT_RETRIES": "2"}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1, res.stderr
    assert "giving up" in res.stderr
    # --track-fds lists the descriptors open at exit: only inherited ones may remain
    assert res.stderr.count("Open file descriptor") == res.stderr.count("<inherited from parent>")


def _real_servers() -> list[str]:
    kinds = []
    if (ROOT / "services/c-server/build/c-server").exists():
        kinds.append("c")
    probe = subprocess.run([sys.executable, "-c", "import points_server"], capture_output=True)
    if probe.returncode == 0:
        kinds.append("python")
    return kinds


@pytest.mark.slow
def test_clients_against_the_real_servers(tmp_path: Path) -> None:
    """Each client gets the row the database holds from each real server (private database)."""
    kinds = _real_servers()
    if not kinds:
        pytest.skip("no server built yet")
    try:
        db = DevDB(tmp_path / "db").start()
    except DevDBError as exc:
        pytest.skip(f"no private database: {exc}")
    servers: list[ServerProc] = []
    try:
        for kind in kinds:
            row = f"{kind if kind == 'c' else 'python'}_user-hasif"
            env = {**db.env(), "SERVER_USER": row, "UPDATE_INTERVAL": "0"}
            servers.append(ServerProc(kind, env, tmp_path / "logs").start(timeout=60))
        for srv in servers:
            row = srv.env["SERVER_USER"]
            stored = db.row(row)
            assert stored is not None, f"{row}: the server did not create its row"
            expected = PROTOCOL.reply(row, *stored)
            for kind in KINDS:
                res, _ = client(kind, srv.port, host="localhost")
                assert res.returncode == 0, res.stderr
                assert res.stdout == expected
    finally:
        for srv in servers:
            srv.stop()
        db.stop()

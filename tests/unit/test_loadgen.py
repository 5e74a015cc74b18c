"""The load generators (C: bench/loadgen.c; Python: pointsbench.loadgen) count good replies and
errors by kind, against tiny scripted servers and the reference server; the bench runs with both.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import socketserver
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pointsbench import bench
from pointsbench.loadgen import (
    GENERATORS,
    LOADGEN_C,
    build_c_generator,
    load,
    percentile,
    reply_regex,
    run_load,
    run_load_c,
    split,
)
from pointsmesh.devdb import free_port
from pointsmesh.spec import load_protocol

GOOD = b"User: c_user-azmeer, Points: 7, Last Update: 2026-01-05 10:00:00\n"
# Per generator: the C one starts in milliseconds, so its runs can be shorter.
SHORT = {
    "python": {"duration": 0.6, "warmup": 0.1, "generators": 1, "timeout": 2.0},
    "c": {"duration": 0.2, "warmup": 0.05, "generators": 1, "timeout": 2.0},
}


@pytest.fixture(scope="module")
def c_built() -> None:
    """bench/build/loadgen and bench/build/refserver (make -C bench: a no-op when up to date)."""
    build_c_generator()


@pytest.fixture(params=GENERATORS)
def generator(request: pytest.FixtureRequest) -> str:
    if request.param == "c":
        request.getfixturevalue("c_built")
    return request.param


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        mode = self.server.mode  # type: ignore[attr-defined]
        sock: socket.socket = self.request
        sock.settimeout(2)
        data = b""
        with contextlib.suppress(OSError):
            while b"\n" not in data and len(data) < 4096:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        if mode == "silent":
            self.server.stopping.wait(3)  # type: ignore[attr-defined]
            return
        if mode == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # now, before socketserver's own shutdown(SHUT_WR) sends a FIN
            return
        payload = {
            "good": GOOD,
            "error": b"ERROR db-unavailable database unavailable, try again later\n",
            "bad": b"hello\n",
            "empty": b"",
        }[mode]
        with contextlib.suppress(OSError):
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(4096):
                pass


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


@contextlib.contextmanager
def scripted(mode: str) -> Iterator[int]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.mode = mode  # type: ignore[attr-defined]
    srv.stopping = threading.Event()  # type: ignore[attr-defined]
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield srv.server_address[1]
    finally:
        srv.stopping.set()  # type: ignore[attr-defined]
        srv.shutdown()
        srv.server_close()
        thread.join(5)


def test_good_replies_are_counted(generator: str) -> None:
    with scripted("good") as port:
        r = load(generator, port, 2, **SHORT[generator])
    assert r.generator == generator
    assert r.ok > 0
    assert r.errors == {}
    assert r.rps == pytest.approx(r.ok / SHORT[generator]["duration"])
    assert 0 < r.p50_ms <= r.p99_ms <= r.max_ms


@pytest.mark.parametrize(
    ("mode", "kind"),
    [
        ("error", "ERROR db-unavailable"),
        ("bad", "bad-reply"),
        ("reset", "reset"),
        ("empty", "closed-without-reply"),
    ],
)
def test_misbehaving_server_counts_errors(generator: str, mode: str, kind: str) -> None:
    with scripted(mode) as port:
        r = load(generator, port, 2, **SHORT[generator])
    assert r.ok == 0
    assert set(r.errors) == {kind}, r.errors
    assert r.errors[kind] > 0


def test_refused(generator: str) -> None:
    r = load(generator, free_port(), 2, **SHORT[generator])
    assert r.ok == 0
    assert set(r.errors) == {"refused"}
    assert r.errors["refused"] > 0


def test_timeouts_are_counted_and_bounded(generator: str) -> None:
    with scripted("silent") as port:
        t0 = time.monotonic()
        r = load(generator, port, 2, duration=0.5, warmup=0.0, generators=2, timeout=0.3)
        took = time.monotonic() - t0
    assert r.ok == 0
    assert set(r.errors) == {"timeout"}
    assert r.errors["timeout"] >= 2  # each of the two connections timed out at least once
    assert took < 0.5 + 0.3 + 3  # window + drain (one timeout) + starting the processes


def test_c_generator_against_the_reference(c_built: None) -> None:
    """About a second of real load on bench/build/refserver: many good replies, no error."""
    port = free_port()
    ref = subprocess.Popen([str(bench.REFSERVER), str(port), "127.0.0.1"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not _listening(port):
            assert ref.poll() is None and time.monotonic() < deadline, "refserver did not start"
            time.sleep(0.02)
        hook_at: dict[str, float] = {}

        def hook(phase: str) -> None:
            hook_at[phase] = time.monotonic()

        r = run_load_c(port, 8, duration=0.8, warmup=0.2, generators=2, timeout=2.0,
                       window_hook=hook)
    finally:
        ref.terminate()
        ref.wait(10)
    assert r.generator == "c" and r.generators == 2 and r.concurrency == 8
    assert r.ok > 100, r
    assert r.errors == {}
    assert 0 < r.p50_ms <= r.p90_ms <= r.p99_ms <= r.max_ms
    assert r.generator_cpu > 0
    assert hook_at["end"] - hook_at["start"] == pytest.approx(0.8, abs=0.1)


def test_c_generator_only_loopback(c_built: None) -> None:
    with pytest.raises(ValueError, match="loopback"):
        run_load_c(5001, 1, duration=0.1, warmup=0, host="192.0.2.1")
    # the program itself refuses too (exit 2, before any connection)
    res = subprocess.run([str(LOADGEN_C), "--host", "192.0.2.1", "--port", "5001", "-d", "0.1"],
                         capture_output=True, text=True, timeout=10)
    assert res.returncode == 2
    assert "192.0.2.1 is not a loopback address" in res.stderr
    assert res.stdout == ""


@pytest.mark.parametrize("args", [[], ["--port", "0"], ["--port", "5001", "-c", "0"],
                                  ["--port", "5001", "-d", "-1"], ["--port", "x"],
                                  ["--port", "5001", "extra"]])
def test_c_generator_bad_command_line(c_built: None, args: list[str]) -> None:
    res = subprocess.run([str(LOADGEN_C), *args], capture_output=True, text=True, timeout=10)
    assert res.returncode == 2
    assert "usage: loadgen" in res.stderr


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_split_and_processes() -> None:
    assert split(64, 2) == [32, 32]
    assert split(1, 2) == [1]
    assert split(5, 3) == [2, 2, 1]
    with scripted("good") as port:
        r = run_load(port, 3, duration=0.3, warmup=0.0, generators=2, timeout=2.0)
    assert r.generators == 2
    assert r.ok > 0


def test_only_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        run_load(5001, 1, duration=0.1, warmup=0, host="192.0.2.1")
    with pytest.raises(ValueError, match="unknown generator"):
        load("rust", 5001, 1)


def test_reply_regex_follows_protocol() -> None:
    p = load_protocol()
    pat = re.compile(reply_regex().encode())
    assert pat.fullmatch(p.reply("python_user-hasif", 12, "2026-01-05 10:00:00").encode())
    assert not pat.fullmatch(GOOD[:-1])  # no newline
    assert not pat.fullmatch(GOOD + b"more")
    assert not pat.fullmatch(p.error("db-unavailable").line.encode())


def test_percentile() -> None:
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile([3.0], 99) == 3
    assert percentile([], 50) != percentile([], 50)  # NaN


@pytest.mark.parametrize("gen", GENERATORS)
def test_bench_harness_with_the_reference_only(tmp_path: Path, gen: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """`make bench` end to end on the reference server alone (builds bench/)."""
    out = tmp_path / "bench.json"
    status = bench.main(["--servers", "ref", "--duration", "0.3", "--warmup", "0",
                         "--concurrency", "1,4", "--generators", "1", "--generator", gen,
                         "--json", str(out)])
    assert status == 0
    data = json.loads(out.read_text())
    assert data["settings"]["generator"] == gen
    assert data["settings"]["server_root"] is None
    rows = data["results"]
    assert [(r["server"], r["concurrency"]) for r in rows] == [("ref", 1), ("ref", 4)]
    for r in rows:
        assert r["generator"] == gen
        assert r["ok"] > 0 and r["error_count"] == 0
        assert r["share_of_reference"] == 1.0
        assert r["rss_kib_after"] > 0
        assert r["server_cpu_us_per_request"] > 0
        assert r["cpu_per_request_vs_reference"] == 1.0
    assert data["targets"] == []
    printed = capsys.readouterr().out
    assert "reference (no DB)" in printed and "us/req" in printed


def test_bench_server_root_must_hold_built_servers(tmp_path: Path) -> None:
    """--server-root DIR: a checkout without a built C server or importable points_server is
    reported (skipped with the reason), never silently replaced by this checkout's servers."""
    b = bench.Bench(servers=["c", "python"], concurrency=[1], duration=0.1, warmup=0,
                    generators=1, timeout=1, pause=0, rounds=1, update_interval=None, keep=False,
                    base=tmp_path / "run", server_root=tmp_path)
    assert "services/c-server/build/c-server is not built" in (b.available("c") or "")
    # the .venv's points_server (this checkout's) is found instead: refused, not used
    assert "points_server is imported from" in (b.available("python") or "")
    (tmp_path / "services/c-server/build").mkdir(parents=True)
    (tmp_path / "services/c-server/build/c-server").touch()
    assert b.available("c") is None
    with pytest.raises(SystemExit) as exc:
        bench.main(["--server-root", str(tmp_path / "nowhere")])
    assert exc.value.code == 2


# -- TLS (the C generator only) ----------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA and a server certificate for localhost (pointsmesh.certs), and a second CA that
    signed nothing here."""
    from pointsmesh import certs

    d = tmp_path_factory.mktemp("tls")
    paths = certs.make_set(d, ["localhost"])
    other = d / "other"
    other_cert, _ = certs.make_ca("some other CA").write(other, "ca")
    return {**paths, "other-ca.crt": other_cert}


class _TlsHandler(socketserver.BaseRequestHandler):
    """A valid reply to the request line, over TLS; close_notify after it."""

    def handle(self) -> None:
        srv = self.server
        sock: socket.socket = self.request
        sock.settimeout(2)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # reply, close_notify
        try:
            tls = srv.context.wrap_socket(sock, server_side=True)  # type: ignore[attr-defined]
        except (OSError, ssl.SSLError):
            srv.failed += 1  # type: ignore[attr-defined]
            return
        with contextlib.suppress(OSError, ssl.SSLError):
            data = b""
            while b"\n" not in data and len(data) < 4096:
                chunk = tls.recv(4096)
                if not chunk:
                    break
                data += chunk
            if data == (load_protocol().command + "\n").encode():
                reply = load_protocol().reply("c_user-azmeer", 7, "2026-01-05 10:00:00")
            else:
                reply = "hello\n"
            tls.sendall(reply.encode())
            tls.unwrap()  # close_notify; the client closes without its own


@contextlib.contextmanager
def tls_server(files: dict[str, Path]) -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _TlsHandler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(files["server.crt"], files["server.key"])
    srv.context = ctx  # type: ignore[attr-defined]
    srv.failed = 0  # type: ignore[attr-defined]
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


@pytest.mark.parametrize("mode", ["full", "resume"])
def test_c_generator_over_tls(c_built: None, tls_files: dict[str, Path], mode: str) -> None:
    """Every reply good over TLS; with --tls-resume most handshakes resume the user's previous
    session, without it none does."""
    with tls_server(tls_files) as srv:
        r = run_load_c(srv.server_address[1], 2, duration=0.5, warmup=0.1, generators=1,
                       timeout=2.0, tls_ca=tls_files["ca.crt"], tls_resume=mode == "resume")
    assert r.tls == mode
    assert r.ok > 0, r
    assert r.errors == {}
    assert r.tls_handshakes >= r.ok
    if mode == "full":
        assert r.tls_resumed == 0
    else:
        assert 0 < r.tls_resumed <= r.tls_handshakes
        assert r.tls_resumed >= r.tls_handshakes - 2  # all but each user's first, at most


def test_c_generator_tls_wrong_ca(c_built: None, tls_files: dict[str, Path]) -> None:
    """A certificate that does not verify: TLS errors, never a good reply."""
    with tls_server(tls_files) as srv:
        r = run_load_c(srv.server_address[1], 2, duration=0.3, warmup=0.0, generators=1,
                       timeout=2.0, tls_ca=tls_files["other-ca.crt"], tls_resume=True)
    assert r.ok == 0
    assert set(r.errors) == {"tls-verify"}, r.errors
    assert r.errors["tls-verify"] > 0
    assert r.tls_handshakes == 0


def test_c_generator_tls_wrong_name(c_built: None, tls_files: dict[str, Path]) -> None:
    with tls_server(tls_files) as srv:
        r = run_load_c(srv.server_address[1], 1, duration=0.2, warmup=0.0, generators=1,
                       timeout=2.0, tls_ca=tls_files["ca.crt"], tls_name="points.example")
    assert r.ok == 0 and set(r.errors) == {"tls-verify"}, r.errors


def test_c_generator_tls_against_plaintext(c_built: None, tls_files: dict[str, Path]) -> None:
    """A plaintext server answering a TLS client: a handshake failure, not a reply."""
    with scripted("good") as port:
        r = run_load_c(port, 1, duration=0.2, warmup=0.0, generators=1, timeout=2.0,
                       tls_ca=tls_files["ca.crt"])
    assert r.ok == 0
    assert set(r.errors) == {"tls-handshake"}, r.errors


def test_c_generator_tls_bad_command_line(c_built: None, tmp_path: Path) -> None:
    for args in (["--tls-resume"], ["--tls-name", "localhost"],
                 ["--tls-ca", str(tmp_path / "missing.crt")]):
        res = subprocess.run([str(LOADGEN_C), "--port", "5001", *args], capture_output=True,
                             text=True, timeout=10)
        assert res.returncode == 2, args
    assert "--tls-ca" in res.stderr and "cannot load" in res.stderr


def test_python_generator_has_no_tls() -> None:
    with pytest.raises(ValueError, match="TLS"):
        load("python", 5001, 1, tls_ca="ca.crt")
    with pytest.raises(SystemExit) as exc:
        bench.main(["--generator", "python", "--tls", "full"])
    assert exc.value.code == 2


def test_bench_table_over_tls(tmp_path: Path) -> None:
    """--tls: a TLS column (plain for the reference, res N% when resumed), and the targets set
    for plaintext (CPU ratio, RSS) shown but not judged."""
    from pointsbench.loadgen import LoadResult

    b = bench.Bench(servers=["ref", "python"], concurrency=[64], duration=1, warmup=0,
                    generators=1, timeout=1, pause=0, rounds=1, update_interval=None, keep=False,
                    base=tmp_path / "run", tls="resume")

    def row(server: str, tls: str, handshakes: int, resumed: int, us: float) -> bench.Row:
        res = LoadResult(host="127.0.0.1", port=1, concurrency=64, generators=1, duration=1,
                         generator="c", ok=100, rps=100.0, p50_ms=1.0, p99_ms=2.0, tls=tls,
                         tls_handshakes=handshakes, tls_resumed=resumed, generator_cpu=0.5)
        return bench.Row(server, res, rss_kib=1024, cpu_us_per_req=us, cpu_ratio=us / 10)

    b.rows = [row("ref", "off", 0, 0, 10), row("python", "resume", 100, 90, 300)]
    assert "conc TLS " in b.header()
    assert b.header().replace(" TLS     ", "", 1) == bench.Bench.HEADER
    lines = [b.format_row(r) for r in b.rows]
    assert " plain " in lines[0] and " res 90% " in lines[1]
    for line in lines:  # the columns stay under their headings
        assert line.index("    100 ") + len("    100") == b.header().index("req/s") + len("req/s")
        assert line.index("    1.0 ") + len("    1.0") == b.header().index("RSS MB") + len("RSS MB")
    v = {x.what.split(": ", 1)[1].split(" ")[0]: x for x in b.verdicts()}
    assert v["CPU"].passed is None and "reference: plaintext" in v["CPU"].detail
    assert v["RSS"].passed is None
    assert v["0"].passed is True

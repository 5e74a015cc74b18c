"""The load generator counts good replies and errors by kind (against tiny scripted servers)."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import socketserver
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pointsmesh import bench
from pointsmesh.devdb import free_port
from pointsmesh.loadgen import percentile, reply_regex, run_load, split
from pointsmesh.spec import load_protocol

GOOD = b"User: c_user-azmeer, Points: 7, Last Update: 2026-01-05 10:00:00\n"
SHORT = {"duration": 0.6, "warmup": 0.1, "generators": 1, "timeout": 2.0}


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


def test_good_replies_are_counted() -> None:
    with scripted("good") as port:
        r = run_load(port, 2, **SHORT)
    assert r.ok > 0
    assert r.errors == {}
    assert r.rps == pytest.approx(r.ok / SHORT["duration"])
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
def test_misbehaving_server_counts_errors(mode: str, kind: str) -> None:
    with scripted(mode) as port:
        r = run_load(port, 2, **SHORT)
    assert r.ok == 0
    assert set(r.errors) == {kind}, r.errors
    assert r.errors[kind] > 0


def test_refused() -> None:
    r = run_load(free_port(), 2, **SHORT)
    assert r.ok == 0
    assert set(r.errors) == {"refused"}


def test_timeouts_are_counted_and_bounded() -> None:
    with scripted("silent") as port:
        r = run_load(port, 2, duration=0.5, warmup=0.0, generators=2, timeout=0.3)
    assert r.ok == 0
    assert set(r.errors) == {"timeout"}
    assert r.errors["timeout"] >= 2  # each of the two connections timed out at least once


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


def test_bench_harness_with_the_reference_only(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """`make bench` end to end on the reference server alone (builds bench/refserver)."""
    out = tmp_path / "bench.json"
    status = bench.main(["--servers", "ref", "--duration", "0.3", "--warmup", "0",
                         "--concurrency", "1,4", "--generators", "1", "--json", str(out)])
    assert status == 0
    data = json.loads(out.read_text())
    rows = data["results"]
    assert [(r["server"], r["concurrency"]) for r in rows] == [("ref", 1), ("ref", 4)]
    for r in rows:
        assert r["ok"] > 0 and r["error_count"] == 0
        assert r["share_of_reference"] == 1.0
        assert r["rss_kib_after"] > 0
    assert data["targets"] == []
    assert "reference (no DB)" in capsys.readouterr().out

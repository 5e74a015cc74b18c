"""TLS on the protocol port (design.md section 9), against every server kind: the failures a
TLS deployment meets, each with a clear outcome for the client, a counted result on the server,
and no descriptor left behind. (The whole wire suite also runs over TLS: POINTS_MESH_TLS=1, see
tests/conftest.py.)
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from testhelpers import reply_pattern, unique_row, wait_until

from points_server.generated.protocol import CONN_HANDSHAKES_MAX
from pointsmesh import tlsclient
from pointsmesh.flood import Flood
from pointsmesh.procs import ServerProc, exchange
from pointsmesh.spec import Protocol

pytestmark = pytest.mark.timeout(120)
RESULT = "points_tls_handshakes_total{result=\"%s\"}"


def start(make_server, kind: str, pki: dict[str, Path], stem: str = "server",
          **settings: str) -> ServerProc:
    server: ServerProc = make_server(kind, unique_row(f"tls-{kind}"),
                                     tls_cert_file=str(pki[f"{stem}.crt"]),
                                     tls_key_file=str(pki[f"{stem}.key"]), **settings)
    server.tls = tlsclient.client_context(str(pki["ca.crt"]))
    return server


def counted(server: ServerProc, result: str, at_least: int = 1, timeout: float = 5.0) -> float:
    """points_tls_handshakes_total{result} once it reaches at_least (the server counts after
    the client has seen the outcome)."""
    deadline = time.monotonic() + timeout
    while True:
        value = server.metrics().get(RESULT % result, 0.0)
        if value >= at_least or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_reply_over_tls_is_the_plaintext_reply(make_server, protocol, kind, pki):
    server = start(make_server, kind, pki)
    reply = server.request()
    assert reply_pattern(protocol, server.env["SERVER_USER"]).fullmatch(reply), reply
    # Half-closed after an unterminated request (the seed C client), over TLS too.
    reply = server.request(protocol.command.encode(), half_close=True)
    assert reply_pattern(protocol, server.env["SERVER_USER"]).fullmatch(reply), reply
    assert server.request(b"NOPE\n") == protocol.error("unknown-command").line.encode()
    assert counted(server, "ok", 3) == 3
    assert server.metrics()["points_connections_total"] == 3
    events = [e for e in server.log_events() if e["event"] == "tls_loaded"]
    assert events and events[0]["cert_file"] == str(pki["server.crt"])


@pytest.mark.parametrize("request_kind", ["complete", "partial"])
def test_close_notify_ends_the_request_as_a_half_close_does(make_server, protocol, kind, pki,
                                                            request_kind):
    """A client that ends its TLS stream (close_notify, in the same write as its bytes) and
    waits: answered as a plaintext client that half-closes after the same bytes."""
    server = start(make_server, kind, pki)
    payload = (protocol.command + "\n").encode() if request_kind == "complete" else b"GE"
    with tlsclient.connect("127.0.0.1", server.port, 5, server.tls) as s:
        assert isinstance(s, tlsclient.TlsSocket)
        s.sendall_then_close_notify(payload)
        s.settimeout(5)
        chunks = []
        while chunk := s.recv():
            chunks.append(chunk)
    answer = b"".join(chunks)
    if request_kind == "complete":
        assert reply_pattern(protocol, server.env["SERVER_USER"]).fullmatch(answer), answer
    else:
        # (test_wire's partial line then half-close: the same answer in plaintext)
        assert answer == protocol.error("unknown-command").line.encode(), answer


@pytest.mark.parametrize("case", ["wrong-ca", "wrong-name", "expired"])
def test_client_refuses_a_server_it_cannot_verify(make_server, kind, pki, case):
    stem = {"wrong-ca": "other-server", "wrong-name": "other-name", "expired": "expired"}[case]
    server = start(make_server, kind, pki, stem=stem)
    baseline = server.fd_count()
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        server.request(timeout=5)
    expected = {"wrong-ca": "unable to get local issuer certificate",
                "wrong-name": "Hostname mismatch", "expired": "certificate has expired"}[case]
    assert expected in str(info.value)
    # The client's alert tells the server why: a certificate problem.
    assert counted(server, "certificate") == 1
    assert wait_until(lambda: server.fd_count() <= baseline, 8.0), server.fd_count()


def test_plaintext_client_on_the_tls_port_gets_nothing_and_is_counted(make_server, kind,
                                                                       pki):
    server = start(make_server, kind, pki)
    baseline = server.fd_count()
    reply = exchange(server.port, tls=None, timeout=5)
    assert reply == b""  # never a plaintext answer on a TLS port
    assert counted(server, "not-tls") == 1
    assert wait_until(lambda: server.fd_count() <= baseline, 8.0), server.fd_count()


def test_tls_client_on_a_plaintext_port_fails_clearly(make_server, kind, pki):
    server = make_server(kind, unique_row(f"tls-plainport-{kind}"))
    context = tlsclient.client_context(str(pki["ca.crt"]))
    with pytest.raises(ssl.SSLError):
        exchange(server.port, tls=context, timeout=5)


def test_handshake_never_started_or_cut_short(make_server, kind, pki):
    server = start(make_server, kind, pki, idle_timeout="1")
    baseline = server.fd_count()
    # A ClientHello, as a real client would send it.
    hello_in, hello_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    probe = tlsclient.client_context(str(pki["ca.crt"])).wrap_bio(
        hello_in, hello_out, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):
        probe.do_handshake()
    hello = hello_out.read()
    assert len(hello) > 100
    # Connected, then silent: an idle client; closed after IDLE_TIMEOUT without a word.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        started = time.monotonic()
        s.settimeout(5)
        assert s.recv(100) == b""
        assert 0.8 < time.monotonic() - started < 4
    assert counted(server, "timeout") == 1
    # Half a ClientHello, then silence: the same.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(hello[: len(hello) // 2])
        s.settimeout(5)
        assert s.recv(100) == b""
    assert counted(server, "timeout", 2) == 2
    # Half a ClientHello, then the client leaves: closed.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(hello[: len(hello) // 2])
    assert counted(server, "closed") == 1
    # Connect and close before any byte: closed too.
    socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
    assert counted(server, "closed", 2) == 2
    assert wait_until(lambda: server.fd_count() <= baseline, 8.0), server.fd_count()
    # And the server still answers.
    assert server.request().startswith(b"User: ")


@pytest.mark.parametrize("client", ["none", "other-ca", "good"])
def test_mutual_tls_requires_a_client_certificate_from_the_ca(make_server, protocol, kind,
                                                              pki, client):
    server = start(make_server, kind, pki, tls_client_ca_file=str(pki["ca.crt"]))
    baseline = server.fd_count()
    cert = {"none": "", "other-ca": "other-client.crt", "good": "client.crt"}[client]
    context = tlsclient.client_context(str(pki["ca.crt"]),
                                       str(pki[cert]) if cert else "",
                                       str(pki[cert.replace(".crt", ".key")]) if cert else "")
    if client == "good":
        reply = exchange(server.port, tls=context, timeout=5)
        assert reply_pattern(protocol, server.env["SERVER_USER"]).fullmatch(reply), reply
        assert counted(server, "ok") == 1
    else:
        # TLS 1.3: the client may finish first and learn of the refusal on its first read.
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            reply = exchange(server.port, tls=context, timeout=5)
            if not reply:
                raise ConnectionResetError("closed without a reply")
        assert counted(server, "certificate") == 1
        assert server.metrics()[RESULT % "ok"] == 0
    assert wait_until(lambda: server.fd_count() <= baseline, 8.0), server.fd_count()


def test_certificate_is_reloaded_when_its_files_change_under_load(
        make_server: Callable[..., ServerProc], protocol: Protocol, kind: str,
        pki: dict[str, Path], tmp_path: Path) -> None:
    """Replace the certificate (a new one from another CA) while clients run: no request
    fails, and new connections get the new certificate."""
    live = tmp_path / "live"
    live.mkdir()

    def publish(version: str, crt: str, key: str) -> None:
        """As the kubelet updates a mounted Secret: the files in a new directory, then one
        rename of the ..data link (live/server.crt -> ..data/server.crt)."""
        (live / version).mkdir()
        (live / version / "server.crt").write_bytes(pki[crt].read_bytes())
        (live / version / "server.key").write_bytes(pki[key].read_bytes())
        (live / "..data_tmp").symlink_to(version)
        os.replace(live / "..data_tmp", live / "..data")

    publish("..v1", "server.crt", "server.key")
    for name in ("server.crt", "server.key"):
        (live / name).symlink_to(f"..data/{name}")
    server: ServerProc = make_server(kind, unique_row(f"tls-reload-{kind}"),
                                     tls_cert_file=str(live / "server.crt"),
                                     tls_key_file=str(live / "server.key"))
    both = tlsclient.client_context(str(pki["ca.crt"]))
    both.load_verify_locations(cafile=str(pki["other-ca.crt"]))
    pattern = reply_pattern(protocol, server.env["SERVER_USER"])
    failures: list[str] = []
    answered = [0]
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                reply = exchange(server.port, tls=both, timeout=5)
            except (OSError, ssl.SSLError) as exc:
                failures.append(repr(exc))
                continue
            if pattern.fullmatch(reply):
                answered[0] += 1
            else:
                failures.append(repr(reply))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        publish("..v2", "other-server.crt", "other-server.key")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if server.metrics().get("points_tls_reloads_total{result=\"ok\"}", 0) >= 1:
                break
            time.sleep(0.1)
        time.sleep(1.5)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert not failures, failures[:5]
    assert answered[0] > 20
    assert server.metrics()["points_tls_reloads_total{result=\"ok\"}"] >= 1
    # New connections present the new certificate: only the other CA verifies them now.
    only_other = tlsclient.client_context(str(pki["other-ca.crt"]))
    assert pattern.fullmatch(exchange(server.port, tls=only_other, timeout=5))
    # A broken change (a key that does not match) keeps the certificate in use, reported once.
    publish("..v3", "other-server.crt", "server.key")
    deadline = time.monotonic() + 10
    while server.metrics().get("points_tls_reloads_total{result=\"failed\"}", 0) < 1:
        assert time.monotonic() < deadline, "the broken reload was not reported"
        time.sleep(0.1)
    assert pattern.fullmatch(exchange(server.port, tls=only_other, timeout=5))
    time.sleep(2.5)
    assert server.metrics()["points_tls_reloads_total{result=\"failed\"}"] == 1
    assert [e["event"] for e in server.log_events()].count("tls_reload_failed") == 1


STALLS = 2 * CONN_HANDSHAKES_MAX  # more unfinished handshakes than a server keeps


def test_unfinished_handshakes_are_bounded(make_server, kind, pki):
    """A flood of connections that start a ClientHello and stall (each would hold about 47 KiB
    of OpenSSL's buffers until IDLE_TIMEOUT: 4,000 took a server past 190 MiB): the server keeps
    at most [connection] handshakes_max of them, the oldest closed first, its memory bounded,
    and a real client still completes its handshake and gets its row."""
    server = start(make_server, kind, pki, max_connections_per_source="0", idle_timeout="30")
    baseline, rss0 = server.fd_count(), server.rss_kib()
    with Flood(server.port, "tls-stall", STALLS) as flood:
        flood.open().hold_in_background(60)
        settled = wait_until(lambda: flood.stats.shed >= STALLS - CONN_HANDSHAKES_MAX, 15)
        during, rss = server.fd_count(), server.rss_kib()
        reply = server.request()
        stats = flood.close()
    assert settled, stats
    assert stats.connected == STALLS and stats.held <= CONN_HANDSHAKES_MAX, stats
    # The oldest went first: none of the last half was closed.
    assert max(flood.ended) < STALLS - CONN_HANDSHAKES_MAX + 8, sorted(flood.ended)[-5:]
    assert during <= baseline + CONN_HANDSHAKES_MAX + 8, (during, baseline)
    if kind in ("c", "python"):  # the shipped builds (a sanitizer's shadow memory is no measure)
        assert (rss - rss0) / 1024 < CONN_HANDSHAKES_MAX * 64 / 1024 + 8, (rss0, rss)
    assert reply.startswith(b"User: "), reply
    assert server.metrics()['points_connections_shed_total{state="reading"}'] >= \
        STALLS - CONN_HANDSHAKES_MAX

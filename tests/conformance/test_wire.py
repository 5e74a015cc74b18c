"""The wire protocol, run identically against every server kind (C, C+ASan, C+TSan, Python).

Same inputs, same bytes out: every expectation below is derived from protocol/protocol.toml,
never from one implementation's output.
"""

from __future__ import annotations

import contextlib
import socket
import time

import pytest
from testhelpers import reply_pattern, unique_row, wait_until

from pointsmesh.procs import exchange

pytestmark = pytest.mark.timeout(120)


def recv_all(s: socket.socket, timeout: float = 10.0) -> bytes:
    s.settimeout(timeout)
    chunks = []
    while True:
        try:
            data = s.recv(65536)
        except ConnectionResetError:
            chunks.append(b"<RST>")
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def test_reply_matches_format_and_database(make_server, db, protocol, kind):
    row = unique_row(f"conf-reply-{kind}")
    server = make_server(kind, row)
    reply = server.request()
    m = reply_pattern(protocol, row).fullmatch(reply)
    assert m, reply
    points, stamp = db.row(row)
    assert (int(m.group(1)), m.group(2).decode()) == (points, stamp)


def test_reply_follows_database_changes(make_server, db, protocol, kind):
    row = unique_row(f"conf-follow-{kind}")
    server = make_server(kind, row)
    server.request()  # the row exists now
    db.sql(f"UPDATE users SET points = 41, datetime_stamp = '2026-01-05 10:11:12' "
           f"WHERE user = '{row}'", database="project_db")
    assert server.request() == protocol.reply(row, 41, "2026-01-05 10:11:12").encode()


@pytest.mark.parametrize("pair", [("c", "python"), ("c-asan", "python"), ("c-tsan", "python")])
def test_c_and_python_replies_are_byte_identical(make_server, db, pair):
    row = unique_row("conf-identical")
    a = make_server(pair[0], row)
    b = make_server(pair[1], row)
    db.sql(f"INSERT INTO users VALUES ('{row}', 7, '2026-02-03 04:05:06') "
           "ON DUPLICATE KEY UPDATE points = 7, datetime_stamp = '2026-02-03 04:05:06'",
           database="project_db")
    replies = {a.request(), b.request(), a.request(b"REQUEST_LATEST_POINTS\r\n"),
               b.request(b"REQUEST_LATEST_POINTS\r\n")}
    assert replies == {f"User: {row}, Points: 7, Last Update: 2026-02-03 04:05:06\n".encode()}


def test_crlf_terminator(make_server, protocol, kind):
    row = unique_row(f"conf-crlf-{kind}")
    server = make_server(kind, row)
    assert reply_pattern(protocol, row).fullmatch(server.request(b"REQUEST_LATEST_POINTS\r\n"))


def test_seed_c_client_request_without_terminator(make_server, protocol, kind):
    """The seed's C client writes the command with no newline, then blocks in read()."""
    row = unique_row(f"conf-noterm-{kind}")
    server = make_server(kind, row, request_grace="0.05")
    with server.connect(timeout=5) as s:
        started = time.monotonic()
        s.sendall(b"REQUEST_LATEST_POINTS")
        reply = recv_all(s)
        elapsed = time.monotonic() - started
    assert reply_pattern(protocol, row).fullmatch(reply), reply
    assert elapsed < 1.5  # answered after the grace period, long before the idle timeout


def test_request_without_terminator_then_half_close(make_server, protocol, kind):
    row = unique_row(f"conf-halfclose-{kind}")
    server = make_server(kind, row, request_grace="5")  # only the FIN can end this request
    started = time.monotonic()
    reply = server.request(b"REQUEST_LATEST_POINTS", half_close=True)
    assert reply_pattern(protocol, row).fullmatch(reply), reply
    assert time.monotonic() - started < 1.5


def test_request_sent_one_byte_at_a_time(make_server, protocol, kind):
    row = unique_row(f"conf-bytes-{kind}")
    server = make_server(kind, row, request_grace="0.5")
    with server.connect(timeout=5) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in b"REQUEST_LATEST_POINTS\n":
            s.send(bytes([byte]))
            time.sleep(0.01)
        reply = recv_all(s)
    assert reply_pattern(protocol, row).fullmatch(reply), reply


def test_bytes_after_the_request_are_ignored(make_server, protocol, kind):
    row = unique_row(f"conf-extra-{kind}")
    server = make_server(kind, row)
    reply = server.request(b"REQUEST_LATEST_POINTS\nREQUEST_LATEST_POINTS\nGARBAGE\n")
    assert reply_pattern(protocol, row).fullmatch(reply), reply


@pytest.mark.parametrize(
    "payload",
    [
        b"HELLO\n",
        b"\n",
        b"\r\n",
        b"request_latest_points\n",
        b"REQUEST_LATEST_POINTS \n",
        b" REQUEST_LATEST_POINTS\n",
        b"REQUEST_LATEST_POINTSX\n",
        b"REQUEST_LATEST\n",
        b"REQUEST_LATEST_POINTS\r\r\n",
        b"\x00\xff\xfe binary \x01\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["word", "empty", "empty-crlf", "lowercase", "trailing-space", "leading-space",
         "suffix", "prefix", "double-cr", "binary", "http"],
)
def test_unknown_command(make_server, protocol, kind, payload):
    server = make_server(kind, unique_row(f"conf-unknown-{kind}"))
    assert server.request(payload) == protocol.error("unknown-command").line.encode()


def test_partial_line_then_half_close_is_the_line(make_server, protocol, kind):
    server = make_server(kind, unique_row(f"conf-partial-eof-{kind}"))
    reply = server.request(b"HELLO", half_close=True)
    assert reply == protocol.error("unknown-command").line.encode()


def test_line_of_max_length_is_a_line(make_server, protocol, kind):
    server = make_server(kind, unique_row(f"conf-maxline-{kind}"))
    line = b"A" * protocol.max_line_bytes + b"\n"
    assert server.request(line) == protocol.error("unknown-command").line.encode()
    line_cr = b"A" * protocol.max_line_bytes + b"\r\n"
    assert server.request(line_cr) == protocol.error("unknown-command").line.encode()


@pytest.mark.parametrize("size", [1025, 4096, 1 << 20])
def test_line_too_long(make_server, protocol, kind, size):
    """The error line must reach the client even while it is still sending (no RST loss)."""
    server = make_server(kind, unique_row(f"conf-long-{kind}"))
    expected = protocol.error("line-too-long").line.encode()
    with server.connect(timeout=10) as s:
        # The server may stop reading early; the reply must still be readable.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(b"B" * size)
        reply = recv_all(s)
    assert reply == expected


def test_idle_client_gets_idle_timeout(make_server, protocol, kind):
    server = make_server(kind, unique_row(f"conf-idle-{kind}"), idle_timeout="1")
    with server.connect(timeout=10) as s:
        started = time.monotonic()
        reply = recv_all(s)
        elapsed = time.monotonic() - started
    assert reply == protocol.error("idle-timeout").line.encode()
    assert 0.8 <= elapsed <= 3.0


def test_partial_command_then_silence_is_idle_timeout(make_server, protocol, kind):
    server = make_server(kind, unique_row(f"conf-idle-partial-{kind}"), idle_timeout="1")
    with server.connect(timeout=10) as s:
        s.sendall(b"REQUEST_LAT")
        assert recv_all(s) == protocol.error("idle-timeout").line.encode()


def test_connect_and_close_is_harmless(make_server, protocol, kind):
    row = unique_row(f"conf-connclose-{kind}")
    server = make_server(kind, row)
    for _ in range(50):
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()  # raw: no TLS
    # Abortive closes (RST) too.
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
    assert reply_pattern(protocol, row).fullmatch(server.request())
    errors = {k: v for k, v in server.metrics().items() if k.startswith("points_errors_total")}
    assert sum(errors.values()) == 0, errors


def test_server_busy_beyond_max_connections(make_server, protocol, kind):
    """A table full of requests in progress (each in its REQUEST_GRACE, so none may be shed to
    make room: design.md section 10): the next connection is refused server-busy."""
    row = unique_row(f"conf-busy-{kind}")
    server = make_server(kind, row, max_connections="4", idle_timeout="5", request_grace="3")
    held = [server.connect(timeout=5) for _ in range(4)]
    try:
        for s in held:
            s.sendall(protocol.command.encode())  # no terminator: the grace starts
        time.sleep(0.2)
        assert server.request() == protocol.error("server-busy").line.encode()
        assert server.metrics()['points_connections_refused_total{reason="full"}'] == 1
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + 5
    while True:  # the slots free up once the held connections are gone
        reply = server.request()
        if reply_pattern(protocol, row).fullmatch(reply) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert reply_pattern(protocol, row).fullmatch(reply), reply


def test_shed_idle_connection_is_told_server_busy(make_server, protocol, kind):
    """A table full of connections that sent nothing: a newcomer is served in the place of the
    oldest, which is told server-busy and closed. In the TLS pass the line must come as a TLS
    record (the C server once wrote it as plaintext into the TLS stream: the client saw a
    record error, never server-busy)."""
    row = unique_row(f"conf-shed-{kind}")
    server = make_server(kind, row, max_connections="4", idle_timeout="10")
    held = [server.connect(timeout=5) for _ in range(4)]
    try:
        # All four accepted, and over TLS their handshakes finished on the server's side too
        # (one still in its handshake would be closed without a word, rightly).
        done = 'points_tls_handshakes_total{result="ok"}'
        assert wait_until(lambda: server.tls is None or server.metrics().get(done, 0) >= 4, 10)
        time.sleep(0.1)
        assert reply_pattern(protocol, row).fullmatch(server.request())
        oldest = held[0]
        oldest.settimeout(5)
        got = b""
        while chunk := oldest.recv(4096):
            got += chunk
        assert got == protocol.error("server-busy").line.encode(), got
        assert server.metrics()['points_connections_shed_total{state="reading"}'] == 1
    finally:
        for s in held:
            s.close()


def test_missing_row_is_recreated(make_server, db, protocol, kind):
    row = unique_row(f"conf-recreate-{kind}")
    server = make_server(kind, row)
    server.request()
    db.sql(f"DELETE FROM users WHERE user = '{row}'", database="project_db")
    reply = server.request()
    m = reply_pattern(protocol, row).fullmatch(reply)
    assert m and m.group(1) == b"0", reply
    assert db.points(row) == 0


def test_database_down_then_back(make_server, private_db, protocol, kind):
    row = unique_row(f"conf-dbdown-{kind}")
    server = make_server(kind, row, database=private_db, db_connect_timeout="1",
                         db_query_timeout="2")
    assert reply_pattern(protocol, row).fullmatch(server.request())
    private_db.kill()
    unavailable = protocol.error("db-unavailable").line.encode()
    deadline = time.monotonic() + 10
    replies = []
    while time.monotonic() < deadline:
        started = time.monotonic()
        replies.append(server.request(timeout=10))
        assert time.monotonic() - started < 5, "a request waited on the dead database"
        if replies[-1] == unavailable:
            break
        time.sleep(0.1)
    assert replies[-1] == unavailable, replies
    assert server.http("/readyz")[0] == 503
    assert server.http("/healthz")[0] == 200
    assert server.proc is not None and server.proc.poll() is None
    private_db.restart()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        reply = server.request(timeout=10)
        if reply != unavailable:
            break
        time.sleep(0.2)
    assert reply_pattern(protocol, row).fullmatch(reply), reply
    assert server.http("/readyz")[0] == 200


def test_no_descriptor_leak_on_bad_input(make_server, protocol, kind):
    server = make_server(kind, unique_row(f"conf-fds-{kind}"), idle_timeout="1")
    server.request()
    baseline = server.fd_count()
    payloads = [b"X\n", b"A" * 5000, b"", b"REQUEST_LATEST_POINTS\n", b"\x00" * 10 + b"\n"]
    for i in range(100):
        with contextlib.suppress(OSError):
            exchange(server.port, payloads[i % len(payloads)], half_close=(i % 2 == 0),
                     tls=server.tls)
    deadline = time.monotonic() + 5
    while server.fd_count() > baseline and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.fd_count() <= baseline


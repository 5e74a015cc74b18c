"""The system with real parts: both clients against both servers, the updater and its lock,
database outages, and load. Every test uses a real MariaDB or MySQL (pointsmesh.devdb), real
processes and real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import signal
import subprocess
import threading
import time
from datetime import datetime

import pytest
from testhelpers import SERVER_KINDS, reply_pattern, unique_row

from pointsmesh.devdb import free_port
from pointsmesh.procs import REQUEST, base_env, client_command, run_client

pytestmark = pytest.mark.timeout(180)

CLIENT_KINDS = ("c", "c-asan", "python")


def wait_until(predicate, timeout: float, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


# -- clients x servers ---------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENT_KINDS)
@pytest.mark.parametrize("server_kind", ("c", "python"))
def test_client_against_server(make_server, protocol, client, server_kind):
    row = unique_row(f"it-cross-{client}-{server_kind}")
    server = make_server(server_kind, row)
    res = run_client(client, server.port)
    assert res.returncode == 0, res.stderr
    assert reply_pattern(protocol, row).fullmatch(res.stdout.encode()), res.stdout
    if client == "c-asan":
        assert "Sanitizer" not in res.stderr and "runtime error" not in res.stderr


@pytest.mark.parametrize("client", ("c", "python"))
def test_client_waits_for_a_late_server(make_server, protocol, client, tmp_path):
    """The client starts first; the server comes up while it retries."""
    row = unique_row(f"it-late-{client}")
    port = free_port()
    env = {**base_env(), "TARGET_HOST": "127.0.0.1", "TARGET_PORT": str(port),
           "CLIENT_RETRIES": "20", "CLIENT_RETRY_DELAY": "0.2", "CLIENT_RETRY_MAX_DELAY": "0.5"}
    proc = subprocess.Popen(client_command(client), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        assert proc.poll() is None, "the client gave up before the server started"
        make_server("c", row, port=port)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert reply_pattern(protocol, row).fullmatch(out.encode()), out


# -- updater -------------------------------------------------------------------------------


def points_over(db, row: str, seconds: float) -> int:
    start = db.points(row) or 0
    time.sleep(seconds)
    return (db.points(row) or 0) - start


def wait_lock_holder(servers, timeout: float = 10.0):
    def holder():
        held = [s for s in servers if s.metrics().get("points_update_lock_held") == 1]
        return held[0] if len(held) == 1 else None
    return wait_until(holder, timeout)


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_updater_increments_at_the_interval(make_server, db, protocol, kind):
    row = unique_row(f"it-upd-{kind}")
    server = make_server(kind, row, update_interval="1")
    assert wait_lock_holder([server]) is server
    time.sleep(1.2)
    gained = points_over(db, row, 5.0)
    assert 4 <= gained <= 6, gained
    m = reply_pattern(protocol, row).fullmatch(server.request())
    assert m and int(m.group(1)) == db.points(row)


@pytest.mark.parametrize("kinds", [("c", "c"), ("python", "python"), ("c", "python")],
                         ids=["c+c", "python+python", "c+python"])
def test_two_replicas_one_increment_per_interval(make_server, db, kinds):
    row = unique_row("it-replicas-" + "-".join(kinds))
    servers = [make_server(k, row, update_interval="1") for k in kinds]
    assert wait_lock_holder(servers) is not None
    time.sleep(1.2)
    gained = points_over(db, row, 6.0)
    assert 5 <= gained <= 7, f"{gained} increments in 6 s with interval 1 s and two replicas"
    held = [s.metrics()["points_update_lock_held"] for s in servers]
    assert sorted(held) == [0, 1]
    # The updaters keep running (one increment a second), so bracket the servers' count by two
    # reads of the row: a server counts an increment right after its commit, so at any instant
    # committed - 1 <= counted <= committed. (Reading the row once, after the metrics, raced:
    # an increment could land in between, and MySQL's slower root connection made it happen.)
    before = db.points(row)
    updates = sum(s.metrics()["points_updates_total"] for s in servers)
    after = db.points(row)
    assert before is not None and after is not None
    assert before - 1 <= updates <= after, (before, updates, after)


@pytest.mark.parametrize("kinds", [("c", "c"), ("python", "python"), ("python", "c")],
                         ids=["c+c", "python+python", "python+c"])
def test_killing_the_lock_holder_fails_over(make_server, db, kinds):
    row = unique_row("it-failover-" + "-".join(kinds))
    servers = [make_server(k, row, update_interval="1") for k in kinds]
    holder = wait_lock_holder(servers)
    assert holder is not None
    other = next(s for s in servers if s is not holder)
    time.sleep(2.2)
    before = db.points(row)
    holder.kill()  # SIGKILL: no chance to release anything; the database drops its session
    taken = wait_until(lambda: other.metrics().get("points_update_lock_held") == 1, 5.0)
    assert taken, "the surviving replica did not take the lock over"
    time.sleep(4.0)
    gained = db.points(row) - before
    # About one increment per second across the failover; never two per slot.
    assert 3 <= gained <= 6, gained


class RowWatch:
    """Polls the row (as root) in a thread and keeps every change: (monotonic time seen,
    points, stamp). With polls a tenth of a second apart and increments seconds apart, each
    increment is seen on its own; a jump of more than one point is a double increment."""

    def __init__(self, db, row: str, poll: float = 0.1) -> None:
        self.db, self.row, self.poll = db, row, poll
        self.changes: list[tuple[float, int, datetime]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RowWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):  # a slow or failed poll is just a later one
                got = self.db.row(self.row)
                if got and (not self.changes or got[0] != self.changes[-1][1]):
                    stamp = datetime.strptime(got[1], "%Y-%m-%d %H:%M:%S")
                    self.changes.append((time.monotonic(), got[0], stamp))
            self._stop.wait(self.poll)

    def points(self) -> int:
        return self.changes[-1][1] if self.changes else 0

    def since(self, t: float) -> list[tuple[float, int, datetime]]:
        return [c for c in self.changes if c[0] >= t]

    def check_one_per_interval(self, interval: float) -> None:
        """Every change is +1, and no two stamps (whole seconds) closer than interval - 1 s."""
        for (_, p0, s0), (_, p1, s1) in zip(self.changes, self.changes[1:], strict=False):
            assert p1 == p0 + 1, f"points {p0} -> {p1}: a double increment ({self.changes})"
            gap = (s1 - s0).total_seconds()
            assert gap >= interval - 1, f"increments {gap} s apart at {p1} ({self.changes})"


def _updater_events(server, event: str) -> list[dict]:
    return [e for e in server.log_events()
            if e["event"] == event and e.get("role", "updater") == "updater"]


@pytest.mark.parametrize("kinds", [("c", "c"), ("python", "python"), ("python", "c")],
                         ids=["c+c", "python+python", "python+c"])
def test_hung_lock_holder_fails_over_after_the_wait_timeout(make_server, db, protocol, kinds):
    """A holder that hangs (SIGSTOP: no FIN, no RST, like a lost node) keeps its TCP session,
    but its updater session's wait_timeout (max(5, ceil(2 x UPDATE_INTERVAL)) s) makes the
    database drop it and free the lock: the other replica takes over and continues the
    schedule. Resumed (SIGCONT), the old holder finds its session gone, reconnects as a
    non-holder and never increments again: one increment per interval throughout."""
    interval, wait_timeout = 2.0, 5  # updater_wait_timeout(2.0) in both languages
    row = unique_row("it-hung-" + "-".join(kinds))
    holder = make_server(kinds[0], row, update_interval=str(interval))
    assert wait_lock_holder([holder]) is holder  # the first kind holds, the second takes over
    other = make_server(kinds[1], row, update_interval=str(interval))
    assert wait_until(lambda: _updater_events(other, "db_connected"), 10.0)
    try:
        with RowWatch(db, row) as watch:
            start = wait_until(watch.points, 5.0)
            assert start and wait_until(lambda: watch.points() >= start + 2, 3 * interval + 2)

            holder.signal(signal.SIGSTOP)
            t_stop = time.monotonic()
            at_stop = db.points(row)
            assert at_stop is not None
            holder_updates = len(_updater_events(holder, "updated"))  # it can log no more
            holder_errors = len(_updater_events(holder, "db_error"))
            # The database drops the hung session after wait_timeout idle seconds at most (its
            # last statement was at most that long before SIGSTOP); the other replica polls
            # GET_LOCK every second and, the row being older than an interval, increments at once.
            taken = wait_until(
                lambda: other.metrics().get("points_updates_total", 0) >= 1
                and (db.points(row) or 0) > at_stop,
                wait_timeout + 4.0,
            )
            took = time.monotonic() - t_stop
            assert taken, f"no takeover {took:.1f} s after SIGSTOP of the holder"
            assert other.metrics()["points_update_lock_held"] == 1
            time.sleep(2 * interval)

            holder.signal(signal.SIGCONT)
            t_cont = time.monotonic()
            # Its next statement fails on the dropped session: db_error, reconnect, election.
            assert wait_until(lambda: len(_updater_events(holder, "db_connected")) >= 2, 10.0), \
                holder.log_text()[-3000:]
            assert len(_updater_events(holder, "db_error")) > holder_errors
            time.sleep(0.5)
            window_start, before = time.monotonic(), db.points(row)
            assert before is not None
            time.sleep(4 * interval)
            gained = (db.points(row) or 0) - before
            elapsed = time.monotonic() - window_start
        assert 3 <= gained <= 5, f"{gained} increments in {elapsed:.1f} s, interval {interval} s"
        watch.check_one_per_interval(interval)
        assert watch.since(t_cont), "no increment after the old holder resumed"
        # The resumed process is healthy, a non-holder, and incremented nothing since SIGSTOP.
        assert len(_updater_events(holder, "updated")) == holder_updates
        metrics = holder.metrics()
        assert metrics["points_update_lock_held"] == 0
        assert metrics["points_db_up"] == 1
        assert other.metrics()["points_update_lock_held"] == 1
        assert holder.http("/readyz")[0] == 200
        assert reply_pattern(protocol, row).fullmatch(holder.request())
    finally:
        if holder.proc is not None and holder.proc.poll() is None:
            holder.signal(signal.SIGCONT)  # never left stopped: teardown then stops it (SIGTERM)


def test_restarted_server_continues_from_stored_points(make_server, db, protocol):
    row = unique_row("it-continue")
    db.sql(f"INSERT INTO users VALUES ('{row}', 1000, NOW() - INTERVAL 1 HOUR)",
           database="project_db")
    server = make_server("c", row, update_interval="1")
    assert wait_until(lambda: (db.points(row) or 0) >= 1002, 6.0)
    server.stop()
    stored = db.points(row)
    server2 = make_server("python", row, update_interval="1")
    assert wait_until(lambda: db.points(row) >= stored + 1, 6.0)
    m = reply_pattern(protocol, row).fullmatch(server2.request())
    assert m and int(m.group(1)) >= stored


# -- database outage -----------------------------------------------------------------------


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_database_outage_under_running_servers(make_server, private_db, protocol, how):
    rows = {k: unique_row(f"it-outage-{how}-{k}") for k in SERVER_KINDS}
    servers = {k: make_server(k, rows[k], database=private_db, update_interval="1",
                              db_connect_timeout="1", db_query_timeout="2")
               for k in SERVER_KINDS}
    assert all(wait_until(lambda r=r: (private_db.points(r) or 0) >= 2, 8.0)
               for r in rows.values())
    before = {k: private_db.points(r) for k, r in rows.items()}
    private_db.stop() if how == "stop" else private_db.kill()
    unavailable = protocol.error("db-unavailable").line.encode()
    for k, server in servers.items():
        assert wait_until(lambda s=server: s.request() == unavailable, 10.0), k
    time.sleep(2.0)  # several update intervals with no database
    for k, server in servers.items():
        assert server.proc is not None and server.proc.poll() is None, f"{k} died"
        assert server.request() == unavailable
    private_db.restart()
    for k, server in servers.items():
        pattern = reply_pattern(protocol, rows[k])
        assert wait_until(lambda s=server, p=pattern: p.fullmatch(s.request()), 20.0), k
    for k, row in rows.items():
        # Counting resumes from the stored value ...
        assert wait_until(lambda r=row, b=before[k]: private_db.points(r) >= b + 2, 10.0), k
        # ... and every increment a server saw acknowledged is in the database.
        acked = [e["points"] for e in servers[k].log_events() if e["event"] == "updated"]
        assert acked and max(acked) <= private_db.points(row), (k, acked)
        assert acked == sorted(acked), (k, acked)
    for server in servers.values():
        errs = server.metrics()
        assert errs['points_errors_total{code="db-unavailable"}'] >= 1


# -- load ----------------------------------------------------------------------------------


async def _many_clients(port: int, n: int, hold: bool) -> list[bytes]:
    async def one() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            if hold:
                await barrier.wait()
            writer.write(REQUEST)
            await writer.drain()
            return await asyncio.wait_for(reader.read(), 30)
        finally:
            writer.close()

    barrier = asyncio.Barrier(n)
    return await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_hundreds_of_concurrent_clients(make_server, protocol, kind):
    row = unique_row(f"it-load-{kind}")
    server = make_server(kind, row, update_interval="1", idle_timeout="30")
    server.request()
    baseline = server.fd_count()
    pattern = reply_pattern(protocol, row)
    for hold in (True, False):  # 400 open at once, then 400 as fast as they come
        replies = asyncio.run(_many_clients(server.port, 400, hold))
        bad = [r for r in replies if not (isinstance(r, bytes) and pattern.fullmatch(r))]
        assert not bad, bad[:5]
    assert wait_until(lambda: server.fd_count() <= baseline, 10.0), (server.fd_count(), baseline)
    metrics = server.metrics()
    assert metrics["points_connections_active"] == 0
    assert metrics["points_db_reads_total"] <= metrics["points_requests_total"]


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_waiting_requests_share_one_read(make_server, db, protocol, kind):
    """Coalescing, made deterministic: while the table is locked the read in flight blocks, so
    every request arriving meanwhile waits for the next read; one read then answers them all."""
    row = unique_row(f"it-coalesce-{kind}")
    server = make_server(kind, row, idle_timeout="30", db_query_timeout="20")
    pattern = reply_pattern(protocol, row)
    assert pattern.fullmatch(server.request())
    before = server.metrics()

    async def scenario() -> list[bytes]:
        async def one() -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            try:
                writer.write(REQUEST)
                await writer.drain()
                return await asyncio.wait_for(reader.read(), 30)
            finally:
                writer.close()

        with db.table_locked():
            tasks = [asyncio.ensure_future(one()) for _ in range(200)]
            await asyncio.sleep(1.0)  # all 200 requests are in and waiting
            assert not any(t.done() for t in tasks)
        return await asyncio.gather(*tasks)

    replies = asyncio.run(scenario())
    assert all(pattern.fullmatch(r) for r in replies)
    after = server.metrics()
    replies_sent = after["points_requests_total"] - before["points_requests_total"]
    reads = after["points_db_reads_total"] - before["points_db_reads_total"]
    assert replies_sent == 200
    assert reads <= 3, f"{reads} reads for 200 waiting requests"


@pytest.mark.parametrize("kind", ("c", "python"))
def test_descriptor_exhaustion_is_survived(make_server, protocol, kind):
    """With few descriptors left, accept() fails with EMFILE: the server must neither die nor
    spin, and must answer every client once descriptors free up."""
    row = unique_row(f"it-emfile-{kind}")
    server = make_server(kind, row, idle_timeout="10")
    assert server.proc is not None
    resource.prlimit(server.proc.pid, resource.RLIMIT_NOFILE, (server.fd_count() + 24,) * 2)
    pattern = reply_pattern(protocol, row)
    replies = asyncio.run(_many_clients(server.port, 150, hold=False))
    bad = [r for r in replies if not (isinstance(r, bytes) and pattern.fullmatch(r))]
    assert not bad, bad[:5]
    assert server.proc.poll() is None
    assert pattern.fullmatch(server.request())
    server.signal(signal.SIGTERM)
    assert server.proc.wait(15) == 0

"""The points protocol server on an asyncio event loop (C: server.c): the listener and its
accept backpressure, the deadlines, the replies, and graceful shutdown (design.md sections 1
and 7). Each client is a :class:`~points_server.conn.Connection` (conn.py) watched by the
server's :class:`~points_server.ae.Ae`.

Idle and linger deadlines share one timer each (:class:`DeadlineQueue`: every entry has the
same duration, so insertion order is deadline order). Replies come from the
:class:`~points_server.reader.Coalescer`.
"""

from __future__ import annotations

import _socket
import asyncio
import errno
import resource
import socket
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from .ae import Ae
from .config import ServerConfig
from .conn import LINGER, READING, WAITING, WRITING, Connection
from .generated import log_events
from .generated.protocol import (
    CONN_ACCEPT_BATCH,
    CONN_ACCEPT_PAUSE_SECONDS,
    CONN_BUSY_EXTRA,
    CONN_DESCRIPTORS_RESERVED,
    CONN_HANDSHAKES_MAX,
    CONN_LINGER_SECONDS,
    CONN_OVERLOAD_QUIET_SECONDS,
    CONN_SHED_SCAN,
    CONN_SHUTDOWN_LINGER_SECONDS,
    CONN_TLS_RELOAD_CHECK_SECONDS,
    ERROR_INDEX,
    ERRORS,
    SLOT_CONNECTIONS_ACTIVE,
    SLOT_CONNECTIONS_REFUSED_TOTAL,
    SLOT_CONNECTIONS_SHED_TOTAL,
    SLOT_CONNECTIONS_TOTAL,
    SLOT_ERRORS_TOTAL,
    SLOT_REQUESTS_TOTAL,
    SLOT_TLS_HANDSHAKES_TOTAL,
    SLOT_TLS_RELOADS_TOTAL,
    TLS_RESULTS,
)
from .log import Logger
from .metrics import Metrics
from .reader import Coalescer, ReadResult
from .tls import Tls, describe, failure_result

T = TypeVar("T")
_ERROR_LINES: dict[str, bytes] = {code: spec.line for code, spec in ERRORS.items()}
# Values of the labels of points_connections_shed_total and _refused_total (protocol.toml).
SHED_LINGER, SHED_READING = 0, 1
REFUSED_PER_SOURCE, REFUSED_FULL = 0, 1
REFUSED_REASONS = ("per-source", "full")


def table_size(max_connections: int) -> tuple[int, int]:
    """The connection table's size and the descriptor limit (C: table_size): MAX_CONNECTIONS,
    with RLIMIT_NOFILE raised (as far as the hard limit allows) to hold it and
    CONN_DESCRIPTORS_RESERVED more; fewer when it cannot be."""
    want = max_connections + CONN_DESCRIPTORS_RESERVED
    infinity = resource.RLIM_INFINITY
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != infinity and soft < want:
            soft = want if hard == infinity or hard > want else hard
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (OSError, ValueError):
        return max_connections, 0
    if soft == infinity or soft >= want:
        return max_connections, soft
    reserved = CONN_DESCRIPTORS_RESERVED
    return (soft - reserved if soft > 2 * reserved else reserved), soft


class DeadlineQueue(Generic[T]):
    """Items (connections) with a deadline ``duration`` after they were added; one timer for
    all."""

    def __init__(self, loop: asyncio.AbstractEventLoop, duration: float,
                 on_expire: Callable[[T], None]) -> None:
        self.loop = loop
        self.duration = duration
        self.on_expire = on_expire
        self.items: dict[T, float] = {}
        self._timer: asyncio.TimerHandle | None = None

    def add(self, conn: T, now: float) -> None:
        deadline = now + self.duration
        self.items[conn] = deadline
        if self._timer is None:
            self._timer = self.loop.call_at(deadline, self._fire)

    def discard(self, conn: T) -> None:
        self.items.pop(conn, None)

    def __len__(self) -> int:
        return len(self.items)

    def _fire(self) -> None:
        self._timer = None
        now = self.loop.time()
        items = self.items
        while items:
            conn, deadline = next(iter(items.items()))
            if deadline > now:
                self._timer = self.loop.call_at(deadline, self._fire)
                return
            del items[conn]
            self.on_expire(conn)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class Server:
    """Accepts, tracks and answers connections; drives graceful shutdown."""

    def __init__(self, cfg: ServerConfig, loop: asyncio.AbstractEventLoop, log: Logger,
                 metrics: Metrics, coalescer: Coalescer, tls: Tls | None = None) -> None:
        self.cfg = cfg
        self.tls = tls
        self._tls_timer: asyncio.TimerHandle | None = None
        self.loop = loop
        self.log = log
        self.metrics = metrics
        self.coalescer = coalescer
        self.ae = Ae(loop)
        self.active = 0  # open connections: the table's and server-busy ones on their way out
        self.table = 0  # the connection table's (Connection.in_table), at most table_max
        self.handshakes = 0  # TLS connections in their handshake (Connection.in_handshake)
        self.table_max, nofile = table_size(cfg.max_connections)
        if self.table_max < cfg.max_connections:
            log_events.connections_limited(log, max_connections=cfg.max_connections,
                                           limit=self.table_max, nofile=nofile)
        self.per_source = cfg.max_connections_per_source
        # Connections in the table per source address (C: sources.c, a hash table of its own).
        self.sources: dict[str, int] = {}
        # Overload (design.md section 10): since when, the last shed or refusal, its counts.
        self._overload_since: float | None = None
        self._overload_last = 0.0
        self._overload_shed = self._overload_refused = 0
        self._overload_timer: asyncio.TimerHandle | None = None
        self.reading: DeadlineQueue[Connection] = DeadlineQueue(loop, cfg.idle_timeout, self._idle)
        self.lingering: DeadlineQueue[Connection] = DeadlineQueue(
            loop, CONN_LINGER_SECONDS, self._linger_over)
        self.shutting_down = False
        self.finished: asyncio.Future[None] = loop.create_future()
        self._listener: socket.socket | None = None
        self._accept_paused = False
        self._accept_timer: asyncio.TimerHandle | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._debug = log.enabled("request")

    # -- listening -------------------------------------------------------------------------

    @staticmethod
    def bind(host: str, port: int, backlog: int) -> socket.socket:
        """The listening socket (raises OSError, e.g. when the port is taken)."""
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, socktype, proto, _, address = infos[0]
        sock = socket.socket(family, socktype, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    async def start(self, sock: socket.socket) -> None:
        self._listener = sock
        self.loop.add_reader(sock.fileno(), self._accept)
        if self.tls is not None:
            log_events.tls_loaded(self.log, cert_file=self.tls.cert_file,
                                  client_ca=self.tls.client_ca_file)
            self._tls_timer = self.loop.call_later(CONN_TLS_RELOAD_CHECK_SECONDS, self._tls_check)

    def _tls_check(self) -> None:
        """Read the certificate files again when they changed (tls.py)."""
        tls = self.tls
        assert tls is not None
        reloaded = tls.check()
        if reloaded:
            self.metrics.value[SLOT_TLS_RELOADS_TOTAL] += 1
            log_events.tls_loaded(self.log, cert_file=tls.cert_file, client_ca=tls.client_ca_file)
        elif reloaded is False:
            self.metrics.value[SLOT_TLS_RELOADS_TOTAL + 1] += 1
            log_events.tls_reload_failed(self.log, cert_file=tls.cert_file, error=tls.error)
        self._tls_timer = self.loop.call_later(CONN_TLS_RELOAD_CHECK_SECONDS, self._tls_check)

    def _accept(self) -> None:
        sock = self._listener
        if sock is None:
            return
        # socket.accept() wraps the descriptor in a socket.socket through Python code; the
        # C-level _socket.socket it derives from has all a connection uses (recv, send,
        # shutdown, close) and costs a third less per accept, on a path run once per request.
        accept = sock._accept  # type: ignore[attr-defined]  # (fd, address), as accept4(2)
        family, kind, proto = sock.family, sock.type, sock.proto
        loop_time = self.loop.time
        for _ in range(CONN_ACCEPT_BATCH):
            try:
                fd, address = accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # Out of descriptors: leave the clients in the backlog and retry shortly.
                    self._pause_accepting()
                return
            client = _socket.socket(family, kind, proto, fd)
            client.setblocking(False)
            conn = Connection(self, client, address)
            if self.tls is not None:
                conn.start_tls(self.tls.context)
                self.handshakes += 1
            if self.opened(conn):
                if self.handshakes > CONN_HANDSHAKES_MAX and self._shed_handshake(conn):
                    continue
                # The request is often there already: read first, and start the idle deadline
                # (from the accept) only for a connection still reading.
                now = loop_time()
                conn.readable()
                if conn.state == READING:
                    self.reading.add(conn, now)
            elif conn.deferred is not None:
                conn.readable()  # a TLS handshake to finish before the server-busy line

    def _pause_accepting(self) -> None:
        if self._listener is None or self._accept_paused:
            return
        self._accept_paused = True
        self.loop.remove_reader(self._listener.fileno())
        self._accept_timer = self.loop.call_later(CONN_ACCEPT_PAUSE_SECONDS,
                                                  self._resume_accepting)

    def _resume_accepting(self) -> None:
        """After the pause, or as soon as a connection closes (a descriptor is free again)."""
        if not self._accept_paused:
            return
        self._accept_paused = False
        if self._accept_timer is not None:
            self._accept_timer.cancel()
            self._accept_timer = None
        if self._listener is not None:
            self.loop.add_reader(self._listener.fileno(), self._accept)

    def _close_listener(self) -> None:
        if self._listener is not None:
            if not self._accept_paused:
                self.loop.remove_reader(self._listener.fileno())
            self._listener.close()
            self._listener = None

    # -- connection events -----------------------------------------------------------------

    def opened(self, conn: Connection) -> bool:
        """Count a new connection; False when it was answered server-busy instead (the caller
        starts its idle deadline)."""
        # The request path's slots belong to this thread: indexed directly (no method call per
        # connection on the hot path; Metrics.add is for the other threads' code).
        values = self.metrics.value
        values[SLOT_CONNECTIONS_TOTAL] += 1
        values[SLOT_CONNECTIONS_ACTIVE] += 1
        self.active += 1
        # Admission (design.md section 10), inline: no call on the common path.
        per_source = self.per_source
        sources = self.sources
        source = conn.address[0]
        if per_source and sources.get(source, 0) >= per_source:
            refused = REFUSED_PER_SOURCE
        elif self.table >= self.table_max and not self._shed_one(conn):
            refused = REFUSED_FULL
        else:
            if per_source:
                sources[source] = sources.get(source, 0) + 1
            conn.in_table = True
            self.table += 1
            return True
        values[SLOT_CONNECTIONS_REFUSED_TOTAL + refused] += 1
        self._overload(False, refused, conn)
        # The usual linger while at most CONN_BUSY_EXTRA such connections are open (over TLS,
        # once the handshake has finished), else at once.
        self.fail(conn, "server-busy", linger=self.active - self.table <= CONN_BUSY_EXTRA)
        return False

    # -- fairness (design.md section 10) ---------------------------------------------------

    def _shed_one(self, newcomer: Connection) -> bool:
        """The table is full: close the oldest connection that is done (lingering after its
        reply), or else the oldest without a complete request (told server-busy when it can
        be), looking at CONN_SHED_SCAN entries at most of each queue."""
        for n, conn in enumerate(self.lingering.items):
            if n >= CONN_SHED_SCAN:
                break
            if conn.in_table and conn.state == LINGER:
                self.metrics.value[SLOT_CONNECTIONS_SHED_TOTAL + SHED_LINGER] += 1
                self._overload(True, REFUSED_FULL, newcomer)
                conn.close()
                return True
        for n, conn in enumerate(self.reading.items):
            if n >= CONN_SHED_SCAN:
                break
            if conn.grace is None:  # (in its grace: a request without terminator)
                self.metrics.value[SLOT_CONNECTIONS_SHED_TOTAL + SHED_READING] += 1
                self._overload(True, REFUSED_FULL, newcomer)
                self.fail(conn, "server-busy", linger=False)
                return True
        return False

    def _shed_handshake(self, newcomer: Connection) -> bool:
        """TLS: more than CONN_HANDSHAKES_MAX connections in their handshake with newcomer:
        close the oldest other one still in its handshake (nothing can be said to it), looking
        at CONN_SHED_SCAN entries at most; else newcomer itself. True when newcomer was
        closed."""
        for n, conn in enumerate(self.reading.items):
            if n >= CONN_SHED_SCAN:
                break
            if conn is not newcomer and conn.in_handshake:
                self.metrics.value[SLOT_CONNECTIONS_SHED_TOTAL + SHED_READING] += 1
                self._overload(True, REFUSED_FULL, newcomer)
                conn.close()
                return False
        self.metrics.value[SLOT_CONNECTIONS_REFUSED_TOTAL + REFUSED_FULL] += 1
        self._overload(False, REFUSED_FULL, newcomer)
        newcomer.close()
        return True

    def _overload(self, shed: bool, reason: int, conn: Connection) -> None:
        """A connection was shed or refused: overload starts (logged once) or goes on."""
        if shed:
            self._overload_shed += 1
        else:
            self._overload_refused += 1
        now = self.loop.time()
        self._overload_last = now
        if self._overload_since is not None:
            return
        self._overload_since = now
        log_events.overload_started(self.log, reason=REFUSED_REASONS[reason],
                                    source=conn.peer().rpartition(":")[0],
                                    table=self.table, limit=self.table_max)
        self._overload_timer = self.loop.call_at(now + CONN_OVERLOAD_QUIET_SECONDS,
                                                 self._overload_check)

    def _overload_check(self) -> None:
        """No connection shed or refused for CONN_OVERLOAD_QUIET_SECONDS: overload is over."""
        self._overload_timer = None
        since = self._overload_since
        if since is None:
            return
        quiet_at = self._overload_last + CONN_OVERLOAD_QUIET_SECONDS
        if self.loop.time() < quiet_at:
            self._overload_timer = self.loop.call_at(quiet_at, self._overload_check)
            return
        log_events.overload_ended(self.log, lasted=self._overload_last - since,
                                  shed=self._overload_shed, refused=self._overload_refused)
        self._overload_since = None
        self._overload_shed = self._overload_refused = 0

    def request(self, conn: Connection) -> None:
        """conn holds a complete, valid request: wait for a read."""
        conn.set_state(WAITING)
        conn.cancel_grace()
        self.reading.discard(conn)
        now = time.monotonic()
        conn.started = now
        self.coalescer.submit(conn, now)

    def fail(self, conn: Connection, code: str, linger: bool = True) -> None:
        """Answer an error line to a connection still reading (its duration counts as 0).
        Over TLS before the handshake has finished, a line that may linger (server-busy
        within CONN_BUSY_EXTRA) waits for the handshake, bounded by the linger deadline;
        the others (idle-timeout, shutting-down, busy beyond the extra) close at once."""
        if conn.in_handshake:
            self.reading.discard(conn)
            if linger and code == "server-busy" and not self.shutting_down:
                conn.deferred = (code, linger)
                self.lingering.add(conn, self.loop.time())
            else:
                conn.close()
            return
        self.reading.discard(conn)
        now = time.monotonic()
        conn.started = now
        self.reply(conn, _ERROR_LINES[code], code, now, linger)

    def answer(self, conn: Connection, result: ReadResult, now: float) -> None:
        """The read a waiting connection asked for is there: its reply or its error line."""
        if result.error:
            self.reply(conn, _ERROR_LINES[result.error], result.error, now)
        else:
            self.reply(conn, result.reply, "ok", now)

    def reply(self, conn: Connection, data: bytes, outcome: str, now: float,
              linger: bool = True) -> None:
        """Count and send one reply; every reply (errors included) goes into the histogram."""
        m = self.metrics
        m.value[SLOT_REQUESTS_TOTAL] += 1
        if outcome != "ok":
            m.value[SLOT_ERRORS_TOTAL + ERROR_INDEX[outcome]] += 1
        seconds = now - conn.started
        m.observe(seconds)
        if self._debug:
            log_events.request(self.log, peer=conn.peer(), outcome=outcome,
                               duration_ms=seconds * 1000)
        conn.send(data, linger)

    def closed(self, conn: Connection) -> None:
        """conn has closed its socket (called once per connection)."""
        if conn.in_handshake:
            self.handshakes -= 1
        self.reading.discard(conn)
        self.lingering.discard(conn)
        self.active -= 1
        if conn.in_table:
            conn.in_table = False
            self.table -= 1
            if self.per_source:
                source = conn.address[0]
                left = self.sources[source] - 1
                if left:
                    self.sources[source] = left
                else:
                    del self.sources[source]
        self.metrics.value[SLOT_CONNECTIONS_ACTIVE] -= 1
        if self._accept_paused:
            self._resume_accepting()
        if self.shutting_down and self.active == 0 and not self.finished.done():
            self.finished.set_result(None)

    def _idle(self, conn: Connection) -> None:
        if conn.state == READING:
            if conn.in_handshake:  # an idle client too; over TLS it cannot be told so
                self.tls_failed(conn, "timeout", TimeoutError("handshake not finished"))
            self.fail(conn, "idle-timeout")

    # -- TLS (tls.py) ----------------------------------------------------------------------

    def tls_done(self, conn: Connection) -> None:
        self.metrics.value[SLOT_TLS_HANDSHAKES_TOTAL] += 1
        if conn.deferred is not None:
            code, linger = conn.deferred
            conn.deferred = None
            self.lingering.discard(conn)
            self.fail(conn, code, linger)

    def tls_failed(self, conn: Connection, result: str | None, exc: BaseException) -> None:
        """Count a failed handshake by result (failure_result(exc) when None); debug log."""
        result = result or failure_result(exc)
        self.metrics.value[SLOT_TLS_HANDSHAKES_TOTAL + TLS_RESULTS.index(result)] += 1
        if self._debug:
            log_events.tls_handshake_failed(self.log, peer=conn.peer(), reason=result,
                                            error=describe(exc))

    def _linger_over(self, conn: Connection) -> None:
        if conn.state in (WRITING, LINGER):
            conn.close()
        elif conn.deferred is not None:  # a busy client that never finished its handshake
            self.tls_failed(conn, "timeout", TimeoutError("handshake not finished"))
            conn.close()

    # -- shutdown (design.md section 7) ----------------------------------------------------

    def shutdown(self, signal_name: str) -> None:
        """Stop accepting; answer what waits; give readers until SHUTDOWN_TIMEOUT."""
        if self.shutting_down:
            self._deadline_reached()  # a second signal: do not wait any longer
            return
        self.shutting_down = True
        waiting = [w for w in self.coalescer.waiting()
                   if isinstance(w, Connection) and w.state == WAITING]
        in_flight = len(self.reading) + len(waiting)
        log_events.shutdown_started(self.log, signal=signal_name, in_flight=in_flight)
        self._deadline = self.loop.call_later(self.cfg.shutdown_timeout, self._deadline_reached)
        self._close_listener()
        if self.active == 0 and not self.finished.done():
            self.finished.set_result(None)

    def _deadline_reached(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        for conn in list(self.reading.items):
            self.fail(conn, "shutting-down")
        for waiter in self.coalescer.waiting():
            if isinstance(waiter, Connection) and waiter.state == WAITING:
                self.reply(waiter, _ERROR_LINES["shutting-down"], "shutting-down",
                           time.monotonic())
        self.loop.call_later(CONN_SHUTDOWN_LINGER_SECONDS, self._abort_all)

    def _abort_all(self) -> None:
        for conn in list(self.lingering.items):
            conn.close()

    def close(self) -> None:
        self._close_listener()
        self.reading.close()
        self.lingering.close()
        self.ae.close()
        if self._tls_timer is not None:
            self._tls_timer.cancel()
            self._tls_timer = None
        if self._overload_timer is not None:
            self._overload_timer.cancel()
            self._overload_timer = None

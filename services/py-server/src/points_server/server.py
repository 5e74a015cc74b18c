"""The points protocol on an asyncio event loop: one :class:`Connection` per client
(design.md sections 1 and 7).

Cheap per connection: a non-blocking listener and raw non-blocking sockets watched with the
public ``loop.add_reader``/``add_writer`` (no transport, no task, no timer object per
connection); the request is read right after accept, since it has often arrived. Idle and
linger deadlines share one timer each (:class:`DeadlineQueue`: every entry has the same
duration, so insertion order is deadline order). Replies come from the
:class:`~points_server.reader.Coalescer`.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .config import ServerConfig
from .generated import log_events
from .generated.protocol import (
    CONN_ACCEPT_BATCH,
    CONN_ACCEPT_PAUSE_SECONDS,
    CONN_BUSY_EXTRA,
    CONN_CLOSED,
    CONN_LINGER,
    CONN_LINGER_SECONDS,
    CONN_READING,
    CONN_SHUTDOWN_LINGER_SECONDS,
    CONN_WAITING,
    CONN_WRITING,
    ERROR_INDEX,
    ERRORS,
    SLOT_CONNECTIONS_ACTIVE,
    SLOT_CONNECTIONS_TOTAL,
    SLOT_ERRORS_TOTAL,
    SLOT_REQUESTS_TOTAL,
)
from .log import Logger
from .metrics import Metrics
from .reader import Coalescer, ReadResult
from .request import REQUEST_LINE, Verdict, scan, scan_eof

# The connection's states and numbers come from protocol.toml [connection] (the C server uses
# the same): READING -> WAITING -> WRITING -> LINGER -> CLOSED, changed by set_state only.
READING, WAITING, WRITING, LINGER, CLOSED = (
    CONN_READING, CONN_WAITING, CONN_WRITING, CONN_LINGER, CONN_CLOSED)
RECV_BYTES = 65536
T = TypeVar("T")
_ERROR_LINES: dict[str, bytes] = {code: spec.line for code, spec in ERRORS.items()}


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


class Connection:
    """One client on a raw non-blocking socket watched with ``loop.add_reader``:
    READING -> WAITING -> WRITING -> LINGER -> CLOSED (or READING -> WRITING an error line),
    changed by :meth:`set_state` only (C: conn_set_state).

    No asyncio transport: the reply is one short line written with one ``send`` into an empty
    socket buffer, so the transport machinery (name lookups, TCP_NODELAY, several callbacks per
    connection) would only cost CPU. A short write still works: the rest goes out on
    ``add_writer``.
    """

    __slots__ = ("address", "buf", "eof", "fd", "grace", "linger", "out", "sock", "srv",
                 "started", "state", "watching", "writing")

    def __init__(self, srv: Server, sock: socket.socket, address: Any) -> None:
        self.srv = srv
        self.sock = sock
        self.fd = sock.fileno()
        self.address = address
        self.buf = b""
        self.state = READING
        self.linger = True  # WRITING: linger after the reply (else close at once)
        self.eof = False
        self.started = 0.0  # when the request was complete (or its error decided)
        self.grace: asyncio.TimerHandle | None = None
        self.out = b""
        self.watching = False
        self.writing = False

    # -- socket events ---------------------------------------------------------------------

    def readable(self) -> None:
        """Input (or EOF, or an error) is there; also called once right after accept, since
        the request has often arrived already."""
        try:
            data = self.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            self._watch()
            return
        except OSError:  # reset by the peer
            self.close()
            return
        if not data:
            self._on_eof()
        elif self.state == READING:
            self._on_data(data)
            if self.state in (READING, WAITING):
                self._watch()  # more of the line, or the peer's EOF while waiting
        # WAITING: bytes after the request are ignored; WRITING, LINGER: discarded.

    def _on_data(self, data: bytes) -> None:
        if self.buf:
            data = self.buf + data
        elif data == REQUEST_LINE:  # the common case, in one segment
            self.srv.request(self)
            return
        verdict = scan(data)
        if verdict is Verdict.MORE:
            self.buf = data
            self.cancel_grace()
        elif verdict is Verdict.GRACE:
            self.buf = data
            if self.grace is None:
                self.grace = self.srv.loop.call_later(self.srv.cfg.request_grace, self._grace_over)
        elif verdict is Verdict.REQUEST:
            self.srv.request(self)
        else:
            self.srv.fail(self, verdict.value)

    def _on_eof(self) -> None:
        self.eof = True
        self._unwatch()  # an EOF stays readable: stop watching or the loop spins
        if self.state == READING:
            verdict = scan_eof(self.buf)
            if verdict is Verdict.EMPTY:
                self.close()  # connect then close: nothing to say
            elif verdict is Verdict.REQUEST:
                self.srv.request(self)  # answered later; the write side is still open
            else:
                self.srv.fail(self, verdict.value)
        elif self.state == LINGER:
            self.close()
        # WRITING: the socket is closed once the reply is out.
        # WAITING: the reply is written when the read finishes, then the socket is closed.

    def _watch(self) -> None:
        if not self.watching and self.state != CLOSED and not self.eof:
            self.srv.loop.add_reader(self.fd, self.readable)
            self.watching = True

    def _unwatch(self) -> None:
        if self.watching:
            self.srv.loop.remove_reader(self.fd)
            self.watching = False

    # -- used by the server and the coalescer ----------------------------------------------

    def answer(self, result: ReadResult, now: float) -> None:
        if self.state == WAITING:
            if result.error:
                self.srv.reply(self, _ERROR_LINES[result.error], result.error, now)
            else:
                self.srv.reply(self, result.reply, "ok", now)

    def send(self, data: bytes, linger: bool = True) -> None:
        """Write the one reply, then FIN and linger (or close when the peer already left)."""
        self.cancel_grace()
        self.set_state(WRITING)
        self.linger = linger
        self.out = data
        self._flush()

    def _flush(self) -> None:
        try:
            sent = self.sock.send(self.out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:  # the peer is gone (EPIPE, ECONNRESET)
            self.close()
            return
        self.out = self.out[sent:]
        if self.out:  # rare: the peer's window is full; finish when writable, bounded
            if not self.writing:
                self.srv.loop.add_writer(self.fd, self._flush)
                self.writing = True
                self.srv.lingering.add(self, self.srv.loop.time())
            return
        if self.writing:
            self.srv.loop.remove_writer(self.fd)
            self.writing = False
        if self.eof or not self.linger:
            self.close()
            return
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close()
            return
        # Linger: read and discard until the peer closes, so unread input cannot turn the
        # close into a reset that destroys the reply in flight.
        self.set_state(LINGER)
        self.srv.lingering.discard(self)
        self.srv.lingering.add(self, self.srv.loop.time())
        self._watch()

    def _grace_over(self) -> None:
        self.grace = None
        if self.state == READING and scan(self.buf) is Verdict.GRACE:
            self.srv.request(self)

    def cancel_grace(self) -> None:
        if self.grace is not None:
            self.grace.cancel()
            self.grace = None

    def close(self) -> None:
        if self.state == CLOSED:
            return
        self.cancel_grace()
        self._unwatch()
        if self.writing:
            self.srv.loop.remove_writer(self.fd)
            self.writing = False
        self.set_state(CLOSED)
        self.sock.close()
        self.srv.closed(self)

    def set_state(self, state: int) -> None:
        """The one place a connection changes state (its name: CONN_STATE_NAMES[state])."""
        self.state = state

    def peer(self) -> str:
        name = self.address
        if isinstance(name, tuple) and len(name) >= 2:
            host = f"[{name[0]}]" if ":" in str(name[0]) else str(name[0])
            return f"{host}:{name[1]}"
        return str(name or "")


class Server:
    """Accepts, tracks and answers connections; drives graceful shutdown."""

    def __init__(self, cfg: ServerConfig, loop: asyncio.AbstractEventLoop, log: Logger,
                 metrics: Metrics, coalescer: Coalescer) -> None:
        self.cfg = cfg
        self.loop = loop
        self.log = log
        self.metrics = metrics
        self.coalescer = coalescer
        self.active = 0
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

    def _accept(self) -> None:
        sock = self._listener
        if sock is None:
            return
        for _ in range(CONN_ACCEPT_BATCH):
            try:
                client, address = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # Out of descriptors: leave the clients in the backlog and retry shortly.
                    self._pause_accepting()
                return
            client.setblocking(False)
            conn = Connection(self, client, address)
            if self.opened(conn):
                conn.readable()  # the request is often there already

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
        """Count a new connection; False when it was answered server-busy instead."""
        # The request path's slots belong to this thread: indexed directly (no method call per
        # connection on the hot path; Metrics.add is for the other threads' code).
        values = self.metrics.value
        values[SLOT_CONNECTIONS_TOTAL] += 1
        values[SLOT_CONNECTIONS_ACTIVE] += 1
        self.active += 1
        if self.active > self.cfg.max_connections:
            self.fail(conn, "server-busy",
                      linger=self.active <= self.cfg.max_connections + CONN_BUSY_EXTRA)
            return False
        self.reading.add(conn, self.loop.time())
        return True

    def request(self, conn: Connection) -> None:
        """conn holds a complete, valid request: wait for a read."""
        conn.set_state(WAITING)
        conn.cancel_grace()
        self.reading.discard(conn)
        now = time.monotonic()
        conn.started = now
        self.coalescer.submit(conn, now)

    def fail(self, conn: Connection, code: str, linger: bool = True) -> None:
        """Answer an error line to a connection still reading (its duration counts as 0)."""
        self.reading.discard(conn)
        now = time.monotonic()
        conn.started = now
        self.reply(conn, _ERROR_LINES[code], code, now, linger)

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
        self.reading.discard(conn)
        self.lingering.discard(conn)
        self.active -= 1
        self.metrics.value[SLOT_CONNECTIONS_ACTIVE] -= 1
        if self._accept_paused:
            self._resume_accepting()
        if self.shutting_down and self.active == 0 and not self.finished.done():
            self.finished.set_result(None)

    def _idle(self, conn: Connection) -> None:
        if conn.state == READING:
            self.fail(conn, "idle-timeout")

    def _linger_over(self, conn: Connection) -> None:
        if conn.state in (WRITING, LINGER):
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

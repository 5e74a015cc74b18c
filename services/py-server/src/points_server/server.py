"""The points protocol on asyncio: one :class:`Connection` (an ``asyncio.Protocol``) per client
(design.md sections 1 and 7).

Cheap per connection: a non-blocking listener accepted directly into socket transports, bytes
parsed in ``data_received``, no task or timer object per connection. Idle and linger deadlines
share one timer each (:class:`DeadlineQueue`: every entry has the same duration, so insertion
order is deadline order). Replies come from the :class:`~points_server.reader.Coalescer`.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from collections.abc import Callable
from typing import Any

from .config import Config
from .logs import Logger
from .metrics import Metrics
from .protocol import ERRORS
from .reader import Coalescer, ReadResult
from .request import REQUEST_LINE, Verdict, scan, scan_eof

LINGER_SECONDS = 2.0  # after the reply: discard input until the peer closes, at most this long
ACCEPT_BATCH = 256  # connections accepted per readiness event
ACCEPT_RETRY_SECONDS = 0.05  # pause after EMFILE & co. before accepting again
DRAIN_AFTER_DEADLINE = 0.5  # linger allowed after the shutdown deadline's error lines
BUSY_EXTRA = 64  # server-busy connections that may linger beyond MAX_CONNECTIONS; more are
# answered and closed at once, so a connection flood cannot pile up lingering sockets

READING, WAITING, LINGER, CLOSED = range(4)
_ERROR_LINES: dict[str, bytes] = {code: spec.line for code, spec in ERRORS.items()}


class DeadlineQueue:
    """Connections with a deadline ``duration`` after they were added; one timer for all."""

    def __init__(self, loop: asyncio.AbstractEventLoop, duration: float,
                 on_expire: Callable[[Connection], None]) -> None:
        self.loop = loop
        self.duration = duration
        self.on_expire = on_expire
        self.items: dict[Connection, float] = {}
        self._timer: asyncio.TimerHandle | None = None

    def add(self, conn: Connection, now: float) -> None:
        deadline = now + self.duration
        self.items[conn] = deadline
        if self._timer is None:
            self._timer = self.loop.call_at(deadline, self._fire)

    def discard(self, conn: Connection) -> None:
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


class Connection(asyncio.Protocol):
    """One client: READING -> WAITING -> LINGER -> CLOSED (or READING -> error -> LINGER)."""

    __slots__ = ("buf", "eof", "grace", "srv", "started", "state", "transport")

    def __init__(self, srv: Server) -> None:
        self.srv = srv
        self.transport: Any = None
        self.buf = b""
        self.state = READING
        self.eof = False
        self.started = 0.0  # when the request was complete (or its error decided)
        self.grace: asyncio.TimerHandle | None = None

    # -- asyncio callbacks -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.srv.opened(self)

    def data_received(self, data: bytes) -> None:
        if self.state != READING:
            return  # WAITING: bytes after the request are ignored; LINGER: discarded
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

    def eof_received(self) -> bool:
        self.eof = True
        if self.state == READING:
            verdict = scan_eof(self.buf)
            if verdict is Verdict.EMPTY:
                return False  # connect then close: nothing to say
            if verdict is Verdict.REQUEST:
                self.srv.request(self)
            else:
                self.srv.fail(self, verdict.value)
            return self.state == WAITING  # keep the write side open for the reply
        return self.state == WAITING

    def connection_lost(self, exc: Exception | None) -> None:
        self.srv.closed(self)

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
        transport = self.transport
        transport.write(data)
        if self.eof or not linger:
            self.state = CLOSED
            transport.close()
        else:
            self.state = LINGER
            transport.write_eof()
            self.srv.lingering.add(self, self.srv.loop.time())

    def _grace_over(self) -> None:
        self.grace = None
        if self.state == READING and scan(self.buf) is Verdict.GRACE:
            self.srv.request(self)

    def cancel_grace(self) -> None:
        if self.grace is not None:
            self.grace.cancel()
            self.grace = None

    def peer(self) -> str:
        name = self.transport.get_extra_info("peername") if self.transport else None
        if isinstance(name, tuple) and len(name) >= 2:
            host = f"[{name[0]}]" if ":" in str(name[0]) else str(name[0])
            return f"{host}:{name[1]}"
        return str(name or "")


class Server:
    """Accepts, tracks and answers connections; drives graceful shutdown."""

    def __init__(self, cfg: Config, loop: asyncio.AbstractEventLoop, log: Logger,
                 metrics: Metrics, coalescer: Coalescer) -> None:
        self.cfg = cfg
        self.loop = loop
        self.log = log
        self.metrics = metrics
        self.coalescer = coalescer
        self.active = 0
        self.reading = DeadlineQueue(loop, cfg.idle_timeout, self._idle)
        self.lingering = DeadlineQueue(loop, LINGER_SECONDS, self._linger_over)
        self.shutting_down = False
        self.finished: asyncio.Future[None] = loop.create_future()
        self._listener: socket.socket | None = None
        self._fallback_server: asyncio.AbstractServer | None = None
        self._accept_paused = False
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
        if hasattr(self.loop, "_make_socket_transport"):
            # Accept straight into socket transports: no task and no future per connection
            # (what create_server costs), about 15 % less CPU per request.
            self._listener = sock
            self.loop.add_reader(sock.fileno(), self._accept)
        else:  # an event loop without selector internals: the public, slower path
            self._fallback_server = await self.loop.create_server(
                lambda: Connection(self), sock=sock, backlog=self.cfg.listen_backlog
            )

    def _accept(self) -> None:
        sock = self._listener
        if sock is None:
            return
        make_transport = self.loop._make_socket_transport  # type: ignore[attr-defined]
        for _ in range(ACCEPT_BATCH):
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
            try:
                client.setblocking(False)
                make_transport(client, Connection(self), extra={"peername": address})
            except OSError:  # reset before we got to it (setsockopt, getsockname)
                client.close()

    def _pause_accepting(self) -> None:
        if self._listener is None or self._accept_paused:
            return
        self._accept_paused = True
        self.loop.remove_reader(self._listener.fileno())
        self.loop.call_later(ACCEPT_RETRY_SECONDS, self._resume_accepting)

    def _resume_accepting(self) -> None:
        self._accept_paused = False
        if self._listener is not None:
            self.loop.add_reader(self._listener.fileno(), self._accept)

    def _close_listener(self) -> None:
        if self._fallback_server is not None:
            self._fallback_server.close()
            self._fallback_server = None
        if self._listener is not None:
            if not self._accept_paused:
                self.loop.remove_reader(self._listener.fileno())
            self._listener.close()
            self._listener = None

    # -- connection events -----------------------------------------------------------------

    def opened(self, conn: Connection) -> None:
        m = self.metrics
        m.connections_total += 1
        m.connections_active += 1
        self.active += 1
        if self.active > self.cfg.max_connections:
            self.fail(conn, "server-busy",
                      linger=self.active <= self.cfg.max_connections + BUSY_EXTRA)
        else:
            self.reading.add(conn, self.loop.time())

    def request(self, conn: Connection) -> None:
        """conn holds a complete, valid request: wait for a read."""
        conn.state = WAITING
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
        m.requests_total += 1
        if outcome != "ok":
            m.errors[outcome] += 1
        seconds = now - conn.started
        m.observe(seconds)
        if self._debug:
            self.log.log("request", peer=conn.peer(), outcome=outcome,
                         duration_ms=seconds * 1000)
        conn.send(data, linger)

    def closed(self, conn: Connection) -> None:
        if conn.state != CLOSED:
            conn.state = CLOSED
            conn.cancel_grace()
        self.reading.discard(conn)
        self.lingering.discard(conn)
        self.active -= 1
        self.metrics.connections_active -= 1
        if self.shutting_down and self.active == 0 and not self.finished.done():
            self.finished.set_result(None)

    def _idle(self, conn: Connection) -> None:
        if conn.state == READING:
            self.fail(conn, "idle-timeout")

    def _linger_over(self, conn: Connection) -> None:
        if conn.state == LINGER:
            conn.transport.abort()

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
        self.log.log("shutdown_started", signal=signal_name, in_flight=in_flight)
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
        self.loop.call_later(DRAIN_AFTER_DEADLINE, self._abort_all)

    def _abort_all(self) -> None:
        for conn in list(self.lingering.items):
            conn.transport.abort()

    def close(self) -> None:
        self._close_listener()
        self.reading.close()
        self.lingering.close()

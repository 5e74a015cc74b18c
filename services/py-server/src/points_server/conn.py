"""One client connection (C: conn.c): its state machine, reading and scanning the request,
writing the reply, the linger after it, and closing (design.md sections 1 and 7).

A raw non-blocking socket watched by the server's :class:`~points_server.ae.Ae` (no asyncio
transport, no task, no timer object per connection); the request is read right after accept,
since it has often arrived. The connection calls its :class:`~points_server.server.Server`
when a request is complete (:meth:`Server.request`) or fails (:meth:`Server.fail`), and once
when it has closed (:meth:`Server.closed`); the server owns the deadlines.
"""

from __future__ import annotations

import _socket
import asyncio
import socket
from typing import TYPE_CHECKING, Any

from .ae import READABLE, WRITABLE
from .generated.protocol import CONN_CLOSED, CONN_LINGER, CONN_READING, CONN_WAITING, CONN_WRITING
from .reader import ReadResult
from .request import REQUEST_LINE, Verdict, scan, scan_eof

if TYPE_CHECKING:
    from .server import Server

# The connection's states come from protocol.toml [connection] (the C server uses the same):
# READING -> WAITING -> WRITING -> LINGER -> CLOSED, changed by set_state only.
READING, WAITING, WRITING, LINGER, CLOSED = (
    CONN_READING, CONN_WAITING, CONN_WRITING, CONN_LINGER, CONN_CLOSED)
RECV_BYTES = 65536


class Connection:
    """One client: READING -> WAITING -> WRITING -> LINGER -> CLOSED (or READING -> WRITING an
    error line), changed by :meth:`set_state` only (C: conn_set_state).

    No asyncio transport: the reply is one short line written with one ``send`` into an empty
    socket buffer, so the transport machinery (name lookups, TCP_NODELAY, several callbacks per
    connection) would only cost CPU. A short write still works: the rest goes out when the
    socket is writable.
    """

    __slots__ = ("address", "buf", "eof", "events", "fd", "grace", "linger", "out", "sock",
                 "srv", "started", "state")

    def __init__(self, srv: Server, sock: _socket.socket, address: Any) -> None:
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
        self.events = 0  # what the server's Ae watches for (0: not registered)

    # -- socket events ---------------------------------------------------------------------

    def on_events(self, events: int) -> None:
        """The Ae's callback: writable (a reply's rest) and/or readable (or EOF, or error)."""
        if events & WRITABLE and self.out:
            self._flush()
        if events & ~WRITABLE and self.state != CLOSED:
            self.readable()

    def readable(self) -> None:
        """Input (or EOF, or an error) is there; also called once right after accept, since
        the request has often arrived already."""
        try:
            data = self.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            self._watch(READABLE)
            return
        except OSError:  # reset by the peer
            self.close()
            return
        if not data:
            self._on_eof()
        elif self.state == READING:
            self._on_data(data)
            if self.state in (READING, WAITING):
                self._watch(READABLE)  # more of the line, or the peer's EOF while waiting
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
        self._unwatch(READABLE)  # an EOF stays readable: stop watching or the loop spins
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

    def _watch(self, event: int) -> None:
        """Add event to what the Ae watches (an EOF is never watched again: it stays readable
        and the loop would spin)."""
        if self.events & event or self.state == CLOSED or (event == READABLE and self.eof):
            return
        if self.events:
            self.srv.ae.mod(self.fd, self.events | event)
        else:
            self.srv.ae.add(self.fd, event, self.on_events)
        self.events |= event

    def _unwatch(self, event: int) -> None:
        if not self.events & event:
            return
        self.events &= ~event
        if self.events:
            self.srv.ae.mod(self.fd, self.events)
        else:
            self.srv.ae.delete(self.fd)

    # -- used by the server and the coalescer ----------------------------------------------

    def answer(self, result: ReadResult, now: float) -> None:
        """The read this connection waited for is there (the coalescer calls this)."""
        if self.state == WAITING:
            self.srv.answer(self, result, now)

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
            if not self.events & WRITABLE:
                self._watch(WRITABLE)
                self.srv.lingering.add(self, self.srv.loop.time())
            return
        self._unwatch(WRITABLE)
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
        self._watch(READABLE)

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
        if self.events:
            self.srv.ae.delete(self.fd)
            self.events = 0
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

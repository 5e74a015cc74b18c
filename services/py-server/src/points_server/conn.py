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
import ssl
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

    __slots__ = ("address", "buf", "deferred", "eof", "events", "fd", "grace", "handshaken",
                 "in_table", "linger", "out", "sock", "srv", "started", "state", "tls", "tls_eof",
                 "tls_in", "tls_out")

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
        self.out = b""  # bytes to send (the reply; over TLS, its records and handshake bytes)
        self.events = 0  # what the server's Ae watches for (0: not registered)
        self.tls: ssl.SSLObject | None = None  # TLS (tls.py): between two memory buffers
        self.tls_in: ssl.MemoryBIO | None = None
        self.tls_out: ssl.MemoryBIO | None = None
        self.handshaken = False
        self.tls_eof = False  # the client's close_notify arrived: the end of its stream
        self.deferred: tuple[str, bool] | None = None  # an error to send once TLS is up
        # Counted in the server's table and its source's count (not a server-busy one on its
        # way out).
        self.in_table = False

    def start_tls(self, context: ssl.SSLContext) -> None:
        """Speak TLS on this connection: the handshake runs as bytes arrive (readable)."""
        self.tls_in, self.tls_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.tls_in, self.tls_out, server_side=True)

    @property
    def in_handshake(self) -> bool:
        return self.tls is not None and not self.handshaken

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
        except OSError as exc:  # reset by the peer
            if self.tls is not None and not self.handshaken:
                self.srv.tls_failed(self, "closed", exc)
            self.close()
            return
        if not data:
            if self.tls is not None and not self.handshaken:
                self.srv.tls_failed(self, "closed", ConnectionError("EOF during the handshake"))
                self.close()
                return
            self._on_eof()
        elif self.state == READING:
            if self.tls is not None:
                plain = self._tls_recv(data)
                if plain is None:  # closed (a failed handshake, a broken record)
                    return
                if plain:
                    self._on_data(plain)
                if self.tls_eof and self.state in (READING, WAITING):
                    self._on_eof()  # close_notify, maybe right after the request
                    return
            else:
                self._on_data(data)
            if self.state in (READING, WAITING):
                self._watch(READABLE)  # more of the line, or the peer's EOF while waiting
        # WAITING: bytes after the request are ignored; WRITING, LINGER: discarded (over TLS
        # too: only the end of the stream still matters).

    def _tls_recv(self, data: bytes) -> bytes | None:
        """Feed bytes from the socket to TLS: the plaintext they complete (b"" for none yet;
        tls_eof is set when close_notify ends it), or None when the connection closed (a failed
        handshake, a broken record)."""
        tls, tls_in = self.tls, self.tls_in
        assert tls is not None and tls_in is not None
        tls_in.write(data)
        if not self.handshaken:
            try:
                tls.do_handshake()
            except ssl.SSLWantReadError:
                self._send_raw()  # this flight of the handshake
                return b""
            except (ssl.SSLError, OSError) as exc:
                self._send_raw()  # the alert, when OpenSSL wrote one
                self.srv.tls_failed(self, None, exc)
                self.close()
                return None
            self.handshaken = True
            self.srv.handshakes -= 1
            self._send_raw()
            if self.state == CLOSED:  # the last flight could not be sent: the peer left
                self.srv.tls_failed(self, "closed", ConnectionError("closed in the handshake"))
                return None
            self.srv.tls_done(self)  # may answer a deferred error (server-busy)
            if self.state != READING:
                return b""
        chunks: list[bytes] = []
        while True:
            try:
                chunk = tls.read(RECV_BYTES)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:  # close_notify (raised by some Python versions)
                self.tls_eof = True
                break
            except ssl.SSLError:  # a broken record after the handshake: nothing to answer
                self.close()
                return None
            if not chunk:  # close_notify: the end of the client's stream (CPython: b"")
                self.tls_eof = True
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def _send_raw(self) -> None:
        """Queue what TLS wrote (handshake flights) and send it."""
        assert self.tls_out is not None
        pending = self.tls_out.read()
        if pending:
            self.out += pending
            self._flush()

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
        """Write the one reply, then FIN and linger (or close when the peer already left).
        Over TLS the reply is followed by close_notify; before the handshake has finished
        there is no way to say anything, so the connection is just closed."""
        self.cancel_grace()
        tls = self.tls
        if tls is not None and not self.handshaken:
            self.close()
            return
        self.set_state(WRITING)
        self.linger = linger
        if tls is not None:
            assert self.tls_out is not None
            try:
                tls.write(data)
                tls.unwrap()  # close_notify; then it waits for the peer's: not needed
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError:
                self.close()
                return
            data = self.tls_out.read()
        self.out += data
        self._flush()

    def _flush(self) -> None:
        if self.out:
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
            # A reply is bounded by the linger deadline (a handshake flight by the idle one),
            # also when the rest of a flight was still queued as the reply was added.
            if self.state == WRITING and self not in self.srv.lingering.items:
                self.srv.lingering.add(self, self.srv.loop.time())
            return
        self._unwatch(WRITABLE)
        if self.state != WRITING:  # a handshake flight went out: back to reading
            return
        if self.eof:
            self.close()
            return
        if not self.linger:
            # Unread input would turn the close into a reset; what is still on its way may yet.
            for _ in range(4):
                try:
                    if not self.sock.recv(RECV_BYTES):
                        break
                except OSError:
                    break
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

"""A blocking TLS client socket for the tests and tools, shaped like a plain socket.

The suites speak to the servers through what :func:`connect` returns: a plain socket, or
:class:`TlsSocket` over one. Python's ``ssl.SSLSocket`` cannot half-close: its ``shutdown()``
drops the TLS state, so the reply that follows would be read as raw records. Here TLS runs in an
``ssl.SSLObject`` over memory buffers, and ``shutdown(SHUT_WR)`` half-closes the TCP connection
under it, as the seed C client does to a plaintext server; reading goes on over TLS.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from types import TracebackType

CHUNK = 65536


class TlsSocket:
    """sendall / recv / shutdown / settimeout / fileno / close over TLS (blocking)."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, server_name: str) -> None:
        self.sock = sock
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self._in, self._out, server_hostname=server_name)
        self._eof = False

    def handshake(self) -> None:
        """Complete the handshake (raises ssl.SSLError, OSError, TimeoutError)."""
        while True:
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                self._send_pending()
                if not self._receive():
                    raise ssl.SSLEOFError("EOF during the TLS handshake") from None
                continue
            except ssl.SSLError:
                with contextlib.suppress(OSError):
                    self._send_pending()  # the alert that tells the server why, as ssl does
                raise
            self._send_pending()
            return

    def _send_pending(self) -> None:
        data = self._out.read()
        if data:
            self.sock.sendall(data)

    def _receive(self) -> bool:
        """Raw bytes into TLS; False at the peer's EOF."""
        data = self.sock.recv(CHUNK)
        if not data:
            self._in.write_eof()
            return False
        self._in.write(data)
        return True

    def sendall(self, data: bytes) -> None:
        self.tls.write(data)
        self._send_pending()

    def sendall_then_close_notify(self, data: bytes) -> None:
        """data and close_notify (the end of our TLS stream, the TCP connection left open), in
        one write: a server must see both in one read too."""
        self.tls.write(data)
        with contextlib.suppress(ssl.SSLWantReadError):  # it would wait for the peer's
            self.tls.unwrap()
        self._send_pending()

    def send(self, data: bytes) -> int:
        self.sendall(data)
        return len(data)

    def recv(self, size: int = CHUNK) -> bytes:
        """Plaintext; b"" at the end of the stream (close_notify, or the peer's EOF)."""
        while True:
            try:
                return self.tls.read(size)
            except ssl.SSLWantReadError:
                if self._eof:
                    return b""
                if not self._receive():
                    self._eof = True
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""

    def shutdown(self, how: int) -> None:
        """Half-close the TCP connection (no close_notify: the server reads it as the end of
        the request, as a plaintext client's FIN)."""
        self.sock.shutdown(how)

    def settimeout(self, timeout: float | None) -> None:
        self.sock.settimeout(timeout)

    def setsockopt(self, *args: int) -> None:
        self.sock.setsockopt(*args)

    def getsockname(self) -> tuple[str, int]:
        name: tuple[str, int] = self.sock.getsockname()
        return name

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> TlsSocket:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def client_context(ca_file: str, cert_file: str = "", key_file: str = "") -> ssl.SSLContext:
    """A client context that verifies the server against ca_file (TLS 1.2 at least)."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file:
        ctx.load_cert_chain(cert_file, key_file or None)
    return ctx


def connect(host: str, port: int, timeout: float, context: ssl.SSLContext | None = None,
            server_name: str = "localhost") -> socket.socket | TlsSocket:
    """A connected socket: plain, or over TLS with the handshake done."""
    sock = socket.create_connection((host, port), timeout=timeout)
    if context is None:
        return sock
    tls = TlsSocket(sock, context, server_name)
    try:
        tls.handshake()
    except BaseException:
        sock.close()
        raise
    return tls

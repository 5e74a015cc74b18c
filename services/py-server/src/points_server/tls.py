"""TLS on the protocol port (design.md section 9): the server's certificate, reloaded when its
files change, and the per-connection TLS state over memory buffers.

A connection keeps its raw non-blocking socket (conn.py); TLS runs in an ``ssl.SSLObject``
between two ``ssl.MemoryBIO`` buffers, so the event loop, the states and the deadlines are the
plaintext ones: bytes from the socket go into the object, plaintext comes out, and what the
object writes (handshake, reply, close_notify) is sent as any reply would be.

Certificates: ``TLS_CERT_FILE`` + ``TLS_KEY_FILE``, with ``TLS_CLIENT_CA_FILE`` for mutual TLS
(a client certificate is then required). TLS 1.2 at least, 1.3 preferred (OpenSSL's order).
:meth:`Tls.check` runs every ``CONN_TLS_RELOAD_CHECK_SECONDS``: when a file's identity (inode,
size, modification time) changed, the files are read again into a new context for the next
connections; a failed reload keeps the previous one (Kubernetes swaps a mounted Secret's files
in one rename, so a half-written set is only seen in between, and the next check retries).
"""

from __future__ import annotations

import os
import ssl

from .config import ServerConfig
from .generated.protocol import TLS_FAILURE_RESULT


class TlsError(Exception):
    """The certificate, key or CA file could not be used."""


def _identity(path: str) -> tuple[int, int, int, int]:
    try:
        st = os.stat(path)  # follows the symbolic links a mounted Secret is made of
    except OSError:
        return (0, 0, 0, 0)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class Tls:
    """The server's TLS context; ``context`` is the one new connections get."""

    def __init__(self, cfg: ServerConfig) -> None:
        self.cert_file = cfg.tls_cert_file
        self.key_file = cfg.tls_key_file
        self.client_ca_file = cfg.tls_client_ca_file
        self._seen = self._identities()
        self._failed: tuple[tuple[int, int, int, int], ...] = ()
        self.error = ""  # why the last reload failed
        self.context = self._load()

    def _files(self) -> tuple[str, ...]:
        return tuple(f for f in (self.cert_file, self.key_file, self.client_ca_file) if f)

    def _identities(self) -> tuple[tuple[int, int, int, int], ...]:
        return tuple(_identity(f) for f in self._files())

    def _load(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.options |= ssl.OP_NO_COMPRESSION
        try:
            ctx.load_cert_chain(self.cert_file, self.key_file)
            if self.client_ca_file:
                ctx.load_verify_locations(cafile=self.client_ca_file)
                ctx.verify_mode = ssl.CERT_REQUIRED
        except (OSError, ssl.SSLError) as exc:
            raise TlsError(describe(exc)) from None
        return ctx

    def check(self) -> bool | None:
        """Read the files again if they changed: True (reloaded), False (changed but not
        loadable: the previous context stays, ``error`` says why; the same files are not tried
        again, so one bad change is reported once) or None (unchanged)."""
        seen = self._identities()
        if seen in (self._seen, self._failed):
            return None
        try:
            ctx = self._load()
        except TlsError as exc:
            self._failed, self.error = seen, str(exc)  # tried again when the files change
            return False
        self._seen, self._failed, self.error = seen, (), ""
        self.context = ctx
        return True


def describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return f"{exc.reason}: {exc.strerror or exc}" if exc.strerror else str(exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__


def failure_result(exc: BaseException) -> str:
    """The points_tls_handshakes_total result of a failed handshake (protocol.toml
    [tls.failure_reason])."""
    if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError | ConnectionError):
        return "closed"
    reason = getattr(exc, "reason", None) or ""
    return TLS_FAILURE_RESULT.get(str(reason).upper(), "protocol")

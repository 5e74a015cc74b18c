"""python-client: ask a points server for its latest points and print the reply line.

Same behaviour, messages and exit codes as the C client (clients/c-client/client.c):
every attempt resolves the target (IPv4 and IPv6), opens a fresh socket per address, connects
within CLIENT_TIMEOUT, sends the request line and reads until the server closes (at most
4 KiB) within CLIENT_TIMEOUT. A reply line goes to stdout (exit 0). Refused / unreachable /
timed out / unresolved / closed without a reply / a retryable ERROR: retry with a doubling delay,
at most CLIENT_RETRIES attempts (exit 1 with the last reason when exhausted). A non-retryable
ERROR or an unexpected answer: exit 1 at once. A bad setting: exit 2.

TLS (design.md section 9) when TLS_CA_FILE is set: the server's certificate must chain to
those CAs and carry TLS_SERVER_NAME (default TARGET_HOST); TLS_CLIENT_CERT_FILE/KEY_FILE are
presented when the server asks. A certificate that does not verify, or a server that does not
speak TLS, ends the client at once (exit 1), never falling back to plaintext; a handshake cut
short (reset, timeout) is retried like a failed connect.
"""

from __future__ import annotations

import enum
import os
import re
import socket
import ssl
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from . import __version__
from .generated.protocol import COMMAND, ERROR_PREFIX, ERRORS, PROTOCOL_VERSION, REPLY_RE
from .settings import (
    Action,
    ClientConfig,
    ConfigError,
    backoff_delays,
    describe_config,
    load,
    target,
    usage,
)

PROG = "python-client"
REPLY_CAP = 4096
REQUEST = (COMMAND + "\n").encode()

EXIT_REPLY = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class Outcome(enum.Enum):
    REPLY = "reply"  # a reply line arrived
    RETRY = "retry"  # transient failure: try again
    FATAL = "fatal"  # error reply or unexpected answer: give up now


@dataclass(frozen=True)
class Attempt:
    outcome: Outcome
    reason: str = ""
    line: bytes = b""  # the reply line, "\n" included




def _fmt_seconds(s: float) -> str:
    return f"{s:.3g}"


def _fmt_addr(family: int, addr: tuple) -> str:
    return f"[{addr[0]}]:{addr[1]}" if family == socket.AF_INET6 else f"{addr[0]}:{addr[1]}"


def _os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def judge(data: bytes, end: str, timeout: float) -> Attempt:
    """Classify what the server sent; end says how reading stopped: "eof", "cap", "reset",
    "timeout" or the error that stopped it."""
    nl = data.find(b"\n")
    if nl == -1:
        if end == "timeout":
            return Attempt(Outcome.RETRY, f"no reply within {_fmt_seconds(timeout)} s")
        if end == "reset":
            return Attempt(Outcome.RETRY, "connection reset by the server")
        if end == "cap":
            return Attempt(
                Outcome.FATAL, f"unexpected answer: more than {REPLY_CAP} bytes without a newline"
            )
        if end != "eof":
            return Attempt(Outcome.RETRY, f"recv: {end}")
        if not data:
            return Attempt(Outcome.RETRY, "server closed the connection without a reply")
        return Attempt(Outcome.RETRY, f"incomplete reply ({len(data)} bytes, no newline)")
    # A whole first line arrived: what happened afterwards does not matter.
    line = data[: nl + 1]
    text = line[:-1]
    if text.endswith(b"\r"):
        text = text[:-1]
    shown = text.decode("utf-8", "replace")
    if text.startswith(ERROR_PREFIX.encode()):
        code = re.split(rb"[ \r\n]", text[len(ERROR_PREFIX) :], maxsplit=1)[0].decode(
            "utf-8", "replace"
        )
        spec = ERRORS.get(code)
        outcome = Outcome.RETRY if spec is not None and spec.retryable else Outcome.FATAL
        return Attempt(outcome, f"server answered: {shown}")
    if not REPLY_RE.fullmatch(text):
        return Attempt(Outcome.FATAL, f'unexpected answer: "{shown[:200]}"')
    return Attempt(Outcome.REPLY, line=line)


def _connect(settings: ClientConfig) -> tuple[socket.socket | None, str]:
    """Resolve the target and connect to the first address that accepts."""
    try:
        infos = socket.getaddrinfo(
            settings.target_host,
            settings.target_port,
            type=socket.SOCK_STREAM,
            flags=socket.AI_NUMERICSERV,
        )
    except socket.gaierror as exc:
        return None, f'cannot resolve "{settings.target_host}": {exc.strerror}'
    except UnicodeError as exc:
        return None, f'cannot resolve "{settings.target_host}": {exc}'
    reason = "no address"
    for family, socktype, proto, _, addr in infos:
        where = _fmt_addr(family, addr)
        try:
            sock = socket.socket(family, socktype, proto)
        except OSError as exc:
            reason = f"{where}: socket: {_os_reason(exc)}"
            continue
        try:
            sock.settimeout(settings.client_timeout)
            sock.connect(addr)
        except TimeoutError:
            sock.close()
            reason = f"{where}: connect timed out after {_fmt_seconds(settings.client_timeout)} s"
            continue
        except OSError as exc:
            sock.close()
            reason = f"{where}: connect: {_os_reason(exc)}"
            continue
        return sock, ""
    return None, reason


def _exchange(sock: socket.socket, timeout: float) -> tuple[bytes, str]:
    """Send the request and read until EOF, REPLY_CAP bytes, or the deadline. Returns the
    bytes and how it ended ("send-timeout" / "send: <error>" when the request did not go)."""
    deadline = time.monotonic() + timeout
    try:
        sock.settimeout(timeout)
        sock.sendall(REQUEST)
    except TimeoutError:
        return b"", "send-timeout"
    except OSError as exc:
        return b"", f"send: {_os_reason(exc)}"
    data = bytearray()
    while len(data) < REPLY_CAP:
        left = deadline - time.monotonic()
        if left <= 0:
            return bytes(data), "timeout"
        try:
            sock.settimeout(left)
            chunk = sock.recv(REPLY_CAP - len(data))
        except TimeoutError:
            return bytes(data), "timeout"
        except ConnectionResetError:
            return bytes(data), "reset"
        except ssl.SSLError as exc:  # e.g. a TLS 1.3 server refusing our certificate
            return bytes(data), _tls_reason(exc)
        except OSError as exc:
            return bytes(data), _os_reason(exc)
        if not chunk:
            return bytes(data), "eof"
        data += chunk
    return bytes(data), "cap"


def tls_context(settings: ClientConfig) -> ssl.SSLContext | None:
    """The TLS context TLS_CA_FILE asks for (None: plaintext); ConfigError when a file cannot
    be used."""
    if not settings.tls_ca_file:
        return None
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.tls_ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"TLS_CA_FILE (--tls-ca-file): cannot load "
                          f"'{settings.tls_ca_file}': {_tls_reason(exc)}") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.tls_client_cert_file:
        try:
            ctx.load_cert_chain(settings.tls_client_cert_file, settings.tls_client_key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"TLS_CLIENT_CERT_FILE (--tls-client-cert-file): cannot load "
                              f"'{settings.tls_client_cert_file}': {_tls_reason(exc)}") from None
    return ctx


def _tls_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        if exc.reason:
            return str(exc.reason).lower().replace("_", " ")
        # No reason name (e.g. a PEM file that is not one): OpenSSL's text without Python's
        # "[SSL: X] ... (_ssl.c:N)" decoration, as the C client prints it.
        text = re.sub(r"^\[[^]]*\]\s*|\s*\(_ssl\.c:\d+\)$", "", exc.strerror or str(exc))
        return text.lower() or type(exc).__name__
    if isinstance(exc, OSError):
        return _os_reason(exc)
    return str(exc)


def _handshake(sock: socket.socket, ctx: ssl.SSLContext, settings: ClientConfig,
               ) -> tuple[socket.socket | None, Attempt | None]:
    """TLS over a connected socket: (the TLS socket, None) or (None, why it failed). The caller
    closes sock on failure."""
    name = settings.tls_server_name or settings.target_host
    try:
        sock.settimeout(settings.client_timeout)
        return ctx.wrap_socket(sock, server_hostname=name), None
    except TimeoutError:
        return None, Attempt(Outcome.RETRY, "TLS handshake timed out after "
                             f"{_fmt_seconds(settings.client_timeout)} s")
    except (ssl.SSLEOFError, ConnectionError) as exc:  # cut short: the server may be restarting
        return None, Attempt(Outcome.RETRY, f"TLS handshake: {_tls_reason(exc)}")
    except ssl.SSLError as exc:  # not verified, or not TLS: never plaintext instead
        return None, Attempt(Outcome.FATAL, f"TLS handshake failed: {_tls_reason(exc)}")
    except (ValueError, UnicodeError) as exc:  # a name ssl refuses (e.g. ".example")
        return None, Attempt(Outcome.FATAL, f"TLS handshake failed: {exc}")
    except OSError as exc:
        return None, Attempt(Outcome.RETRY, f"TLS handshake: {_os_reason(exc)}")


def run_attempt(settings: ClientConfig, ctx: ssl.SSLContext | None = None) -> Attempt:
    """One attempt: a fresh connection (over TLS when ctx is given), closed on every path."""
    sock, reason = _connect(settings)
    if sock is None:
        return Attempt(Outcome.RETRY, reason)
    if ctx is not None:
        tls, failed = _handshake(sock, ctx, settings)
        if tls is None:
            sock.close()
            assert failed is not None
            return failed
        sock = tls
    with sock:
        data, end = _exchange(sock, settings.client_timeout)
    if end == "send-timeout":
        return Attempt(Outcome.RETRY, "timed out sending the request")
    if end.startswith("send: "):
        return Attempt(Outcome.RETRY, end)
    return judge(data, end, settings.client_timeout)


def run(
    settings: ClientConfig,
    *,
    attempt: Callable[[ClientConfig], Attempt] = run_attempt,
    sleep: Callable[[float], None] = time.sleep,
    out: Callable[[bytes], None] | None = None,
    err: Callable[[str], None] | None = None,
) -> int:
    """The retry loop; returns the exit status."""
    if out is None:
        out = _write_stdout
    if err is None:
        err = _write_stderr
    delays = backoff_delays(settings)
    number = 0
    while True:
        number += 1
        result = attempt(settings)
        if result.outcome is Outcome.REPLY:
            try:
                out(result.line)
            except OSError as exc:
                err(f"{PROG}: cannot write the reply: {_os_reason(exc)}")
                return EXIT_FAILED
            return EXIT_REPLY
        if result.outcome is Outcome.FATAL:
            err(f"{PROG}: {target(settings)}: {result.reason}")
            return EXIT_FAILED
        delay = next(delays, None)
        if delay is None:
            plural = "" if number == 1 else "s"
            err(
                f"{PROG}: giving up on {target(settings)} after {number} attempt{plural}; "
                f"last error: {result.reason}"
            )
            return EXIT_FAILED
        err(
            f"{PROG}: attempt {number}/{settings.client_retries} to {target(settings)} failed: "
            f"{result.reason}; retrying in {_fmt_seconds(delay)} s"
        )
        sleep(delay)


def _write_stdout(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _write_stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    environ = os.environ if environ is None else environ
    try:
        action, settings = load(argv, environ)
    except ConfigError as exc:
        print(f"{PROG}: bad setting: {exc} (see {PROG} --help)", file=sys.stderr)
        return EXIT_USAGE
    if action is Action.HELP:
        sys.stdout.write(usage(PROG))
        return EXIT_REPLY
    if action is Action.VERSION:
        print(f"{PROG} {__version__} (protocol {PROTOCOL_VERSION})")
        return EXIT_REPLY
    if settings is None:  # only HELP and VERSION come without settings
        return EXIT_USAGE
    if action is Action.CHECK:
        sys.stdout.write(describe_config(settings))
        return EXIT_REPLY
    try:
        ctx = tls_context(settings)
    except ConfigError as exc:
        print(f"{PROG}: bad setting: {exc} (see {PROG} --help)", file=sys.stderr)
        return EXIT_USAGE
    try:
        if ctx is None:
            return run(settings)
        return run(settings, attempt=lambda s: run_attempt(s, ctx))
    except KeyboardInterrupt:
        return 130

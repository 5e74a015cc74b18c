"""Health and metrics over HTTP on HEALTH_PORT (design.md section 4), in its own thread.

``/healthz`` 200 while the server's loops run (503 naming the stalled part otherwise),
``/readyz`` 200 while the reader's database session works (503 otherwise, and from the start of
a shutdown), ``/metrics`` the Prometheus text format 0.0.4, anything else 404 (405 for methods
other than GET and HEAD). One request per connection, ``Connection: close``.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .generated.protocol import CONN_HEALTH_LISTEN_BACKLOG, CONN_HEALTH_MAX_CONNECTIONS
from .metrics import CONTENT_TYPE

TEXT = "text/plain; charset=utf-8"


class _HTTPServer(ThreadingHTTPServer):
    """One thread per connection, CONN_HEALTH_MAX_CONNECTIONS at most (C: health.c's slots):
    a new connection beyond them takes the place of the oldest, whose socket is shut down
    (its thread then sees EOF and ends). A flood of idle connections can thus neither hold
    the health port nor use up the process's descriptors."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = CONN_HEALTH_LISTEN_BACKLOG

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._open: OrderedDict[int, socket.socket] = OrderedDict()
        self._open_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            while len(self._open) >= CONN_HEALTH_MAX_CONNECTIONS:
                _, oldest = self._open.popitem(last=False)
                with contextlib.suppress(OSError):
                    oldest.shutdown(socket.SHUT_RDWR)
            self._open[id(request)] = request
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.pop(id(request), None)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client gone mid-answer (or shed) is no error of the server's: no traceback."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class HealthServer:
    def __init__(self, host: str, port: int, problem: Callable[[], str],
                 ready: Callable[[], bool], metrics: Callable[[], bytes]) -> None:
        """problem() names what stalled ("" when healthy); ready() is /readyz."""
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                    flags=socket.AI_PASSIVE)[0][0]
        handler = _make_handler(problem, ready, metrics)
        server_class = type("HealthHTTPServer", (_HTTPServer,), {"address_family": family})
        self.httpd: ThreadingHTTPServer = server_class((host, port), handler)
        self.port: int = self.httpd.server_address[1]
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
            name="points-health", daemon=True,
        )

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        if self._thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()


def _make_handler(problem: Callable[[], str], ready: Callable[[], bool],
                  metrics: Callable[[], bytes]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"
        # A request line without a version is answered with a status line too, as the C
        # server does (http.server would take it for HTTP/0.9 and send a bare body).
        default_request_version = "HTTP/1.0"
        server_version = "points-server"
        sys_version = ""
        timeout = 5  # a silent client cannot hold a handler thread
        # http.server's own errors (a malformed request line, headers) in plain text, like
        # the C server's, not its HTML page.
        error_content_type = TEXT
        error_message_format = "%(message)s\n"

        def send_response_only(self, code: int, message: str | None = None) -> None:
            # A request line that names HTTP/0.9 (or that http.server splits at a Unicode
            # space into one that does) is answered with a status line too: http.server would
            # send a bare body (fuzz/py/health.py found it).
            if self.request_version == "HTTP/0.9":
                self.request_version = "HTTP/1.0"
            super().send_response_only(code, message)

        def do_GET(self) -> None:
            self._answer(head=False)

        def do_HEAD(self) -> None:
            self._answer(head=True)

        def _not_allowed(self) -> None:
            self._send(405, TEXT, b"method not allowed\n", head=False)

        do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

        def _answer(self, head: bool) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                why = problem()
                body = f"{why}\n".encode() if why else b"ok\n"
                self._send(503 if why else 200, TEXT, body, head)
            elif path == "/readyz":
                ok = ready()
                self._send(200 if ok else 503, TEXT, b"ready\n" if ok else b"not ready\n", head)
            elif path == "/metrics":
                self._send(200, CONTENT_TYPE, metrics(), head)
            else:
                self._send(404, TEXT, b"not found\n", head)

        def _send(self, status: int, content_type: str, body: bytes, head: bool) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # no access log: stdout carries only the protocol's JSON events

    return Handler

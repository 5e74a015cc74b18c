"""Entry point (``python -m points_server`` / ``python-server``): settings, wiring, signals.

Exit status: 0 after a graceful shutdown (and for --help / --version), 2 for a bad setting,
1 when the ports cannot be opened.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Sequence

from . import LANGUAGE, SERVICE, __version__, config
from .config import ServerConfig
from .generated import log_events
from .generated.protocol import SLOT_REQUESTS_TOTAL
from .health import HealthServer
from .log import Logger
from .metrics import Metrics, make_registry, render
from .reader import Coalescer, Reader, ReadResult
from .server import Server
from .tls import Tls, TlsError
from .updater import Updater

HEARTBEAT_SECONDS = 1.0
STALL_SECONDS = 10.0  # /healthz fails when the event loop has not ticked for this long
# The database thread and the event loop share the GIL: a short switch interval lets the
# reader run its read promptly even while the loop is saturated with connections.
SWITCH_INTERVAL = 0.001


def _quiet_libraries() -> None:
    """Only the protocol's JSON events go to stdout: silence the driver's warnings. (asyncio
    still reports a genuine bug on stderr, as Python does for an uncaught exception.)"""
    warnings.simplefilter("ignore")
    logging.getLogger("mysql.connector").setLevel(logging.CRITICAL)


class App:
    """The running server: event loop, reader and updater threads, health endpoint."""

    def __init__(self, cfg: ServerConfig, log: Logger) -> None:
        self.cfg = cfg
        self.log = log
        self.metrics = Metrics({"language": LANGUAGE, "version": __version__})
        self.registry = make_registry(self.metrics)
        self.loop = asyncio.new_event_loop()
        self.heartbeat = time.monotonic()
        self.reader = Reader(cfg, log, self.metrics, self._deliver)
        self.coalescer = Coalescer(self.reader, cfg.max_staleness)
        self.server: Server | None = None  # run() makes it, once TLS (if any) is loaded
        self.updater = Updater(cfg, log, self.metrics) if cfg.update_interval > 0 else None
        self.health: HealthServer | None = None

    def _deliver(self, result: ReadResult) -> None:
        self.loop.call_soon_threadsafe(self.coalescer.deliver, result)

    def _tick(self) -> None:
        self.heartbeat = time.monotonic()
        self.loop.call_later(HEARTBEAT_SECONDS, self._tick)

    def _on_signal(self, name: str) -> None:
        assert self.server is not None
        self.server.shutdown(name)
        if self.updater is not None:
            self.updater.stop()  # it releases the lock now: another replica may take over

    def health_problem(self) -> str:
        """What stopped running ("" while the event loop ticks and the threads live)."""
        if time.monotonic() - self.heartbeat > STALL_SECONDS:
            return "event loop stalled"
        threads: list[threading.Thread | None] = [self.reader, self.updater]
        for thread in threads:
            if thread is not None and not thread.is_alive():
                return f"{thread.name} thread stopped"
        return ""

    def ready(self) -> bool:
        return self.reader.up and self.server is not None and not self.server.shutting_down

    def run(self) -> int:
        cfg = self.cfg
        tls = None
        if cfg.tls_cert_file:
            try:
                tls = Tls(cfg)
            except TlsError as exc:
                return self._cannot_start("cannot load the TLS certificate", exc)
        self.server = server = Server(cfg, self.loop, self.log, self.metrics, self.coalescer, tls)
        try:
            listener = Server.bind(cfg.server_host, cfg.server_port, cfg.listen_backlog)
        except OSError as exc:
            return self._cannot_start(f"cannot listen on {cfg.server_host}:{cfg.server_port}", exc)
        if cfg.health_port:
            try:
                self.health = HealthServer(cfg.health_host, cfg.health_port, self.health_problem,
                                           self.ready, lambda: render(self.registry))
            except OSError as exc:
                listener.close()
                return self._cannot_start(
                    f"cannot listen on {cfg.health_host}:{cfg.health_port}", exc)
        asyncio.set_event_loop(self.loop)
        self.loop.set_exception_handler(self._on_loop_error)
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self._on_signal, sig.name)
        self.reader.start()
        if self.updater is not None:
            self.updater.start()
        if self.health is not None:
            self.health.start()
        self.loop.run_until_complete(server.start(listener))
        self._tick()
        log_events.listening(self.log, addr=cfg.server_host, port=listener.getsockname()[1],
                     health_port=self.health.port if self.health else 0)
        self.loop.run_until_complete(server.finished)
        self._stop_threads()
        log_events.stopped(self.log, served=self.metrics.value[SLOT_REQUESTS_TOTAL])
        server.close()
        self.loop.close()
        return 0

    def _stop_threads(self) -> None:
        """Stop the updater (it releases the lock) and the reader; close their sessions."""
        limit = self.cfg.db_connect_timeout + self.cfg.db_query_timeout + 1
        if self.updater is not None:
            self.updater.stop()
        self.reader.stop()
        deadline = time.monotonic() + limit
        for thread in (self.updater, self.reader):
            if thread is not None and thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))
        if self.health is not None:
            self.health.stop()

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        """An exception nothing else caught (a bug): one internal_error line, keep serving."""
        exc = context.get("exception")
        error = f"{type(exc).__name__}: {exc}" if exc is not None else "no exception"
        log_events.internal_error(self.log, where=str(context.get("message", "event loop")),
                     error=error)

    def _cannot_start(self, what: str, exc: Exception) -> int:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        message = f"{what}: {detail}"
        log_events.start_failed(self.log, error=message)
        print(f"python-server: {message}", file=sys.stderr)
        self.loop.close()
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        action, cfg = config.load(args, os.environ)
    except config.ConfigError as exc:
        log_events.config_error(Logger(config.user_hint(args, os.environ)), error=str(exc))
        print(f"{SERVICE}: bad setting: {exc}", file=sys.stderr)
        return 2
    if action is config.Action.HELP:
        text = config.help_text()
    elif action is config.Action.VERSION:
        text = f"{SERVICE} {__version__}"
    elif action is config.Action.CHECK and cfg is not None:
        text = config.describe_config(cfg)
    if action is not config.Action.RUN or cfg is None:
        try:
            print(text, flush=True)
        except BrokenPipeError:  # e.g. `--help | head`
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    log = Logger(cfg.server_user, cfg.log_level)
    log_events.starting(log, version=__version__, pid=os.getpid())
    _quiet_libraries()
    sys.setswitchinterval(SWITCH_INTERVAL)
    return App(cfg, log).run()


if __name__ == "__main__":
    sys.exit(main())

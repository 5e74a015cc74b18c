"""Generated from protocol/protocol.toml by `make render`. Do not edit.

Template: protocol/templates/log_events.py.j2. One typed function per log event of
protocol.toml: ``log_events.<event>(log, <its fields by name>)``; a missing, extra or mistyped
field fails the type check. Mirror: services/c-server/src/generated/log_events.h.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..log import Logger


def starting(log: Logger, *, version: str, pid: int) -> None:
    log.log("starting", version=version, pid=pid)


def listening(log: Logger, *, addr: str, port: int, health_port: int) -> None:
    log.log("listening", addr=addr, port=port, health_port=health_port)


def db_connected(log: Logger, *, role: str, host: str, port: int) -> None:
    log.log("db_connected", role=role, host=host, port=port)


def db_error(log: Logger, *, role: str, op: str, error: str, retry_in: float) -> None:
    log.log("db_error", role=role, op=op, error=error, retry_in=retry_in)


def row_created(log: Logger) -> None:
    log.log("row_created")


def lock_acquired(log: Logger, *, lock: str, first_update_in: float) -> None:
    log.log("lock_acquired", lock=lock, first_update_in=first_update_in)


def lock_lost(log: Logger, *, lock: str, error: str) -> None:
    log.log("lock_lost", lock=lock, error=error)


def updated(log: Logger, *, points: int) -> None:
    log.log("updated", points=points)


def request(log: Logger, *, peer: str, outcome: str, duration_ms: float) -> None:
    log.log("request", peer=peer, outcome=outcome, duration_ms=duration_ms)


def tls_loaded(log: Logger, *, cert_file: str, client_ca: str) -> None:
    log.log("tls_loaded", cert_file=cert_file, client_ca=client_ca)


def tls_reload_failed(log: Logger, *, cert_file: str, error: str) -> None:
    log.log("tls_reload_failed", cert_file=cert_file, error=error)


def tls_handshake_failed(log: Logger, *, peer: str, reason: str, error: str) -> None:
    log.log("tls_handshake_failed", peer=peer, reason=reason, error=error)


def connections_limited(log: Logger, *, max_connections: int, limit: int, nofile: int) -> None:
    log.log("connections_limited", max_connections=max_connections, limit=limit, nofile=nofile)


def overload_started(log: Logger, *, reason: str, source: str, table: int, limit: int) -> None:
    log.log("overload_started", reason=reason, source=source, table=table, limit=limit)


def overload_ended(log: Logger, *, lasted: float, shed: int, refused: int) -> None:
    log.log("overload_ended", lasted=lasted, shed=shed, refused=refused)


def shutdown_started(log: Logger, *, signal: str, in_flight: int) -> None:
    log.log("shutdown_started", signal=signal, in_flight=in_flight)


def stopped(log: Logger, *, served: int) -> None:
    log.log("stopped", served=served)


def config_error(log: Logger, *, error: str) -> None:
    log.log("config_error", error=error)


def start_failed(log: Logger, *, error: str) -> None:
    log.log("start_failed", error=error)


def internal_error(log: Logger, *, where: str, error: str) -> None:
    log.log("internal_error", where=where, error=error)

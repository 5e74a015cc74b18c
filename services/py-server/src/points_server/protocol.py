"""Generated from protocol/protocol.toml by `make render`. Do not edit."""

# ruff: noqa: E501

from __future__ import annotations

from typing import Final, NamedTuple

PROTOCOL_VERSION: Final = 1
COMMAND: Final = "REQUEST_LATEST_POINTS"
MAX_LINE_BYTES: Final = 1024
ERROR_PREFIX: Final = "ERROR "
REPLY_FORMAT: Final = "User: {user}, Points: {points}, Last Update: {last_update}\n"


class ErrorSpec(NamedTuple):
    code: str
    message: str
    retryable: bool
    line: bytes


class Setting(NamedTuple):
    env: str
    flag: str
    default: str
    kind: str
    help: str


ERRORS: Final[dict[str, ErrorSpec]] = {
    "unknown-command": ErrorSpec("unknown-command", "expected REQUEST_LATEST_POINTS", False, b"ERROR unknown-command expected REQUEST_LATEST_POINTS\n"),
    "line-too-long": ErrorSpec("line-too-long", "request line exceeds 1024 bytes", False, b"ERROR line-too-long request line exceeds 1024 bytes\n"),
    "idle-timeout": ErrorSpec("idle-timeout", "no complete request before the idle timeout", False, b"ERROR idle-timeout no complete request before the idle timeout\n"),
    "db-unavailable": ErrorSpec("db-unavailable", "database unavailable, try again later", True, b"ERROR db-unavailable database unavailable, try again later\n"),
    "row-missing": ErrorSpec("row-missing", "the server's row does not exist", True, b"ERROR row-missing the server's row does not exist\n"),
    "server-busy": ErrorSpec("server-busy", "too many connections, try again later", True, b"ERROR server-busy too many connections, try again later\n"),
    "shutting-down": ErrorSpec("shutting-down", "server is shutting down", True, b"ERROR shutting-down server is shutting down\n"),
}

SERVER_SETTINGS: Final[tuple[Setting, ...]] = (
    Setting("SERVER_HOST", "--server-host", "0.0.0.0", "host", "address the points protocol listens on"),
    Setting("SERVER_PORT", "--server-port", "5001", "port", "TCP port of the points protocol"),
    Setting("SERVER_USER", "--server-user", "python_user", "row", "the users row this server owns, reports and increments"),
    Setting("HEALTH_HOST", "--health-host", "0.0.0.0", "host", "address of the HTTP port serving /healthz, /readyz and /metrics"),
    Setting("HEALTH_PORT", "--health-port", "8080", "port0", "HTTP port serving /healthz, /readyz and /metrics (0 disables it)"),
    Setting("DB_HOST", "--db-host", "database", "host", "MySQL/MariaDB host name or address"),
    Setting("DB_PORT", "--db-port", "3306", "port", "MySQL/MariaDB port"),
    Setting("DB_USER", "--db-user", "points_app", "string", "database account (least privilege: SELECT, INSERT, UPDATE on users)"),
    Setting("DB_PASS", "--db-pass", "", "secret", "database password (prefer DB_PASS_FILE)"),
    Setting("DB_PASS_FILE", "--db-pass-file", "", "path", "file holding the database password; wins over DB_PASS"),
    Setting("DB_NAME", "--db-name", "project_db", "string", "database name"),
    Setting("DB_TIMEZONE", "--db-timezone", "+08:00", "string", "session time zone for NOW() and the reported timestamps"),
    Setting("DB_CONNECT_TIMEOUT", "--db-connect-timeout", "3", "duration", "seconds allowed to open a database connection (drivers round up to whole seconds)"),
    Setting("DB_QUERY_TIMEOUT", "--db-query-timeout", "5", "duration", "seconds allowed for one database read or write (drivers round up to whole seconds)"),
    Setting("UPDATE_INTERVAL", "--update-interval", "30", "duration0", "seconds between increments of the row (0 disables the updater)"),
    Setting("LOCK_NAME", "--lock-name", "", "string", "MySQL named lock that elects the one updating replica (default points:<SERVER_USER>)"),
    Setting("IDLE_TIMEOUT", "--idle-timeout", "10", "duration", "seconds a client may take to send its request"),
    Setting("REQUEST_GRACE", "--request-grace", "0.05", "duration", "seconds to wait for a terminator after a complete command before answering it anyway"),
    Setting("MAX_CONNECTIONS", "--max-connections", "4096", "count", "open client connections at most; more get ERROR server-busy"),
    Setting("LISTEN_BACKLOG", "--listen-backlog", "4096", "count", "listen queue length (capped by net.core.somaxconn)"),
    Setting("SHUTDOWN_TIMEOUT", "--shutdown-timeout", "10", "duration", "seconds in-flight requests get to finish after SIGTERM"),
    Setting("MAX_STALENESS", "--max-staleness", "0", "duration0", "seconds a database read may be reused for later requests (0: every reply comes from a read started after its request arrived)"),
    Setting("LOG_LEVEL", "--log-level", "info", "level", "debug, info, warn or error"),
)

# SQL statements; '?' marks a bound parameter.
SQL_SET_TIME_ZONE: Final = "SET time_zone = ?"
SQL_SET_WAIT_TIMEOUT: Final = "SET SESSION wait_timeout = ?"
SQL_SELECT_ROW: Final = "SELECT points, DATE_FORMAT(datetime_stamp, '%Y-%m-%d %H:%i:%s') FROM users WHERE user = ?"
SQL_ENSURE_ROW: Final = "INSERT INTO users (user, points, datetime_stamp) VALUES (?, 0, NOW()) ON DUPLICATE KEY UPDATE user = user"
SQL_GET_LOCK: Final = "SELECT GET_LOCK(?, 0)"
SQL_RELEASE_LOCK: Final = "SELECT RELEASE_LOCK(?)"
SQL_SECONDS_SINCE_UPDATE: Final = "SELECT TIMESTAMPDIFF(SECOND, datetime_stamp, NOW()) FROM users WHERE user = ?"
SQL_INCREMENT: Final = "UPDATE users SET points = points + 1, datetime_stamp = NOW() WHERE user = ? AND IS_USED_LOCK(?) = CONNECTION_ID()"


class MetricSpec(NamedTuple):
    name: str
    type: str
    help: str
    labels: tuple[str, ...]
    label_values: dict[str, tuple[str, ...]]


METRICS: Final[tuple[MetricSpec, ...]] = (
    MetricSpec("points_connections_total", "counter", "TCP connections accepted.", (), {}),
    MetricSpec("points_connections_active", "gauge", "TCP connections open now.", (), {}),
    MetricSpec("points_requests_total", "counter", "Replies sent, errors included.", (), {}),
    MetricSpec("points_errors_total", "counter", "Error replies sent, by code.", ("code",), {"code": ("unknown-command", "line-too-long", "idle-timeout", "db-unavailable", "row-missing", "server-busy", "shutting-down")}),
    MetricSpec("points_request_duration_seconds", "histogram", "Seconds from a complete request to its reply being written (0 for errors before a complete request).", (), {}),
    MetricSpec("points_db_reads_total", "counter", "Reads of the row; one read may answer many waiting requests.", (), {}),
    MetricSpec("points_db_errors_total", "counter", "Failed database operations, by operation.", ("op",), {"op": ("connect", "read", "update", "lock")}),
    MetricSpec("points_db_up", "gauge", "1 while the request path holds a working database connection.", (), {}),
    MetricSpec("points_updates_total", "counter", "Increments of the row committed by this process.", (), {}),
    MetricSpec("points_update_lock_held", "gauge", "1 while this process holds the updater lock.", (), {}),
    MetricSpec("points_build_info", "gauge", "Always 1; labels name the implementation.", ("language", "version"), {}),
)
DURATION_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

# Logs: common leading fields, then per event (level, own fields).
LOG_COMMON_FIELDS: Final = ("ts", "level", "service", "user", "event")
LOG_EVENTS: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    "starting": ("info", ("version", "pid")),
    "listening": ("info", ("addr", "port", "health_port")),
    "db_connected": ("info", ("role", "host", "port")),
    "db_error": ("warn", ("role", "op", "error", "retry_in")),
    "row_created": ("info", ()),
    "lock_acquired": ("info", ("lock", "first_update_in")),
    "lock_lost": ("warn", ("lock", "error")),
    "updated": ("info", ("points",)),
    "request": ("debug", ("peer", "outcome", "duration_ms")),
    "shutdown_started": ("info", ("signal", "in_flight")),
    "stopped": ("info", ("served",)),
    "config_error": ("error", ("error",)),
    "start_failed": ("error", ("error",)),
    "internal_error": ("error", ("where", "error")),
}

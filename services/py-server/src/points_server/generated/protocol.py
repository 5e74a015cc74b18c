"""Generated from protocol/protocol.toml by `make render`. Do not edit.

Template: protocol/templates/protocol.py.j2. The same file is rendered into the Python server
and the Python client (each package's generated/ folder).
"""

# ruff: noqa: E501

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, NamedTuple

# The release (the repository's VERSION file); read here rather than from the installed package
# metadata: importlib.metadata costs each process about 1 MB of memory.
VERSION: Final = "1.1.0"
PROTOCOL_VERSION: Final = 1
COMMAND: Final = "REQUEST_LATEST_POINTS"
MAX_LINE_BYTES: Final = 1024
ERROR_PREFIX: Final = "ERROR "
REPLY_FORMAT: Final = "User: {user}, Points: {points}, Last Update: {last_update}\n"
# A client connection (protocol.toml [connection]): its states, in order, and the numbers of
# its life cycle.
CONN_STATE_NAMES: Final = ("reading", "waiting", "writing", "linger", "closed")
CONN_READING: Final = 0
CONN_WAITING: Final = 1
CONN_WRITING: Final = 2
CONN_LINGER: Final = 3
CONN_CLOSED: Final = 4
CONN_LINGER_SECONDS: Final = 2.0
CONN_ACCEPT_BATCH: Final = 256
CONN_ACCEPT_PAUSE_SECONDS: Final = 0.1
CONN_TLS_RELOAD_CHECK_SECONDS: Final = 1.0
CONN_BUSY_EXTRA: Final = 64
CONN_DESCRIPTORS_RESERVED: Final = 160
CONN_SHED_SCAN: Final = 64
CONN_HANDSHAKES_MAX: Final = 256
CONN_OVERLOAD_QUIET_SECONDS: Final = 1.0
CONN_HEALTH_MAX_CONNECTIONS: Final = 32
CONN_HEALTH_LISTEN_BACKLOG: Final = 1024
CONN_SHUTDOWN_LINGER_SECONDS: Final = 0.5
# A reply line without its newline (fullmatch), fields as named groups.
REPLY_RE: Final = re.compile(b'User:\\ (?P<user>[^\\x00\x01-\x1f\x7f,]{1,50}),\\ Points:\\ (?P<points>-?[0-9]{1,20}),\\ Last\\ Update:\\ (?P<last_update>[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2})')
# A failed TLS handshake's result (points_tls_handshakes_total), by OpenSSL reason name
# (protocol.toml [tls.failure_reason]); any other reason counts as "protocol".
TLS_FAILURE_RESULT: Final[dict[str, str]] = {
    "WRONG_VERSION_NUMBER": "not-tls",
    "HTTP_REQUEST": "not-tls",
    "HTTPS_PROXY_REQUEST": "not-tls",
    "UNKNOWN_PROTOCOL": "not-tls",
    "PACKET_LENGTH_TOO_LONG": "not-tls",
    "RECORD_LENGTH_MISMATCH": "not-tls",
    "UNSUPPORTED_PROTOCOL": "not-tls",
    "VERSION_TOO_LOW": "not-tls",
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "certificate",
    "CERTIFICATE_VERIFY_FAILED": "certificate",
    "SSLV3_ALERT_BAD_CERTIFICATE": "certificate",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "certificate",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "certificate",
    "TLSV1_ALERT_UNKNOWN_CA": "certificate",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "certificate",
    "NO_CERTIFICATE_RETURNED": "certificate",
}


class ErrorSpec(NamedTuple):
    code: str
    message: str
    retryable: bool
    line: bytes


ERRORS: Final[dict[str, ErrorSpec]] = {
    "unknown-command": ErrorSpec("unknown-command", "expected REQUEST_LATEST_POINTS", False, b'ERROR unknown-command expected REQUEST_LATEST_POINTS\n'),
    "line-too-long": ErrorSpec("line-too-long", "request line exceeds 1024 bytes", False, b'ERROR line-too-long request line exceeds 1024 bytes\n'),
    "idle-timeout": ErrorSpec("idle-timeout", "no complete request before the idle timeout", False, b'ERROR idle-timeout no complete request before the idle timeout\n'),
    "db-unavailable": ErrorSpec("db-unavailable", "database unavailable, try again later", True, b'ERROR db-unavailable database unavailable, try again later\n'),
    "row-missing": ErrorSpec("row-missing", "the server's row does not exist", True, b"ERROR row-missing the server's row does not exist\n"),
    "server-busy": ErrorSpec("server-busy", "too many connections, try again later", True, b'ERROR server-busy too many connections, try again later\n'),
    "shutting-down": ErrorSpec("shutting-down", "server is shutting down", True, b'ERROR shutting-down server is shutting down\n'),
}
# The index of each code (C: enum pts_error), e.g. for its series of points_errors_total.
ERROR_INDEX: Final[dict[str, int]] = {code: i for i, code in enumerate(ERRORS)}


class SettingKind(NamedTuple):
    """How a setting's text is read (protocol.toml, [setting_kind.*]); generated/settings.py
    applies it."""

    name: str
    type: str  # "int", "seconds", "text" or "choice"
    min: float
    max: float
    min_exclusive: bool
    min_bytes: int
    max_bytes: int
    no_space: bool
    no_comma: bool
    brackets: bool
    secret: bool
    choices: tuple[str, ...]
    aliases: dict[str, str]
    expect: str


SETTING_KINDS: Final[dict[str, SettingKind]] = {
    "host": SettingKind("host", "text", 0.0, 0.0, False, 1, 255, True, False, True, False, (), {}, "a host name or address"),
    "port": SettingKind("port", "int", 1.0, 65535.0, False, 0, 0, False, False, False, False, (), {}, "a port number 1-65535"),
    "port0": SettingKind("port0", "int", 0.0, 65535.0, False, 0, 0, False, False, False, False, (), {}, "a port number 0-65535 (0 disables)"),
    "count": SettingKind("count", "int", 1.0, 10000000.0, False, 0, 0, False, False, False, False, (), {}, "a whole number 1-10000000"),
    "count0": SettingKind("count0", "int", 0.0, 10000000.0, False, 0, 0, False, False, False, False, (), {}, "a whole number 0-10000000 (0 disables)"),
    "duration": SettingKind("duration", "seconds", 0.0, 31536000.0, True, 0, 0, False, False, False, False, (), {}, "a number of seconds > 0 (at most a year)"),
    "duration0": SettingKind("duration0", "seconds", 0.0, 31536000.0, False, 0, 0, False, False, False, False, (), {}, "a number of seconds >= 0 (at most a year)"),
    "row": SettingKind("row", "text", 0.0, 0.0, False, 1, 50, True, True, False, False, (), {}, "a row name of 1-50 bytes without spaces or commas"),
    "lock": SettingKind("lock", "text", 0.0, 0.0, False, 0, 64, False, False, False, False, (), {}, "a lock name of at most 64 bytes"),
    "string": SettingKind("string", "text", 0.0, 0.0, False, 0, 255, False, False, False, False, (), {}, "at most 255 bytes of text"),
    "secret": SettingKind("secret", "text", 0.0, 0.0, False, 0, 255, False, False, False, True, (), {}, "at most 255 bytes of text"),
    "path": SettingKind("path", "text", 0.0, 0.0, False, 0, 4095, False, False, False, False, (), {}, "a file path"),
    "host0": SettingKind("host0", "text", 0.0, 0.0, False, 0, 255, True, False, True, False, (), {}, "a host name or address (or nothing)"),
    "level": SettingKind("level", "choice", 0.0, 0.0, False, 0, 0, False, False, False, False, ("debug", "info", "warn", "error"), {"warning": "warn"}, "one of debug, info, warn, error"),
    "db_tls_mode": SettingKind("db_tls_mode", "choice", 0.0, 0.0, False, 0, 0, False, False, False, False, ("auto", "disabled", "preferred", "required", "verify-ca", "verify-identity"), {}, "one of auto, disabled, preferred, required, verify-ca, verify-identity"),
}


class Setting(NamedTuple):
    env: str
    flag: str
    default: str
    kind: SettingKind
    help: str
    requires: tuple[str, ...] = ()  # settings that must be set too when this one is

    @property
    def field(self) -> str:
        """The name of its field in ServerConfig / ClientConfig."""
        return self.env.lower()


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The server settings, typed: one field per setting, named like its variable."""

    server_host: str
    server_port: int
    server_user: str
    health_host: str
    health_port: int
    db_host: str
    db_port: int
    db_user: str
    db_pass: str
    db_pass_file: str
    db_name: str
    db_timezone: str
    db_connect_timeout: float
    db_query_timeout: float
    update_interval: float
    lock_name: str
    idle_timeout: float
    request_grace: float
    max_connections: int
    max_connections_per_source: int
    listen_backlog: int
    shutdown_timeout: float
    max_staleness: float
    tls_cert_file: str
    tls_key_file: str
    tls_client_ca_file: str
    db_tls_mode: str
    db_tls_ca_file: str
    log_level: str


SERVER_SETTINGS: Final[tuple[Setting, ...]] = (
    Setting("SERVER_HOST", "--server-host", "0.0.0.0", SETTING_KINDS["host"], "address the points protocol listens on"),
    Setting("SERVER_PORT", "--server-port", "5001", SETTING_KINDS["port"], "TCP port of the points protocol"),
    Setting("SERVER_USER", "--server-user", "python_user", SETTING_KINDS["row"], "the users row this server owns, reports and increments"),
    Setting("HEALTH_HOST", "--health-host", "0.0.0.0", SETTING_KINDS["host"], "address of the HTTP port serving /healthz, /readyz and /metrics"),
    Setting("HEALTH_PORT", "--health-port", "8080", SETTING_KINDS["port0"], "HTTP port serving /healthz, /readyz and /metrics (0 disables it)"),
    Setting("DB_HOST", "--db-host", "database", SETTING_KINDS["host"], "MySQL/MariaDB host name or address"),
    Setting("DB_PORT", "--db-port", "3306", SETTING_KINDS["port"], "MySQL/MariaDB port"),
    Setting("DB_USER", "--db-user", "points_app", SETTING_KINDS["string"], "database account (least privilege: SELECT, INSERT, UPDATE on users)"),
    Setting("DB_PASS", "--db-pass", "", SETTING_KINDS["secret"], "database password (prefer DB_PASS_FILE)"),
    Setting("DB_PASS_FILE", "--db-pass-file", "", SETTING_KINDS["path"], "file holding the database password; wins over DB_PASS"),
    Setting("DB_NAME", "--db-name", "project_db", SETTING_KINDS["string"], "database name"),
    Setting("DB_TIMEZONE", "--db-timezone", "+08:00", SETTING_KINDS["string"], "session time zone for NOW() and the reported timestamps"),
    Setting("DB_CONNECT_TIMEOUT", "--db-connect-timeout", "3", SETTING_KINDS["duration"], "seconds allowed to open a database connection (drivers round up to whole seconds)"),
    Setting("DB_QUERY_TIMEOUT", "--db-query-timeout", "5", SETTING_KINDS["duration"], "seconds allowed for one database read or write (drivers round up to whole seconds)"),
    Setting("UPDATE_INTERVAL", "--update-interval", "30", SETTING_KINDS["duration0"], "seconds between increments of the row (0 disables the updater)"),
    Setting("LOCK_NAME", "--lock-name", "", SETTING_KINDS["lock"], "MySQL named lock that elects the one updating replica (default points:<SERVER_USER>)"),
    Setting("IDLE_TIMEOUT", "--idle-timeout", "10", SETTING_KINDS["duration"], "seconds a client may take to send its request"),
    Setting("REQUEST_GRACE", "--request-grace", "0.05", SETTING_KINDS["duration"], "seconds to wait for a terminator after a complete command before answering it anyway"),
    Setting("MAX_CONNECTIONS", "--max-connections", "4096", SETTING_KINDS["count"], "open client connections at most (fewer when the descriptor limit is lower); when full, a new one takes the place of the oldest without a request"),
    Setting("MAX_CONNECTIONS_PER_SOURCE", "--max-connections-per-source", "512", SETTING_KINDS["count0"], "open client connections per source address at most (0: no limit); more get ERROR server-busy"),
    Setting("LISTEN_BACKLOG", "--listen-backlog", "4096", SETTING_KINDS["count"], "listen queue length (capped by net.core.somaxconn)"),
    Setting("SHUTDOWN_TIMEOUT", "--shutdown-timeout", "10", SETTING_KINDS["duration"], "seconds in-flight requests get to finish after SIGTERM"),
    Setting("MAX_STALENESS", "--max-staleness", "0", SETTING_KINDS["duration0"], "seconds a database read may be reused for later requests (0: every reply comes from a read started after its request arrived)"),
    Setting("TLS_CERT_FILE", "--tls-cert-file", "", SETTING_KINDS["path"], "certificate chain (PEM) of the points protocol port; with TLS_KEY_FILE the port speaks TLS only (empty: plaintext)", ("TLS_KEY_FILE",)),
    Setting("TLS_KEY_FILE", "--tls-key-file", "", SETTING_KINDS["path"], "private key (PEM) of TLS_CERT_FILE", ("TLS_CERT_FILE",)),
    Setting("TLS_CLIENT_CA_FILE", "--tls-client-ca-file", "", SETTING_KINDS["path"], "CA certificates (PEM): every client must present a certificate one of them signed (mutual TLS; empty: none asked)", ("TLS_CERT_FILE",)),
    Setting("DB_TLS_MODE", "--db-tls-mode", "auto", SETTING_KINDS["db_tls_mode"], "TLS of the database sessions: disabled (plaintext), preferred (TLS when the database offers it, unverified), required (TLS or no session, unverified), verify-ca (and the certificate signed by DB_TLS_CA_FILE), verify-identity (and issued for DB_HOST); auto: verify-identity with DB_TLS_CA_FILE, else preferred"),
    Setting("DB_TLS_CA_FILE", "--db-tls-ca-file", "", SETTING_KINDS["path"], "CA certificates (PEM) the database's certificate must chain to (DB_TLS_MODE verify-ca, verify-identity or auto)"),
    Setting("LOG_LEVEL", "--log-level", "info", SETTING_KINDS["level"], "debug, info, warn or error"),
)

@dataclass(frozen=True, slots=True)
class ClientConfig:
    """The client settings, typed: one field per setting, named like its variable."""

    target_host: str
    target_port: int
    client_retries: int
    client_retry_delay: float
    client_retry_max_delay: float
    client_timeout: float
    tls_ca_file: str
    tls_server_name: str
    tls_client_cert_file: str
    tls_client_key_file: str


CLIENT_SETTINGS: Final[tuple[Setting, ...]] = (
    Setting("TARGET_HOST", "--target-host", "localhost", SETTING_KINDS["host"], "server host name or address"),
    Setting("TARGET_PORT", "--target-port", "5001", SETTING_KINDS["port"], "server port"),
    Setting("CLIENT_RETRIES", "--client-retries", "10", SETTING_KINDS["count"], "attempts before giving up"),
    Setting("CLIENT_RETRY_DELAY", "--client-retry-delay", "0.5", SETTING_KINDS["duration"], "seconds before the second attempt; doubles per attempt"),
    Setting("CLIENT_RETRY_MAX_DELAY", "--client-retry-max-delay", "5", SETTING_KINDS["duration"], "longest wait between attempts"),
    Setting("CLIENT_TIMEOUT", "--client-timeout", "5", SETTING_KINDS["duration"], "seconds allowed to connect, and then to receive the reply"),
    Setting("TLS_CA_FILE", "--tls-ca-file", "", SETTING_KINDS["path"], "CA certificates (PEM) that signed the server's certificate: the client speaks TLS and verifies the server, never falling back to plaintext (empty: plaintext)"),
    Setting("TLS_SERVER_NAME", "--tls-server-name", "", SETTING_KINDS["host0"], "name the server's certificate must carry (empty: TARGET_HOST)", ("TLS_CA_FILE",)),
    Setting("TLS_CLIENT_CERT_FILE", "--tls-client-cert-file", "", SETTING_KINDS["path"], "client certificate chain (PEM) for servers that ask for one (mutual TLS)", ("TLS_CLIENT_KEY_FILE", "TLS_CA_FILE")),
    Setting("TLS_CLIENT_KEY_FILE", "--tls-client-key-file", "", SETTING_KINDS["path"], "private key (PEM) of TLS_CLIENT_CERT_FILE", ("TLS_CLIENT_CERT_FILE",)),
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
    """A metric on /metrics. shape "value" (counters and gauges): one value slot per series
    (per value of its one label, or one without a label), the first being ``slot``;
    "histogram": the duration buckets; "info": always 1, labels filled in by the program."""

    name: str
    type: str
    help: str
    labels: tuple[str, ...]
    shape: str
    series: tuple[str, ...]
    slot: int


METRICS: Final[tuple[MetricSpec, ...]] = (
    MetricSpec("points_connections_total", "counter", "TCP connections accepted.", (), "value", ("",), 0),
    MetricSpec("points_connections_active", "gauge", "TCP connections open now.", (), "value", ("",), 1),
    MetricSpec("points_connections_shed_total", "counter", "Connections closed early to make room for a new one while the table was full, by state: linger (answered; its linger cut short), reading (no complete request yet; told server-busy when it can be).", ("state",), "value", ("linger", "reading"), 2),
    MetricSpec("points_connections_refused_total", "counter", "New connections refused with ERROR server-busy, by reason: per-source (its address held MAX_CONNECTIONS_PER_SOURCE), full (the table held only connections with a request in progress).", ("reason",), "value", ("per-source", "full"), 4),
    MetricSpec("points_requests_total", "counter", "Replies sent, errors included.", (), "value", ("",), 6),
    MetricSpec("points_errors_total", "counter", "Error replies sent, by code.", ("code",), "value", ("unknown-command", "line-too-long", "idle-timeout", "db-unavailable", "row-missing", "server-busy", "shutting-down"), 7),
    MetricSpec("points_request_duration_seconds", "histogram", "Seconds from a complete request to its reply being written (0 for errors before a complete request).", (), "histogram", (), -1),
    MetricSpec("points_tls_handshakes_total", "counter", "TLS handshakes on the protocol port, by result: ok, or why one failed (not-tls: plaintext or another protocol; certificate: a client certificate missing or not verified; closed: the peer closed or reset first; timeout: unfinished after IDLE_TIMEOUT; protocol: any other TLS error).", ("result",), "value", ("ok", "not-tls", "certificate", "closed", "timeout", "protocol"), 14),
    MetricSpec("points_tls_reloads_total", "counter", "Times the certificate files changed and were read again, by result (failed: the previous certificate stays in use).", ("result",), "value", ("ok", "failed"), 20),
    MetricSpec("points_db_reads_total", "counter", "SELECTs of the row (as the database counts them); one may answer many waiting requests.", (), "value", ("",), 22),
    MetricSpec("points_db_errors_total", "counter", "Failed database operations, by operation.", ("op",), "value", ("connect", "read", "update", "lock"), 23),
    MetricSpec("points_db_up", "gauge", "1 while the request path holds a working database connection.", (), "value", ("",), 27),
    MetricSpec("points_updates_total", "counter", "Increments of the row committed by this process.", (), "value", ("",), 28),
    MetricSpec("points_update_lock_held", "gauge", "1 while this process holds the updater lock.", (), "value", ("",), 29),
    MetricSpec("points_build_info", "gauge", "Always 1; labels name the implementation.", ("language", "version"), "info", (), -1),
)
# The first value slot of each counter and gauge; a labelled one's series i is SLOT_X + i.
SLOT_CONNECTIONS_TOTAL: Final = 0
SLOT_CONNECTIONS_ACTIVE: Final = 1
SLOT_CONNECTIONS_SHED_TOTAL: Final = 2
SLOT_CONNECTIONS_REFUSED_TOTAL: Final = 4
SLOT_REQUESTS_TOTAL: Final = 6
SLOT_ERRORS_TOTAL: Final = 7
SLOT_TLS_HANDSHAKES_TOTAL: Final = 14
SLOT_TLS_RELOADS_TOTAL: Final = 20
SLOT_DB_READS_TOTAL: Final = 22
SLOT_DB_ERRORS_TOTAL: Final = 23
SLOT_DB_UP: Final = 27
SLOT_UPDATES_TOTAL: Final = 28
SLOT_UPDATE_LOCK_HELD: Final = 29
SLOTS_COUNT: Final = 30
DURATION_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Values of the op label of points_db_errors_total.
DB_OPS: Final = ("connect", "read", "update", "lock")
# Values of the result label of points_tls_handshakes_total (series i is SLOT_TLS_HANDSHAKES_TOTAL
# + i).
TLS_RESULTS: Final = ("ok", "not-tls", "certificate", "closed", "timeout", "protocol")

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
    "tls_loaded": ("info", ("cert_file", "client_ca")),
    "tls_reload_failed": ("warn", ("cert_file", "error")),
    "tls_handshake_failed": ("debug", ("peer", "reason", "error")),
    "connections_limited": ("warn", ("max_connections", "limit", "nofile")),
    "overload_started": ("warn", ("reason", "source", "table", "limit")),
    "overload_ended": ("info", ("lasted", "shed", "refused")),
    "shutdown_started": ("info", ("signal", "in_flight")),
    "stopped": ("info", ("served",)),
    "config_error": ("error", ("error",)),
    "start_failed": ("error", ("error",)),
    "internal_error": ("error", ("where", "error")),
}

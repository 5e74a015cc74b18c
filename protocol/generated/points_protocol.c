/* Generated from protocol/protocol.toml by `make render`. Do not edit. */
#include "points_protocol.h"

const char *const pts_error_code[PTS_ERR_COUNT] = {
    "unknown-command",
    "line-too-long",
    "idle-timeout",
    "db-unavailable",
    "row-missing",
    "server-busy",
    "shutting-down",
};

const char *const pts_error_line[PTS_ERR_COUNT] = {
    "ERROR unknown-command expected REQUEST_LATEST_POINTS\n",
    "ERROR line-too-long request line exceeds 1024 bytes\n",
    "ERROR idle-timeout no complete request before the idle timeout\n",
    "ERROR db-unavailable database unavailable, try again later\n",
    "ERROR row-missing the server's row does not exist\n",
    "ERROR server-busy too many connections, try again later\n",
    "ERROR shutting-down server is shutting down\n",
};

const unsigned char pts_error_retryable[PTS_ERR_COUNT] = {
    0,
    0,
    0,
    1,
    1,
    1,
    1,
};

const struct pts_setting pts_server_settings[PTS_SET_COUNT] = {
    {"SERVER_HOST", "--server-host", "0.0.0.0", "host", "address the points protocol listens on"},
    {"SERVER_PORT", "--server-port", "5001", "port", "TCP port of the points protocol"},
    {"SERVER_USER", "--server-user", "c_user", "row", "the users row this server owns, reports and increments"},
    {"HEALTH_HOST", "--health-host", "0.0.0.0", "host", "address of the HTTP port serving /healthz, /readyz and /metrics"},
    {"HEALTH_PORT", "--health-port", "8080", "port0", "HTTP port serving /healthz, /readyz and /metrics (0 disables it)"},
    {"DB_HOST", "--db-host", "database", "host", "MySQL/MariaDB host name or address"},
    {"DB_PORT", "--db-port", "3306", "port", "MySQL/MariaDB port"},
    {"DB_USER", "--db-user", "points_app", "string", "database account (least privilege: SELECT, INSERT, UPDATE on users)"},
    {"DB_PASS", "--db-pass", "", "secret", "database password (prefer DB_PASS_FILE)"},
    {"DB_PASS_FILE", "--db-pass-file", "", "path", "file holding the database password; wins over DB_PASS"},
    {"DB_NAME", "--db-name", "project_db", "string", "database name"},
    {"DB_TIMEZONE", "--db-timezone", "+08:00", "string", "session time zone for NOW() and the reported timestamps"},
    {"DB_CONNECT_TIMEOUT", "--db-connect-timeout", "3", "duration", "seconds allowed to open a database connection (drivers round up to whole seconds)"},
    {"DB_QUERY_TIMEOUT", "--db-query-timeout", "5", "duration", "seconds allowed for one database read or write (drivers round up to whole seconds)"},
    {"UPDATE_INTERVAL", "--update-interval", "30", "duration0", "seconds between increments of the row (0 disables the updater)"},
    {"LOCK_NAME", "--lock-name", "", "string", "MySQL named lock that elects the one updating replica (default points:<SERVER_USER>)"},
    {"IDLE_TIMEOUT", "--idle-timeout", "10", "duration", "seconds a client may take to send its request"},
    {"REQUEST_GRACE", "--request-grace", "0.05", "duration", "seconds to wait for a terminator after a complete command before answering it anyway"},
    {"MAX_CONNECTIONS", "--max-connections", "4096", "count", "open client connections at most; more get ERROR server-busy"},
    {"LISTEN_BACKLOG", "--listen-backlog", "4096", "count", "listen queue length (capped by net.core.somaxconn)"},
    {"SHUTDOWN_TIMEOUT", "--shutdown-timeout", "10", "duration", "seconds in-flight requests get to finish after SIGTERM"},
    {"MAX_STALENESS", "--max-staleness", "0", "duration0", "seconds a database read may be reused for later requests (0: every reply comes from a read started after its request arrived)"},
    {"LOG_LEVEL", "--log-level", "info", "level", "debug, info, warn or error"},
};

const struct pts_setting pts_client_settings[PTS_CSET_COUNT] = {
    {"TARGET_HOST", "--target-host", "localhost", "host", "server host name or address"},
    {"TARGET_PORT", "--target-port", "5001", "port", "server port"},
    {"CLIENT_RETRIES", "--client-retries", "10", "count", "attempts before giving up"},
    {"CLIENT_RETRY_DELAY", "--client-retry-delay", "0.5", "duration", "seconds before the second attempt; doubles per attempt"},
    {"CLIENT_RETRY_MAX_DELAY", "--client-retry-max-delay", "5", "duration", "longest wait between attempts"},
    {"CLIENT_TIMEOUT", "--client-timeout", "5", "duration", "seconds allowed to connect, and then to receive the reply"},
};

const struct pts_metric pts_metrics[PTS_M_COUNT] = {
    {"points_connections_total", "counter", "TCP connections accepted."},
    {"points_connections_active", "gauge", "TCP connections open now."},
    {"points_requests_total", "counter", "Replies sent, errors included."},
    {"points_errors_total", "counter", "Error replies sent, by code."},
    {"points_request_duration_seconds", "histogram", "Seconds from a complete request to its reply being written (0 for errors before a complete request)."},
    {"points_db_reads_total", "counter", "Reads of the row; one read may answer many waiting requests."},
    {"points_db_errors_total", "counter", "Failed database operations, by operation."},
    {"points_db_up", "gauge", "1 while the request path holds a working database connection."},
    {"points_updates_total", "counter", "Increments of the row committed by this process."},
    {"points_update_lock_held", "gauge", "1 while this process holds the updater lock."},
    {"points_build_info", "gauge", "Always 1; labels name the implementation."},
};

const char *const pts_db_op_name[PTS_OP_COUNT] = {
    "connect",
    "read",
    "update",
    "lock",
};

const double pts_duration_buckets[PTS_DURATION_BUCKETS_COUNT] = {
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
};

const struct pts_log_event pts_log_events[PTS_EV_COUNT] = {
    {"starting", "info", {"version", "pid"}},
    {"listening", "info", {"addr", "port", "health_port"}},
    {"db_connected", "info", {"role", "host", "port"}},
    {"db_error", "warn", {"role", "op", "error", "retry_in"}},
    {"row_created", "info", {0}},
    {"lock_acquired", "info", {"lock", "first_update_in"}},
    {"lock_lost", "warn", {"lock", "error"}},
    {"updated", "info", {"points"}},
    {"request", "debug", {"peer", "outcome", "duration_ms"}},
    {"shutdown_started", "info", {"signal", "in_flight"}},
    {"stopped", "info", {"served"}},
    {"config_error", "error", {"error"}},
    {"start_failed", "error", {"error"}},
    {"internal_error", "error", {"where", "error"}},
};

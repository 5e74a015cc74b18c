/* Generated from protocol/protocol.toml by `make render`. Do not edit. */
#ifndef POINTS_PROTOCOL_H
#define POINTS_PROTOCOL_H

#define PTS_PROTOCOL_VERSION 1
#define PTS_COMMAND "REQUEST_LATEST_POINTS"
#define PTS_MAX_LINE_BYTES 1024
#define PTS_ERROR_PREFIX "ERROR "
/* printf format: user (const char *), points (long long), last update (const char *) */
#define PTS_REPLY_FORMAT "User: %s, Points: %lld, Last Update: %s\n"

/* Error replies: pts_error_line[e] is the whole line, newline included. */
enum pts_error {
    PTS_ERR_UNKNOWN_COMMAND,
    PTS_ERR_LINE_TOO_LONG,
    PTS_ERR_IDLE_TIMEOUT,
    PTS_ERR_DB_UNAVAILABLE,
    PTS_ERR_ROW_MISSING,
    PTS_ERR_SERVER_BUSY,
    PTS_ERR_SHUTTING_DOWN,
    PTS_ERR_COUNT
};
extern const char *const pts_error_code[PTS_ERR_COUNT];
extern const char *const pts_error_line[PTS_ERR_COUNT];
extern const unsigned char pts_error_retryable[PTS_ERR_COUNT];

/* Settings: environment variable, flag overriding it, default, kind, help. */
struct pts_setting {
    const char *env;
    const char *flag;
    const char *def;
    const char *kind;
    const char *help;
};
enum pts_server_setting {
    PTS_SET_SERVER_HOST,
    PTS_SET_SERVER_PORT,
    PTS_SET_SERVER_USER,
    PTS_SET_HEALTH_HOST,
    PTS_SET_HEALTH_PORT,
    PTS_SET_DB_HOST,
    PTS_SET_DB_PORT,
    PTS_SET_DB_USER,
    PTS_SET_DB_PASS,
    PTS_SET_DB_PASS_FILE,
    PTS_SET_DB_NAME,
    PTS_SET_DB_TIMEZONE,
    PTS_SET_DB_CONNECT_TIMEOUT,
    PTS_SET_DB_QUERY_TIMEOUT,
    PTS_SET_UPDATE_INTERVAL,
    PTS_SET_LOCK_NAME,
    PTS_SET_IDLE_TIMEOUT,
    PTS_SET_REQUEST_GRACE,
    PTS_SET_MAX_CONNECTIONS,
    PTS_SET_LISTEN_BACKLOG,
    PTS_SET_SHUTDOWN_TIMEOUT,
    PTS_SET_MAX_STALENESS,
    PTS_SET_LOG_LEVEL,
    PTS_SET_COUNT
};
enum pts_client_setting {
    PTS_CSET_TARGET_HOST,
    PTS_CSET_TARGET_PORT,
    PTS_CSET_CLIENT_RETRIES,
    PTS_CSET_CLIENT_RETRY_DELAY,
    PTS_CSET_CLIENT_RETRY_MAX_DELAY,
    PTS_CSET_CLIENT_TIMEOUT,
    PTS_CSET_COUNT
};
extern const struct pts_setting pts_server_settings[PTS_SET_COUNT];
extern const struct pts_setting pts_client_settings[PTS_CSET_COUNT];

/* SQL statements; '?' marks a bound parameter. */
#define PTS_SQL_SET_TIME_ZONE "SET time_zone = ?"
#define PTS_SQL_SET_WAIT_TIMEOUT "SET SESSION wait_timeout = ?"
#define PTS_SQL_SELECT_ROW "SELECT points, DATE_FORMAT(datetime_stamp, '%Y-%m-%d %H:%i:%s') FROM users WHERE user = ?"
#define PTS_SQL_ENSURE_ROW "INSERT INTO users (user, points, datetime_stamp) VALUES (?, 0, NOW()) ON DUPLICATE KEY UPDATE user = user"
#define PTS_SQL_GET_LOCK "SELECT GET_LOCK(?, 0)"
#define PTS_SQL_RELEASE_LOCK "SELECT RELEASE_LOCK(?)"
#define PTS_SQL_SECONDS_SINCE_UPDATE "SELECT TIMESTAMPDIFF(SECOND, datetime_stamp, NOW()) FROM users WHERE user = ?"
#define PTS_SQL_INCREMENT "UPDATE users SET points = points + 1, datetime_stamp = NOW() WHERE user = ? AND IS_USED_LOCK(?) = CONNECTION_ID()"

/* Metrics: names, types and help text for /metrics. */
#define PTS_METRIC_CONNECTIONS_TOTAL "points_connections_total"
#define PTS_METRIC_CONNECTIONS_ACTIVE "points_connections_active"
#define PTS_METRIC_REQUESTS_TOTAL "points_requests_total"
#define PTS_METRIC_ERRORS_TOTAL "points_errors_total"
#define PTS_METRIC_REQUEST_DURATION_SECONDS "points_request_duration_seconds"
#define PTS_METRIC_DB_READS_TOTAL "points_db_reads_total"
#define PTS_METRIC_DB_ERRORS_TOTAL "points_db_errors_total"
#define PTS_METRIC_DB_UP "points_db_up"
#define PTS_METRIC_UPDATES_TOTAL "points_updates_total"
#define PTS_METRIC_UPDATE_LOCK_HELD "points_update_lock_held"
#define PTS_METRIC_BUILD_INFO "points_build_info"
struct pts_metric {
    const char *name;
    const char *type;
    const char *help;
};
enum pts_metric_id {
    PTS_M_CONNECTIONS_TOTAL,
    PTS_M_CONNECTIONS_ACTIVE,
    PTS_M_REQUESTS_TOTAL,
    PTS_M_ERRORS_TOTAL,
    PTS_M_REQUEST_DURATION_SECONDS,
    PTS_M_DB_READS_TOTAL,
    PTS_M_DB_ERRORS_TOTAL,
    PTS_M_DB_UP,
    PTS_M_UPDATES_TOTAL,
    PTS_M_UPDATE_LOCK_HELD,
    PTS_M_BUILD_INFO,
    PTS_M_COUNT
};
extern const struct pts_metric pts_metrics[PTS_M_COUNT];

/* Values of the op label of points_db_errors_total. */
enum pts_db_op {
    PTS_OP_CONNECT,
    PTS_OP_READ,
    PTS_OP_UPDATE,
    PTS_OP_LOCK,
    PTS_OP_COUNT
};
extern const char *const pts_db_op_name[PTS_OP_COUNT];

#define PTS_DURATION_BUCKETS_COUNT 13
extern const double pts_duration_buckets[PTS_DURATION_BUCKETS_COUNT];

/* Log events: name, level and the event's own fields after the common ones. */
#define PTS_LOG_MAX_FIELDS 8
struct pts_log_event {
    const char *name;
    const char *level;
    const char *fields[PTS_LOG_MAX_FIELDS];
};
enum pts_log_event_id {
    PTS_EV_STARTING,
    PTS_EV_LISTENING,
    PTS_EV_DB_CONNECTED,
    PTS_EV_DB_ERROR,
    PTS_EV_ROW_CREATED,
    PTS_EV_LOCK_ACQUIRED,
    PTS_EV_LOCK_LOST,
    PTS_EV_UPDATED,
    PTS_EV_REQUEST,
    PTS_EV_SHUTDOWN_STARTED,
    PTS_EV_STOPPED,
    PTS_EV_CONFIG_ERROR,
    PTS_EV_START_FAILED,
    PTS_EV_INTERNAL_ERROR,
    PTS_EV_COUNT
};
extern const struct pts_log_event pts_log_events[PTS_EV_COUNT];

#endif /* POINTS_PROTOCOL_H */

/* Generated from protocol/protocol.toml by `make render`. Do not edit. */
/* Template: protocol/templates/points_protocol.h.j2 */
#ifndef POINTS_PROTOCOL_H
#define POINTS_PROTOCOL_H

#include <stddef.h>

#define PTS_PROTOCOL_VERSION 1
#define PTS_COMMAND "REQUEST_LATEST_POINTS"
#define PTS_MAX_LINE_BYTES 1024
#define PTS_ERROR_PREFIX "ERROR "
/* printf format: user (const char *), points (long long), last update (const char *) */
#define PTS_REPLY_FORMAT "User: %s, Points: %lld, Last Update: %s\n"
/* A reply line without its newline, as an anchored POSIX extended regular expression. */
#define PTS_REPLY_ERE "^User: ([^\001-\037\177,]{1,50}), Points: (-?[0-9]{1,20}), Last Update: ([0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2})$"

/* A client connection (protocol.toml [connection]): its states, in order, and the numbers of
 * its life cycle. */
enum pts_conn_state {
    PTS_CONN_READING,
    PTS_CONN_WAITING,
    PTS_CONN_WRITING,
    PTS_CONN_LINGER,
    PTS_CONN_CLOSED,
    PTS_CONN_STATES_COUNT
};
extern const char *const pts_conn_state_name[PTS_CONN_STATES_COUNT];

/* A failed TLS handshake's result (points_tls_handshakes_total), by OpenSSL reason name in
 * upper case with "_" for spaces (protocol.toml [tls.failure_reason]); NULL-terminated. Any
 * other reason counts as "protocol". */
struct pts_tls_failure { const char *reason, *result; };
extern const struct pts_tls_failure pts_tls_failure_results[];
#define PTS_CONN_LINGER_SECONDS 2.0
#define PTS_CONN_ACCEPT_BATCH 256
#define PTS_CONN_ACCEPT_PAUSE_SECONDS 0.1
#define PTS_CONN_TLS_RELOAD_CHECK_SECONDS 1.0
#define PTS_CONN_BUSY_EXTRA 64
#define PTS_CONN_DESCRIPTORS_RESERVED 160
#define PTS_CONN_SHED_SCAN 64
#define PTS_CONN_HANDSHAKES_MAX 256
#define PTS_CONN_OVERLOAD_QUIET_SECONDS 1.0
#define PTS_CONN_HEALTH_MAX_CONNECTIONS 32
#define PTS_CONN_HEALTH_LISTEN_BACKLOG 1024
#define PTS_CONN_SHUTDOWN_LINGER_SECONDS 0.5

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

/* Settings. A kind says how a setting's text is read (protocol.toml, [setting_kind.*]); one
 * validator, protocol/c/pts_settings.c, applies it for every C program. */
enum pts_kind_type { PTS_KT_INT, PTS_KT_SECONDS, PTS_KT_TEXT, PTS_KT_CHOICE };
struct pts_setting_kind {
    const char *name;
    enum pts_kind_type type;
    double min, max;           /* int, seconds */
    int min_exclusive;         /* seconds: more than min */
    size_t min_bytes, max_bytes; /* text */
    int no_space, no_comma, brackets, secret;
    const char *const *choices; /* choice: NULL-terminated */
    const char *const *aliases; /* choice: alias, choice, ..., NULL */
    const char *expect;        /* ends the error message */
};
enum pts_setting_kind_id {
    PTS_KIND_HOST,
    PTS_KIND_PORT,
    PTS_KIND_PORT0,
    PTS_KIND_COUNT,
    PTS_KIND_COUNT0,
    PTS_KIND_DURATION,
    PTS_KIND_DURATION0,
    PTS_KIND_ROW,
    PTS_KIND_LOCK,
    PTS_KIND_STRING,
    PTS_KIND_SECRET,
    PTS_KIND_PATH,
    PTS_KIND_HOST0,
    PTS_KIND_LEVEL,
    PTS_KIND_DB_TLS_MODE,
    PTS_KINDS_COUNT
};
extern const struct pts_setting_kind pts_setting_kinds[PTS_KINDS_COUNT];

enum pts_level {
    PTS_LEVEL_DEBUG,
    PTS_LEVEL_INFO,
    PTS_LEVEL_WARN,
    PTS_LEVEL_ERROR,
};
enum pts_db_tls_mode {
    PTS_DB_TLS_MODE_AUTO,
    PTS_DB_TLS_MODE_DISABLED,
    PTS_DB_TLS_MODE_PREFERRED,
    PTS_DB_TLS_MODE_REQUIRED,
    PTS_DB_TLS_MODE_VERIFY_CA,
    PTS_DB_TLS_MODE_VERIFY_IDENTITY,
};

/* One row per setting: where its typed value goes in the program's config struct. */
struct pts_setting {
    const char *env;
    const char *flag;
    const char *def;
    const char *help;
    enum pts_setting_kind_id kind;
    size_t offset; /* of the field in struct pts_server_config / pts_client_config */
    size_t size;   /* of that field (text: its buffer, max_bytes + 1) */
    int requires[2]; /* settings (ids) that must be set too when this one is; -1: none */
};

/* The server settings, typed: one field per setting, named like its variable. */
struct pts_server_config {
    char server_host[256];
    long server_port;
    char server_user[51];
    char health_host[256];
    long health_port;
    char db_host[256];
    long db_port;
    char db_user[256];
    char db_pass[256];
    char db_pass_file[4096];
    char db_name[256];
    char db_timezone[256];
    double db_connect_timeout;
    double db_query_timeout;
    double update_interval;
    char lock_name[65];
    double idle_timeout;
    double request_grace;
    long max_connections;
    long max_connections_per_source;
    long listen_backlog;
    double shutdown_timeout;
    double max_staleness;
    char tls_cert_file[4096];
    char tls_key_file[4096];
    char tls_client_ca_file[4096];
    int db_tls_mode;
    char db_tls_ca_file[4096];
    int log_level;
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
    PTS_SET_MAX_CONNECTIONS_PER_SOURCE,
    PTS_SET_LISTEN_BACKLOG,
    PTS_SET_SHUTDOWN_TIMEOUT,
    PTS_SET_MAX_STALENESS,
    PTS_SET_TLS_CERT_FILE,
    PTS_SET_TLS_KEY_FILE,
    PTS_SET_TLS_CLIENT_CA_FILE,
    PTS_SET_DB_TLS_MODE,
    PTS_SET_DB_TLS_CA_FILE,
    PTS_SET_LOG_LEVEL,
    PTS_SET_COUNT
};
extern const struct pts_setting pts_server_settings[PTS_SET_COUNT];

/* The client settings, typed: one field per setting, named like its variable. */
struct pts_client_config {
    char target_host[256];
    long target_port;
    long client_retries;
    double client_retry_delay;
    double client_retry_max_delay;
    double client_timeout;
    char tls_ca_file[4096];
    char tls_server_name[256];
    char tls_client_cert_file[4096];
    char tls_client_key_file[4096];
};
enum pts_client_setting {
    PTS_CSET_TARGET_HOST,
    PTS_CSET_TARGET_PORT,
    PTS_CSET_CLIENT_RETRIES,
    PTS_CSET_CLIENT_RETRY_DELAY,
    PTS_CSET_CLIENT_RETRY_MAX_DELAY,
    PTS_CSET_CLIENT_TIMEOUT,
    PTS_CSET_TLS_CA_FILE,
    PTS_CSET_TLS_SERVER_NAME,
    PTS_CSET_TLS_CLIENT_CERT_FILE,
    PTS_CSET_TLS_CLIENT_KEY_FILE,
    PTS_CSET_COUNT
};
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

/* Metrics on /metrics, in protocol order. A counter or gauge is a "value" metric: one value
 * slot per series (per value of its one label, or one slot without a label), numbered in
 * protocol order (enum pts_metric_slot). The histogram's buckets are pts_duration_buckets; an
 * "info" metric (labels without fixed values, e.g. points_build_info) is always 1 and its
 * labels are filled in by the program. */
enum pts_metric_shape { PTS_MS_VALUE, PTS_MS_HISTOGRAM, PTS_MS_INFO };
struct pts_metric {
    const char *name;
    const char *type;
    const char *help;
    enum pts_metric_shape shape;
    const char *const *labels; /* NULL-terminated */
    const char *const *series; /* VALUE with a label: the label's values, NULL-terminated */
    int slot;                  /* VALUE: its first slot */
    int nseries;               /* VALUE: its slots */
};
enum pts_metric_id {
    PTS_M_CONNECTIONS_TOTAL,
    PTS_M_CONNECTIONS_ACTIVE,
    PTS_M_CONNECTIONS_SHED_TOTAL,
    PTS_M_CONNECTIONS_REFUSED_TOTAL,
    PTS_M_REQUESTS_TOTAL,
    PTS_M_ERRORS_TOTAL,
    PTS_M_REQUEST_DURATION_SECONDS,
    PTS_M_TLS_HANDSHAKES_TOTAL,
    PTS_M_TLS_RELOADS_TOTAL,
    PTS_M_DB_READS_TOTAL,
    PTS_M_DB_ERRORS_TOTAL,
    PTS_M_DB_UP,
    PTS_M_UPDATES_TOTAL,
    PTS_M_UPDATE_LOCK_HELD,
    PTS_M_BUILD_INFO,
    PTS_M_COUNT
};
extern const struct pts_metric pts_metrics[PTS_M_COUNT];
/* The first slot of each value metric; a labelled one's series i is slot + i. */
enum pts_metric_slot {
    PTS_S_CONNECTIONS_TOTAL = 0,
    PTS_S_CONNECTIONS_ACTIVE = 1,
    PTS_S_CONNECTIONS_SHED_TOTAL = 2,
    PTS_S_CONNECTIONS_REFUSED_TOTAL = 4,
    PTS_S_REQUESTS_TOTAL = 6,
    PTS_S_ERRORS_TOTAL = 7,
    PTS_S_TLS_HANDSHAKES_TOTAL = 14,
    PTS_S_TLS_RELOADS_TOTAL = 20,
    PTS_S_DB_READS_TOTAL = 22,
    PTS_S_DB_ERRORS_TOTAL = 23,
    PTS_S_DB_UP = 27,
    PTS_S_UPDATES_TOTAL = 28,
    PTS_S_UPDATE_LOCK_HELD = 29,
    PTS_SLOTS_COUNT = 30
};

/* Values of the op label of points_db_errors_total. */
enum pts_db_op {
    PTS_OP_CONNECT,
    PTS_OP_READ,
    PTS_OP_UPDATE,
    PTS_OP_LOCK,
    PTS_OP_COUNT
};
extern const char *const pts_db_op_name[PTS_OP_COUNT];

/* Values of the result label of points_tls_handshakes_total (series i is
 * PTS_S_TLS_HANDSHAKES_TOTAL + i). */
enum pts_tls_result {
    PTS_TLS_OK,
    PTS_TLS_NOT_TLS,
    PTS_TLS_CERTIFICATE,
    PTS_TLS_CLOSED,
    PTS_TLS_TIMEOUT,
    PTS_TLS_PROTOCOL,
    PTS_TLS_RESULTS_COUNT
};

#define PTS_DURATION_BUCKETS_COUNT 13
extern const double pts_duration_buckets[PTS_DURATION_BUCKETS_COUNT];

/* Log events: name, level and the event's own fields after the common ones (the typed
 * log_<event>() functions that write them: services/c-server/src/generated/log_events.h). */
struct pts_log_event {
    const char *name;
    const char *level;
    int nfields;
    const char *const *fields;
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
    PTS_EV_TLS_LOADED,
    PTS_EV_TLS_RELOAD_FAILED,
    PTS_EV_TLS_HANDSHAKE_FAILED,
    PTS_EV_CONNECTIONS_LIMITED,
    PTS_EV_OVERLOAD_STARTED,
    PTS_EV_OVERLOAD_ENDED,
    PTS_EV_SHUTDOWN_STARTED,
    PTS_EV_STOPPED,
    PTS_EV_CONFIG_ERROR,
    PTS_EV_START_FAILED,
    PTS_EV_INTERNAL_ERROR,
    PTS_EV_COUNT
};
extern const struct pts_log_event pts_log_events[PTS_EV_COUNT];

#endif /* POINTS_PROTOCOL_H */

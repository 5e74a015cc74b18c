/* Generated from protocol/protocol.toml by `make render`. Do not edit. */
/* Template: protocol/templates/log_events.h.j2 */
/* One typed function per log event of protocol.toml: log_<event>(lg, <its fields in order>).
 * A missing, extra or mistyped field does not compile. Mirror: the Python server's
 * generated/log_events.py. */
#ifndef PTS_LOG_EVENTS_H
#define PTS_LOG_EVENTS_H

#include "log.h"

static inline void log_starting(struct logger *lg, const char *version, long long pid)
{
    const struct log_val v[] = {LV_S(version), LV_I(pid)};
    log_event(lg, PTS_EV_STARTING, v, 2);
}

static inline void log_listening(struct logger *lg, const char *addr, long long port, long long health_port)
{
    const struct log_val v[] = {LV_S(addr), LV_I(port), LV_I(health_port)};
    log_event(lg, PTS_EV_LISTENING, v, 3);
}

static inline void log_db_connected(struct logger *lg, const char *role, const char *host, long long port)
{
    const struct log_val v[] = {LV_S(role), LV_S(host), LV_I(port)};
    log_event(lg, PTS_EV_DB_CONNECTED, v, 3);
}

static inline void log_db_error(struct logger *lg, const char *role, const char *op, const char *error, double retry_in)
{
    const struct log_val v[] = {LV_S(role), LV_S(op), LV_S(error), LV_D(retry_in)};
    log_event(lg, PTS_EV_DB_ERROR, v, 4);
}

static inline void log_row_created(struct logger *lg)
{
    log_event(lg, PTS_EV_ROW_CREATED, NULL, 0);
}

static inline void log_lock_acquired(struct logger *lg, const char *lock, double first_update_in)
{
    const struct log_val v[] = {LV_S(lock), LV_D(first_update_in)};
    log_event(lg, PTS_EV_LOCK_ACQUIRED, v, 2);
}

static inline void log_lock_lost(struct logger *lg, const char *lock, const char *error)
{
    const struct log_val v[] = {LV_S(lock), LV_S(error)};
    log_event(lg, PTS_EV_LOCK_LOST, v, 2);
}

static inline void log_updated(struct logger *lg, long long points)
{
    const struct log_val v[] = {LV_I(points)};
    log_event(lg, PTS_EV_UPDATED, v, 1);
}

static inline void log_request(struct logger *lg, const char *peer, const char *outcome, double duration_ms)
{
    const struct log_val v[] = {LV_S(peer), LV_S(outcome), LV_D(duration_ms)};
    log_event(lg, PTS_EV_REQUEST, v, 3);
}

static inline void log_tls_loaded(struct logger *lg, const char *cert_file, const char *client_ca)
{
    const struct log_val v[] = {LV_S(cert_file), LV_S(client_ca)};
    log_event(lg, PTS_EV_TLS_LOADED, v, 2);
}

static inline void log_tls_reload_failed(struct logger *lg, const char *cert_file, const char *error)
{
    const struct log_val v[] = {LV_S(cert_file), LV_S(error)};
    log_event(lg, PTS_EV_TLS_RELOAD_FAILED, v, 2);
}

static inline void log_tls_handshake_failed(struct logger *lg, const char *peer, const char *reason, const char *error)
{
    const struct log_val v[] = {LV_S(peer), LV_S(reason), LV_S(error)};
    log_event(lg, PTS_EV_TLS_HANDSHAKE_FAILED, v, 3);
}

static inline void log_connections_limited(struct logger *lg, long long max_connections, long long limit, long long nofile)
{
    const struct log_val v[] = {LV_I(max_connections), LV_I(limit), LV_I(nofile)};
    log_event(lg, PTS_EV_CONNECTIONS_LIMITED, v, 3);
}

static inline void log_overload_started(struct logger *lg, const char *reason, const char *source, long long table, long long limit)
{
    const struct log_val v[] = {LV_S(reason), LV_S(source), LV_I(table), LV_I(limit)};
    log_event(lg, PTS_EV_OVERLOAD_STARTED, v, 4);
}

static inline void log_overload_ended(struct logger *lg, double lasted, long long shed, long long refused)
{
    const struct log_val v[] = {LV_D(lasted), LV_I(shed), LV_I(refused)};
    log_event(lg, PTS_EV_OVERLOAD_ENDED, v, 3);
}

static inline void log_shutdown_started(struct logger *lg, const char *signal, long long in_flight)
{
    const struct log_val v[] = {LV_S(signal), LV_I(in_flight)};
    log_event(lg, PTS_EV_SHUTDOWN_STARTED, v, 2);
}

static inline void log_stopped(struct logger *lg, long long served)
{
    const struct log_val v[] = {LV_I(served)};
    log_event(lg, PTS_EV_STOPPED, v, 1);
}

static inline void log_config_error(struct logger *lg, const char *error)
{
    const struct log_val v[] = {LV_S(error)};
    log_event(lg, PTS_EV_CONFIG_ERROR, v, 1);
}

static inline void log_start_failed(struct logger *lg, const char *error)
{
    const struct log_val v[] = {LV_S(error)};
    log_event(lg, PTS_EV_START_FAILED, v, 1);
}

static inline void log_internal_error(struct logger *lg, const char *where, const char *error)
{
    const struct log_val v[] = {LV_S(where), LV_S(error)};
    log_event(lg, PTS_EV_INTERNAL_ERROR, v, 2);
}

#endif

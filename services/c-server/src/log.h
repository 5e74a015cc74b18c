/* JSON-lines logging on stdout (protocol.toml [log]): one event per line, flushed per line. */
#ifndef PTS_LOG_H
#define PTS_LOG_H

#include <pthread.h>
#include <stddef.h>
#include <time.h>

#include "points_protocol.h"

#define LOG_SERVICE "c-server"
#define LOG_LINE_MAX 4096

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

struct logger {
    int fd;
    int min_level;
    char user[64];
    pthread_mutex_t mu;
};

enum log_val_kind { LV_STR, LV_INT, LV_NUM };
struct log_val {
    enum log_val_kind kind;
    const char *s;
    long long i;
    double d;
};

#define LV_S(x) ((struct log_val){.kind = LV_STR, .s = (x)})
#define LV_I(x) ((struct log_val){.kind = LV_INT, .i = (long long)(x)})
#define LV_D(x) ((struct log_val){.kind = LV_NUM, .d = (double)(x)})

/* Level name ("debug", "info", "warn", "error") to enum; -1 if unknown. */
int log_level_parse(const char *name);
int log_event_level(enum pts_log_event_id ev);

void logger_init(struct logger *lg, int fd, int min_level, const char *user);
void logger_destroy(struct logger *lg);
int log_enabled(const struct logger *lg, enum pts_log_event_id ev);

/* Write one event; vals are the event's own fields in protocol order. Call it through the
 * typed log_<event>() functions of generated/log_events.h. */
void log_event(struct logger *lg, enum pts_log_event_id ev, const struct log_val *vals, size_t n);

/* Format one line (with '\n') into buf; returns its length. Exposed for the unit tests. */
size_t log_format(char *buf, size_t cap, const struct timespec *wall, const char *user,
                  enum pts_log_event_id ev, const struct log_val *vals, size_t n);

/* Append s as JSON string contents (no quotes) to dst; invalid UTF-8 becomes U+FFFD, output is
 * cut at a character boundary when cap is reached. Returns bytes written (dst NUL-terminated). */
size_t json_escape(char *dst, size_t cap, const char *s);

#endif

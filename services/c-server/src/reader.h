/* The reader thread: one persistent session, coalesced reads of the row (design.md section 2).
 *
 * The event loop calls reader_request() when a batch is waiting; the thread runs one read and
 * signals done_fd; the loop then takes the result with reader_take_result(). At most one read
 * is requested at a time. */
#ifndef PTS_READER_H
#define PTS_READER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "db.h"
#include "log.h"
#include "metrics.h"

struct read_result {
    int error;            /* -1: ok; else enum pts_error (db-unavailable, row-missing) */
    long long points;
    char stamp[DB_STAMP_MAX];
    int64_t started_ns;   /* monotonic time the read started */
};

struct reader {
    const struct pts_server_config *cfg;
    struct logger *log;
    struct metrics *m;
    int wake_fd;          /* loop -> reader: a read is wanted, or stop */
    int done_fd;          /* reader -> loop: a result is ready */
    atomic_int want_read;
    atomic_int stop;
    atomic_int up;        /* the session works (mirrors points_db_up) */
    pthread_mutex_t mu;   /* guards result */
    struct read_result result;
    pthread_t thread;
    int started;
};

int reader_start(struct reader *r, const struct pts_server_config *cfg, struct logger *log,
                 struct metrics *m, char *err, size_t errlen);
void reader_request(struct reader *r);
void reader_take_result(struct reader *r, struct read_result *out);
int reader_up(struct reader *r);
void reader_stop(struct reader *r);

#endif

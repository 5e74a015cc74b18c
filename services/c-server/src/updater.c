/* Updater: elect with GET_LOCK(name, 0), schedule t0 + k * interval, increment under the lock.
 * Nothing is counted in memory: the row in the database is the only count. */
#include "updater.h"

#include <errno.h>
#include <math.h>
#include <mysql.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "generated/log_events.h"
#include "util.h"

enum wait_result { WAIT_TIMEOUT, WAIT_STOP, WAIT_DB_CLOSED };

#define WAIT_TIMEOUT_MIN 5LL
#define WAIT_TIMEOUT_MAX 31536000LL /* the largest wait_timeout MySQL and MariaDB take (Linux) */

/* The updater session's idle timeout. The lock lives as long as the session, and the database
 * drops a session only after wait_timeout idle seconds (default 8 h): without a shorter one, a
 * holder whose node crashed (no FIN, no RST) or whose process hangs (SIGSTOP, a frozen VM) keeps
 * the lock, and no replica increments, for hours. A live session is never idle much longer
 * than one interval: a holder runs a statement at every slot (at most one interval apart; the
 * Python one also pings every second) and a non-holder polls GET_LOCK every
 * min(1 s, interval). Twice the interval leaves that much margin for a slow scheduler, and the
 * 5 s floor keeps short intervals clear of a pause of a few seconds; so a live updater is not
 * cut off, while a dead or hung holder's lock is freed after at most this many seconds. */
long long updater_wait_timeout(double update_interval)
{
    double twice = 2.0 * update_interval;
    if (!(twice < (double)WAIT_TIMEOUT_MAX)) /* also NaN */
        return WAIT_TIMEOUT_MAX;
    long long secs = (long long)ceil(twice);
    return secs < WAIT_TIMEOUT_MIN ? WAIT_TIMEOUT_MIN : secs;
}

struct upd_state {
    struct updater *u;
    struct db db;
    struct backoff bo;
    int holding;
};

/* Sleep until deadline; wake early on stop or when the idle session is closed by the server. */
static enum wait_result wait_until(struct upd_state *s, int64_t deadline)
{
    for (;;) {
        int64_t now = mono_ns();
        if (now >= deadline)
            return WAIT_TIMEOUT;
        struct pollfd p[2] = {{.fd = s->u->stop_fd, .events = POLLIN},
                              {.fd = db_socket(&s->db), .events = POLLIN}};
        int n = poll(p, 2, ms_until(deadline, now, 60000));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            usleep(10000);
            continue;
        }
        if (p[0].revents & POLLIN)
            return WAIT_STOP;
        if (p[1].fd >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)))
            return WAIT_DB_CLOSED;
    }
}

static void set_holding(struct upd_state *s, int holding)
{
    s->holding = holding;
    metrics_set(s->u->m, PTS_S_UPDATE_LOCK_HELD, holding);
}

/* A database error: count, log, drop the session (which releases the lock), back off. */
static enum wait_result fail(struct upd_state *s, enum pts_db_op op, const char *error)
{
    struct updater *u = s->u;
    db_close(&s->db);
    set_holding(s, 0);
    metrics_add(u->m, PTS_S_DB_ERRORS_TOTAL + op, 1);
    double delay = backoff_next(&s->bo);
    log_db_error(u->log, "updater", pts_db_op_name[op], error,
           delay);
    return wait_until(s, mono_ns() + secs_to_ns(delay));
}

/* Connect and make sure the row exists. 0, or the result of the backoff wait. */
static int connect_session(struct upd_state *s, enum wait_result *wr)
{
    struct updater *u = s->u;
    if (db_connect(&s->db) != 0) {
        *wr = fail(s, PTS_OP_CONNECT, s->db.err);
        return -1;
    }
    log_db_connected(u->log, "updater", u->cfg->db_host,
           u->cfg->db_port);
    int inserted = 0;
    if (db_ensure_row(&s->db, &inserted) != 0) {
        *wr = fail(s, PTS_OP_UPDATE, s->db.err);
        return -1;
    }
    backoff_reset(&s->bo);
    if (inserted)
        log_row_created(u->log);
    return 0;
}

/* Holding the lock: increment on schedule until stop, lock loss or error. */
static enum wait_result hold(struct upd_state *s, int64_t t0, int64_t interval)
{
    struct updater *u = s->u;
    int64_t k = 0;
    for (;;) {
        enum wait_result wr = wait_until(s, t0 + k * interval);
        if (wr == WAIT_STOP)
            return WAIT_STOP;
        if (wr == WAIT_DB_CLOSED)
            return fail(s, PTS_OP_UPDATE, "connection closed by the server");
        unsigned long long affected = 0;
        if (db_increment(&s->db, &affected) != 0)
            return fail(s, PTS_OP_UPDATE, s->db.err);
        if (affected == 0) {
            set_holding(s, 0);
            log_lock_lost(u->log, u->cfg->lock_name,
                   "increment changed no row: the session no longer holds the lock");
            /* Drop whatever this session may still hold, make sure the row is back, re-elect. */
            int inserted = 0;
            if (db_release_lock(&s->db) != 0 || db_ensure_row(&s->db, &inserted) != 0)
                return fail(s, PTS_OP_LOCK, s->db.err);
            if (inserted)
                log_row_created(u->log);
            return WAIT_TIMEOUT;
        }
        metrics_add(u->m, PTS_S_UPDATES_TOTAL, 1);
        long long points = 0;
        char stamp[DB_STAMP_MAX];
        int found = 0;
        if (db_select_row(&s->db, &points, stamp, &found) != 0)
            return fail(s, PTS_OP_UPDATE, s->db.err);
        log_updated(u->log, points);
        /* Next slot strictly in the future: a missed slot is skipped, not made up. */
        int64_t now = mono_ns();
        int64_t next = (now - t0) / interval + 1;
        k = next > k + 1 ? next : k + 1;
    }
}

static void *updater_main(void *arg)
{
    struct upd_state s;
    memset(&s, 0, sizeof s);
    s.u = arg;
    struct updater *u = s.u;
    const struct pts_server_config *c = u->cfg;
    int64_t interval = secs_to_ns(c->update_interval);
    int64_t retry = secs_to_ns(c->update_interval < 1.0 ? c->update_interval : 1.0);
    mysql_thread_init();
    db_init(&s.db, c);
    s.db.wait_timeout = updater_wait_timeout(c->update_interval); /* this session only */
    backoff_init(&s.bo, (unsigned int)mono_ns() ^ 0xa11ceu);

    enum wait_result wr = WAIT_TIMEOUT;
    while (wr != WAIT_STOP) {
        if (!db_connected(&s.db)) {
            if (connect_session(&s, &wr) != 0)
                continue;
        }
        int acquired = 0;
        if (db_get_lock(&s.db, &acquired) != 0) {
            wr = fail(&s, PTS_OP_LOCK, s.db.err);
            continue;
        }
        if (!acquired) {
            wr = wait_until(&s, mono_ns() + retry);
            if (wr == WAIT_DB_CLOSED)
                wr = fail(&s, PTS_OP_LOCK, "connection closed by the server");
            continue;
        }
        set_holding(&s, 1);
        long long elapsed = 0;
        int found = 0;
        if (db_seconds_since_update(&s.db, &elapsed, &found) != 0) {
            wr = fail(&s, PTS_OP_LOCK, s.db.err);
            continue;
        }
        double first = found ? c->update_interval - (double)elapsed : 0.0;
        if (first < 0)
            first = 0;
        if (first > c->update_interval)
            first = c->update_interval; /* a row stamped in the future (clock skew) */
        log_lock_acquired(u->log, c->lock_name, first);
        wr = hold(&s, mono_ns() + secs_to_ns(first), interval);
    }
    if (s.holding && db_connected(&s.db))
        (void)db_release_lock(&s.db); /* closing the session would release it too */
    set_holding(&s, 0);
    db_close(&s.db);
    mysql_thread_end();
    return NULL;
}

int updater_start(struct updater *u, const struct pts_server_config *cfg, struct logger *log,
                  struct metrics *m, char *err, size_t errlen)
{
    memset(u, 0, sizeof *u);
    u->cfg = cfg;
    u->log = log;
    u->m = m;
    u->stop_fd = -1;
    if (cfg->update_interval <= 0)
        return 0;
    u->stop_fd = efd_new();
    if (u->stop_fd < 0) {
        snprintf(err, errlen, "updater: eventfd: %s", strerror(errno));
        return -1;
    }
    int rc = pthread_create(&u->thread, NULL, updater_main, u);
    if (rc != 0) {
        snprintf(err, errlen, "updater: pthread_create: %s", strerror(rc));
        close(u->stop_fd);
        u->stop_fd = -1;
        return -1;
    }
    u->started = 1;
    return 0;
}

void updater_stop(struct updater *u)
{
    if (u->started) {
        efd_signal(u->stop_fd);
        pthread_join(u->thread, NULL);
        u->started = 0;
    }
    if (u->stop_fd >= 0)
        close(u->stop_fd);
    u->stop_fd = -1;
}

/* Reader thread: connects with backoff, notices a closed session while idle, and runs one
 * SELECT (plus SQL_ENSURE_ROW when the row is missing) per requested batch. */
#include "reader.h"

#include <errno.h>
#include <mysql.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "generated/log_events.h"
#include "util.h"

struct reader_state {
    struct db db;
    struct backoff bo;
    int64_t next_attempt;
};

static void go_down(struct reader *r, struct reader_state *st, enum pts_db_op op,
                    const char *error)
{
    db_close(&st->db);
    atomic_store(&r->up, 0);
    metrics_set(r->m, PTS_S_DB_UP, 0);
    metrics_add(r->m, PTS_S_DB_ERRORS_TOTAL + op, 1);
    double delay = backoff_next(&st->bo);
    st->next_attempt = mono_ns() + secs_to_ns(delay);
    log_db_error(r->log, "reader", pts_db_op_name[op], error,
           delay);
}

static void try_connect(struct reader *r, struct reader_state *st)
{
    if (db_connect(&st->db) != 0) {
        go_down(r, st, PTS_OP_CONNECT, st->db.err);
        return;
    }
    /* The server creates its row at start, whether or not its updater runs. */
    int inserted = 0;
    if (db_ensure_row(&st->db, &inserted) != 0) {
        go_down(r, st, PTS_OP_CONNECT, st->db.err);
        return;
    }
    if (inserted)
        log_row_created(r->log);
    backoff_reset(&st->bo);
    atomic_store(&r->up, 1);
    metrics_set(r->m, PTS_S_DB_UP, 1);
    log_db_connected(r->log, "reader", r->cfg->db_host,
           r->cfg->db_port);
}

static int select_row(struct reader *r, struct reader_state *st, struct read_result *res,
                      int *found)
{
    metrics_add(r->m, PTS_S_DB_READS_TOTAL, 1); /* each SELECT, as the database counts them */
    return db_select_row(&st->db, &res->points, res->stamp, found);
}

static void do_read(struct reader *r, struct reader_state *st)
{
    struct read_result res;
    memset(&res, 0, sizeof res);
    res.started_ns = mono_ns();
    res.error = PTS_ERR_DB_UNAVAILABLE;
    if (db_connected(&st->db)) {
        int found = 0, inserted = 0;
        int rc = select_row(r, st, &res, &found);
        if (rc == 0 && !found) {
            rc = db_ensure_row(&st->db, &inserted);
            if (rc == 0 && inserted)
                log_row_created(r->log);
            if (rc == 0)
                rc = select_row(r, st, &res, &found);
        }
        if (rc != 0)
            go_down(r, st, PTS_OP_READ, st->db.err);
        else
            res.error = found ? -1 : PTS_ERR_ROW_MISSING;
    }
    pthread_mutex_lock(&r->mu);
    r->result = res;
    pthread_mutex_unlock(&r->mu);
    efd_signal(r->done_fd);
}

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    struct reader_state st;
    mysql_thread_init();
    db_init(&st.db, r->cfg);
    backoff_init(&st.bo, (unsigned int)mono_ns() ^ 0x5eed1u);
    st.next_attempt = 0;

    while (!atomic_load(&r->stop)) {
        if (atomic_exchange(&r->want_read, 0)) {
            do_read(r, &st);
            continue;
        }
        int64_t now = mono_ns();
        int connected = db_connected(&st.db);
        if (!connected && now >= st.next_attempt) {
            try_connect(r, &st);
            continue;
        }
        struct pollfd p[2] = {{.fd = r->wake_fd, .events = POLLIN},
                              {.fd = db_socket(&st.db), .events = POLLIN}};
        int timeout = connected ? -1 : ms_until(st.next_attempt, now, 60000);
        int n = poll(p, 2, timeout);
        if (n < 0 && errno != EINTR) {
            /* Should not happen; avoid spinning. */
            usleep(10000);
            continue;
        }
        if (n > 0 && (p[0].revents & POLLIN))
            efd_drain(r->wake_fd);
        /* An idle session only becomes readable when the server closes it (shutdown, kill,
         * wait_timeout): notice now instead of failing the next request. */
        if (n > 0 && connected && p[1].fd >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR))
            && !atomic_load(&r->want_read))
            go_down(r, &st, PTS_OP_READ, "connection closed by the server");
    }
    db_close(&st.db);
    atomic_store(&r->up, 0);
    metrics_set(r->m, PTS_S_DB_UP, 0);
    mysql_thread_end();
    return NULL;
}

int reader_start(struct reader *r, const struct pts_server_config *cfg, struct logger *log,
                 struct metrics *m, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    r->cfg = cfg;
    r->log = log;
    r->m = m;
    r->wake_fd = r->done_fd = -1;
    atomic_init(&r->want_read, 0);
    atomic_init(&r->stop, 0);
    atomic_init(&r->up, 0);
    if (pthread_mutex_init(&r->mu, NULL) != 0) {
        snprintf(err, errlen, "reader: mutex: %s", strerror(errno));
        return -1;
    }
    r->wake_fd = efd_new();
    r->done_fd = efd_new();
    if (r->wake_fd < 0 || r->done_fd < 0) {
        snprintf(err, errlen, "reader: eventfd: %s", strerror(errno));
        reader_stop(r);
        return -1;
    }
    int rc = pthread_create(&r->thread, NULL, reader_main, r);
    if (rc != 0) {
        snprintf(err, errlen, "reader: pthread_create: %s", strerror(rc));
        reader_stop(r);
        return -1;
    }
    r->started = 1;
    return 0;
}

void reader_request(struct reader *r)
{
    atomic_store(&r->want_read, 1);
    efd_signal(r->wake_fd);
}

void reader_take_result(struct reader *r, struct read_result *out)
{
    pthread_mutex_lock(&r->mu);
    *out = r->result;
    pthread_mutex_unlock(&r->mu);
}

int reader_up(struct reader *r)
{
    return atomic_load_explicit(&r->up, memory_order_relaxed);
}

void reader_stop(struct reader *r)
{
    if (r->started) {
        atomic_store(&r->stop, 1);
        efd_signal(r->wake_fd);
        pthread_join(r->thread, NULL);
        r->started = 0;
    }
    if (r->wake_fd >= 0)
        close(r->wake_fd);
    if (r->done_fd >= 0)
        close(r->done_fd);
    r->wake_fd = r->done_fd = -1;
    pthread_mutex_destroy(&r->mu);
}

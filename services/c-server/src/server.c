/* The event loop: accepting, timers, coalesced reads, shutdown (docs/design.md sections 1, 2,
 * 7); see server.h. The connections themselves: conn.c. */
#include "server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "generated/log_events.h"
#include "net.h"

/* The connection's numbers (protocol.toml [connection]; the Python server uses the same). */
#define LINGER_NS ((int64_t)(PTS_CONN_LINGER_SECONDS * NS_PER_SEC))
#define ACCEPT_PAUSE_NS ((int64_t)(PTS_CONN_ACCEPT_PAUSE_SECONDS * NS_PER_SEC))
#define SHUTDOWN_LINGER_NS ((int64_t)(PTS_CONN_SHUTDOWN_LINGER_SECONDS * NS_PER_SEC))
#define ACCEPT_BATCH PTS_CONN_ACCEPT_BATCH
#define BUSY_EXTRA PTS_CONN_BUSY_EXTRA
#define TLS_CHECK_NS ((int64_t)(PTS_CONN_TLS_RELOAD_CHECK_SECONDS * NS_PER_SEC))
#define OVERLOAD_QUIET_NS ((int64_t)(PTS_CONN_OVERLOAD_QUIET_SECONDS * NS_PER_SEC))
#define SHED_SCAN PTS_CONN_SHED_SCAN
#define HANDSHAKES_MAX PTS_CONN_HANDSHAKES_MAX
#define DESCRIPTORS_RESERVED PTS_CONN_DESCRIPTORS_RESERVED

/* Values of the labels of points_connections_shed_total and _refused_total (protocol.toml). */
enum { SHED_LINGER, SHED_READING };
enum { REFUSED_PER_SOURCE, REFUSED_FULL };
static const char *const refused_reason[] = {"per-source", "full"};

static void resume_accept(struct server *s);
static void on_listen(struct ae_loop *ae, struct ae_file *f, uint32_t events);
static void release_list(struct server *s, struct dlist *l);

/* ---- what connections ask of the server (conn.h) -------------------------------------- */

void server_conn_closed(struct server *s, struct conn *c)
{
    s->nconns--;
    if (c->in_table) {
        c->in_table = 0;
        s->ntable--;
        if (s->cfg->max_connections_per_source > 0)
            sources_remove(&s->sources, &c->peer.sa);
    }
    metrics_add(s->m, PTS_S_CONNECTIONS_ACTIVE, -1);
    dlist_push_back(&s->dead, &c->link);
    if (s->accept_paused)
        resume_accept(s);
}

void server_grace_start(struct server *s, struct conn *c)
{
    c->grace_deadline = mono_ns() + s->grace_ns;
    dlist_push_back(&s->grace, &c->glink);
}

void server_linger_start(struct server *s, struct conn *c, int64_t now)
{
    c->deadline = now + LINGER_NS;
    dlist_push_back(&s->linger, &c->link);
}

void server_drain_again(struct server *s, struct conn *c)
{
    if (dlist_empty(&c->glink))
        dlist_push_back(&s->again, &c->glink);
}

/* ---- TLS (tls.h) --------------------------------------------------------------------- */

void server_tls_done(struct server *s, struct conn *c)
{
    metrics_add(s->m, PTS_S_TLS_HANDSHAKES_TOTAL + PTS_TLS_OK, 1);
    if (c->deferred) { /* server-busy, waiting in the linger list for the handshake */
        c->deferred = 0;
        dlist_remove(&c->link);
        conn_error(s, c, PTS_ERR_SERVER_BUSY);
    }
}

void server_tls_failed(struct server *s, struct conn *c, int result, const char *error)
{
    metrics_add(s->m, PTS_S_TLS_HANDSHAKES_TOTAL + result, 1);
    if (!log_enabled(s->log, PTS_EV_TLS_HANDSHAKE_FAILED))
        return;
    char peer[64];
    net_format_peer(&c->peer.sa, peer, sizeof peer);
    log_tls_handshake_failed(s->log, peer, tls_result_name((enum pts_tls_result)result), error);
}

/* Read the certificate files again when they changed. */
static void tls_check_files(struct server *s)
{
    switch (tls_check(s->tls)) {
    case 1:
        metrics_add(s->m, PTS_S_TLS_RELOADS_TOTAL, 1);
        log_tls_loaded(s->log, s->tls->cert_file, s->tls->client_ca_file);
        break;
    case 0:
        metrics_add(s->m, PTS_S_TLS_RELOADS_TOTAL + 1, 1);
        log_tls_reload_failed(s->log, s->tls->cert_file, s->tls->error);
        break;
    default:
        break;
    }
}

void server_use_tls(struct server *s, struct tls *t)
{
    s->tls = t;
    s->tls_check_at = mono_ns() + TLS_CHECK_NS;
}

/* ---- reads of the row ----------------------------------------------------------------- */

static void start_read(struct server *s)
{
    if (s->read_in_flight || dlist_empty(&s->pending))
        return;
    if (!reader_up(s->rd)) {
        while (!dlist_empty(&s->pending))
            conn_error(s, link_conn(s->pending.next), PTS_ERR_DB_UNAVAILABLE);
        return;
    }
    dlist_splice(&s->batch, &s->pending);
    s->read_in_flight = 1;
    reader_request(s->rd);
}

void server_request_ready(struct server *s, struct conn *c)
{
    dlist_remove(&c->link);
    dlist_remove(&c->glink);
    c->t_req = mono_ns();
    if (s->staleness_ns > 0 && s->have_cache && s->cache.started_ns >= c->t_req - s->staleness_ns) {
        conn_send(s, c, s->reply, s->reply_len, -1);
        return;
    }
    if (!reader_up(s->rd)) {
        conn_error(s, c, PTS_ERR_DB_UNAVAILABLE);
        return;
    }
    conn_set_state(c, PTS_CONN_WAITING);
    dlist_push_back(&s->pending, &c->link);
    start_read(s);
}

static void on_read_done(struct ae_loop *ae, struct ae_file *f, uint32_t events)
{
    (void)f;
    (void)events;
    struct server *s = ae->owner;
    efd_drain(s->rd->done_fd);
    if (!s->read_in_flight)
        return;
    s->read_in_flight = 0;
    struct read_result res;
    reader_take_result(s->rd, &res);
    if (res.error < 0) {
        int n = snprintf(s->reply, sizeof s->reply, PTS_REPLY_FORMAT, s->cfg->server_user,
                         res.points, res.stamp);
        if (n < 0 || (size_t)n >= sizeof s->reply) {
            res.error = PTS_ERR_DB_UNAVAILABLE; /* cannot happen: row <= 50 bytes */
        } else {
            s->reply_len = (size_t)n;
            s->cache = res;
            s->have_cache = 1;
        }
    }
    while (!dlist_empty(&s->batch)) {
        struct conn *c = link_conn(s->batch.next);
        if (res.error < 0)
            conn_send(s, c, s->reply, s->reply_len, -1);
        else
            conn_error(s, c, (enum pts_error)res.error);
    }
    start_read(s);
}

/* ---- fairness (design.md section 10) ------------------------------------------------- */

/* A connection was shed or refused: overload starts (logged once) or goes on. */
static void overload_note(struct server *s, int shed, int reason, const struct conn *c,
                          int64_t now)
{
    if (shed)
        s->overload_shed++;
    else
        s->overload_refused++;
    s->overload_last = now;
    if (s->overloaded)
        return;
    s->overloaded = 1;
    s->overload_since = now;
    char peer[64];
    net_format_peer(&c->peer.sa, peer, sizeof peer);
    char *port = strrchr(peer, ':'); /* the address alone: the source */
    if (port)
        *port = '\0';
    log_overload_started(s->log, refused_reason[reason], peer, (long long)s->ntable,
                         (long long)s->table_max);
}

/* No connection shed or refused for OVERLOAD_QUIET_NS: overload is over. */
static void overload_check(struct server *s, int64_t now)
{
    if (!s->overloaded || now < s->overload_last + OVERLOAD_QUIET_NS)
        return;
    log_overload_ended(s->log, (double)(s->overload_last - s->overload_since) / NS_PER_SEC,
                       (long long)s->overload_shed, (long long)s->overload_refused);
    s->overloaded = 0;
    s->overload_shed = s->overload_refused = 0;
}

/* The table is full: close the oldest connection that is done (lingering after its reply),
 * or else the oldest without a complete request (told server-busy when it can be), looking at
 * SHED_SCAN list entries at most of each list. 1 when one was shed. */
static int shed_one(struct server *s, const struct conn *newcomer, int64_t now)
{
    int n = 0;
    for (struct dlist *p = s->linger.next; p != &s->linger && n < SHED_SCAN; p = p->next, n++) {
        struct conn *v = link_conn(p);
        if (v->in_table && v->state == PTS_CONN_LINGER) {
            metrics_add(s->m, PTS_S_CONNECTIONS_SHED_TOTAL + SHED_LINGER, 1);
            overload_note(s, 1, REFUSED_FULL, newcomer, now);
            conn_close(s, v);
            return 1;
        }
    }
    n = 0;
    for (struct dlist *p = s->idle.next; p != &s->idle && n < SHED_SCAN; p = p->next, n++) {
        struct conn *v = link_conn(p);
        if (dlist_empty(&v->glink)) { /* (in the grace list: a request without terminator) */
            metrics_add(s->m, PTS_S_CONNECTIONS_SHED_TOTAL + SHED_READING, 1);
            overload_note(s, 1, REFUSED_FULL, newcomer, now);
            conn_refuse(s, v, PTS_ERR_SERVER_BUSY);
            return 1;
        }
    }
    return 0;
}

/* TLS: more than HANDSHAKES_MAX connections in their handshake with c, the newest: close the
 * oldest other one still in its handshake (nothing can be said to it), looking at SHED_SCAN
 * entries of the idle list at most; else c itself. 1 when c was closed. */
static int shed_handshake(struct server *s, struct conn *c, int64_t now)
{
    int n = 0;
    for (struct dlist *p = s->idle.next; p != &s->idle && n < SHED_SCAN; p = p->next, n++) {
        struct conn *v = link_conn(p);
        if (v != c && conn_in_handshake(v)) {
            metrics_add(s->m, PTS_S_CONNECTIONS_SHED_TOTAL + SHED_READING, 1);
            overload_note(s, 1, REFUSED_FULL, c, now);
            conn_close(s, v);
            return 0;
        }
    }
    metrics_add(s->m, PTS_S_CONNECTIONS_REFUSED_TOTAL + REFUSED_FULL, 1);
    overload_note(s, 0, REFUSED_FULL, c, now);
    conn_close(s, c);
    return 1;
}

/* Take c into the table (-1), shedding another when it is full; or why not (REFUSED_*). */
static int admit(struct server *s, struct conn *c, int64_t now)
{
    long per_source = s->cfg->max_connections_per_source;
    if (per_source > 0 && sources_count(&s->sources, &c->peer.sa) >= (uint32_t)per_source)
        return REFUSED_PER_SOURCE;
    if (s->ntable >= s->table_max && !shed_one(s, c, now))
        return REFUSED_FULL;
    if (per_source > 0)
        sources_add(&s->sources, &c->peer.sa);
    c->in_table = 1;
    s->ntable++;
    return -1;
}

/* ERROR server-busy for c: with the usual linger while at most BUSY_EXTRA such connections
 * are open (over TLS, once the handshake has finished, bounded by the linger deadline), else
 * at once without linger. */
static void refuse(struct server *s, struct conn *c, int reason, int64_t now)
{
    metrics_add(s->m, PTS_S_CONNECTIONS_REFUSED_TOTAL + reason, 1);
    overload_note(s, 0, reason, c, now);
    if (s->nconns - s->ntable > BUSY_EXTRA) {
        conn_refuse(s, c, PTS_ERR_SERVER_BUSY);
    } else if (c->ssl) {
        c->deferred = 1;
        server_linger_start(s, c, now);
        conn_read(s, c);
    } else {
        conn_error(s, c, PTS_ERR_SERVER_BUSY);
    }
}

/* The connection table's size: MAX_CONNECTIONS, with the descriptor limit raised (as far as
 * the hard limit allows) to hold it and DESCRIPTORS_RESERVED more; fewer when it cannot be. */
static size_t table_size(const struct pts_server_config *cfg, rlim_t *nofile)
{
    rlim_t want = (rlim_t)cfg->max_connections + DESCRIPTORS_RESERVED;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        *nofile = 0;
        return (size_t)cfg->max_connections;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl); /* best effort */
        (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    *nofile = rl.rlim_cur;
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
        return (size_t)cfg->max_connections;
    return rl.rlim_cur > 2 * DESCRIPTORS_RESERVED ? (size_t)(rl.rlim_cur - DESCRIPTORS_RESERVED)
                                                 : DESCRIPTORS_RESERVED;
}

/* ---- accepting ------------------------------------------------------------------------ */

static void pause_accept(struct server *s)
{
    if (s->accept_paused || s->listen_fd < 0)
        return;
    if (ae_del(&s->ae, &s->listen_file) == 0) {
        s->accept_paused = 1;
        s->accept_resume = mono_ns() + ACCEPT_PAUSE_NS;
    }
}

static void resume_accept(struct server *s)
{
    if (!s->accept_paused || s->listen_fd < 0)
        return;
    if (ae_add(&s->ae, &s->listen_file, s->listen_fd, EPOLLIN, on_listen) == 0)
        s->accept_paused = 0;
    else
        s->accept_resume = mono_ns() + ACCEPT_PAUSE_NS;
}

static void on_listen(struct ae_loop *ae, struct ae_file *f, uint32_t events)
{
    (void)f;
    (void)events;
    struct server *s = ae->owner;
    for (int i = 0; i < ACCEPT_BATCH && s->listen_fd >= 0; i++) {
        struct conn *c = conn_alloc(&s->pool);
        if (!c) {
            pause_accept(s); /* out of memory: let the backlog wait */
            return;
        }
        socklen_t plen = sizeof c->peer;
        int fd = accept4(s->listen_fd, &c->peer.sa, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            conn_free(&s->pool, c);
            if (e == EINTR || e == ECONNABORTED || e == EPROTO || e == EPERM)
                continue;
            if (e != EAGAIN && e != EWOULDBLOCK)
                pause_accept(s); /* EMFILE, ENFILE, ENOBUFS, ENOMEM: retry when fds free up */
            return;
        }
        if (s->tls) {
            struct ssl_st *ssl = tls_new_conn(s->tls);
            if (!ssl) {
                close(fd);
                conn_free(&s->pool, c);
                pause_accept(s); /* out of memory: let the backlog wait */
                return;
            }
            conn_start_tls(c, ssl);
        }
        if (conn_watch(&s->ae, c, fd) < 0) {
            close(fd);
            conn_free(&s->pool, c); /* and its SSL object */
            pause_accept(s);
            return;
        }
        s->nconns++;
        if (c->ssl)
            s->nhandshakes++;
        metrics_add(s->m, PTS_S_CONNECTIONS_TOTAL, 1);
        metrics_add(s->m, PTS_S_CONNECTIONS_ACTIVE, 1);
        int64_t now = mono_ns();
        c->t_req = now;
        int refused = admit(s, c, now);
        if (refused >= 0) {
            refuse(s, c, refused, now);
            continue;
        }
        c->deadline = now + s->idle_ns;
        dlist_push_back(&s->idle, &c->link);
        if (s->nhandshakes > HANDSHAKES_MAX && shed_handshake(s, c, now))
            continue;
        conn_read(s, c); /* the request is often there already */
    }
}

/* ---- shutdown ------------------------------------------------------------------------- */

static size_t dlist_count(const struct dlist *l)
{
    size_t n = 0;
    for (const struct dlist *p = l->next; p != l; p = p->next)
        n++;
    return n;
}

static void begin_shutdown(struct server *s, int signo)
{
    int64_t now = mono_ns();
    if (s->stopping) {
        s->stop_deadline = now; /* a second signal: stop waiting */
        return;
    }
    s->stopping = 1;
    if (s->listen_fd >= 0) {
        if (!s->accept_paused)
            ae_del(&s->ae, &s->listen_file);
        close(s->listen_fd);
        s->listen_fd = -1;
        s->accept_paused = 0;
    }
    size_t in_flight = dlist_count(&s->idle) + dlist_count(&s->pending) + dlist_count(&s->batch);
    log_shutdown_started(s->log, signo == SIGINT ? "SIGINT" : "SIGTERM",
           in_flight);
    s->stop_deadline = now + secs_to_ns(s->cfg->shutdown_timeout);
}

static void force_stop(struct server *s, int64_t now)
{
    s->stop_forced = 1;
    s->drain_deadline = now + SHUTDOWN_LINGER_NS;
    while (!dlist_empty(&s->idle))
        conn_error(s, link_conn(s->idle.next), PTS_ERR_SHUTTING_DOWN);
    while (!dlist_empty(&s->pending))
        conn_error(s, link_conn(s->pending.next), PTS_ERR_SHUTTING_DOWN);
    while (!dlist_empty(&s->batch))
        conn_error(s, link_conn(s->batch.next), PTS_ERR_SHUTTING_DOWN);
}

static void on_signal(struct ae_loop *ae, struct ae_file *f, uint32_t events)
{
    (void)f;
    (void)events;
    struct server *s = ae->owner;
    struct signalfd_siginfo si;
    for (;;) {
        ssize_t n = read(s->sig_fd, &si, sizeof si);
        if (n < 0 && errno == EINTR)
            continue;
        if (n != (ssize_t)sizeof si)
            return;
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
            begin_shutdown(s, (int)si.ssi_signo);
    }
}

/* ---- timers and the loop -------------------------------------------------------------- */

static void run_timers(struct server *s, int64_t now)
{
    while (!dlist_empty(&s->idle)) {
        struct conn *c = link_conn(s->idle.next);
        if (c->deadline > now)
            break;
        if (conn_in_handshake(c)) /* an idle client too; over TLS it cannot be told so */
            server_tls_failed(s, c, PTS_TLS_TIMEOUT, "handshake not finished");
        conn_error(s, c, PTS_ERR_IDLE_TIMEOUT);
    }
    while (!dlist_empty(&s->grace)) {
        struct conn *c = glink_conn(s->grace.next);
        if (c->grace_deadline > now)
            break;
        server_request_ready(s, c);
    }
    while (!dlist_empty(&s->linger)) {
        struct conn *c = link_conn(s->linger.next);
        if (c->deadline > now)
            break;
        if (c->deferred) /* a busy client that never finished its handshake */
            server_tls_failed(s, c, PTS_TLS_TIMEOUT, "handshake not finished");
        conn_close(s, c);
    }
    if (s->tls && now >= s->tls_check_at) {
        tls_check_files(s);
        s->tls_check_at = mono_ns() + TLS_CHECK_NS;
    }
    if (s->accept_paused && now >= s->accept_resume)
        resume_accept(s);
    overload_check(s, now);
    if (s->stopping && !s->stop_forced && now >= s->stop_deadline)
        force_stop(s, now);
    if (s->stop_forced && now >= s->drain_deadline) /* the last lingering ones: close */
        release_list(s, &s->linger);
}

static void run_again(struct server *s)
{
    struct dlist todo;
    dlist_init(&todo);
    dlist_splice(&todo, &s->again);
    while (!dlist_empty(&todo)) {
        struct conn *c = glink_conn(todo.next);
        dlist_remove(&c->glink);
        conn_drain(s, c);
    }
}

/* Recycle the connections closed during this turn. */
static void free_dead(struct server *s)
{
    while (!dlist_empty(&s->dead)) {
        struct conn *c = link_conn(s->dead.next);
        dlist_remove(&c->link);
        conn_free(&s->pool, c);
    }
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

static int next_timeout(struct server *s, int64_t now)
{
    if (!dlist_empty(&s->again))
        return 0;
    int64_t next = now + NS_PER_SEC; /* the heartbeat for /healthz */
    if (!dlist_empty(&s->idle))
        next = min64(next, link_conn(s->idle.next)->deadline);
    if (!dlist_empty(&s->grace))
        next = min64(next, glink_conn(s->grace.next)->grace_deadline);
    if (!dlist_empty(&s->linger))
        next = min64(next, link_conn(s->linger.next)->deadline);
    if (s->accept_paused)
        next = min64(next, s->accept_resume);
    if (s->overloaded)
        next = min64(next, s->overload_last + OVERLOAD_QUIET_NS);
    if (s->tls)
        next = min64(next, s->tls_check_at);
    if (s->stopping && !s->stop_forced)
        next = min64(next, s->stop_deadline);
    if (s->stop_forced && !dlist_empty(&s->linger))
        next = min64(next, s->drain_deadline);
    return ms_until(next, now, 1000);
}

int server_run(struct server *s)
{
    for (;;) {
        int64_t now = mono_ns();
        atomic_store_explicit(&s->m->loop_heartbeat_ns, now, memory_order_relaxed);
        run_timers(s, now);
        free_dead(s);
        if (s->stopping && s->nconns == 0)
            return 0;
        if (ae_run_once(&s->ae, next_timeout(s, now)) < 0)
            return -1;
        run_again(s);
        free_dead(s);
    }
}

/* ---- setup ---------------------------------------------------------------------------- */

int server_init(struct server *s, const struct pts_server_config *cfg, struct logger *log, struct metrics *m,
                struct reader *rd, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    s->cfg = cfg;
    s->log = log;
    s->m = m;
    s->rd = rd;
    s->ae.epfd = s->listen_fd = s->sig_fd = -1;
    dlist_init(&s->idle);
    dlist_init(&s->grace);
    dlist_init(&s->linger);
    dlist_init(&s->again);
    dlist_init(&s->pending);
    dlist_init(&s->batch);
    conn_pool_init(&s->pool);
    dlist_init(&s->dead);
    s->idle_ns = secs_to_ns(cfg->idle_timeout);
    s->grace_ns = secs_to_ns(cfg->request_grace);
    s->staleness_ns = secs_to_ns(cfg->max_staleness);
    rlim_t nofile;
    s->table_max = table_size(cfg, &nofile);
    if (s->table_max < (size_t)cfg->max_connections)
        log_connections_limited(log, cfg->max_connections, (long long)s->table_max,
                                (long long)nofile);
    if (cfg->max_connections_per_source > 0 && sources_init(&s->sources, s->table_max) != 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }

    if (ae_init(&s->ae, s, err, errlen) != 0)
        goto fail;
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    s->sig_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (s->sig_fd < 0) {
        snprintf(err, errlen, "signalfd: %s", strerror(errno));
        goto fail;
    }
    int backlog = cfg->listen_backlog > 65535 ? 65535 : (int)cfg->listen_backlog;
    s->listen_fd = net_listen_tcp(cfg->server_host, cfg->server_port, backlog, err, errlen);
    if (s->listen_fd < 0)
        goto fail;
    if (ae_add(&s->ae, &s->listen_file, s->listen_fd, EPOLLIN, on_listen) < 0
        || ae_add(&s->ae, &s->sig_file, s->sig_fd, EPOLLIN, on_signal) < 0) {
        snprintf(err, errlen, "epoll_ctl: %s", strerror(errno));
        goto fail;
    }
    return 0;
fail:
    server_destroy(s);
    return -1;
}

int server_attach_reader(struct server *s, char *err, size_t errlen)
{
    if (ae_add(&s->ae, &s->reader_file, s->rd->done_fd, EPOLLIN, on_read_done) < 0) {
        snprintf(err, errlen, "epoll_ctl: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static void release_list(struct server *s, struct dlist *l)
{
    while (!dlist_empty(l))
        conn_close(s, link_conn(l->next));
}

void server_destroy(struct server *s)
{
    s->accept_paused = 0;
    release_list(s, &s->idle);
    release_list(s, &s->pending);
    release_list(s, &s->batch);
    release_list(s, &s->linger);
    free_dead(s);
    conn_pool_destroy(&s->pool);
    sources_destroy(&s->sources);
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->sig_fd >= 0)
        close(s->sig_fd);
    ae_destroy(&s->ae);
    s->listen_fd = s->sig_fd = -1;
}

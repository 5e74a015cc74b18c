/* One client connection: the state machine, its socket's reads and writes, the reply, linger
 * (docs/design.md section 1); see conn.h. */
#include "conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "generated/log_events.h"
#include "metrics.h"
#include "net.h"
#include "server.h"

#define CONN_FREE_CACHE 1024 /* connection structs kept for reuse */
#define LINGER_READS 32      /* reads of 64 KiB per linger turn before yielding */

/* ---- the pool ------------------------------------------------------------------------- */

void conn_pool_init(struct conn_pool *p)
{
    dlist_init(&p->free_list);
    p->nfree = 0;
}

void conn_pool_destroy(struct conn_pool *p)
{
    while (!dlist_empty(&p->free_list)) {
        struct conn *c = link_conn(p->free_list.next);
        dlist_remove(&c->link);
        free(c);
    }
    p->nfree = 0;
}

struct conn *conn_alloc(struct conn_pool *p)
{
    struct conn *c;
    if (!dlist_empty(&p->free_list)) {
        c = link_conn(p->free_list.next);
        dlist_remove(&c->link);
        p->nfree--;
    } else {
        c = malloc(sizeof *c);
        if (!c)
            return NULL;
    }
    c->fd = -1;
    conn_set_state(c, PTS_CONN_READING);
    c->outcome = -1;
    c->len = 0;
    c->deadline = c->grace_deadline = c->t_req = 0;
    dlist_init(&c->link);
    dlist_init(&c->glink);
    c->out = NULL;
    c->out_len = c->out_off = 0;
    return c;
}

void conn_free(struct conn_pool *p, struct conn *c)
{
    if (p->nfree < CONN_FREE_CACHE) {
        dlist_push_back(&p->free_list, &c->link);
        p->nfree++;
    } else {
        free(c);
    }
}

/* ---- connection life ------------------------------------------------------------------ */

/* The one place a connection changes state (its name: pts_conn_state_name). */
void conn_set_state(struct conn *c, enum pts_conn_state state)
{
    c->state = state;
}

void conn_close(struct server *s, struct conn *c)
{
    dlist_remove(&c->link);
    dlist_remove(&c->glink);
    if (close(c->fd) < 0 && errno != EINTR) {
        /* EBADF would be a bug; nothing else can be done about EIO on a socket. */
    }
    c->fd = -1;
    conn_set_state(c, PTS_CONN_CLOSED); /* later events of this turn for it are ignored */
    server_conn_closed(s, c);
}

/* The debug-level request event: the peer is formatted only when it is logged. */
static void trace_request(struct server *s, struct conn *c, int outcome, int64_t dur_ns)
{
    if (!log_enabled(s->log, PTS_EV_REQUEST))
        return;
    char peer[64];
    net_format_peer(&c->peer.sa, peer, sizeof peer);
    log_request(s->log, peer, outcome < 0 ? "ok" : pts_error_code[outcome], (double)dur_ns / 1e6);
}

/* Read and discard input until EOF (close), EAGAIN (wait) or the per-turn budget. */
void conn_drain(struct server *s, struct conn *c)
{
    for (int i = 0; i < LINGER_READS; i++) {
        ssize_t n = recv(c->fd, s->scratch, sizeof s->scratch, MSG_DONTWAIT);
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        conn_close(s, c); /* EOF, or the peer reset: done */
        return;
    }
    server_drain_again(s, c); /* more to discard on the next turn */
}

/* ---- writing the reply ---------------------------------------------------------------- */

void conn_flush(struct server *s, struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (c->out != c->buf) { /* keep the rest in the connection's own buffer */
                size_t rest = c->out_len - c->out_off;
                memmove(c->buf, c->out + c->out_off, rest);
                c->out = c->buf;
                c->out_len = rest;
                c->out_off = 0;
            }
            if (dlist_empty(&c->link))
                server_linger_start(s, c, mono_ns());
            return; /* EPOLLOUT continues */
        }
        conn_close(s, c); /* EPIPE, ECONNRESET: the client is gone */
        return;
    }
    int64_t now = mono_ns();
    metrics_reply(s->m, c->outcome, now - c->t_req);
    trace_request(s, c, c->outcome, now - c->t_req);
    dlist_remove(&c->link);
    if (shutdown(c->fd, SHUT_WR) < 0) {
        conn_close(s, c);
        return;
    }
    conn_set_state(c, PTS_CONN_LINGER);
    server_linger_start(s, c, now);
    conn_drain(s, c);
}

void conn_send(struct server *s, struct conn *c, const char *data, size_t len, int outcome)
{
    dlist_remove(&c->link);
    dlist_remove(&c->glink);
    conn_set_state(c, PTS_CONN_WRITING);
    c->outcome = outcome;
    c->out = data;
    c->out_len = len;
    c->out_off = 0;
    conn_flush(s, c);
}

void conn_error(struct server *s, struct conn *c, enum pts_error e)
{
    if (c->state == PTS_CONN_READING)
        c->t_req = mono_ns();
    conn_send(s, c, pts_error_line[e], strlen(pts_error_line[e]), (int)e);
}

void conn_refuse(struct server *s, struct conn *c, enum pts_error e)
{
    const char *line = pts_error_line[e];
    if (send(c->fd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT) > 0)
        metrics_reply(s->m, (int)e, 0);
    conn_close(s, c);
}

/* ---- reading a request ---------------------------------------------------------------- */

void conn_read(struct server *s, struct conn *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, c->buf + c->len, REQUEST_BUF_CAP - c->len, MSG_DONTWAIT);
        enum verdict r;
        if (n > 0) {
            c->len += (size_t)n;
            r = request_scan(c->buf, c->len);
        } else if (n == 0) {
            r = request_scan_eof(c->buf, c->len);
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        } else {
            conn_close(s, c); /* reset by the peer */
            return;
        }
        switch (r) {
        case VERDICT_REQUEST:
            server_request_ready(s, c);
            return;
        case VERDICT_UNKNOWN:
            conn_error(s, c, PTS_ERR_UNKNOWN_COMMAND);
            return;
        case VERDICT_TOO_LONG:
            conn_error(s, c, PTS_ERR_LINE_TOO_LONG);
            return;
        case VERDICT_EMPTY:
            conn_close(s, c); /* connect then close: nothing to answer */
            return;
        case VERDICT_GRACE:
            dlist_remove(&c->glink);
            server_grace_start(s, c);
            break;
        case VERDICT_MORE:
            dlist_remove(&c->glink);
            break;
        }
        if (c->len >= REQUEST_BUF_CAP) /* cannot happen: a full buffer always decides */
            return;
    }
}

/* ---- events --------------------------------------------------------------------------- */

static void on_conn(struct ae_loop *ae, struct ae_file *f, uint32_t events)
{
    struct server *s = ae->owner;
    struct conn *c = container_of(f, struct conn, file);
    const uint32_t input = EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP;
    switch (c->state) {
    case PTS_CONN_CLOSED: /* closed earlier in this turn (e.g. answered by a finished read) */
    case PTS_CONN_STATES_COUNT:
        break;
    case PTS_CONN_READING:
        if (events & input) /* not the bare "writable" edge that follows every accept */
            conn_read(s, c);
        break;
    case PTS_CONN_WAITING:
        break; /* the reply comes from the read; EOF and errors show up when writing */
    case PTS_CONN_WRITING:
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            conn_flush(s, c);
        break;
    case PTS_CONN_LINGER:
        if (events & input)
            conn_drain(s, c);
        break;
    }
}

int conn_watch(struct ae_loop *ae, struct conn *c, int fd)
{
    c->fd = fd;
    return ae_add(ae, &c->file, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, on_conn);
}

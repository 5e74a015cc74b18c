/* One client connection: the state machine, its socket's reads and writes, the reply, linger
 * (docs/design.md section 1); see conn.h. */
#include "conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "generated/log_events.h"
#include "metrics.h"
#include "net.h"
#include "server.h"
#include "tls.h"

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
    c->ssl = NULL;
    c->handshaken = c->deferred = c->peer_done = c->in_table = 0;
    return c;
}

void conn_free(struct conn_pool *p, struct conn *c)
{
    if (c->ssl) { /* a connection never watched */
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
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
    if (conn_in_handshake(c))
        s->nhandshakes--;
    if (c->ssl) {
        SSL_free(c->ssl); /* and its two BIOs */
        c->ssl = NULL;
    }
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

/* TLS: send what the SSL object wrote (handshake flights, the reply's records). 0 when all is
 * out, 1 at EAGAIN (EPOLLOUT continues; a reply waits in the linger list, bounded; a handshake
 * flight keeps the idle deadline), -1 when the connection closed (the peer is gone). */
static int tls_send_pending(struct server *s, struct conn *c)
{
    BIO *wbio = SSL_get_wbio(c->ssl);
    for (;;) {
        char *p;
        long pending = BIO_get_mem_data(wbio, &p);
        if (pending <= 0)
            return 0;
        ssize_t n = send(c->fd, p, (size_t)pending, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) {
            while (n > 0) { /* drop what went out */
                int chunk = n > (ssize_t)sizeof s->scratch ? (int)sizeof s->scratch : (int)n;
                int got = BIO_read(wbio, s->scratch, chunk);
                if (got <= 0)
                    break;
                n -= got;
            }
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (c->state == PTS_CONN_WRITING && dlist_empty(&c->link))
                server_linger_start(s, c, mono_ns());
            return 1;
        }
        conn_close(s, c); /* EPIPE, ECONNRESET: the client is gone */
        return -1;
    }
}

void conn_flush(struct server *s, struct conn *c)
{
    if (c->ssl) {
        if (tls_send_pending(s, c) != 0)
            return;
    }
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
    if (c->peer_done || shutdown(c->fd, SHUT_WR) < 0) { /* the peer ended TLS: done */
        conn_close(s, c);
        return;
    }
    conn_set_state(c, PTS_CONN_LINGER);
    server_linger_start(s, c, now);
    conn_drain(s, c);
}

/* TLS: the reply as records, then close_notify (SSL_shutdown once: the peer's is not waited
 * for), into the write BIO; conn_flush sends them. */
static int tls_write_reply(struct conn *c, const char *data, size_t len)
{
    int ok = SSL_write(c->ssl, data, (int)len) == (int)len;
    if (ok) {
        int r = SSL_shutdown(c->ssl);
        ok = r >= 0 || SSL_get_error(c->ssl, r) == SSL_ERROR_WANT_READ;
    }
    ERR_clear_error();
    return ok;
}

void conn_send(struct server *s, struct conn *c, const char *data, size_t len, int outcome)
{
    dlist_remove(&c->link);
    dlist_remove(&c->glink);
    if (c->ssl) {
        if (!c->handshaken || !tls_write_reply(c, data, len)) {
            conn_close(s, c); /* nothing can be said before the handshake has finished */
            return;
        }
        data = NULL;
        len = 0;
    }
    conn_set_state(c, PTS_CONN_WRITING);
    c->outcome = outcome;
    c->out = data;
    c->out_len = len;
    c->out_off = 0;
    conn_flush(s, c);
}

void conn_error(struct server *s, struct conn *c, enum pts_error e)
{
    if (conn_in_handshake(c)) {
        conn_close(s, c);
        return;
    }
    if (c->state == PTS_CONN_READING)
        c->t_req = mono_ns();
    conn_send(s, c, pts_error_line[e], strlen(pts_error_line[e]), (int)e);
}

/* One non-blocking send of what TLS has put into the write BIO (a refusal's record and
 * close_notify: a few hundred bytes at most): 1 when all of it went. */
static int tls_send_once(struct server *s, struct conn *c)
{
    BIO *wbio = SSL_get_wbio(c->ssl);
    int n = BIO_read(wbio, s->scratch, (int)sizeof s->scratch);
    return n > 0 && send(c->fd, s->scratch, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) == n;
}

void conn_refuse(struct server *s, struct conn *c, enum pts_error e)
{
    const char *line = pts_error_line[e];
    if (conn_in_handshake(c)) {
        conn_close(s, c);
        return;
    }
    /* Over TLS the line goes as a record, then close_notify: never as plaintext bytes in the
     * middle of the TLS stream (the client would see a record error, not server-busy). One
     * attempt either way: a refusal never waits for a slow reader. */
    int sent = c->ssl ? tls_write_reply(c, line, strlen(line)) && tls_send_once(s, c)
                      : send(c->fd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT) > 0;
    if (sent)
        metrics_reply(s->m, (int)e, 0);
    /* Unread input would turn the close into a reset; what is still on its way may yet. */
    for (int i = 0; i < 4; i++) {
        if (recv(c->fd, s->scratch, sizeof s->scratch, MSG_DONTWAIT) <= 0)
            break;
    }
    conn_close(s, c);
}

/* ---- reading a request ---------------------------------------------------------------- */

/* Act on request_scan's verdict: 1 to read on, 0 when c has moved on (answered, closed). */
static inline int on_verdict(struct server *s, struct conn *c, enum verdict r)
{
    switch (r) {
    case VERDICT_REQUEST:
        server_request_ready(s, c);
        return 0;
    case VERDICT_UNKNOWN:
        conn_error(s, c, PTS_ERR_UNKNOWN_COMMAND);
        return 0;
    case VERDICT_TOO_LONG:
        conn_error(s, c, PTS_ERR_LINE_TOO_LONG);
        return 0;
    case VERDICT_EMPTY:
        conn_close(s, c); /* connect then close: nothing to answer */
        return 0;
    case VERDICT_GRACE:
        dlist_remove(&c->glink);
        server_grace_start(s, c);
        break;
    case VERDICT_MORE:
        dlist_remove(&c->glink);
        break;
    }
    return c->len < REQUEST_BUF_CAP; /* cannot be full: a full buffer always decides */
}

void conn_start_tls(struct conn *c, SSL *ssl)
{
    c->ssl = ssl;
    c->handshaken = c->deferred = c->peer_done = 0;
}

/* A failed handshake: count it (by OpenSSL's reason, or result when >= 0), send the alert
 * OpenSSL wrote, close. */
static void tls_fail(struct server *s, struct conn *c, int ssl_error)
{
    unsigned long err = ERR_peek_last_error();
    int result = ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_ZERO_RETURN
                     ? PTS_TLS_CLOSED
                     : (int)tls_failure_result(err);
    char why[512];
    tls_describe(why, sizeof why, err, SSL_get_verify_result(c->ssl));
    ERR_clear_error();
    server_tls_failed(s, c, result, why);
    if (tls_send_pending(s, c) >= 0) /* the alert, when OpenSSL wrote one */
        conn_close(s, c);
}

/* Drive the handshake with what the read BIO holds: 1 when it has finished and c still reads
 * (its plaintext follows), 0 when it needs more bytes, -1 when c has moved on (closed after a
 * failure, or answering a deferred server-busy). */
static int tls_handshake(struct server *s, struct conn *c)
{
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->handshaken = 1;
        s->nhandshakes--;
        if (tls_send_pending(s, c) < 0) { /* the last flight (TLS 1.3: the session tickets) */
            /* c is closed (its fields stay valid until the end of this loop turn): the peer
             * left before the handshake's end reached it; counted as the Python server does. */
            server_tls_failed(s, c, PTS_TLS_CLOSED, "closed in the handshake");
            return -1;
        }
        server_tls_done(s, c); /* may answer a deferred server-busy */
        return c->state == PTS_CONN_READING ? 1 : -1;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return tls_send_pending(s, c) < 0 ? -1 : 0; /* this flight of the handshake */
    tls_fail(s, c, e);
    return -1;
}

/* conn_read over TLS: raw bytes into the SSL object, the handshake, then its plaintext into
 * c->buf and the scanner. The socket's EOF (FIN) ends the request stream, as in plaintext
 * (close_notify too); EOF or a reset during the handshake counts "closed". */
static void conn_read_tls(struct server *s, struct conn *c)
{
    SSL *ssl = c->ssl;
    for (;;) {
        ssize_t n = recv(c->fd, s->scratch, sizeof s->scratch, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (!c->handshaken)
                server_tls_failed(s, c, PTS_TLS_CLOSED, strerror(errno));
            conn_close(s, c); /* reset by the peer */
            return;
        }
        if (n == 0) {
            if (!c->handshaken) {
                server_tls_failed(s, c, PTS_TLS_CLOSED, "EOF during the handshake");
                conn_close(s, c);
                return;
            }
            on_verdict(s, c, request_scan_eof(c->buf, c->len));
            return;
        }
        if (BIO_write(SSL_get_rbio(ssl), s->scratch, (int)n) != (int)n) {
            ERR_clear_error();
            conn_close(s, c); /* out of memory */
            return;
        }
        if (!c->handshaken) {
            int h = tls_handshake(s, c);
            if (h < 0)
                return;
            if (h == 0)
                continue;
        }
        for (;;) {
            int r = SSL_read(ssl, c->buf + c->len, (int)(REQUEST_BUF_CAP - c->len));
            if (r > 0) {
                c->len += (size_t)r;
                if (!on_verdict(s, c, request_scan(c->buf, c->len)))
                    return;
                continue;
            }
            int e = SSL_get_error(ssl, r);
            if (e == SSL_ERROR_WANT_READ)
                break;
            ERR_clear_error();
            if (e == SSL_ERROR_ZERO_RETURN) { /* close_notify: the end of the client's stream */
                c->peer_done = 1;
                on_verdict(s, c, request_scan_eof(c->buf, c->len));
            } else {
                conn_close(s, c); /* a broken record after the handshake: nothing to answer */
            }
            return;
        }
    }
}

void conn_read(struct server *s, struct conn *c)
{
    if (c->ssl) {
        conn_read_tls(s, c);
        return;
    }
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
        if (!on_verdict(s, c, r))
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
        if (c->ssl && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            && BIO_ctrl_pending(SSL_get_wbio(c->ssl)) > 0 && tls_send_pending(s, c) < 0)
            break; /* the rest of a handshake flight; the peer was gone */
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

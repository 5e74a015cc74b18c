/* One client connection of the protocol server (docs/design.md section 1): its state, its
 * socket's reads and writes, its reply, its linger. Mirror: points_server/conn.py
 * (class Connection).
 *
 * States (enum pts_conn_state, protocol.toml [connection]): READING -> WAITING (for a
 * coalesced read) -> WRITING -> LINGER -> CLOSED, or READING -> WRITING for an error line;
 * changed by conn_set_state only.
 *
 * conn.c owns the connection: the pool of structs (alloc, free cache), its events in the loop,
 * reading and scanning the request (request.c's verdicts), sending and flushing the reply
 * (counted in the metrics and traced when it is out), the error replies, the linger drain after
 * the reply, and the close. The server (server.c) owns what spans connections: accepting, the
 * lists a connection sits in (timers, the batch waiting for the reader; conn.c only takes a
 * connection out of them, which needs no list head), shutdown.
 *
 * The interface both ways, and nothing else:
 *   server -> conn: the functions below.
 *   conn -> server: the server_* functions at the end (defined in server.c): a request
 *     is complete, a connection closed, a connection joins the grace, linger or again list,
 *     a TLS handshake finished or failed;
 *     and, of struct server, only m (metrics), log and scratch (the linger drains' discard
 *     buffer).
 * All of it runs on the loop's thread; what acts on a connection takes the server whose loop
 * runs it (s). */
#ifndef PTS_CONN_H
#define PTS_CONN_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "ae.h"
#include "points_protocol.h"
#include "request.h"
#include "util.h"

struct server;
struct ssl_st;

struct conn {
    struct ae_file file; /* the socket in the loop */
    int fd;
    enum pts_conn_state state; /* changed by conn_set_state only */
    int outcome;            /* -1: reply; else enum pts_error */
    size_t len;
    int64_t deadline;       /* idle deadline (READING) or linger deadline (WRITING, LINGER) */
    int64_t grace_deadline;
    int64_t t_req;          /* when the request became complete (or the error was decided) */
    struct dlist link;      /* idle, pending, batch or linger list; free list */
    struct dlist glink;     /* grace list (READING) or again list (LINGER) */
    const char *out;
    size_t out_len, out_off;
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } peer;
    /* TLS (tls.h; NULL in plaintext): an SSL object between two memory BIOs. Its output (the
     * handshake's flights, the reply's records and close_notify) waits in its write BIO until
     * the socket takes it, instead of out. */
    struct ssl_st *ssl;
    unsigned char handshaken; /* TLS: the handshake has finished */
    unsigned char deferred;   /* TLS: server-busy, answered once the handshake has finished
                               * (in the linger list meanwhile, which bounds the wait) */
    unsigned char peer_done;  /* TLS: the peer's close_notify came: close once the reply is out */
    unsigned char in_table;   /* counted in the connection table and its source's count
                               * (server.c; not a server-busy one on its way out) */
    char buf[REQUEST_BUF_CAP];
};

/* TLS and its handshake not finished: nothing can be said to the client yet. */
static inline int conn_in_handshake(const struct conn *c)
{
    return c->ssl != NULL && !c->handshaken;
}

/* The connection of a list node: its link, its glink. */
static inline struct conn *link_conn(struct dlist *l)
{
    return container_of(l, struct conn, link);
}
static inline struct conn *glink_conn(struct dlist *l)
{
    return container_of(l, struct conn, glink);
}

/* ---- the pool ------------------------------------------------------------------------- */

/* Freed connection structs kept for reuse (at most CONN_FREE_CACHE of conn.c), so a busy
 * server does not malloc per accept. One per server, embedded in it. */
struct conn_pool {
    struct dlist free_list;
    size_t nfree;
};

void conn_pool_init(struct conn_pool *p);
/* free() every cached struct. */
void conn_pool_destroy(struct conn_pool *p);
/* A connection in READING with no socket and on no list; NULL when out of memory. */
struct conn *conn_alloc(struct conn_pool *p);
/* Back to the pool: c is on no list and its socket is closed (or was never set); its SSL
 * object, if any is left, is freed. */
void conn_free(struct conn_pool *p, struct conn *c);

/* ---- the connection ------------------------------------------------------------------- */

/* The one place a connection changes state (its name: pts_conn_state_name). */
void conn_set_state(struct conn *c, enum pts_conn_state state);

/* Take the accepted socket fd (non-blocking) and watch it in ae (edge-triggered), its events
 * handled by conn.c. 0, or -1 with errno set: fd is then not watched and still the caller's to
 * close. */
int conn_watch(struct ae_loop *ae, struct conn *c, int fd);

/* Speak TLS on c (before conn_read): ssl (tls_new_conn) is c's from now on, freed when c
 * closes. The handshake runs as bytes arrive; its plaintext then goes to the same scanner. */
void conn_start_tls(struct conn *c, struct ssl_st *ssl);

/* READING: read what has arrived and act on request_scan's verdict: a request goes to
 * server_request_ready, a bad line gets its error reply, an exact command without terminator
 * starts the grace timer, EOF with nothing received or a reset closes. Returns at EAGAIN. */
void conn_read(struct server *s, struct conn *c);

/* Leave every list and go to WRITING with the reply data (not copied: static, or the server's
 * reply buffer, which holds until the connection has taken what is unsent), outcome -1 for a
 * reply or an enum pts_error; then conn_flush. */
void conn_send(struct server *s, struct conn *c, const char *data, size_t len, int outcome);
/* conn_send of e's error line; the request's time starts now if it was still READING. */
void conn_error(struct server *s, struct conn *c, enum pts_error e);
/* Over TLS before the handshake has finished, conn_send, conn_error and conn_refuse close the
 * connection without a word (there is no way to say anything yet). */
/* Without buffers, timers or linger (a server-busy beyond the busy margin, or a connection
 * shed to make room): one non-blocking send of e's error line, counted when any of it went
 * out, then the input already received is discarded (so that the close is a FIN, not a reset
 * that could destroy the line) and the connection closed. */
void conn_refuse(struct server *s, struct conn *c, enum pts_error e);

/* WRITING: send what is left. On EAGAIN keep the rest in c's own buffer and wait for EPOLLOUT
 * (in the linger list, bounded). When all is out: count and trace the reply, FIN
 * (shutdown SHUT_WR), LINGER, drain. */
void conn_flush(struct server *s, struct conn *c);

/* LINGER: read and discard input until EOF (close), EAGAIN (wait) or the per-turn budget
 * (server_drain_again). */
void conn_drain(struct server *s, struct conn *c);

/* Leave every list, close the socket, go to CLOSED (later events of this loop turn for c are
 * ignored), then server_conn_closed: c goes back to the pool after the turn. */
void conn_close(struct server *s, struct conn *c);

/* ---- what a connection asks of its server (defined in server.c) ----------------------- */

/* c holds a complete request (READING, possibly in the grace list): answer it from a recent
 * read (MAX_STALENESS), or join the batch for the next read (WAITING), or db-unavailable. */
void server_request_ready(struct server *s, struct conn *c);
/* c has closed its socket and is CLOSED (called once per connection, on no list): count it
 * out, recycle it after this loop turn, resume accepting if paused. */
void server_conn_closed(struct server *s, struct conn *c);
/* c (READING, not in the grace list) got the command without terminator: the grace timer
 * starts now (REQUEST_GRACE). */
void server_grace_start(struct server *s, struct conn *c);
/* c (WRITING or LINGER, on no link list) joins the linger list: closed at now + linger. */
void server_linger_start(struct server *s, struct conn *c, int64_t now);
/* c (LINGER) has more input to discard than one turn's budget: drain again after this loop
 * turn (no-op if already listed). */
void server_drain_again(struct server *s, struct conn *c);
/* c's TLS handshake has finished (c READING): count it; a deferred server-busy line is sent
 * now. */
void server_tls_done(struct server *s, struct conn *c);
/* c's TLS handshake failed with result (enum pts_tls_result; error: why, for the debug log):
 * count it. The caller closes c. */
void server_tls_failed(struct server *s, struct conn *c, int result, const char *error);

#endif

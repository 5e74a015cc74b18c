/* The points protocol server: one event loop (ae.c) for every client connection.
 *
 * server.c owns what spans connections: the listener and accept (in batches; paused when
 * descriptors or memory run out, resumed after a pause or when a connection closes), the
 * three timer lists, the batch of requests waiting for the coalescing reader and the fan-out
 * of its result, shutdown (signals, drain, forced stop) and the run loop. A connection itself
 * (its state machine, reads, replies, linger, close, the pool of structs) is conn.c's; conn.h
 * says what each asks of the other. Mirror: points_server/server.py (class Server).
 *
 * Fairness (design.md section 10): the connection table holds at most table_max connections
 * and MAX_CONNECTIONS_PER_SOURCE per source address (sources.c); when it is full a new
 * connection takes the place of the oldest one lingering after its reply, or else of the
 * oldest one without a complete request (shed); otherwise it is refused server-busy.
 *
 * Timers are three FIFO lists, each ordered by construction because every entry of a list
 * gets the same duration: idle (from accept), grace (from the last byte), linger (from the
 * reply). Signals arrive through a signalfd; read results through the reader's eventfd. */
#ifndef PTS_SERVER_H
#define PTS_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "ae.h"
#include "config.h"
#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "reader.h"
#include "sources.h"
#include "tls.h"
#include "util.h"

struct server {
    const struct pts_server_config *cfg;
    struct logger *log;
    struct metrics *m;
    struct reader *rd;
    struct ae_loop ae;
    int listen_fd, sig_fd;
    struct ae_file listen_file, sig_file, reader_file;
    struct dlist idle, grace, linger, again, pending, batch;
    /* Closed this loop turn; recycled only after the turn, since events for them may still
     * be pending in the batch the loop is handling. */
    struct dlist dead;
    struct conn_pool pool;
    size_t nconns;    /* open connections: the table's and server-busy ones on their way out */
    size_t ntable;    /* the connection table's (conn.in_table), at most table_max */
    size_t nhandshakes; /* TLS connections in their handshake (conn_in_handshake) */
    size_t table_max; /* MAX_CONNECTIONS, or fewer when the descriptor limit is lower */
    struct sources sources; /* per source address (MAX_CONNECTIONS_PER_SOURCE > 0) */
    /* Overload (design.md section 10): since when, the last shed or refusal, and its counts
     * (logged when it starts and when it ends). */
    int overloaded;
    int64_t overload_since, overload_last;
    uint64_t overload_shed, overload_refused;
    int read_in_flight;
    int accept_paused;
    int64_t accept_resume;
    int stopping, stop_forced;
    int64_t stop_deadline, drain_deadline;
    int64_t idle_ns, grace_ns, staleness_ns;
    int have_cache;
    struct read_result cache;
    struct tls *tls;      /* TLS on the protocol port (server_use_tls); NULL: plaintext */
    int64_t tls_check_at; /* the next look at the certificate files */
    char reply[256];
    size_t reply_len;
    char scratch[65536];
};

/* Listen (SERVER_HOST:SERVER_PORT) and prepare the loop. SIGTERM/SIGINT must already be
 * blocked in every thread (the loop reads them from a signalfd). */
int server_init(struct server *s, const struct pts_server_config *cfg, struct logger *log, struct metrics *m,
                struct reader *rd, char *err, size_t errlen);
/* Speak TLS on every connection accepted from now on, with t's certificate (loaded; still the
 * caller's, destroyed after server_destroy); its files are checked for a change every
 * CONN_TLS_RELOAD_CHECK_SECONDS. */
void server_use_tls(struct server *s, struct tls *t);
/* Register the reader's eventfd (after reader_start). 0 or -1. */
int server_attach_reader(struct server *s, char *err, size_t errlen);
/* Serve until a signal and the drain of section 7 are done. 0, or -1 on a fatal error. */
int server_run(struct server *s);
void server_destroy(struct server *s);

/* The functions conn.c calls (server_request_ready, server_conn_closed, server_grace_start,
 * server_linger_start, server_drain_again, server_tls_done, server_tls_failed) are declared in
 * conn.h, with that interface. */

#endif

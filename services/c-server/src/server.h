/* The points protocol server: one event loop (ae.c) for every client connection.
 *
 * Per connection (enum pts_conn_state, protocol.toml [connection]): READING -> WAITING (for a
 * coalesced read) -> WRITING -> LINGER -> CLOSED, changed by conn_set_state only.
 * Timers are three FIFO lists, each ordered by construction because every entry of a list
 * gets the same duration: idle (from accept), grace (from the last byte), linger (from the
 * reply). Signals arrive through a signalfd; read results through the reader's eventfd. */
#ifndef PTS_SERVER_H
#define PTS_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "ae.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "reader.h"
#include "util.h"

struct server {
    const struct pts_server_config *cfg;
    struct logger *log;
    struct metrics *m;
    struct reader *rd;
    struct ae_loop ae;
    int listen_fd, sig_fd;
    struct ae_file listen_file, sig_file, reader_file;
    struct dlist idle, grace, linger, again, pending, batch, free_list;
    /* Closed this loop turn; recycled only after the turn, since events for them may still
     * be pending in the batch the loop is handling. */
    struct dlist dead;
    size_t nconns, nfree;
    int read_in_flight;
    int accept_paused;
    int64_t accept_resume;
    int stopping, stop_forced;
    int64_t stop_deadline, drain_deadline;
    int64_t idle_ns, grace_ns, staleness_ns;
    int have_cache;
    struct read_result cache;
    char reply[256];
    size_t reply_len;
    char scratch[65536];
};

/* Listen (SERVER_HOST:SERVER_PORT) and prepare the loop. SIGTERM/SIGINT must already be
 * blocked in every thread (the loop reads them from a signalfd). */
int server_init(struct server *s, const struct pts_server_config *cfg, struct logger *log, struct metrics *m,
                struct reader *rd, char *err, size_t errlen);
/* Register the reader's eventfd (after reader_start). 0 or -1. */
int server_attach_reader(struct server *s, char *err, size_t errlen);
/* Serve until a signal and the drain of section 7 are done. 0, or -1 on a fatal error. */
int server_run(struct server *s);
void server_destroy(struct server *s);

#endif

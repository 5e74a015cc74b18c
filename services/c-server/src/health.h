/* Health and metrics over HTTP on HEALTH_PORT (design.md section 4): /healthz, /readyz,
 * /metrics. One thread, its own event loop (ae.c), every connection bounded in time and
 * size. */
#ifndef PTS_HEALTH_H
#define PTS_HEALTH_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "ae.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "points_protocol.h"

#define HTTP_MAX_CONNS PTS_CONN_HEALTH_MAX_CONNECTIONS /* protocol.toml [connection] */
#define HTTP_REQ_MAX 4096

struct http_conn {
    struct ae_file file;  /* the socket in the loop */
    int fd;               /* -1: free slot */
    int64_t deadline;
    size_t in_len;
    char *out;
    size_t out_len, out_off;
    char in[HTTP_REQ_MAX];
};

struct health_server {
    const struct pts_server_config *cfg;
    struct metrics *m;
    int listen_fd;
    int stop_fd; /* an eventfd: health_stop wakes the thread through it */
    struct ae_loop ae;
    struct ae_file listen_file, stop_file;
    pthread_t thread;
    int started;
    int stopping; /* set by the thread itself (on_stop) */
    struct http_conn conns[HTTP_MAX_CONNS];
};

/* Binds HEALTH_HOST:HEALTH_PORT (nothing when the port is 0) and starts the thread. */
int health_start(struct health_server *h, const struct pts_server_config *cfg, struct metrics *m, char *err,
               size_t errlen);
void health_stop(struct health_server *h);

/* Build the whole response for a request head; returns a malloc'ed buffer (NULL: no memory).
 * Exposed for the unit tests. */
char *health_respond(struct metrics *m, const char *head, size_t head_len, int64_t now_ns,
                   size_t *out_len);

#endif

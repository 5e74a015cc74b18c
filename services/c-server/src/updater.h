/* The updater thread: GET_LOCK election and one increment per interval (design.md section 3). */
#ifndef PTS_UPDATER_H
#define PTS_UPDATER_H

#include <pthread.h>
#include <stddef.h>

#include "config.h"
#include "log.h"
#include "metrics.h"

struct updater {
    const struct pts_server_config *cfg;
    struct logger *log;
    struct metrics *m;
    int stop_fd;     /* eventfd: stop now (release the lock, close the session) */
    pthread_t thread;
    int started;
};

/* The updater session's wait_timeout (SQL_SET_WAIT_TIMEOUT) in whole seconds for an
 * UPDATE_INTERVAL: max(5, ceil(2 x interval)), at most a year. Same function in updater.py. */
long long updater_wait_timeout(double update_interval);

/* Starts nothing when UPDATE_INTERVAL is 0. */
int updater_start(struct updater *u, const struct pts_server_config *cfg, struct logger *log,
                  struct metrics *m, char *err, size_t errlen);
void updater_stop(struct updater *u);

#endif

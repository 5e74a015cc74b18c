/* c-server: wiring. Parse settings, start the threads, run the loop, shut down in order. */
#include <errno.h>
#include <mysql.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "health.h"
#include "generated/log_events.h"
#include "log.h"
#include "metrics.h"
#include "reader.h"
#include "server.h"
#include "tls.h"
#include "updater.h"

#ifndef PTS_VERSION
#define PTS_VERSION "0.0.0-dev"
#endif

struct app {
    struct pts_server_config cfg;
    struct logger log;
    struct metrics m;
    struct reader rd;
    struct updater upd;
    struct health_server health;
    struct server srv;
    struct tls tls; /* when TLS_CERT_FILE is set */
};

static void fatal(struct app *a, const char *err)
{
    log_start_failed(&a->log, err);
    fprintf(stderr, "c-server: %s\n", err);
}

int main(int argc, char **argv)
{
    char err[512];
    struct app *a = calloc(1, sizeof *a);
    if (!a) {
        fprintf(stderr, "c-server: out of memory\n");
        return 1;
    }

    signal(SIGPIPE, SIG_IGN);
    switch (config_load(&a->cfg, argc, argv, pts_getenv, NULL, err, sizeof err)) {
    case PTS_ACTION_HELP:
        config_print_help(stdout);
        free(a);
        return 0;
    case PTS_ACTION_VERSION:
        printf("c-server %s\n", PTS_VERSION);
        free(a);
        return 0;
    case PTS_ACTION_CHECK:
        pts_settings_describe(stdout, pts_server_settings, PTS_SET_COUNT, &a->cfg);
        free(a);
        return 0;
    case PTS_ACTION_ERROR:
        logger_init(&a->log, STDOUT_FILENO, LOG_DEBUG,
                    config_user_hint(argc, argv, pts_getenv, NULL));
        log_config_error(&a->log, err);
        fprintf(stderr, "c-server: bad setting: %s\n", err);
        logger_destroy(&a->log);
        free(a);
        return 2;
    case PTS_ACTION_RUN:
        break;
    }

    /* SIGTERM/SIGINT are read from a signalfd by the loop: block them in every thread. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    /* (The descriptor limit is raised for the connection table by server_init.) */

    logger_init(&a->log, STDOUT_FILENO, a->cfg.log_level, a->cfg.server_user);
    static const struct metrics_info info[] = {
        {"language", "c"}, {"version", PTS_VERSION}, {NULL, NULL}};
    metrics_init(&a->m, info);
    atomic_store(&a->m.loop_heartbeat_ns, mono_ns());
    log_starting(&a->log, PTS_VERSION, getpid());

    int rc = 1;
    if (mysql_library_init(0, NULL, NULL) != 0) {
        fatal(a, "cannot initialise the MySQL client library");
        logger_destroy(&a->log);
        free(a);
        return 1;
    }
    int have_tls = a->cfg.tls_cert_file[0] != '\0';
    if (have_tls) {
        char why[sizeof err - 64];
        if (tls_init(&a->tls, &a->cfg, why, sizeof why) != 0) {
            snprintf(err, sizeof err, "cannot load the TLS certificate: %s", why);
            fatal(a, err);
            goto out_tls;
        }
    }
    if (server_init(&a->srv, &a->cfg, &a->log, &a->m, &a->rd, err, sizeof err) != 0) {
        fatal(a, err);
        goto out_tls;
    }
    if (have_tls)
        server_use_tls(&a->srv, &a->tls);
    if (health_start(&a->health, &a->cfg, &a->m, err, sizeof err) != 0) {
        fatal(a, err);
        goto out_srv;
    }
    if (reader_start(&a->rd, &a->cfg, &a->log, &a->m, err, sizeof err) != 0) {
        fatal(a, err);
        goto out_health;
    }
    if (server_attach_reader(&a->srv, err, sizeof err) != 0
        || updater_start(&a->upd, &a->cfg, &a->log, &a->m, err, sizeof err) != 0) {
        fatal(a, err);
        goto out_reader;
    }
    if (have_tls)
        log_tls_loaded(&a->log, a->tls.cert_file, a->tls.client_ca_file);
    log_listening(&a->log, a->cfg.server_host, a->cfg.server_port,
           a->cfg.health_port);

    rc = server_run(&a->srv) == 0 ? 0 : 1;
    if (rc != 0)
        fatal(a, "event loop failed");

    updater_stop(&a->upd); /* releases the lock */
out_reader:
    reader_stop(&a->rd);
out_health:
    health_stop(&a->health);
out_srv:
    server_destroy(&a->srv);
out_tls:
    if (have_tls)
        tls_destroy(&a->tls); /* after the connections that used it */
    mysql_library_end();
    if (rc == 0)
        log_stopped(&a->log, metrics_get(&a->m, PTS_S_REQUESTS_TOTAL));
    logger_destroy(&a->log);
    free(a);
    return rc;
}

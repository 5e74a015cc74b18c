/* Settings: environment variables, overridden by --flag value / --flag=value. */
#ifndef PTS_CONFIG_H
#define PTS_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "points_protocol.h"

#define CFG_STR_MAX 256

struct config {
    char server_host[CFG_STR_MAX];
    int server_port;
    char server_user[64];
    char health_host[CFG_STR_MAX];
    int health_port;
    char db_host[CFG_STR_MAX];
    int db_port;
    char db_user[CFG_STR_MAX];
    char db_pass[CFG_STR_MAX];
    char db_pass_file[4096];
    char db_name[CFG_STR_MAX];
    char db_timezone[CFG_STR_MAX];
    double db_connect_timeout;
    double db_query_timeout;
    double update_interval;
    char lock_name[CFG_STR_MAX];
    double idle_timeout;
    double request_grace;
    long max_connections;
    long listen_backlog;
    double shutdown_timeout;
    double max_staleness;
    int log_level;
};

enum config_result { CONFIG_OK, CONFIG_HELP, CONFIG_VERSION, CONFIG_ERROR };

/* Returns the value of an environment variable or NULL (getenv, or a table in tests). */
typedef const char *(*config_env_fn)(const char *name, void *ud);
const char *config_getenv(const char *name, void *ud);

/* Fill c from defaults, env and argv[1..]. On CONFIG_ERROR, err holds a readable message. */
enum config_result config_load(struct config *c, int argc, char **argv, config_env_fn env,
                               void *env_ud, char *err, size_t errlen);

/* The SERVER_USER to name in a config_error log line, even when parsing failed. */
const char *config_user_hint(int argc, char **argv, config_env_fn env, void *env_ud);

void config_print_help(FILE *out);

#endif

/* The server's settings: the generic reader (protocol/c/pts_settings.c) over
 * pts_server_settings, then what only the server derives (the password file, the lock name).
 * Mirror: services/py-server/src/points_server/config.py. */
#ifndef PTS_CONFIG_H
#define PTS_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "points_protocol.h"
#include "pts_settings.h"

/* Fill c from the defaults, env and argv[1..]. PTS_ACTION_ERROR: err holds a readable message. */
enum pts_action config_load(struct pts_server_config *c, int argc, char **argv, pts_env_fn env,
                            void *env_ud, char *err, size_t errlen);

/* The SERVER_USER to name in a config_error log line, even when parsing failed. */
const char *config_user_hint(int argc, char **argv, pts_env_fn env, void *env_ud);

/* DB_TLS_MODE with auto resolved: verify-identity with DB_TLS_CA_FILE, else preferred. */
int config_db_tls_mode(const struct pts_server_config *c);

void config_print_help(FILE *out);

#endif

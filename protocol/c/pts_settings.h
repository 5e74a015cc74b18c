/* Settings: every setting of a table, from the environment and the command line, typed.
 *
 * The one validator of the C programs (server and client); the Python programs' mirror is
 * protocol/python/settings.py, and both apply the kinds of protocol.toml ([setting_kind.*]) the
 * same way, with the same messages. Order: the default, replaced by a non-empty environment
 * variable, replaced by a flag ("--name value" or "--name=value"). */
#ifndef PTS_SETTINGS_H
#define PTS_SETTINGS_H

#include <stddef.h>
#include <stdio.h>

#include "points_protocol.h"

/* What the command line asks for besides the settings. */
enum pts_action {
    PTS_ACTION_RUN,
    PTS_ACTION_HELP,    /* --help, -h */
    PTS_ACTION_VERSION, /* --version, -V */
    PTS_ACTION_CHECK,   /* --check-config: print the settings as read and exit */
    PTS_ACTION_ERROR    /* a bad setting or command line: err holds the message */
};

/* The value of an environment variable or NULL (getenv, or a table in tests). */
typedef const char *(*pts_env_fn)(const char *name, void *ud);
const char *pts_getenv(const char *name, void *ud);

/* Fill config (the struct the table describes, e.g. struct pts_server_config) from the
 * defaults, env and argv[1..]. config is zeroed first. */
enum pts_action pts_settings_load(const struct pts_setting *table, int count, void *config,
                                  int argc, char **argv, pts_env_fn env, void *env_ud,
                                  char *err, size_t errlen);

/* Read one setting's text into config; 0, or -1 with err set. */
int pts_setting_parse(const struct pts_setting *s, const char *text, void *config, char *err,
                      size_t errlen);

/* One setting's text as the program would read it, even when other settings are bad (e.g. the
 * row to name in a config_error log line). */
const char *pts_settings_hint(const struct pts_setting *table, int count, int id, int argc,
                              char **argv, pts_env_fn env, void *env_ud);

/* "ENV=value" per setting, as read (--check-config); secrets hidden, seconds as %.6g. */
void pts_settings_describe(FILE *out, const struct pts_setting *table, int count,
                           const void *config);

/* One line per setting for --help, then the common flags. */
void pts_settings_help(FILE *out, const struct pts_setting *table, int count);

#endif

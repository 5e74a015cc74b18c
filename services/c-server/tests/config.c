/* Settings: defaults, env, flags overriding env, bad values, DB_PASS_FILE. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "unit.h"

/* env is a NULL-terminated list of "NAME=value" strings. */
static const char *table_env(const char *name, void *ud)
{
    const char *const *env = ud;
    size_t n = strlen(name);
    for (; *env; env++)
        if (strncmp(*env, name, n) == 0 && (*env)[n] == '=')
            return *env + n + 1;
    return NULL;
}

static enum pts_action load(struct pts_server_config *c, const char *const *env, int argc,
                               const char **argv, char *err, size_t errlen)
{
    return config_load(c, argc, (char **)(void *)argv, table_env, (void *)(uintptr_t)env, err,
                       errlen);
}

static int bad(const char *const *env, int argc, const char **argv, const char *needle)
{
    struct pts_server_config c;
    char err[512];
    enum pts_action r = load(&c, env, argc, argv, err, sizeof err);
    if (r != PTS_ACTION_ERROR)
        return 0;
    if (needle && !strstr(err, needle)) {
        fprintf(stderr, "error message \"%s\" lacks \"%s\"\n", err, needle);
        return 0;
    }
    return 1;
}

void test_config(struct unit *u)
{
    struct pts_server_config c;
    char err[512];
    const char *none[] = {NULL};
    const char *argv0[] = {"c-server", NULL};

    /* Defaults */
    CHECK(u, load(&c, none, 1, argv0, err, sizeof err) == PTS_ACTION_RUN);
    CHECK(u, c.server_port == 5001 && c.health_port == 8080 && c.db_port == 3306);
    CHECK_STR(u, c.server_user, "c_user");
    CHECK_STR(u, c.lock_name, "points:c_user");
    CHECK_STR(u, c.db_host, "database");
    CHECK_STR(u, c.db_timezone, "+08:00");
    CHECK(u, c.update_interval == 30 && c.request_grace == 0.05 && c.idle_timeout == 10);
    CHECK(u, c.max_connections == 4096 && c.listen_backlog == 4096);
    CHECK(u, c.max_staleness == 0 && c.log_level == LOG_INFO);

    /* Env, then flags override env: "--flag value" and "--flag=value" */
    const char *env[] = {"SERVER_PORT=6000", "SERVER_USER=c_user-akmal", "UPDATE_INTERVAL=0.5",
                         "LOG_LEVEL=debug", "DB_PASS=env-pass", "HEALTH_PORT=0", NULL};
    CHECK(u, load(&c, env, 1, argv0, err, sizeof err) == PTS_ACTION_RUN);
    CHECK(u, c.server_port == 6000 && c.health_port == 0 && c.update_interval == 0.5);
    CHECK_STR(u, c.server_user, "c_user-akmal");
    CHECK_STR(u, c.lock_name, "points:c_user-akmal");
    CHECK(u, c.log_level == LOG_DEBUG);
    const char *argv1[] = {"c-server", "--server-port", "7000", "--server-user=flag-row",
                           "--lock-name=custom", NULL};
    CHECK(u, load(&c, env, 5, argv1, err, sizeof err) == PTS_ACTION_RUN);
    CHECK(u, c.server_port == 7000);
    CHECK_STR(u, c.server_user, "flag-row");
    CHECK_STR(u, c.lock_name, "custom");
    CHECK_STR(u, c.db_pass, "env-pass");
    /* An empty variable is unset. */
    const char *empty[] = {"SERVER_PORT=", NULL};
    CHECK(u, load(&c, empty, 1, argv0, err, sizeof err) == PTS_ACTION_RUN && c.server_port == 5001);

    /* --help / --version */
    const char *help[] = {"c-server", "--help", NULL};
    const char *version[] = {"c-server", "--version", NULL};
    CHECK(u, load(&c, none, 2, help, err, sizeof err) == PTS_ACTION_HELP);
    CHECK(u, load(&c, none, 2, version, err, sizeof err) == PTS_ACTION_VERSION);

    /* Bad values */
    const char *e1[] = {"SERVER_PORT=http", NULL};
    const char *e2[] = {"SERVER_PORT=70000", NULL};
    const char *e3[] = {"UPDATE_INTERVAL=-1", NULL};
    const char *e4[] = {"IDLE_TIMEOUT=0", NULL};
    const char *e5[] = {"LOG_LEVEL=loud", NULL};
    const char *e6[] = {"MAX_CONNECTIONS=0", NULL};
    const char *e7[] = {"DB_PASS_FILE=/nonexistent/secret", NULL};
    const char *e8[] = {"REQUEST_GRACE=nan", NULL};
    const char *e9[] = {"HEALTH_PORT=-1", NULL};
    const char *e10[] = {"SERVER_PORT=0", NULL};
    const char *e11[] = {"SERVER_USER=this-row-name-is-far-too-long-for-a-varchar-50-column", NULL};
    const char *e12[] = {"DB_QUERY_TIMEOUT=1s", NULL};
    CHECK(u, bad(e1, 1, argv0, "SERVER_PORT"));
    CHECK(u, bad(e2, 1, argv0, "70000"));
    CHECK(u, bad(e3, 1, argv0, "UPDATE_INTERVAL"));
    CHECK(u, bad(e4, 1, argv0, "IDLE_TIMEOUT"));
    CHECK(u, bad(e5, 1, argv0, "LOG_LEVEL"));
    CHECK(u, bad(e6, 1, argv0, "MAX_CONNECTIONS"));
    CHECK(u, bad(e7, 1, argv0, "/nonexistent/secret"));
    CHECK(u, bad(e8, 1, argv0, "REQUEST_GRACE"));
    CHECK(u, bad(e9, 1, argv0, "HEALTH_PORT"));
    CHECK(u, bad(e10, 1, argv0, "SERVER_PORT"));
    CHECK(u, bad(e11, 1, argv0, "SERVER_USER"));
    CHECK(u, bad(e12, 1, argv0, "DB_QUERY_TIMEOUT"));
    const char *f1[] = {"c-server", "--no-such-flag", "1", NULL};
    const char *f2[] = {"c-server", "--server-port", NULL};
    const char *f3[] = {"c-server", "positional", NULL};
    const char *f4[] = {"c-server", "--server-port=abc", NULL};
    CHECK(u, bad(none, 3, f1, "--no-such-flag"));
    CHECK(u, bad(none, 2, f2, "--server-port"));
    CHECK(u, bad(none, 2, f3, "positional"));
    CHECK(u, bad(none, 2, f4, "abc"));
    /* A flag fixes a bad environment value. */
    const char *fix[] = {"c-server", "--server-port", "5003", NULL};
    CHECK(u, load(&c, e1, 3, fix, err, sizeof err) == PTS_ACTION_RUN && c.server_port == 5003);
    /* The secret never appears in an error message. */
    const char *longpass_env[] = {"DB_PASS_FILE=", NULL};
    CHECK(u, load(&c, longpass_env, 1, argv0, err, sizeof err) == PTS_ACTION_RUN);

    /* DB_PASS_FILE wins over DB_PASS, trailing newline stripped */
    char path[] = "/tmp/c-server-unit-XXXXXX";
    int fd = mkstemp(path);
    CHECK(u, fd >= 0);
    if (fd >= 0) {
        CHECK(u, write(fd, "s3cret\n", 7) == 7);
        close(fd);
        char setting[64];
        snprintf(setting, sizeof setting, "DB_PASS_FILE=%s", path);
        const char *penv[] = {"DB_PASS=wrong", setting, NULL};
        CHECK(u, load(&c, penv, 1, argv0, err, sizeof err) == PTS_ACTION_RUN);
        CHECK_STR(u, c.db_pass, "s3cret");
        unlink(path);
    }

    /* The user named in a config_error line */
    const char *uenv[] = {"SERVER_USER=env-row", NULL};
    const char *uargv[] = {"c-server", "--server-user", "flag-row", NULL};
    CHECK_STR(u, config_user_hint(1, (char **)(void *)argv0, table_env, (void *)(uintptr_t)uenv),
              "env-row");
    CHECK_STR(u, config_user_hint(3, (char **)(void *)uargv, table_env, (void *)(uintptr_t)uenv),
              "flag-row");
    CHECK_STR(u, config_user_hint(1, (char **)(void *)argv0, table_env, (void *)(uintptr_t)none),
              "c_user");

    /* --help lists every setting with its flag */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CHECK(u, f != NULL);
    if (f) {
        config_print_help(f);
        fclose(f);
        for (int i = 0; i < PTS_SET_COUNT; i++) {
            CHECK(u, strstr(text, pts_server_settings[i].env) != NULL);
            CHECK(u, strstr(text, pts_server_settings[i].flag) != NULL);
        }
        free(text);
    }
}

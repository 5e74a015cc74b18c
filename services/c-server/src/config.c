/* Parsing and validating the settings of pts_server_settings (docs/design.md section 6). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define DURATION_MAX 31536000.0 /* a year */
#define COUNT_MAX 10000000L

const char *config_getenv(const char *name, void *ud)
{
    (void)ud;
    return getenv(name);
}

static int find_flag(const char *name, size_t len)
{
    for (int i = 0; i < PTS_SET_COUNT; i++) {
        const char *f = pts_server_settings[i].flag;
        if (strlen(f) == len && memcmp(f, name, len) == 0)
            return i;
    }
    return -1;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    if (!*s)
        return -1;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p))
            return -1;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_duration(const char *s, double lo_exclusive_zero, double *out)
{
    if (!*s || isspace((unsigned char)*s))
        return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < 0 || v > DURATION_MAX)
        return -1;
    if (lo_exclusive_zero > 0 && v <= 0)
        return -1;
    *out = v;
    return 0;
}

static int copy_str(char *dst, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (n >= cap)
        return -1;
    memcpy(dst, s, n + 1);
    return 0;
}

static int has_ctl_or_space(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || *s == 0x7F)
            return 1;
    return 0;
}

/* Read the password file: at most CFG_STR_MAX - 1 bytes, trailing newline stripped. */
static int read_pass_file(const char *path, char *dst, size_t cap, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "DB_PASS_FILE: cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    size_t len = 0;
    for (;;) {
        if (len + 1 >= cap) {
            close(fd);
            snprintf(err, errlen, "DB_PASS_FILE: %s is longer than %zu bytes", path, cap - 2);
            return -1;
        }
        ssize_t n = read(fd, dst + len, cap - 1 - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            snprintf(err, errlen, "DB_PASS_FILE: cannot read %s: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    dst[len] = '\0';
    if (len > 0 && dst[len - 1] == '\n')
        dst[--len] = '\0';
    if (len > 0 && dst[len - 1] == '\r')
        dst[--len] = '\0';
    return 0;
}

/* Convert one raw value into c; 0, or -1 with err set. */
static int apply(struct config *c, int id, const char *v, char *err, size_t errlen)
{
    const struct pts_setting *s = &pts_server_settings[id];
    const char *kind = s->kind;
    long l = 0;
    double d = 0;
    int bad = 0;
    const char *expect = "";

    if (strcmp(kind, "port") == 0 || strcmp(kind, "port0") == 0) {
        long lo = strcmp(kind, "port") == 0 ? 1 : 0;
        bad = parse_long(v, lo, 65535, &l);
        expect = lo ? "a port number 1-65535" : "a port number 0-65535 (0 disables)";
    } else if (strcmp(kind, "count") == 0) {
        bad = parse_long(v, 1, COUNT_MAX, &l);
        expect = "a whole number >= 1";
    } else if (strcmp(kind, "duration") == 0) {
        bad = parse_duration(v, 1, &d);
        expect = "a number of seconds > 0";
    } else if (strcmp(kind, "duration0") == 0) {
        bad = parse_duration(v, 0, &d);
        expect = "a number of seconds >= 0";
    } else if (strcmp(kind, "level") == 0) {
        l = log_level_parse(v);
        bad = l < 0;
        expect = "one of debug, info, warn, error";
    } else if (strcmp(kind, "host") == 0) {
        bad = !*v || has_ctl_or_space(v) || strlen(v) >= CFG_STR_MAX;
        expect = "a host name or address";
    } else if (strcmp(kind, "row") == 0) {
        bad = !*v || strlen(v) > 50 || has_ctl_or_space(v);
        expect = "a row name of 1-50 bytes without spaces";
    }
    if (bad) {
        if (strcmp(kind, "secret") == 0)
            snprintf(err, errlen, "%s: invalid value (expected %s)", s->env, expect);
        else
            snprintf(err, errlen, "%s: invalid value '%.200s' (expected %s)", s->env, v, expect);
        return -1;
    }

    int toolong = 0;
    switch (id) {
    case PTS_SET_SERVER_HOST: toolong = copy_str(c->server_host, sizeof c->server_host, v); break;
    case PTS_SET_SERVER_PORT: c->server_port = (int)l; break;
    case PTS_SET_SERVER_USER: toolong = copy_str(c->server_user, sizeof c->server_user, v); break;
    case PTS_SET_HEALTH_HOST: toolong = copy_str(c->health_host, sizeof c->health_host, v); break;
    case PTS_SET_HEALTH_PORT: c->health_port = (int)l; break;
    case PTS_SET_DB_HOST: toolong = copy_str(c->db_host, sizeof c->db_host, v); break;
    case PTS_SET_DB_PORT: c->db_port = (int)l; break;
    case PTS_SET_DB_USER: toolong = copy_str(c->db_user, sizeof c->db_user, v); break;
    case PTS_SET_DB_PASS: toolong = copy_str(c->db_pass, sizeof c->db_pass, v); break;
    case PTS_SET_DB_PASS_FILE:
        toolong = copy_str(c->db_pass_file, sizeof c->db_pass_file, v);
        break;
    case PTS_SET_DB_NAME: toolong = copy_str(c->db_name, sizeof c->db_name, v); break;
    case PTS_SET_DB_TIMEZONE: toolong = copy_str(c->db_timezone, sizeof c->db_timezone, v); break;
    case PTS_SET_DB_CONNECT_TIMEOUT: c->db_connect_timeout = d; break;
    case PTS_SET_DB_QUERY_TIMEOUT: c->db_query_timeout = d; break;
    case PTS_SET_UPDATE_INTERVAL: c->update_interval = d; break;
    case PTS_SET_LOCK_NAME: toolong = copy_str(c->lock_name, sizeof c->lock_name, v); break;
    case PTS_SET_IDLE_TIMEOUT: c->idle_timeout = d; break;
    case PTS_SET_REQUEST_GRACE: c->request_grace = d; break;
    case PTS_SET_MAX_CONNECTIONS: c->max_connections = l; break;
    case PTS_SET_LISTEN_BACKLOG: c->listen_backlog = l; break;
    case PTS_SET_SHUTDOWN_TIMEOUT: c->shutdown_timeout = d; break;
    case PTS_SET_MAX_STALENESS: c->max_staleness = d; break;
    case PTS_SET_LOG_LEVEL: c->log_level = (int)l; break;
    default: break;
    }
    if (toolong) {
        snprintf(err, errlen, "%s: value is too long", s->env);
        return -1;
    }
    return 0;
}

enum config_result config_load(struct config *c, int argc, char **argv, config_env_fn env,
                               void *env_ud, char *err, size_t errlen)
{
    const char *raw[PTS_SET_COUNT];
    memset(c, 0, sizeof *c);
    err[0] = '\0';

    for (int i = 0; i < PTS_SET_COUNT; i++) {
        const char *v = env(pts_server_settings[i].env, env_ud);
        /* An empty variable counts as unset (e.g. "${X:-}" in Compose files). */
        raw[i] = (v && *v) ? v : pts_server_settings[i].def;
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return CONFIG_HELP;
        if (strcmp(arg, "--version") == 0 || strcmp(arg, "-V") == 0)
            return CONFIG_VERSION;
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument '%.200s' (see --help)", arg);
            return CONFIG_ERROR;
        }
        const char *eq = strchr(arg, '=');
        size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
        int id = find_flag(arg, nlen);
        if (id < 0) {
            snprintf(err, errlen, "unknown option '%.*s' (see --help)", (int)(nlen > 200 ? 200 : nlen),
                     arg);
            return CONFIG_ERROR;
        }
        if (eq) {
            raw[id] = eq + 1;
        } else if (a + 1 < argc) {
            raw[id] = argv[++a];
        } else {
            snprintf(err, errlen, "option %s needs a value", pts_server_settings[id].flag);
            return CONFIG_ERROR;
        }
    }
    for (int i = 0; i < PTS_SET_COUNT; i++)
        if (apply(c, i, raw[i], err, errlen) != 0)
            return CONFIG_ERROR;

    if (c->db_pass_file[0]
        && read_pass_file(c->db_pass_file, c->db_pass, sizeof c->db_pass, err, errlen) != 0)
        return CONFIG_ERROR;
    if (!c->lock_name[0]) {
        int n = snprintf(c->lock_name, sizeof c->lock_name, "points:%s", c->server_user);
        if (n < 0 || (size_t)n >= sizeof c->lock_name) {
            snprintf(err, errlen, "LOCK_NAME: default lock name is too long");
            return CONFIG_ERROR;
        }
    }
    if (strlen(c->lock_name) > 64) {
        snprintf(err, errlen, "LOCK_NAME: at most 64 characters");
        return CONFIG_ERROR;
    }
    return CONFIG_OK;
}

const char *config_user_hint(int argc, char **argv, config_env_fn env, void *env_ud)
{
    const char *flag = pts_server_settings[PTS_SET_SERVER_USER].flag;
    size_t flen = strlen(flag);
    const char *user = NULL;
    for (int a = 1; a < argc; a++) {
        if (strncmp(argv[a], flag, flen) != 0)
            continue;
        if (argv[a][flen] == '=')
            user = argv[a] + flen + 1;
        else if (argv[a][flen] == '\0' && a + 1 < argc)
            user = argv[a + 1];
    }
    if (!user) {
        const char *v = env(pts_server_settings[PTS_SET_SERVER_USER].env, env_ud);
        user = (v && *v) ? v : pts_server_settings[PTS_SET_SERVER_USER].def;
    }
    return user;
}

void config_print_help(FILE *out)
{
    fprintf(out,
            "usage: c-server [--flag value | --flag=value]... [--help] [--version]\n\n"
            "The points server (C): answers REQUEST_LATEST_POINTS with its row of\n"
            "project_db.users and increments that row every UPDATE_INTERVAL seconds.\n\n"
            "Every setting is an environment variable; the flag overrides it.\n\n");
    for (int i = 0; i < PTS_SET_COUNT; i++) {
        const struct pts_setting *s = &pts_server_settings[i];
        fprintf(out, "  %-22s %-22s %s (default: \"%s\")\n", s->flag, s->env, s->help, s->def);
    }
    fprintf(out, "\n  --help                 show this text\n"
                 "  --version              print the version\n");
}

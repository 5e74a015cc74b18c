/* The server's settings (docs/design.md section 6); see config.h. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

/* Bytes read from DB_PASS_FILE at most (as the Python server): a file this long or longer holds
 * no valid password. */
#define PASS_FILE_MAX 4096

/* Read DB_PASS from the file DB_PASS_FILE names: trailing "\n" or "\r\n" stripped. */
static int read_pass_file(struct pts_server_config *c, char *err, size_t errlen)
{
    const char *path = c->db_pass_file;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "DB_PASS_FILE: cannot read '%s': %s", path, strerror(errno));
        return -1;
    }
    char buf[PASS_FILE_MAX + 1]; /* + 1: the terminating NUL */
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, PASS_FILE_MAX - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            snprintf(err, errlen, "DB_PASS_FILE: cannot read '%s': %s", path, strerror(errno));
            close(fd);
            return -1;
        }
        if (n == 0 || (len += (size_t)n) == PASS_FILE_MAX)
            break;
    }
    close(fd);
    int full = len == PASS_FILE_MAX; /* too long for any valid password */
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    buf[len] = '\0';
    /* The file's text is a DB_PASS value: the same rules (and the same message) apply. */
    if (full || pts_setting_parse(&pts_server_settings[PTS_SET_DB_PASS], buf, c, err, errlen) != 0) {
        snprintf(err, errlen, "DB_PASS_FILE: '%s' does not hold a valid DB_PASS (expected %s)",
                 path, pts_setting_kinds[PTS_KIND_SECRET].expect);
        return -1;
    }
    return 0;
}

/* DB_TLS_MODE and DB_TLS_CA_FILE together: a verifying mode needs the CA, and a CA the mode
 * would not use is an error rather than a false sense of verification. */
static int check_db_tls(const struct pts_server_config *c, char *err, size_t errlen)
{
    int mode = c->db_tls_mode;
    int verifies = mode == PTS_DB_TLS_MODE_VERIFY_CA || mode == PTS_DB_TLS_MODE_VERIFY_IDENTITY;
    if (verifies && !c->db_tls_ca_file[0]) {
        snprintf(err, errlen, "DB_TLS_MODE (--db-tls-mode): %s needs DB_TLS_CA_FILE",
                 pts_setting_kinds[PTS_KIND_DB_TLS_MODE].choices[mode]);
        return -1;
    }
    if (!verifies && mode != PTS_DB_TLS_MODE_AUTO && c->db_tls_ca_file[0]) {
        snprintf(err, errlen,
                 "DB_TLS_CA_FILE (--db-tls-ca-file): used only by DB_TLS_MODE verify-ca, "
                 "verify-identity or auto, not %s",
                 pts_setting_kinds[PTS_KIND_DB_TLS_MODE].choices[mode]);
        return -1;
    }
    return 0;
}

enum pts_action config_load(struct pts_server_config *c, int argc, char **argv, pts_env_fn env,
                            void *env_ud, char *err, size_t errlen)
{
    enum pts_action action = pts_settings_load(pts_server_settings, PTS_SET_COUNT, c, argc, argv,
                                               env, env_ud, err, errlen);
    if (action != PTS_ACTION_RUN && action != PTS_ACTION_CHECK)
        return action;
    if (c->db_pass_file[0] && read_pass_file(c, err, errlen) != 0)
        return PTS_ACTION_ERROR;
    if (!c->lock_name[0]) {
        /* The default, points:<SERVER_USER>, fits: a row is at most 50 bytes. */
        snprintf(c->lock_name, sizeof c->lock_name, "points:%s", c->server_user);
    }
    if (check_db_tls(c, err, errlen) != 0)
        return PTS_ACTION_ERROR;
    return action;
}

int config_db_tls_mode(const struct pts_server_config *c)
{
    if (c->db_tls_mode != PTS_DB_TLS_MODE_AUTO)
        return c->db_tls_mode;
    return c->db_tls_ca_file[0] ? PTS_DB_TLS_MODE_VERIFY_IDENTITY : PTS_DB_TLS_MODE_PREFERRED;
}

const char *config_user_hint(int argc, char **argv, pts_env_fn env, void *env_ud)
{
    return pts_settings_hint(pts_server_settings, PTS_SET_COUNT, PTS_SET_SERVER_USER, argc, argv,
                             env, env_ud);
}

void config_print_help(FILE *out)
{
    fprintf(out,
            "usage: c-server [--setting value | --setting=value]... [--check-config] [--help]\n"
            "                [--version]\n\n"
            "The points server (C): answers REQUEST_LATEST_POINTS with its row of\n"
            "project_db.users and increments that row every UPDATE_INTERVAL seconds.\n"
            "Every setting is an environment variable; its flag overrides it.\n\n");
    pts_settings_help(out, pts_server_settings, PTS_SET_COUNT);
}

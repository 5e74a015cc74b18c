/* Database sessions: connect options, prepared statements and their binds. */
#include "db.h"

#include <math.h>
#include <mysql.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#ifdef MARIADB_PACKAGE_VERSION_ID
typedef my_bool db_bool;
#else
typedef bool db_bool; /* libmysqlclient 8 */
#endif

static const char *const stmt_sql[DB_ST_COUNT] = {
    [DB_ST_SELECT_ROW] = PTS_SQL_SELECT_ROW,
    [DB_ST_ENSURE_ROW] = PTS_SQL_ENSURE_ROW,
    [DB_ST_GET_LOCK] = PTS_SQL_GET_LOCK,
    [DB_ST_RELEASE_LOCK] = PTS_SQL_RELEASE_LOCK,
    [DB_ST_SECONDS_SINCE] = PTS_SQL_SECONDS_SINCE_UPDATE,
    [DB_ST_INCREMENT] = PTS_SQL_INCREMENT,
};

void db_init(struct db *d, const struct pts_server_config *cfg)
{
    memset(d, 0, sizeof *d);
    d->cfg = cfg;
}

int db_connected(const struct db *d)
{
    return d->my != NULL;
}

int db_socket(const struct db *d)
{
    return d->my ? (int)mysql_get_socket((MYSQL *)d->my) : -1;
}

static void set_err(struct db *d, const char *what, const char *msg)
{
    snprintf(d->err, sizeof d->err, "%s: %s", what, msg && *msg ? msg : "unknown error");
}

void db_close(struct db *d)
{
    for (int i = 0; i < DB_ST_COUNT; i++) {
        if (d->st[i])
            mysql_stmt_close((MYSQL_STMT *)d->st[i]);
        d->st[i] = NULL;
    }
    if (d->my)
        mysql_close((MYSQL *)d->my);
    d->my = NULL;
}

static void bind_str(MYSQL_BIND *b, const char *s, unsigned long *len)
{
    memset(b, 0, sizeof *b);
    *len = (unsigned long)strlen(s);
    b->buffer_type = MYSQL_TYPE_STRING;
    b->buffer = (void *)(uintptr_t)s;
    b->buffer_length = *len;
    b->length = len;
}

/* Execute statement id with params; when res is given, bind it and fetch at most one row. */
static int run(struct db *d, enum db_stmt_id id, MYSQL_BIND *params, MYSQL_BIND *res, int *found)
{
    MYSQL_STMT *st = d->st[id];
    if (!st) {
        set_err(d, "query", "not connected");
        return -1;
    }
    if (found)
        *found = 0;
    if ((params && mysql_stmt_bind_param(st, params)) || mysql_stmt_execute(st)) {
        set_err(d, "query", mysql_stmt_error(st));
        return -1;
    }
    if (!res)
        return 0;
    if (mysql_stmt_bind_result(st, res) || mysql_stmt_store_result(st)) {
        set_err(d, "result", mysql_stmt_error(st));
        mysql_stmt_free_result(st);
        return -1;
    }
    int rc = mysql_stmt_fetch(st);
    int ok = 0;
    if (rc == 0 || rc == MYSQL_DATA_TRUNCATED) {
        if (found)
            *found = 1;
    } else if (rc != MYSQL_NO_DATA) {
        set_err(d, "fetch", mysql_stmt_error(st));
        ok = -1;
    }
    mysql_stmt_free_result(st);
    return ok;
}

/* Prepare, bind and run a one-off statement of one parameter (a session setting). */
static int set_session(struct db *d, const char *what, const char *sql, MYSQL_BIND *param)
{
    MYSQL_STMT *st = mysql_stmt_init((MYSQL *)d->my);
    if (!st) {
        set_err(d, what, mysql_error((MYSQL *)d->my));
        return -1;
    }
    int rc = 0;
    if (mysql_stmt_prepare(st, sql, (unsigned long)strlen(sql)) || mysql_stmt_bind_param(st, param)
        || mysql_stmt_execute(st)) {
        set_err(d, what, mysql_stmt_error(st));
        rc = -1;
    }
    mysql_stmt_close(st);
    return rc;
}

static int set_time_zone(struct db *d)
{
    MYSQL_BIND p[1];
    unsigned long len;
    bind_str(&p[0], d->cfg->db_timezone, &len);
    return set_session(d, "time zone", PTS_SQL_SET_TIME_ZONE, p);
}

static int set_wait_timeout(struct db *d)
{
    MYSQL_BIND p[1];
    long long secs = d->wait_timeout;
    memset(p, 0, sizeof p);
    p[0].buffer_type = MYSQL_TYPE_LONGLONG;
    p[0].buffer = &secs;
    return set_session(d, "wait_timeout", PTS_SQL_SET_WAIT_TIMEOUT, p);
}

/* DB_TLS_MODE as the client library's options. MariaDB Connector/C asks for TLS only when an
 * SSL option is set: preferred sets one (and no verification), so a database that offers TLS
 * gets it, as the Python driver does by default; required adds ENFORCE; verify-ca gives the CA
 * (the chain is then verified); verify-identity also checks the name against DB_HOST. MySQL's
 * client library takes the mode itself. db_connect refuses an unencrypted session from
 * required on, whatever the library did. */
static void set_tls_mode(MYSQL *my, int mode, const char *ca_file)
{
#ifdef MARIADB_PACKAGE_VERSION_ID
    db_bool on = 1, off = 0;
    if (mode == PTS_DB_TLS_MODE_DISABLED) {
        /* Said, not assumed: Connector/C 3.4 and later ask for TLS and verify by default. */
        mysql_options(my, MYSQL_OPT_SSL_ENFORCE, &off);
        mysql_options(my, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &off);
        return;
    }
    mysql_ssl_set(my, NULL, NULL, mode >= PTS_DB_TLS_MODE_VERIFY_CA ? ca_file : NULL, NULL,
                  NULL);
    mysql_options(my, MYSQL_OPT_SSL_VERIFY_SERVER_CERT,
                  mode == PTS_DB_TLS_MODE_VERIFY_IDENTITY ? &on : &off);
    if (mode >= PTS_DB_TLS_MODE_REQUIRED)
        mysql_options(my, MYSQL_OPT_SSL_ENFORCE, &on);
#else
    static const unsigned int modes[] = {
        [PTS_DB_TLS_MODE_DISABLED] = SSL_MODE_DISABLED,
        [PTS_DB_TLS_MODE_PREFERRED] = SSL_MODE_PREFERRED,
        [PTS_DB_TLS_MODE_REQUIRED] = SSL_MODE_REQUIRED,
        [PTS_DB_TLS_MODE_VERIFY_CA] = SSL_MODE_VERIFY_CA,
        [PTS_DB_TLS_MODE_VERIFY_IDENTITY] = SSL_MODE_VERIFY_IDENTITY,
    };
    unsigned int m = modes[mode];
    mysql_options(my, MYSQL_OPT_SSL_MODE, &m);
    if (mode >= PTS_DB_TLS_MODE_VERIFY_CA)
        mysql_options(my, MYSQL_OPT_SSL_CA, ca_file);
#endif
}

int db_connect(struct db *d)
{
    const struct pts_server_config *c = d->cfg;
    db_close(d);
    MYSQL *my = mysql_init(NULL);
    if (!my) {
        set_err(d, "connect", "out of memory");
        return -1;
    }
    unsigned int connect_timeout = (unsigned int)ceil(c->db_connect_timeout);
    unsigned int query_timeout = (unsigned int)ceil(c->db_query_timeout);
    unsigned int protocol = MYSQL_PROTOCOL_TCP;
    if (connect_timeout < 1)
        connect_timeout = 1;
    if (query_timeout < 1)
        query_timeout = 1;
    mysql_options(my, MYSQL_OPT_CONNECT_TIMEOUT, &connect_timeout);
    mysql_options(my, MYSQL_OPT_READ_TIMEOUT, &query_timeout);
    mysql_options(my, MYSQL_OPT_WRITE_TIMEOUT, &query_timeout);
    mysql_options(my, MYSQL_OPT_PROTOCOL, &protocol);
    mysql_options(my, MYSQL_SET_CHARSET_NAME, "utf8mb4");
#ifdef MARIADB_PACKAGE_VERSION_ID
    db_bool reconnect = 0; /* a silent reconnect would lose the named lock and time zone */
    mysql_options(my, MYSQL_OPT_RECONNECT, &reconnect);
#endif
    int tls_mode = config_db_tls_mode(c);
    set_tls_mode(my, tls_mode, c->db_tls_ca_file);
    if (!mysql_real_connect(my, c->db_host, c->db_user, c->db_pass, c->db_name,
                            (unsigned int)c->db_port, NULL, 0)) {
        set_err(d, "connect", mysql_error(my));
        mysql_close(my);
        return -1;
    }
    if (tls_mode >= PTS_DB_TLS_MODE_REQUIRED && mysql_get_ssl_cipher(my) == NULL) {
        set_err(d, "connect", "the database session is not encrypted (DB_TLS_MODE asks for TLS)");
        mysql_close(my);
        return -1;
    }
    d->my = my;
    if (set_time_zone(d) != 0 || (d->wait_timeout > 0 && set_wait_timeout(d) != 0)) {
        db_close(d);
        return -1;
    }
    for (int i = 0; i < DB_ST_COUNT; i++) {
        MYSQL_STMT *st = mysql_stmt_init(my);
        if (!st) {
            set_err(d, "prepare", mysql_error(my));
            db_close(d);
            return -1;
        }
        d->st[i] = st;
        if (mysql_stmt_prepare(st, stmt_sql[i], (unsigned long)strlen(stmt_sql[i]))) {
            set_err(d, "prepare", mysql_stmt_error(st));
            db_close(d);
            return -1;
        }
    }
    return 0;
}

int db_select_row(struct db *d, long long *points, char stamp[DB_STAMP_MAX], int *found)
{
    MYSQL_BIND p[1], r[2];
    unsigned long ulen, slen = 0;
    db_bool null0 = 0, null1 = 0;
    bind_str(&p[0], d->cfg->server_user, &ulen);
    memset(r, 0, sizeof r);
    r[0].buffer_type = MYSQL_TYPE_LONGLONG;
    r[0].buffer = points;
    r[0].is_null = &null0;
    r[1].buffer_type = MYSQL_TYPE_STRING;
    r[1].buffer = stamp;
    r[1].buffer_length = DB_STAMP_MAX - 1;
    r[1].length = &slen;
    r[1].is_null = &null1;
    *points = 0;
    if (run(d, DB_ST_SELECT_ROW, p, r, found) != 0)
        return -1;
    if (slen > DB_STAMP_MAX - 1)
        slen = DB_STAMP_MAX - 1;
    stamp[*found && !null1 ? slen : 0] = '\0';
    return 0;
}

int db_ensure_row(struct db *d, int *inserted)
{
    MYSQL_BIND p[1];
    unsigned long ulen;
    bind_str(&p[0], d->cfg->server_user, &ulen);
    if (run(d, DB_ST_ENSURE_ROW, p, NULL, NULL) != 0)
        return -1;
    *inserted = mysql_stmt_affected_rows((MYSQL_STMT *)d->st[DB_ST_ENSURE_ROW]) == 1;
    return 0;
}

/* SELECT f(?) with the lock name, one integer (maybe NULL) out. */
static int lock_call(struct db *d, enum db_stmt_id id, long long *v, int *is_null)
{
    MYSQL_BIND p[1], r[1];
    unsigned long nlen;
    db_bool null0 = 0;
    int found;
    bind_str(&p[0], d->cfg->lock_name, &nlen);
    memset(r, 0, sizeof r);
    r[0].buffer_type = MYSQL_TYPE_LONGLONG;
    r[0].buffer = v;
    r[0].is_null = &null0;
    *v = 0;
    if (run(d, id, p, r, &found) != 0)
        return -1;
    *is_null = !found || null0;
    return 0;
}

int db_get_lock(struct db *d, int *acquired)
{
    long long v;
    int is_null;
    if (lock_call(d, DB_ST_GET_LOCK, &v, &is_null) != 0)
        return -1;
    if (is_null) {
        set_err(d, "GET_LOCK", "returned NULL");
        return -1;
    }
    *acquired = v == 1;
    return 0;
}

int db_release_lock(struct db *d)
{
    long long v;
    int is_null;
    return lock_call(d, DB_ST_RELEASE_LOCK, &v, &is_null);
}

int db_seconds_since_update(struct db *d, long long *secs, int *found)
{
    MYSQL_BIND p[1], r[1];
    unsigned long ulen;
    db_bool null0 = 0;
    bind_str(&p[0], d->cfg->server_user, &ulen);
    memset(r, 0, sizeof r);
    r[0].buffer_type = MYSQL_TYPE_LONGLONG;
    r[0].buffer = secs;
    r[0].is_null = &null0;
    *secs = 0;
    if (run(d, DB_ST_SECONDS_SINCE, p, r, found) != 0)
        return -1;
    if (null0)
        *found = 0;
    return 0;
}

int db_increment(struct db *d, unsigned long long *affected)
{
    MYSQL_BIND p[2];
    unsigned long ulen, nlen;
    bind_str(&p[0], d->cfg->server_user, &ulen);
    bind_str(&p[1], d->cfg->lock_name, &nlen);
    if (run(d, DB_ST_INCREMENT, p, NULL, NULL) != 0)
        return -1;
    unsigned long long n =
        (unsigned long long)mysql_stmt_affected_rows((MYSQL_STMT *)d->st[DB_ST_INCREMENT]);
    *affected = n == (unsigned long long)-1 ? 0 : n;
    return 0;
}

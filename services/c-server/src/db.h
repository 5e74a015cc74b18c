/* One database session (MariaDB Connector/C or libmysqlclient) with the prepared statements
 * of protocol.toml [sql]. Not thread-safe: each thread owns its own struct db. */
#ifndef PTS_DB_H
#define PTS_DB_H

#include <stddef.h>

#include "config.h"

enum db_stmt_id {
    DB_ST_SELECT_ROW,
    DB_ST_ENSURE_ROW,
    DB_ST_GET_LOCK,
    DB_ST_RELEASE_LOCK,
    DB_ST_SECONDS_SINCE,
    DB_ST_INCREMENT,
    DB_ST_COUNT
};

#define DB_STAMP_MAX 32

struct db {
    const struct pts_server_config *cfg;
    long long wait_timeout;     /* > 0: SQL_SET_WAIT_TIMEOUT on connect; 0: the server's */
    void *my;                   /* MYSQL * */
    void *st[DB_ST_COUNT];      /* MYSQL_STMT * */
    char err[256];
};

void db_init(struct db *d, const struct pts_server_config *cfg);
/* Connect, disable auto-reconnect, set timeouts, SET time_zone, then SET SESSION wait_timeout
 * when d->wait_timeout > 0 (set it after db_init), prepare. 0 or -1 (d->err). */
int db_connect(struct db *d);
int db_connected(const struct db *d);
/* The session's socket, to watch for the server closing it while idle; -1 if none. */
int db_socket(const struct db *d);
void db_close(struct db *d);

/* Every call: 0 on success, -1 on a database error (d->err set; the caller closes). */
int db_select_row(struct db *d, long long *points, char stamp[DB_STAMP_MAX], int *found);
int db_ensure_row(struct db *d, int *inserted);
int db_get_lock(struct db *d, int *acquired);
int db_release_lock(struct db *d);
int db_seconds_since_update(struct db *d, long long *secs, int *found);
int db_increment(struct db *d, unsigned long long *affected);

#endif

#!/usr/bin/env bash
# Entrypoint of the CI database images (ci/docker/mariadb and ci/docker/mysql share this file):
# the contract of the official mysql/mariadb images, for either server flavour. The flavour is
# the server installed: MariaDB when mariadb-install-db exists, else Oracle MySQL.
#
# First start (empty data directory): create the system tables (mariadb-install-db, or
# mysqld --initialize-insecure), start a temporary server that listens on the socket only (so a
# TCP health check fails until initialisation is complete), set the root password
# (MYSQL_ROOT_PASSWORD, MYSQL_ALLOW_EMPTY_PASSWORD or MYSQL_RANDOM_ROOT_PASSWORD), create
# MYSQL_DATABASE and MYSQL_USER/MYSQL_PASSWORD if given, run /docker-entrypoint-initdb.d in name
# order (*.sh: executed if executable, else sourced with docker_process_sql available; *.sql,
# *.sql.gz, *.sql.xz, *.sql.zst: fed to the server), stop the temporary server.
# Then, and on every later start, exec the server with the arguments given. Started as root, it
# first gives the data directory to the mysql user and drops to it.
# Every MYSQL_X may be given as MARIADB_X, and the secrets also as X_FILE (a file to read).
set -eo pipefail
shopt -s nullglob

mysql_log() {
    local type=$1
    shift
    printf '%s [%s] [Entrypoint]: %s\n' "$(date --rfc-3339=seconds)" "$type" "$*"
}
mysql_note() { mysql_log Note "$@"; }
mysql_warn() { mysql_log Warn "$@" >&2; }
mysql_error() {
    mysql_log ERROR "$@" >&2
    exit 1
}

# file_env VAR [DEFAULT]: VAR from VAR, MARIADB_<suffix>, VAR_FILE or MARIADB_<suffix>_FILE.
file_env() {
    local var=$1 def=${2:-}
    local mvar="MARIADB_${var#MYSQL_}"
    local val=$def
    if [ -n "${!var:-}" ]; then
        val=${!var}
    elif [ -n "${!mvar:-}" ]; then
        val=${!mvar}
    elif [ -n "$(eval "printf %s \"\${${var}_FILE:-}\"")" ]; then
        val=$(<"$(eval "printf %s \"\${${var}_FILE}\"")")
    elif [ -n "$(eval "printf %s \"\${${mvar}_FILE:-}\"")" ]; then
        val=$(<"$(eval "printf %s \"\${${mvar}_FILE}\"")")
    fi
    export "$var"="$val"
    unset "${var}_FILE" "${mvar}_FILE"
}

DATADIR=/var/lib/mysql
if command -v mariadb-install-db >/dev/null; then
    FLAVOUR=MariaDB SERVER=mariadbd CLIENT=mariadb SOCKET=/run/mysqld/mysqld.sock
else
    FLAVOUR=MySQL SERVER=mysqld CLIENT=mysql SOCKET=/var/run/mysqld/mysqld.sock
fi

_mysql_passfile() {
    if [ "$1" != --dont-use-mysql-root-password ] && [ -n "$MYSQL_ROOT_PASSWORD" ]; then
        local p=${MYSQL_ROOT_PASSWORD//\\/\\\\}
        p=${p//\"/\\\"}
        printf '[client]\npassword="%s"\n' "$p"
    fi
}

# docker_process_sql [--dont-use-mysql-root-password] [client options]: run SQL from stdin as
# root on the temporary server, in MYSQL_DATABASE when set (as the official images do).
docker_process_sql() {
    local passfile_arg=
    if [ "${1:-}" = --dont-use-mysql-root-password ]; then
        passfile_arg=$1
        shift
    fi
    if [ -n "${MYSQL_DATABASE:-}" ]; then
        set -- --database="$MYSQL_DATABASE" "$@"
    fi
    "$CLIENT" --defaults-extra-file=<(_mysql_passfile "$passfile_arg") --protocol=socket -uroot \
        -hlocalhost --socket="$SOCKET" --comments "$@"
}

docker_sql_escape_string_literal() {
    local s=$1 bs=\\ q="'"
    s=${s//"$bs"/"$bs$bs"}
    printf '%s' "${s//"$q"/"$bs$q"}"
}

docker_process_init_files() {
    local f
    for f; do
        case "$f" in
            *.sh)
                if [ -x "$f" ]; then
                    mysql_note "$0: running $f"
                    "$f"
                else
                    mysql_note "$0: sourcing $f"
                    # shellcheck disable=SC1090
                    . "$f"
                fi
                ;;
            *.sql) mysql_note "$0: running $f"; docker_process_sql <"$f" ;;
            *.sql.gz) mysql_note "$0: running $f"; gunzip -c "$f" | docker_process_sql ;;
            *.sql.xz) mysql_note "$0: running $f"; xzcat "$f" | docker_process_sql ;;
            *.sql.zst) mysql_note "$0: running $f"; zstd -dc "$f" | docker_process_sql ;;
            *) mysql_warn "$0: ignoring $f" ;;
        esac
    done
}

docker_temp_server_start() {
    if [ "$FLAVOUR" = MariaDB ]; then
        set -- "$@" --wsrep_on=OFF --expire-logs-days=0 --skip-slave-start \
            --loose-innodb_buffer_pool_load_at_startup=0
    fi
    "$@" --skip-networking --default-time-zone=SYSTEM --socket="$SOCKET" &
    MARIADB_PID=$!
    local i
    for i in $(seq 30 -1 0); do
        if docker_process_sql --dont-use-mysql-root-password --database=mysql \
            <<<'SELECT 1' >/dev/null 2>&1; then
            return 0
        fi
        kill -0 "$MARIADB_PID" 2>/dev/null || mysql_error "the temporary server exited"
        [ "$i" -gt 0 ] || mysql_error "unable to start the temporary server"
        sleep 1
    done
}

docker_temp_server_stop() {
    kill "$MARIADB_PID"
    wait "$MARIADB_PID" || true
}

docker_setup_env() {
    file_env MYSQL_ROOT_HOST %
    file_env MYSQL_DATABASE
    file_env MYSQL_USER
    file_env MYSQL_PASSWORD
    file_env MYSQL_ROOT_PASSWORD
    file_env MYSQL_ALLOW_EMPTY_PASSWORD
    file_env MYSQL_ALLOW_EMPTY_ROOT_PASSWORD
    file_env MYSQL_RANDOM_ROOT_PASSWORD
    if [ -n "$MYSQL_ALLOW_EMPTY_ROOT_PASSWORD" ]; then
        MYSQL_ALLOW_EMPTY_PASSWORD=$MYSQL_ALLOW_EMPTY_ROOT_PASSWORD
    fi
}

docker_setup_db() {
    if [ -z "$MYSQL_ROOT_PASSWORD" ] && [ -z "$MYSQL_ALLOW_EMPTY_PASSWORD" ] \
        && [ -z "$MYSQL_RANDOM_ROOT_PASSWORD" ]; then
        mysql_error "Database is uninitialized and password option is not specified:" \
            "set one of MYSQL_ROOT_PASSWORD, MYSQL_ALLOW_EMPTY_PASSWORD and MYSQL_RANDOM_ROOT_PASSWORD"
    fi
    if [ -n "$MYSQL_RANDOM_ROOT_PASSWORD" ]; then
        # (finite input: `tr </dev/urandom | head` dies of SIGPIPE, fatal under pipefail)
        MYSQL_ROOT_PASSWORD=$(head -c 64 /dev/urandom | base64 -w0 | tr -dc 'A-Za-z0-9')
        MYSQL_ROOT_PASSWORD=${MYSQL_ROOT_PASSWORD:0:32}
        export MYSQL_ROOT_PASSWORD
        mysql_note "GENERATED ROOT PASSWORD: $MYSQL_ROOT_PASSWORD"
    fi
    local rootpw root_host_sql=
    rootpw=$(docker_sql_escape_string_literal "$MYSQL_ROOT_PASSWORD")
    if [ "$MYSQL_ROOT_HOST" != localhost ]; then
        local host
        host=$(docker_sql_escape_string_literal "$MYSQL_ROOT_HOST")
        root_host_sql="CREATE USER IF NOT EXISTS 'root'@'$host' IDENTIFIED BY '$rootpw';
GRANT ALL ON *.* TO 'root'@'$host' WITH GRANT OPTION;"
    fi
    local flavour_sql   # MariaDB's install-db leaves anonymous and extra root accounts
    if [ "$FLAVOUR" = MariaDB ]; then
        flavour_sql="DELETE FROM mysql.global_priv WHERE user = '' OR (user = 'root' AND host NOT IN ('localhost'));
DELETE FROM mysql.proxies_priv WHERE host NOT IN ('localhost');"
    else   # as the official mysql image: autocommit on, nothing of this in a binary log
        flavour_sql="SET autocommit = 1;
SET @@SESSION.SQL_LOG_BIN = 0;"
    fi
    docker_process_sql --dont-use-mysql-root-password --database=mysql <<SQL
$flavour_sql
ALTER USER 'root'@'localhost' IDENTIFIED BY '$rootpw';
$root_host_sql
DROP DATABASE IF EXISTS test;
FLUSH PRIVILEGES;
SQL
    if [ -n "$MYSQL_DATABASE" ]; then
        mysql_note "Creating database $MYSQL_DATABASE"
        docker_process_sql --database=mysql <<<"CREATE DATABASE IF NOT EXISTS \`$MYSQL_DATABASE\`;"
    fi
    if [ -n "$MYSQL_USER" ] && [ -n "$MYSQL_PASSWORD" ]; then
        mysql_note "Creating user $MYSQL_USER"
        local u p
        u=$(docker_sql_escape_string_literal "$MYSQL_USER")
        p=$(docker_sql_escape_string_literal "$MYSQL_PASSWORD")
        local grant=
        if [ -n "$MYSQL_DATABASE" ]; then
            grant="GRANT ALL ON \`$MYSQL_DATABASE\`.* TO '$u'@'%';"
        fi
        docker_process_sql --database=mysql <<<"CREATE USER '$u'@'%' IDENTIFIED BY '$p'; $grant"
    fi
}

docker_init_database_dir() {
    if [ "$FLAVOUR" = MariaDB ]; then
        mariadb-install-db --datadir="$DATADIR" --rpm --auth-root-authentication-method=normal \
            --skip-test-db "${@:2}" --default-time-zone=SYSTEM --skip-log-bin \
            --expire-logs-days=0 >/dev/null
    else
        # root@localhost without a password, reachable on the socket only until docker_setup_db
        "$@" --initialize-insecure --default-time-zone=SYSTEM --autocommit=1
    fi
}

_main() {
    if [ "${1:0:1}" = - ]; then
        set -- "$SERVER" "$@"
    fi
    if [ "$1" = mariadbd ] || [ "$1" = mysqld ]; then
        if [ "$(id -u)" = 0 ]; then
            mkdir -p "$DATADIR" /run/mysqld
            chown -R mysql:mysql "$DATADIR" /run/mysqld
            exec setpriv --reuid=mysql --regid=mysql --init-groups "${BASH_SOURCE[0]}" "$@"
        fi
        docker_setup_env
        if [ ! -d "$DATADIR/mysql" ]; then
            mysql_note "Initializing database files ($FLAVOUR)"
            docker_init_database_dir "$@"
            mysql_note "Starting temporary server"
            docker_temp_server_start "$@"
            docker_setup_db
            docker_process_init_files /docker-entrypoint-initdb.d/*
            mysql_note "Stopping temporary server"
            docker_temp_server_stop
            mysql_note "$FLAVOUR init process done. Ready for start up."
        fi
    fi
    exec "$@"
}

_main "$@"

#!/usr/bin/env bash
# CI: everything `docker compose up --build` needs on this registry-less machine, each step cached:
#   1. a Docker engine            (start-dockerd.sh: Debian's docker.io, dockerd started here)
#   2. the Compose v2 CLI plugin  (compose/install.sh: built once from the Go module proxy)
#   3. debian:bookworm-slim       (base/build.sh: debootstrap + docker import, by recipe hash)
#   4. the CI database image      (mariadb/build.sh: Debian's MariaDB, the official contract)
#   5. the CI MySQL image         (mysql/build.sh: Oracle MySQL from Debian sid, same contract)
# Prints on stdout, one per line, the settings a Compose run here needs:
#   CI_BASE_IMAGE=<ref>   DB_IMAGE=<ref>   MYSQL_DB_IMAGE=<ref>
# and on stderr what it did and how long each step took.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

step() { # name command...
    local name=$1 t0 rc=0 ms
    shift
    t0=$(date +%s%N)
    "$@" || rc=$?
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    printf '[ci-prepare] %-8s %d.%03d s\n' "$name" $((ms / 1000)) $((ms % 1000)) >&2
    return "$rc"
}

step engine "$here/start-dockerd.sh"
step compose "$here/compose/install.sh"
base=$(step base "$here/base/build.sh")
db=$(step database "$here/mariadb/build.sh" "$base")
mysql=$(step mysql "$here/mysql/build.sh")
printf 'CI_BASE_IMAGE=%s\nDB_IMAGE=%s\nMYSQL_DB_IMAGE=%s\n' "$base" "$db" "$mysql"

#!/usr/bin/env bash
# Install Oracle MySQL for the dev database's MySQL flavour (POINTS_MESH_DB_FLAVOUR=mysql,
# `make test-mysql`), cached outside the checkout. Debian stable has no MySQL server, Debian
# unstable ("sid") has Oracle's (mysql-server-core, 9.x; no 8.4 package is served any more):
# this script builds a minimal sid root with debootstrap, installs mysql-server-core and
# mysql-client-core into it, and records where it is.
#
#   tools/install-mysql.sh [VENV]     (default .venv)
#
# The root lives in $POINTS_MESH_MYSQL_CACHE (default /var/cache/points-mesh/mysql) under
# sid-<key>, the key being a hash of this script's recipe: a second run only checks the cache
# (well under a second). Building it needs root (debootstrap, chroot) and the Debian archive;
# using it does not: pointsmesh.devdb runs the root's mysqld and mysql through the root's own
# dynamic loader (no chroot), so any user who can read the cache can start the MySQL flavour.
# Without root and without a cache, the script prints the command to run and exits 1.
#
# It writes MYSQL_ROOT=<root> to VENV/mysql.env, which pointsmesh.devdb reads (the environment
# variable POINTS_MESH_MYSQL_ROOT overrides it), and prints the exact mysqld version.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${1:-${VENV:-.venv}}
case "$VENV" in /*) ;; *) VENV="$ROOT/$VENV" ;; esac

say() { printf '[install-mysql] %s\n' "$*"; }
die() { say "ERROR: $*" >&2; exit 1; }

# The recipe (its text is the cache key).
SUITE=sid
MIRROR=${POINTS_MESH_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=(mysql-server-core mysql-client-core)
recipe() {
    printf 'suite=%s\nmirror=%s\npackages=%s\nvariant=minbase\nv=1\n' "$SUITE" "$MIRROR" "${PACKAGES[*]}"
}

CACHE=${POINTS_MESH_MYSQL_CACHE:-/var/cache/points-mesh/mysql}
if [ -z "${POINTS_MESH_MYSQL_CACHE:-}" ] && [ "$(id -u)" -ne 0 ] && [ ! -d "$CACHE" ]; then
    CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/points-mesh/mysql"
fi
KEY=$(recipe | sha256sum | cut -c1-12)
DEST="$CACHE/$SUITE-$KEY"

mysqld_version() {
    # The root's own loader and libraries: works on the host without chroot or root.
    "$1/usr/lib64/ld-linux-x86-64.so.2" --library-path "$1/usr/lib/x86_64-linux-gnu" \
        "$1/usr/sbin/mysqld" --no-defaults --version
}

record() {
    mkdir -p "$VENV"
    printf '# written by tools/install-mysql.sh\nMYSQL_ROOT=%s\n' "$DEST" > "$VENV/mysql.env"
    say "mysqld: $(mysqld_version "$DEST")"
    say "root: $DEST (recorded in $VENV/mysql.env)"
}

if [ -f "$DEST/.pointsmesh-complete" ]; then
    record
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    say "MySQL is not installed yet; building its root needs root (debootstrap, chroot):"
    say "  sudo $0 $VENV"
    exit 1
fi
command -v debootstrap >/dev/null || {
    command -v apt-get >/dev/null || die "debootstrap is needed"
    say "installing debootstrap with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
}

mkdir -p "$CACHE"
exec 9>"$CACHE/.install.lock"
flock 9
if [ -f "$DEST/.pointsmesh-complete" ]; then  # built by another run meanwhile
    record
    exit 0
fi

STAGE=$(mktemp -d "$CACHE/.stage-XXXXXX")
cleanup() { rm -rf --one-file-system "$STAGE"; }
trap cleanup EXIT
say "building a Debian $SUITE root with ${PACKAGES[*]} (about a minute) in $DEST"
nice -n 10 debootstrap --variant=minbase "$SUITE" "$STAGE/root" "$MIRROR" > "$STAGE/debootstrap.log" 2>&1 \
    || { tail -20 "$STAGE/debootstrap.log" >&2; die "debootstrap failed"; }
R="$STAGE/root"
# No service is ever started inside the root.
printf '#!/bin/sh\nexit 101\n' > "$R/usr/sbin/policy-rc.d"
chmod 755 "$R/usr/sbin/policy-rc.d"
# sid's Release files may carry an expired Valid-Until on some mirrors.
chroot "$R" apt-get -qq -o Acquire::Check-Valid-Until=false update
DEBIAN_FRONTEND=noninteractive chroot "$R" apt-get install -y -qq --no-install-recommends \
    "${PACKAGES[@]}" > "$STAGE/apt.log" 2>&1 || { tail -20 "$STAGE/apt.log" >&2; die "apt-get install failed"; }
chroot "$R" apt-get clean
rm -rf "$R/var/lib/apt/lists/"*
recipe > "$R/.pointsmesh-recipe"
mysqld_version "$R" > /dev/null || die "the installed mysqld does not run"
chmod -R a+rX "$R"
touch "$R/.pointsmesh-complete"
rm -rf --one-file-system "$DEST"
mv "$R" "$DEST"
record

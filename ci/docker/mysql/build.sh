#!/usr/bin/env bash
# CI only: build the CI MySQL image (see Dockerfile) and print its reference:
#   1. the Debian sid base (base-sid.sh: debootstrap + docker import, cached by recipe hash);
#   2. the image: Debian's mysql-server-core/mysql-client-core at the pinned version, the
#      entrypoint shared with the CI MariaDB image (../mariadb/docker-entrypoint.sh), my.cnf.
# Cache: tagged pointsmesh-ci/mysql:<hash> (<hash> covers the Dockerfile, my.cnf, the entrypoint,
# this script, the package version and the base image id) and rebuilt only when one of them
# changes; pointsmesh-ci/mysql:latest follows it. CI_MYSQL_FORCE=1 rebuilds.
# The package version is pinned (a new sid upload does not silently change the database under
# test); when sid has moved on, the build fails naming the new version: update the pin.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=${CI_MYSQL_REPO:-pointsmesh-ci/mysql}
deb_version=${CI_MYSQL_DEB_VERSION:-9.7.4-2}
files=(Dockerfile my.cnf ../mariadb/docker-entrypoint.sh build.sh)

say() { printf '[ci-mysql] %s\n' "$*" >&2; }

base=$("$here/base-sid.sh")
base_id=$(docker image inspect -f '{{.Id}}' "$base")
hash=$(
    {
        printf '%s %s\n' "$base_id" "$deb_version"
        for f in "${files[@]}"; do
            printf '%s\n' "${f##*/}"
            cat "$here/$f"
        done
    } | sha256sum | cut -c1-12
)
ref="$repo:$hash"
if [ -z "${CI_MYSQL_FORCE:-}" ] && docker image inspect "$ref" >/dev/null 2>&1; then
    say "cached: $ref (mysql-server-core $deb_version)"
else
    start=$(date +%s)
    say "building $ref from $base (mysql-server-core $deb_version)"
    ctx=$(mktemp -d)
    trap 'rm -rf "$ctx"' EXIT
    for f in "${files[@]}"; do cp -p "$here/$f" "$ctx/"; done
    if ! DOCKER_BUILDKIT=0 docker build --build-arg "BASE_IMAGE=$base" \
        --build-arg "MYSQL_DEB_VERSION=$deb_version" \
        --label "org.pointsmesh.ci.recipe=$hash" -t "$ref" "$ctx" >"$ctx/build.log" 2>&1; then
        tail -n 40 "$ctx/build.log" >&2
        exit 1
    fi
    say "$(docker run --rm --entrypoint mysqld "$ref" --version)"
    say "built in $(( $(date +%s) - start )) s: $(docker image inspect -f '{{.Size}}' "$ref") bytes"
    # Drop the images of older recipes (their layers stay shared where they still match).
    docker image ls --format '{{.Repository}}:{{.Tag}}' "$repo" | grep -vx -e "$ref" -e "$repo:latest" \
        | xargs -r docker rmi >/dev/null 2>&1 || true
fi
docker tag "$ref" "$repo:latest"
printf '%s\n' "$ref"

#!/usr/bin/env bash
# CI only: build the MySQL-contract-compatible database image (see Dockerfile) on top of the base
# image given as $1 (default: debian:bookworm-slim) and print its reference.
# Cache: tagged pointsmesh-ci/mariadb:<hash> (<hash> covers this folder and the base image id)
# and rebuilt only when one of them changes; pointsmesh-ci/mariadb:latest follows it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
base=${1:-debian:bookworm-slim}
repo=${CI_DB_REPO:-pointsmesh-ci/mariadb}

say() { printf '[ci-mariadb] %s\n' "$*" >&2; }

base_id=$(docker image inspect -f '{{.Id}}' "$base")
hash=$(
    {
        printf '%s\n' "$base_id"
        for f in Dockerfile docker-entrypoint.sh docker.cnf build.sh; do
            printf '%s\n' "$f"
            cat "$here/$f"
        done
    } | sha256sum | cut -c1-12
)
ref="$repo:$hash"
if [ -z "${CI_DB_FORCE:-}" ] && docker image inspect "$ref" >/dev/null 2>&1; then
    say "cached: $ref"
else
    start=$(date +%s)
    say "building $ref from $base"
    log=$(mktemp)
    if ! DOCKER_BUILDKIT=0 docker build --build-arg "BASE_IMAGE=$base" \
        --label "org.pointsmesh.ci.recipe=$hash" -t "$ref" "$here" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
    say "built in $(( $(date +%s) - start )) s"
    # Drop the images of older recipes (their layers stay shared where they still match).
    docker image ls --format '{{.Repository}}:{{.Tag}}' "$repo" | grep -vx -e "$ref" -e "$repo:latest" \
        | xargs -r docker rmi >/dev/null 2>&1 || true
fi
docker tag "$ref" "$repo:latest"
printf '%s\n' "$ref"

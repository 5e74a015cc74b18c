#!/usr/bin/env bash
# CI: make `docker compose` (Compose v2, the CLI plugin users run) available on this machine.
#
#   ci/docker/compose/install.sh        # no-op when `docker compose` >= 2.24.4 already answers
#
# When the plugin is missing it is built from source fetched through the Go module proxy
# (module github.com/docker/compose/v2 at $COMPOSE_VERSION, built in its own module directory so
# its go.mod, replace directives included, is honoured) and installed as
# $DOCKER_CLI_PLUGINS_DIR/docker-compose. The binary is cached per version under
# $XDG_CACHE_HOME/pointsmesh/compose/<version>/, so later runs only copy it.
set -euo pipefail
version=${COMPOSE_VERSION:-v2.40.3}
module=github.com/docker/compose/v2
plugins=${DOCKER_CLI_PLUGINS_DIR:-/usr/local/lib/docker/cli-plugins}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/pointsmesh/compose/$version

say() { printf '[ci-compose] %s\n' "$*" >&2; }

# The oldest Compose that reads everything the project and its tests use (`!override`).
minimum=2.24.4
if [ -z "${COMPOSE_FORCE:-}" ] && have=$(docker compose version --short 2>/dev/null); then
    have=${have#v}
    if [ "$(printf '%s\n%s\n' "$minimum" "$have" | sort -V | head -n1)" = "$minimum" ]; then
        say "docker compose $have is available"
        exit 0
    fi
    say "docker compose $have is older than $minimum: installing $version"
fi

if [ ! -x "$cache/docker-compose" ]; then
    command -v go >/dev/null || { say "Go is needed to build Compose $version"; exit 1; }
    start=$(date +%s)
    say "fetching $module@$version through the Go module proxy"
    dir=$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [ -n "$dir" ] && [ -d "$dir" ] || { say "go mod download gave no module directory"; exit 1; }
    src=$(mktemp -d /var/tmp/ci-compose.XXXXXX)
    trap 'chmod -R u+w "$src"; rm -rf "$src"' EXIT
    cp -r "$dir/." "$src/"
    chmod -R u+w "$src"
    say "building docker-compose $version (several minutes on a cold Go cache)"
    mkdir -p "$cache"
    (cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=mod nice go build -trimpath \
        -ldflags "-s -w -X $module/internal.Version=$version" \
        -o "$cache/docker-compose.tmp" ./cmd)
    mv "$cache/docker-compose.tmp" "$cache/docker-compose"
    say "built in $(( $(date +%s) - start )) s"
fi
install -D -m 0755 "$cache/docker-compose" "$plugins/docker-compose"
say "installed $plugins/docker-compose: $(docker compose version)"

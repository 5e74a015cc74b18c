#!/usr/bin/env bash
# A real OCI registry beside the project's kind cluster, as users have one: go-containerregistry's
# `crane registry serve`, built from its Go module (no image can be pulled here) into a scratch
# image, run as a container on the cluster's `kind` network. Nothing here is part of the node
# image's recipe.
#
#   registry.sh up      start it (or keep the running one) and point every node's containerd at
#                       it; prints REGISTRY=localhost:<port> (push there from this host: Docker
#                       and Helm treat localhost as plain HTTP) and REGISTRY_IP=<its address>
#   registry.sh down    remove it (its content is in memory: gone with it)
#
# The nodes pull `localhost:<port>/...` through containerd's registry configuration
# (/etc/containerd/certs.d/localhost:<port>/hosts.toml -> http://<its address>:5000, the way
# kind's local-registry recipe does; cluster.sh sets containerd's config_path), so an image
# reference means the same thing on this host and on the nodes.
set -euo pipefail
# shellcheck source=lib.sh
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

CRANE_VERSION=v0.22.1
NAME=${KA_CLUSTER}-registry
NET=kind

go_crane() {
    GOBIN="$1" CGO_ENABLED=0 ka_nice go install -trimpath -ldflags "-s -w" \
        "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION"
}

# The registry image: crane alone in a scratch image, keyed like the other local images.
image() {
    local key dir ref
    key=$({ declare -f go_crane; printf '%s\n' "$CRANE_VERSION"; go version; } | ka_short_hash)
    ref="$KA_IMAGE_REPO/registry:$key"
    if ! ka_image_exists "$ref"; then
        dir="$KA_CACHE/bin/crane-$key"
        exec 7>"$KA_CACHE/.crane.lock"
        flock -w 3600 7 || ka_die "another build holds $KA_CACHE/.crane.lock"
        if [ ! -f "$dir/.done" ]; then
            ka_log "building crane $CRANE_VERSION -> $dir"
            mkdir -p "$KA_CACHE/work" && rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
            (cd "$KA_CACHE/work" && go_crane "$dir.tmp")
            touch "$dir.tmp/.done" && rm -rf "$dir" && mv "$dir.tmp" "$dir"
        fi
        exec 7>&-
        printf 'FROM scratch\nCOPY crane /crane\nUSER 65534\nENTRYPOINT ["/crane", "registry", "serve", "--address", ":5000"]\n' \
            >"$dir/Dockerfile"
        DOCKER_BUILDKIT=0 docker build -q -t "$ref" "$dir" >/dev/null || ka_die "could not build $ref"
    fi
    printf '%s' "$ref"
}

nodes() { docker ps --filter "label=io.x-k8s.kind.cluster=$KA_CLUSTER" --format '{{.Names}}'; }

cmd_up() {
    local ref port ip node n=0
    [ -n "$(nodes)" ] || ka_die "no node of cluster $KA_CLUSTER runs: cluster.sh up first"
    ref=$(image)
    if [ "$(docker inspect -f '{{.State.Running}} {{.Config.Image}}' "$NAME" 2>/dev/null)" != "true $ref" ]; then
        docker rm -f "$NAME" >/dev/null 2>&1 || true
        docker run -d --name "$NAME" --network "$NET" -p 127.0.0.1::5000 --restart no \
            --label "io.points-mesh.registry=$KA_CLUSTER" "$ref" >/dev/null \
            || ka_die "could not start the registry container $NAME"
    fi
    port=$(docker port "$NAME" 5000/tcp | sed -n 's/^127\.0\.0\.1:\([0-9]*\)$/\1/p' | head -1)
    ip=$(docker inspect -f "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}" "$NAME")
    [ -n "$port" ] && [ -n "$ip" ] || ka_die "registry $NAME has no published port or address"
    for _ in $(seq 1 50); do
        # /v2/ answers 200 once it serves (a bounded wait on this run's own container).
        if curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/"; then break; fi
        sleep 0.2
    done
    curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" || ka_die "registry on 127.0.0.1:$port does not answer"
    for node in $(nodes); do
        docker exec "$node" grep -q 'config_path = "/etc/containerd/certs.d"' /etc/containerd/config.toml \
            || ka_die "$node: containerd has no config_path for registry hosts (recreate the cluster: cluster.sh sets it)"
        docker exec -i "$node" sh -c "mkdir -p '/etc/containerd/certs.d/localhost:$port' && cat > '/etc/containerd/certs.d/localhost:$port/hosts.toml'" <<EOF
server = "http://$ip:5000"

[host."http://$ip:5000"]
  capabilities = ["pull", "resolve"]
EOF
        n=$((n + 1))
    done
    ka_log "registry $NAME at $ip:5000 (localhost:$port from this host), $n node(s) pull through it"
    printf 'REGISTRY=localhost:%s\nREGISTRY_IP=%s\n' "$port" "$ip"
}

cmd_down() {
    local node
    for node in $(nodes); do
        docker exec "$node" sh -c 'rm -rf /etc/containerd/certs.d/localhost:*' 2>/dev/null || true
    done
    docker rm -f "$NAME" >/dev/null 2>&1 || true
    ka_log "registry $NAME removed"
}

case "${1:-}" in
    up) command -v go >/dev/null || ka_die "Go is needed to build crane"; cmd_up ;;
    down) cmd_down ;;
    *) echo "usage: $0 up | down" >&2; exit 2 ;;
esac

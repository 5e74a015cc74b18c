# Shared helpers for ci/kind-airgap scripts. Source it; it never runs anything by itself.
# shellcheck shell=bash
# shellcheck disable=SC2034  # KA_CACHE, KA_CLUSTER: set here, read by the scripts sourcing this
KA_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
. "$KA_DIR/versions.env"

# Everything cached lives outside the checkout, so it survives fresh CI clones:
#   $KA_CACHE/bin/<component>-<key>/   Go build outputs (kind, helm, k8s, etcd, coredns, pause,
#                                      kube-router, local-path)
#   $KA_CACHE/work/                    shim modules and scratch space (safe to delete)
#   $KA_CACHE/rootfs/                  debootstrap trees (deleted after import)
#   docker images points-mesh/kind-*:<tag>-<recipe hash>
# Go's own caches stay in their default places (go env GOMODCACHE GOCACHE).
KA_CACHE=${KIND_AIRGAP_CACHE:-/var/cache/points-mesh/kind-airgap}
KA_IMAGE_REPO=${KIND_AIRGAP_IMAGE_REPO:-points-mesh}
KA_CLUSTER=${KIND_AIRGAP_CLUSTER:-points-mesh}

export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"
export GOFLAGS=${GOFLAGS:--buildvcs=false}
export DOCKER_BUILDKIT=0

ka_log() { printf '[kind-airgap %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
ka_die() { ka_log "ERROR: $*"; exit 1; }

# sha256 of stdin, first 12 hex digits.
ka_short_hash() { sha256sum | cut -c1-12; }

# Hash of the image recipe: every file that decides what goes into the node image.
# cluster.sh, README and tests are deliberately not part of it.
ka_recipe_hash() {
    (cd "$KA_DIR" && find versions.env lib.sh build-node-image.sh node pause addons -type f -print0 \
        | LC_ALL=C sort -z | xargs -0 sha256sum) | ka_short_hash
}

ka_k8s_tag() { printf '%s' "$K8S_VERSION"; }
ka_node_image() { printf '%s/kind-node:%s-%s' "$KA_IMAGE_REPO" "$K8S_VERSION" "$(ka_recipe_hash)"; }

ka_image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# Run a command at low CPU and IO priority (the machine has 2 cores shared with others).
ka_nice() { if command -v ionice >/dev/null; then nice -n 10 ionice -c 3 "$@"; else nice -n 10 "$@"; fi; }

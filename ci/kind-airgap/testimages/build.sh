#!/usr/bin/env bash
# Build the smoke-test image locally and print its name: points-mesh/kind-smoke:<hash>.
# A static Go binary (smoke/, standard library only) in a scratch-like image made with
# `docker import`: no base image, no registry. Cached by a hash of the sources and Go version.
set -euo pipefail
# shellcheck source=../lib.sh
. "$(cd "$(dirname "$0")/.." && pwd)/lib.sh"
src="$KA_DIR/testimages/smoke"
key=$({ cat "$src/go.mod" "$src/main.go" "$0"; go version; } | ka_short_hash)
ref="$KA_IMAGE_REPO/kind-smoke:$key"
if ! ka_image_exists "$ref"; then
    ka_log "building $ref"
    root=$(mktemp -d "${TMPDIR:-/tmp}/kind-smoke.XXXXXX")
    trap 'rm -rf "$root"' EXIT
    (cd "$src" && CGO_ENABLED=0 GOTOOLCHAIN=local go build -trimpath -ldflags "-s -w" -o "$root/smoke" .)
    mkdir -p "$root/etc" && install -d -m 1777 "$root/tmp"
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' >"$root/etc/passwd"
    printf 'root:x:0:\nnobody:x:65534:\n' >"$root/etc/group"
    tar --numeric-owner --owner=0 --group=0 -C "$root" -c . \
        | docker import -c 'ENTRYPOINT ["/smoke"]' -c 'USER 65534' -c 'EXPOSE 8080' - "$ref" >/dev/null
    # older smoke images (previous sources) are of no use any more
    docker images --format '{{.Repository}}:{{.Tag}}' "$KA_IMAGE_REPO/kind-smoke" | grep -vx "$ref" \
        | xargs -r docker rmi >/dev/null 2>&1 || true
fi
echo "$ref"

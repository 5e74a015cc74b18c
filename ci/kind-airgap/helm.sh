#!/usr/bin/env bash
# The helm CLIs, built from their Go modules (module proxy) and cached, like the node image's
# components but outside its recipe: a helm bump never rebuilds the node image.
#
#   helm.sh path      build Helm 4 (the project's helm) if not cached; print the binary's path
#   helm.sh path 3    the same for Helm 3 (what many users still run: the e2e lifecycle test)
#   helm.sh version [3]   print the pinned version
#
# Both carry the version ldflags of helm's Makefile. Helm 3's Makefile also sets the default
# Kubernetes version of `helm template` and `helm lint` from its client-go (without it a
# source build says v1.20 and refuses charts that need newer); Helm 4 reads it from its own
# build information.
set -euo pipefail
# shellcheck source=lib.sh
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

# Helm 4: the current major version, what a user installing helm today gets.
HELM_VERSION=v4.3.2
# Helm 3: the newest 3.x the module proxy serves that is approved here (v3.22.0 is not).
HELM3_VERSION=v3.21.4

go_helm4() {
    local v=helm.sh/helm/v4/internal/version
    GOBIN="$1" CGO_ENABLED=0 ka_nice go install -trimpath \
        -ldflags "-s -w -X $v.version=$HELM_VERSION -X $v.gitTreeState=clean" \
        "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
}

go_helm3() {
    local v=helm.sh/helm/v3 gomod client_go major minor
    gomod=$(cd "$KA_CACHE/work" && go mod download -json "$v@$HELM3_VERSION" \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["GoMod"])')
    client_go=$(go mod edit -json "$gomod" | python3 -c '
import json, sys
print(next(r["Version"] for r in json.load(sys.stdin)["Require"] if r["Path"] == "k8s.io/client-go"))')
    client_go=${client_go#v0.}                        # client-go v0.X.Y is Kubernetes 1.X
    major=1 minor=${client_go%%.*}
    GOBIN="$1" CGO_ENABLED=0 ka_nice go install -trimpath -ldflags "-s -w \
        -X $v/internal/version.version=$HELM3_VERSION -X $v/internal/version.gitTreeState=clean \
        -X $v/pkg/lint/rules.k8sVersionMajor=$major -X $v/pkg/lint/rules.k8sVersionMinor=$minor \
        -X $v/pkg/chartutil.k8sVersionMajor=$major -X $v/pkg/chartutil.k8sVersionMinor=$minor" \
        "$v/cmd/helm@$HELM3_VERSION"
}

# build NAME FUNCTION VERSION: $KA_CACHE/bin/NAME-<key>/helm, keyed by the function's text, the
# version and the local Go; built once under a lock, moved into place when complete.
build() {
    local name=$1 fn=$2 version=$3 key dir t0
    key=$({ declare -f "$fn"; printf '%s\n' "$version"; go version; } | ka_short_hash)
    dir="$KA_CACHE/bin/$name-$key"
    if [ ! -f "$dir/.done" ]; then
        mkdir -p "$KA_CACHE/bin" "$KA_CACHE/work"
        exec 7>"$KA_CACHE/.$name.lock"
        flock -w 3600 7 || ka_die "another build holds $KA_CACHE/.$name.lock"
        if [ ! -f "$dir/.done" ]; then
            ka_log "building $name $version -> $dir (a cold build takes minutes)"
            t0=$(date +%s)
            rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
            "$fn" "$dir.tmp"
            touch "$dir.tmp/.done"
            rm -rf "$dir" && mv "$dir.tmp" "$dir"
            ka_log "built $name $version in $(( $(date +%s) - t0 ))s"
        fi
        exec 7>&-
    fi
    "$dir/helm" version >/dev/null 2>&1 || ka_die "$dir/helm does not run"
    printf '%s\n' "$dir/helm"
}

command -v go >/dev/null || ka_die "Go is needed to build helm (expected in /usr/local/go/bin)"
case "${1:-} ${2:-4}" in
    "path 4") build helm go_helm4 "$HELM_VERSION" ;;
    "path 3") build helm3 go_helm3 "$HELM3_VERSION" ;;
    "version 4") echo "$HELM_VERSION" ;;
    "version 3") echo "$HELM3_VERSION" ;;
    *) echo "usage: $0 path [4|3] | version [4|3]" >&2; exit 2 ;;
esac

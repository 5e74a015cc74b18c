#!/usr/bin/env bash
# Install the chart tools that `make test` (tests/chart) needs, built from Go modules through
# the module proxy and cached outside the checkout, so they survive fresh clones:
#
#   helm           Helm 4, the very build ci/kind-airgap's cluster uses: ci/kind-airgap/helm.sh
#                  (pinned there, cached in $KA_CACHE/bin/helm-<key>, built once under its lock).
#   helm-unittest  "untt" (github.com/helm-unittest/helm-unittest/cmd/helm-unittest), built in a
#                  shim module carrying the replace directives of its go.mod (`go install
#                  module@version` refuses modules with replaces); cached in
#                  $TOOLS_CACHE/bin/helm-unittest-<key>.
#   actionlint     (github.com/rhysd/actionlint) for the GitHub workflows; cached the same way.
#
# It writes the paths to VENV/chart-tools.env (HELM=..., HELM_UNITTEST=...), which
# tools/pointsmesh/charttools.py reads. Called by tools/setup.sh; safe to run again (a second
# run only checks the cache). Usage: tools/install-chart-tools.sh [VENV]   (default .venv)
# It serialises itself on its own lock, $TOOLS_CACHE/.install.lock.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${1:-${VENV:-.venv}}
case "$VENV" in /*) ;; *) VENV="$ROOT/$VENV" ;; esac

say() { printf '[setup] %s\n' "$*"; }
die() { say "ERROR: $*" >&2; exit 1; }

# Pinned here (helm is pinned in ci/kind-airgap/helm.sh).
HELM_UNITTEST_VERSION=v1.1.2
HELM_UNITTEST_MODULE=github.com/helm-unittest/helm-unittest
ACTIONLINT_VERSION=v1.7.12
# The only Go toolchain newer than the machine's that may be fetched (as a module from the
# proxy), used only if helm-unittest's go.mod asks for a newer Go than the local one.
NEWER_GOTOOLCHAIN=${CHART_TOOLS_GOTOOLCHAIN:-go1.27.3}

export PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null || die "Go is needed to build helm and helm-unittest (expected in /usr/local/go/bin)"

# Not root and the shared cache not writable: keep both caches in the user's home instead.
if [ -z "${KIND_AIRGAP_CACHE:-}" ] \
    && ! { mkdir -p /var/cache/points-mesh 2>/dev/null && [ -w /var/cache/points-mesh ]; }; then
    export KIND_AIRGAP_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/points-mesh/kind-airgap"
    : "${POINTS_MESH_TOOLS_CACHE:=${XDG_CACHE_HOME:-$HOME/.cache}/points-mesh/tools}"
fi
TOOLS_CACHE=${POINTS_MESH_TOOLS_CACHE:-/var/cache/points-mesh/tools}

# shellcheck source=../ci/kind-airgap/lib.sh
. "$ROOT/ci/kind-airgap/lib.sh"   # KA_CACHE, KA_DIR, ka_log, ka_nice, ka_short_hash
mkdir -p "$KA_CACHE/bin" "$KA_CACHE/work" "$TOOLS_CACHE/bin" "$TOOLS_CACHE/work"

# Define one function of build-node-image.sh from its text, without running that script (it
# takes the build lock at once). Its text is part of helm-unittest's cache key, so it is taken
# as is.
import_fn() {
    local name=$1 text
    text=$(sed -n "/^$name() {/,/^}/p" "$KA_DIR/build-node-image.sh")
    [ -n "$text" ] || die "no function $name() in ci/kind-airgap/build-node-image.sh"
    eval "$text"
    declare -F "$name" >/dev/null || die "could not define $name from build-node-image.sh"
}
import_fn ka_bin_stage

exec 8>"$TOOLS_CACHE/.install.lock"
flock -w 3600 8 || die "another install holds $TOOLS_CACHE/.install.lock"

# ---------------------------------------------------------------- helm
STAGE_TIMES=()
HELM_VERSION=$("$KA_DIR/helm.sh" version)
HELM_BIN=$("$KA_DIR/helm.sh" path) || die "helm $HELM_VERSION could not be built"

# ---------------------------------------------------------------- helm-unittest
# Module directory, go.mod and Go version of helm-unittest, through the module proxy.
json_field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
untt_gomod=$(cd "$TOOLS_CACHE/work" \
    && go mod download -json "$HELM_UNITTEST_MODULE@$HELM_UNITTEST_VERSION" | json_field GoMod)
untt_go=$(go mod edit -json "$untt_gomod" | json_field Go)
local_go=$(go env GOVERSION); local_go=${local_go#go}
untt_toolchain=local
if [ "$(printf '%s\n%s\n' "$untt_go" "$local_go" | sort -V | tail -1)" != "$local_go" ]; then
    untt_toolchain=$NEWER_GOTOOLCHAIN
    say "helm-unittest needs go $untt_go (local: $local_go): building with GOTOOLCHAIN=$untt_toolchain"
fi
# Every replace directive of its go.mod, as -replace=old[@v]=new[@v] arguments.
replaces=$(go mod edit -json "$untt_gomod" | python3 -c '
import json, sys

def at(m):
    return m["Path"] + ("@" + m["Version"] if m.get("Version") else "")

for r in json.load(sys.stdin).get("Replace") or []:
    if r["New"]["Path"].startswith((".", "/")):
        sys.exit("local replace " + r["New"]["Path"] + " cannot be built outside its repository")
    print("-replace=" + at(r["Old"]) + "=" + at(r["New"]))
') || die "cannot read the replace directives of $untt_gomod"
untt_replaces=()
[ -n "$replaces" ] && mapfile -t untt_replaces <<<"$replaces"

go_helm_unittest() { # helm-unittest via a shim module with the replaces of its go.mod
    local out=$1 work="$TOOLS_CACHE/work/helm-unittest-shim"
    rm -rf "$work" && mkdir -p "$work"
    printf 'module pointsmesh.local/helmunittestshim\n\ngo %s\n' "$untt_go" > "$work/go.mod"
    (
        cd "$work"
        export GOTOOLCHAIN=$untt_toolchain
        go mod edit -require="$HELM_UNITTEST_MODULE@$HELM_UNITTEST_VERSION" "${untt_replaces[@]}"
        CGO_ENABLED=0 ka_nice go build -mod=mod -trimpath \
            -ldflags "-s -w -X $HELM_UNITTEST_MODULE/internal/build.version=${HELM_UNITTEST_VERSION#v}" \
            -o "$out/untt" "$HELM_UNITTEST_MODULE/cmd/helm-unittest"
    )
}
cd "$TOOLS_CACHE/work"
KA_CACHE="$TOOLS_CACHE" ka_bin_stage helm-unittest go_helm_unittest \
    "$HELM_UNITTEST_VERSION go$untt_go $untt_toolchain ${untt_replaces[*]}"
cd "$ROOT"
# shellcheck disable=SC2154  # set by ka_bin_stage
UNTT_BIN="$BIN_helm_unittest/untt"
"$UNTT_BIN" --help >/dev/null || die "$UNTT_BIN does not run"

# ---------------------------------------------------------------- actionlint
# Checks the GitHub workflows (.github/workflows: CI and the release), which cannot run here.
go_actionlint() {
    GOBIN="$1" CGO_ENABLED=0 ka_nice go install -trimpath -ldflags "-s -w" \
        "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
}
cd "$TOOLS_CACHE/work"
KA_CACHE="$TOOLS_CACHE" ka_bin_stage actionlint go_actionlint "$ACTIONLINT_VERSION"
cd "$ROOT"
# shellcheck disable=SC2154  # set by ka_bin_stage
ACTIONLINT_BIN="$BIN_actionlint/actionlint"
"$ACTIONLINT_BIN" -version >/dev/null || die "$ACTIONLINT_BIN does not run"

# ---------------------------------------------------------------- record
mkdir -p "$VENV"
cat > "$VENV/chart-tools.env.tmp" <<EOF
# Written by tools/install-chart-tools.sh; read by tools/pointsmesh/charttools.py.
HELM=$HELM_BIN
HELM_VERSION=$HELM_VERSION
HELM_UNITTEST=$UNTT_BIN
HELM_UNITTEST_VERSION=$HELM_UNITTEST_VERSION
ACTIONLINT=$ACTIONLINT_BIN
EOF
mv "$VENV/chart-tools.env.tmp" "$VENV/chart-tools.env"
say "chart tools: helm $HELM_VERSION, helm-unittest $HELM_UNITTEST_VERSION, actionlint $ACTIONLINT_VERSION ${STAGE_TIMES[*]:-(cached)}"

#!/usr/bin/env bash
# Install the chart tools that `make test` (tests/chart) needs, built from Go modules through
# the module proxy and cached outside the checkout, so they survive fresh clones:
#
#   helm           the very build ci/kind-airgap uses: same HELM_VERSION (versions.env), same
#                  recipe (go_helm and ka_bin_stage, read from build-node-image.sh), same cache
#                  directory $KA_CACHE/bin/helm-<key>. Whichever of `make setup` and the node
#                  image build comes first builds it; the other reuses it.
#   helm-unittest  "untt" (github.com/helm-unittest/helm-unittest/cmd/helm-unittest), built in a
#                  shim module carrying the replace directives of its go.mod (`go install
#                  module@version` refuses modules with replaces); cached in
#                  $TOOLS_CACHE/bin/helm-unittest-<key>.
#
# It writes the paths to VENV/chart-tools.env (HELM=..., HELM_UNITTEST=...), which
# tools/pointsmesh/charttools.py reads. Called by tools/setup.sh; safe to run again (a second
# run only checks the cache). Usage: tools/install-chart-tools.sh [VENV]   (default .venv)
#
# Locks: build-node-image.sh holds $KA_CACHE/.build.lock for its whole run (up to hours); this
# script never takes it. It serialises itself on its own lock, $TOOLS_CACHE/.install.lock.
# When a node image build holds .build.lock and helm is not built yet, that build is building
# (or about to build) the same helm: this script waits for its result instead of compiling it a
# second time. When it does build helm itself, it builds in a private staging directory and
# moves the finished directory into place, so it never shares a scratch directory with a
# node image build that might start meanwhile.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${1:-${VENV:-.venv}}
case "$VENV" in /*) ;; *) VENV="$ROOT/$VENV" ;; esac

say() { printf '[setup] %s\n' "$*"; }
die() { say "ERROR: $*" >&2; exit 1; }

# Pinned here (helm's version is pinned in ci/kind-airgap/versions.env).
HELM_UNITTEST_VERSION=v1.1.2
HELM_UNITTEST_MODULE=github.com/helm-unittest/helm-unittest
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
. "$ROOT/ci/kind-airgap/lib.sh"   # KA_CACHE, HELM_VERSION, ka_log, ka_nice, ka_short_hash
mkdir -p "$KA_CACHE/bin" "$KA_CACHE/work" "$TOOLS_CACHE/bin" "$TOOLS_CACHE/work"

# Define one function of build-node-image.sh from its text, without running that script (it
# takes the build lock at once). Its text is part of helm's cache key, so it is taken as is.
import_fn() {
    local name=$1 text
    text=$(sed -n "/^$name() {/,/^}/p" "$KA_DIR/build-node-image.sh")
    [ -n "$text" ] || die "no function $name() in ci/kind-airgap/build-node-image.sh"
    eval "$text"
    declare -F "$name" >/dev/null || die "could not define $name from build-node-image.sh"
}
import_fn ka_bin_stage
import_fn go_helm

exec 8>"$TOOLS_CACHE/.install.lock"
flock -w 3600 8 || die "another install holds $TOOLS_CACHE/.install.lock"

# Is build-node-image.sh running, i.e. is its lock file flock'ed by anyone? Read from
# /proc/locks (device major:minor:inode of the file), so the lock is never taken here.
build_lock_held() {
    local f="$KA_CACHE/.build.lock" dev id
    [ -e "$f" ] || return 1
    dev=$((16#$(stat -c %D "$f")))
    id=$(printf '%02x:%02x:%s' $(((dev >> 8) & 0xfff)) $(((dev & 0xff) | ((dev >> 12) & 0xfff00))) \
        "$(stat -c %i "$f")")
    awk -v id="$id" '$2 == "FLOCK" && $6 == id { found = 1 } END { exit !found }' /proc/locks
}

# ---------------------------------------------------------------- helm
STAGE_TIMES=()
# The key exactly as ka_bin_stage computes it (checked against its result below).
helm_key=$({ declare -f go_helm; printf '%s\n' "$HELM_VERSION"; go version; } | ka_short_hash)
helm_dir="$KA_CACHE/bin/helm-$helm_key"
if [ ! -f "$helm_dir/.done" ] && build_lock_held; then
    say "a node image build is running (it holds $KA_CACHE/.build.lock): waiting for its helm"
    waited=0
    while [ ! -f "$helm_dir/.done" ] && build_lock_held && [ "$waited" -lt 1800 ]; do
        sleep 5; waited=$((waited + 5))
    done
fi
if [ ! -f "$helm_dir/.done" ]; then
    stage="$KA_CACHE/work/setup-helm.$$"
    rm -rf "$stage" && mkdir -p "$stage"
    # shellcheck disable=SC2064
    trap "rm -rf '$stage'" EXIT
    say "building helm $HELM_VERSION into $helm_dir (a cold build takes minutes)"
    cd "$KA_CACHE/work"
    KA_CACHE="$stage" ka_bin_stage helm go_helm "$HELM_VERSION"
    cd "$ROOT"
    # shellcheck disable=SC2154  # set by ka_bin_stage
    [ "$BIN_helm" = "$stage/bin/helm-$helm_key" ] \
        || die "ka_bin_stage keyed helm as $BIN_helm, not helm-$helm_key: update this script"
    # A node image build that finished meanwhile has already put the same build in place.
    if [ ! -f "$helm_dir/.done" ]; then
        rm -rf "$helm_dir"
        mv -T "$BIN_helm" "$helm_dir" || [ -f "$helm_dir/.done" ] || die "could not move helm to $helm_dir"
    fi
    rm -rf "$stage"
    trap - EXIT
fi
HELM_BIN="$helm_dir/helm"
"$HELM_BIN" version --short >/dev/null || die "$HELM_BIN does not run"

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

# ---------------------------------------------------------------- record
mkdir -p "$VENV"
cat > "$VENV/chart-tools.env.tmp" <<EOF
# Written by tools/install-chart-tools.sh; read by tools/pointsmesh/charttools.py.
HELM=$HELM_BIN
HELM_VERSION=$HELM_VERSION
HELM_UNITTEST=$UNTT_BIN
HELM_UNITTEST_VERSION=$HELM_UNITTEST_VERSION
EOF
mv "$VENV/chart-tools.env.tmp" "$VENV/chart-tools.env"
say "chart tools: helm $HELM_VERSION, helm-unittest $HELM_UNITTEST_VERSION ${STAGE_TIMES[*]:-(cached)}"

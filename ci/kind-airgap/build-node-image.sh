#!/usr/bin/env bash
# Build a kind node image without any container registry, from Go modules (module proxy)
# and Debian packages (Debian's archive). Cached: a second run with the same recipe is quick.
#
#   build-node-image.sh            build what is missing, print the node image name
#   build-node-image.sh binaries   only the Go stage (kind, Kubernetes, etcd, CoreDNS, pause,
#                                  kube-router, local-path-provisioner)
#   build-node-image.sh env        print KIND=, HELM=, KUBECTL=, NODE_IMAGE= for the cached build
#                                  (builds what is missing first; helm comes from helm.sh, which
#                                  is not part of this recipe)
#   build-node-image.sh images     also list the images preloaded into the node
#   build-node-image.sh prune      delete cached images and Go outputs the current recipe does not use
#
# Layout of the result (see README.md):
#   Go binaries          $KA_CACHE/bin/<component>-<key>/
#   docker images        points-mesh/kind-debian:<key>              debootstrap --variant=minbase
#                        points-mesh/kind-base:<key>                + kind's base files + node packages
#                        points-mesh/kind-<component>:<key>         control-plane images (scratch/debian)
#                        points-mesh/kind-kube-router:<key>         add-on images (debian, addons/)
#                        points-mesh/kind-local-path:<key>
#                        points-mesh/kind-node:<k8s>-<recipe hash>  final node image, images preloaded
#   (<key>: hash of the stage's recipe and inputs; the kubeadm names are given only inside the node)
# shellcheck disable=SC2154  # BIN_<name>, IMG_<name>: assigned by name (printf -v), see ka_*_stage
set -euo pipefail
# shellcheck source=lib.sh
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

mkdir -p "$KA_CACHE/bin" "$KA_CACHE/work"
# One build at a time per cache (two `cluster.sh up` at once share the work directory).
exec 9>"$KA_CACHE/.build.lock"
flock -w 7200 9 || ka_die "another build holds $KA_CACHE/.build.lock"
STAGE_TIMES=()

# ---------------------------------------------------------------- stage runner (Go outputs)
# ka_bin_stage NAME FUNCTION VERSION_STRING: run FUNCTION OUTDIR unless a finished output
# with the same key exists. The key hashes the function's own text, the versions it uses
# and the local Go version, so editing a recipe rebuilds only that component.
# Sets BIN_<NAME> to the output directory.
ka_bin_stage() {
    local name=$1 fn=$2 versions=$3 key dir t0
    key=$({ declare -f "$fn"; printf '%s\n' "$versions"; go version; } | ka_short_hash)
    dir="$KA_CACHE/bin/$name-$key"
    if [ ! -f "$dir/.done" ]; then
        ka_log "building $name ($versions) -> $dir"
        t0=$(date +%s)
        rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
        "$fn" "$dir.tmp"
        touch "$dir.tmp/.done"
        rm -rf "$dir" && mv "$dir.tmp" "$dir"
        STAGE_TIMES+=("$name=$(( $(date +%s) - t0 ))s")
    fi
    printf -v "BIN_${name//-/_}" '%s' "$dir"
}

# Module directory / go.mod / info of MODULE@VERSION, fetched through the module proxy.
mod_json() { (cd "$KA_CACHE/work" && go mod download -json "$1"); }

go_kind() { # kind CLI: plain go install (its go.mod has no replace directives)
    GOBIN="$1" CGO_ENABLED=0 ka_nice go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kind@$KIND_VERSION"
}

go_pause() { # our own pause program (pause/)
    (cd "$KA_DIR/pause" && CGO_ENABLED=0 GOTOOLCHAIN=local ka_nice go build -trimpath -ldflags "-s -w" -o "$1/pause" .)
}

go_coredns() { # CoreDNS: the module root is the main package, no replace directives
    GOBIN="$1" CGO_ENABLED=0 ka_nice go install -trimpath \
        -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" \
        "github.com/coredns/coredns@$COREDNS_VERSION"
}

go_etcd() { # etcd server: its go.mod replaces sibling modules with ../dirs, so build via a shim module
    local work="$KA_CACHE/work/etcd-shim"
    rm -rf "$work" && mkdir -p "$work"
    printf 'module pointsmesh.local/etcdshim\n\ngo 1.24\n' > "$work/go.mod"
    (
        cd "$work"
        go mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION"
        CGO_ENABLED=0 ka_nice go build -mod=mod -trimpath -ldflags "-s -w" -o "$1/etcd" go.etcd.io/etcd/server/v3
    )
    "$1/etcd" --version | head -1 >&2
}

go_k8s() { # Kubernetes: shim module with one replace per staging module, derived from the proxied go.mod
    local out=$1 work="$KA_CACHE/work/k8s-shim" info gomod dir tc minor stagingv m ver ldf
    info=$(mod_json "k8s.io/kubernetes@$K8S_VERSION")
    gomod=$(jq -r .GoMod <<<"$info")
    dir=$(jq -r .Dir <<<"$info")
    tc=${K8S_GO_TOOLCHAIN:-go$(cat "$dir/.go-version")}
    minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
    stagingv="v0.${K8S_VERSION#v1.}"
    rm -rf "$work" && mkdir -p "$work"
    {
        echo "module pointsmesh.local/k8sshim"
        echo
        go mod edit -json "$gomod" | jq -r '"go \(.Go)", (.Godebug // [] | .[] | "godebug \(.Key)=\(.Value)")'
    } > "$work/go.mod"
    (
        cd "$work"
        export GOTOOLCHAIN=$tc
        local n=0
        for m in $(go mod edit -json "$gomod" | jq -r '.Replace // [] | .[] | select(.New.Path | startswith("./staging/")) | .Old.Path'); do
            go mod edit -replace="$m=$m@$stagingv"
            n=$((n + 1))
        done
        [ "$n" -gt 20 ] || ka_die "found only $n staging replaces in k8s.io/kubernetes go.mod"
        ka_log "k8s shim: $n staging modules at $stagingv, toolchain $tc"
        go mod edit -require="k8s.io/kubernetes@$K8S_VERSION"
        # Version ldflags exactly as hack/lib/version.sh sets them (both packages, same keys).
        ver=(gitVersion="$K8S_VERSION" gitMajor=1 gitMinor="$minor" gitTreeState=clean
             buildDate="$(cd "$KA_CACHE/work" && go list -m -json "k8s.io/kubernetes@$K8S_VERSION" | jq -r .Time)")
        ldf="-s -w"
        for kv in "${ver[@]}"; do
            ldf+=" -X 'k8s.io/client-go/pkg/version.$kv' -X 'k8s.io/component-base/version.$kv'"
        done
        CGO_ENABLED=0 ka_nice go build -mod=mod -trimpath -tags selinux,notest,grpcnotrace -ldflags "$ldf" -o "$out/" \
            k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kubeadm k8s.io/kubernetes/cmd/kubectl \
            k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
            k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kube-proxy
    )
    "$out/kubeadm" version -o short >&2
}

# Add-ons (addons/, started by cluster.sh). kube-router v2.1.0 is flagged for reported
# security flaws: it only ever runs inside this throwaway CI cluster and is never shipped.
go_kube_router() { # kube-router (NetworkPolicy enforcement), version ldflags of its Makefile
    local v=github.com/cloudnativelabs/kube-router/v2/pkg/version
    GOBIN="$1" CGO_ENABLED=0 ka_nice go install -trimpath -ldflags "-s -w -X $v.Version=$KUBE_ROUTER_VERSION" \
        "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$KUBE_ROUTER_VERSION"
}

go_local_path() { # rancher local-path-provisioner: module root is the main package, no replaces
    GOBIN="$1" CGO_ENABLED=0 ka_nice go install -trimpath -ldflags "-s -w -X main.VERSION=$LOCAL_PATH_VERSION" \
        "github.com/rancher/local-path-provisioner@$LOCAL_PATH_VERSION"
}

build_binaries() {
    ka_bin_stage pause go_pause "$(cd "$KA_DIR/pause" && cat go.mod main.go | sha256sum)"
    ka_bin_stage kind go_kind "$KIND_VERSION"
    ka_bin_stage coredns go_coredns "$COREDNS_VERSION"
    ka_bin_stage etcd go_etcd "$ETCD_VERSION"
    ka_bin_stage k8s go_k8s "$K8S_VERSION $K8S_GO_TOOLCHAIN"
    ka_bin_stage kube-router go_kube_router "$KUBE_ROUTER_VERSION"
    ka_bin_stage local-path go_local_path "$LOCAL_PATH_VERSION"
}

# ---------------------------------------------------------------- image stages
# ka_img_stage NAME FUNCTION INPUTS: docker image $KA_IMAGE_REPO/kind-NAME:<key>, built by
# FUNCTION REF unless it exists. The key hashes the function text and its inputs (which name
# the keyed Go outputs and parent images), so any change upstream changes every tag below it.
# Sets IMG_<NAME>.
ka_img_stage() {
    local name=$1 fn=$2 inputs=$3 key ref t0
    key=$({ declare -f "$fn"; printf '%s\n' "$inputs"; } | ka_short_hash)
    ref="$KA_IMAGE_REPO/kind-$name:$key"
    if ! ka_image_exists "$ref"; then
        ka_log "building image $ref"
        t0=$(date +%s)
        "$fn" "$ref"
        ka_image_exists "$ref" || ka_die "$fn did not produce $ref"
        STAGE_TIMES+=("img-$name=$(( $(date +%s) - t0 ))s")
    fi
    printf -v "IMG_${name//-/_}" '%s' "$ref"
}

img_debian() { # debootstrap --variant=minbase, imported as a base image (no registry involved)
    local ref=$1 root="$KA_CACHE/rootfs/debian-$DEBIAN_SUITE.$$"
    command -v debootstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
    rm -rf "$root" && mkdir -p "$root"
    ka_nice debootstrap --variant=minbase "$DEBIAN_SUITE" "$root" "$DEBIAN_MIRROR" >"$KA_CACHE/work/debootstrap.log" 2>&1 \
        || { tail -20 "$KA_CACHE/work/debootstrap.log" >&2; ka_die "debootstrap failed"; }
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar --numeric-owner -C "$root" -c . | docker import \
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' -c 'CMD ["/bin/bash"]' - "$ref" >/dev/null
    rm -rf "$root"
}

img_base() { # kind's base files + node packages (node/base.Dockerfile)
    local ref=$1 ctx="$KA_CACHE/work/base-ctx" kinddir
    kinddir=$(mod_json "sigs.k8s.io/kind@$KIND_VERSION" | jq -r .Dir)
    rm -rf "$ctx" && mkdir -p "$ctx"
    cp -r "$kinddir/images/base/files" "$ctx/kind"
    cp -r "$KA_DIR/node" "$ctx/node"
    chmod -R u+w "$ctx"
    ka_nice docker build -q --force-rm --build-arg "DEBIAN_IMAGE=$IMG_debian" --build-arg "PAUSE_TAG=$PAUSE_TAG" \
        -f "$ctx/node/base.Dockerfile" -t "$ref" "$ctx" >/dev/null
    rm -rf "$ctx"
}

# A "scratch" image holding one static binary: PATH, passwd/group, /tmp. $1 ref, $2 binary,
# $3 path in the image, $4 optional ENTRYPOINT (JSON).
import_static() {
    local ref=$1 bin=$2 dest=$3 entry=${4:-} root
    root=$(mktemp -d "$KA_CACHE/work/static.XXXXXX")
    install -D -m 0755 "$bin" "$root$dest"
    mkdir -p "$root/etc" && install -d -m 1777 "$root/tmp"
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' > "$root/etc/passwd"
    printf 'root:x:0:\nnobody:x:65534:\n' > "$root/etc/group"
    local changes=(-c 'ENV PATH=/usr/local/bin:/usr/bin:/bin')
    [ -n "$entry" ] && changes+=(-c "ENTRYPOINT $entry")
    tar --numeric-owner --owner=0 --group=0 -C "$root" -c . | docker import "${changes[@]}" - "$ref" >/dev/null
    rm -rf "$root"
}
img_kube_apiserver() { import_static "$1" "$BIN_k8s/kube-apiserver" /usr/local/bin/kube-apiserver; }
img_kube_controller_manager() { import_static "$1" "$BIN_k8s/kube-controller-manager" /usr/local/bin/kube-controller-manager; }
img_kube_scheduler() { import_static "$1" "$BIN_k8s/kube-scheduler" /usr/local/bin/kube-scheduler; }
img_etcd() { import_static "$1" "$BIN_etcd/etcd" /usr/local/bin/etcd; }
img_coredns() { import_static "$1" "$BIN_coredns/coredns" /coredns '["/coredns"]'; }
img_pause() { import_static "$1" "$BIN_pause/pause" /pause '["/pause"]'; }
img_kube_proxy() {
    local ctx
    ctx=$(mktemp -d "$KA_CACHE/work/proxy-ctx.XXXXXX")
    cp "$BIN_k8s/kube-proxy" "$KA_DIR/node/kube-proxy.Dockerfile" "$ctx/"
    ka_nice docker build -q --force-rm --build-arg "DEBIAN_IMAGE=$IMG_debian" -f "$ctx/kube-proxy.Dockerfile" -t "$1" "$ctx" >/dev/null
    rm -rf "$ctx"
}

# Add-on images: the Debian base + apt packages (addons/*.Dockerfile) + the binary.
img_addon() { # $1 ref, $2 Dockerfile in addons/, $3 binary
    local ctx
    ctx=$(mktemp -d "$KA_CACHE/work/addon-ctx.XXXXXX")
    cp "$3" "$KA_DIR/addons/$2" "$ctx/"
    ka_nice docker build -q --force-rm --build-arg "DEBIAN_IMAGE=$IMG_debian" -f "$ctx/$2" -t "$1" "$ctx" >/dev/null
    rm -rf "$ctx"
}
img_kube_router() { img_addon "$1" kube-router.Dockerfile "$BIN_kube_router/kube-router"; }
img_local_path() { img_addon "$1" local-path.Dockerfile "$BIN_local_path/local-path-provisioner"; }

# Names the add-on manifests (addons/*.yaml) use for the preloaded images (imagePullPolicy: Never).
ADDON_IMAGES=("pointsmesh.local/kube-router:$KUBE_ROUTER_VERSION" "pointsmesh.local/local-path-provisioner:$LOCAL_PATH_VERSION")

# The images kubeadm will look for, mapped to our builds; fails on anything unknown, so a
# version bump that changes kubeadm's list cannot silently produce a node that pulls.
PRELOAD=()   # "registry-name=local-ref"
plan_preload() {
    local want name repo tag
    want=$("$BIN_k8s/kubeadm" config images list --kubernetes-version "$K8S_VERSION" 2>/dev/null)
    [ -n "$want" ] || ka_die "kubeadm config images list printed nothing"
    PRELOAD=()
    for name in $want; do
        repo=${name%:*}; tag=${name##*:}
        case "${repo##*/}:$tag" in
            kube-apiserver:"$K8S_VERSION") PRELOAD+=("$name=$IMG_kube_apiserver") ;;
            kube-controller-manager:"$K8S_VERSION") PRELOAD+=("$name=$IMG_kube_controller_manager") ;;
            kube-scheduler:"$K8S_VERSION") PRELOAD+=("$name=$IMG_kube_scheduler") ;;
            kube-proxy:"$K8S_VERSION") PRELOAD+=("$name=$IMG_kube_proxy") ;;
            etcd:"${ETCD_VERSION#v}-"*) PRELOAD+=("$name=$IMG_etcd") ;;
            coredns:"$COREDNS_VERSION") PRELOAD+=("$name=$IMG_coredns") ;;
            pause:"$PAUSE_TAG") PRELOAD+=("$name=$IMG_pause") ;;
            *) ka_die "kubeadm wants $name, which versions.env does not build (fix ETCD_VERSION/COREDNS_VERSION/PAUSE_TAG)" ;;
        esac
    done
    PRELOAD+=("${ADDON_IMAGES[0]}=$IMG_kube_router" "${ADDON_IMAGES[1]}=$IMG_local_path")
    for name in "${ADDON_IMAGES[@]}"; do   # a version bump must not leave a manifest naming the old tag
        cat "$KA_DIR"/addons/*.yaml | grep -q "image: $name\$" || ka_die "no manifest in addons/ uses $name"
    done
}

build_node() { # kind's node-image recipe: base + kubelet/kubeadm/kubectl + preloaded images, docker commit
    local ref=$1 cid tar="$KA_CACHE/work/preload.tar" p names=()
    cid=$(docker run -d --privileged --security-opt seccomp=unconfined --entrypoint sleep "$IMG_base" infinity)
    # shellcheck disable=SC2064
    trap "docker rm -f $cid >/dev/null 2>&1 || true; rm -f '$tar'" EXIT
    for b in kubeadm kubelet kubectl; do docker cp "$BIN_k8s/$b" "$cid:/usr/bin/$b"; done
    docker exec "$cid" sh -c "chown root:root /usr/bin/kube* && chmod 0755 /usr/bin/kube* && mkdir -p /kind/manifests && echo $K8S_VERSION > /kind/version"
    # As in kind's own node images: `kind create cluster` applies /kind/manifests/default-storage.yaml
    # instead of its host-path StorageClass. cluster.sh applies kube-router.yaml after creation.
    docker cp "$KA_DIR/addons/local-path-storage.yaml" "$cid:/kind/manifests/default-storage.yaml"
    docker cp "$KA_DIR/addons/kube-router.yaml" "$cid:/kind/manifests/kube-router.yaml"
    docker exec "$cid" sh -c "chown root:root /kind/manifests/* && chmod 0644 /kind/manifests/*"
    for p in "${PRELOAD[@]}"; do docker tag "${p#*=}" "${p%%=*}"; names+=("${p%%=*}"); done
    docker save -o "$tar" "${names[@]}"
    docker rmi "${names[@]}" >/dev/null   # untag only: the local refs keep the layers
    docker cp "$tar" "$cid:/preload.tar"
    rm -f "$tar"
    docker exec "$cid" bash -euc '
        containerd >/var/log/containerd-build.log 2>&1 &
        for _ in $(seq 1 30); do ctr version >/dev/null 2>&1 && break; sleep 1; done
        ctr -n k8s.io images import --all-platforms --no-unpack /preload.tar
        rm -f /preload.tar
        ctr -n k8s.io images ls -q
        kill %1; wait || true
        rm -f /var/log/containerd-build.log' >"$KA_CACHE/work/preload.log" 2>&1 \
        || { cat "$KA_CACHE/work/preload.log" >&2; ka_die "preload into containerd failed"; }
    for p in "${names[@]}"; do
        grep -qx "$p" "$KA_CACHE/work/preload.log" || ka_die "image $p missing after import (see $KA_CACHE/work/preload.log)"
    done
    docker commit -c 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' \
        -c "LABEL io.points-mesh.kind-airgap.recipe=$(ka_recipe_hash) io.points-mesh.kind-airgap.k8s=$K8S_VERSION" \
        "$cid" "$ref" >/dev/null
    docker rm -f "$cid" >/dev/null
    trap - EXIT
}

build_all() {
    build_binaries
    ka_img_stage debian img_debian "$DEBIAN_SUITE $DEBIAN_MIRROR"
    ka_img_stage base img_base "$IMG_debian $KIND_VERSION $PAUSE_TAG $(cd "$KA_DIR/node" && cat base.Dockerfile customize.sh | sha256sum)"
    ka_img_stage kube-apiserver img_kube_apiserver "$BIN_k8s"
    ka_img_stage kube-controller-manager img_kube_controller_manager "$BIN_k8s"
    ka_img_stage kube-scheduler img_kube_scheduler "$BIN_k8s"
    ka_img_stage kube-proxy img_kube_proxy "$BIN_k8s $IMG_debian $(sha256sum <"$KA_DIR/node/kube-proxy.Dockerfile")"
    ka_img_stage etcd img_etcd "$BIN_etcd"
    ka_img_stage coredns img_coredns "$BIN_coredns"
    ka_img_stage pause img_pause "$BIN_pause"
    ka_img_stage kube-router img_kube_router "$BIN_kube_router $IMG_debian $(sha256sum <"$KA_DIR/addons/kube-router.Dockerfile")"
    ka_img_stage local-path img_local_path "$BIN_local_path $IMG_debian $(sha256sum <"$KA_DIR/addons/local-path.Dockerfile")"
    NODE_IMAGE=$(ka_node_image)
    if ! ka_image_exists "$NODE_IMAGE"; then
        plan_preload
        ka_log "building node image $NODE_IMAGE (${#PRELOAD[@]} preloaded images)"
        local t0; t0=$(date +%s)
        build_node "$NODE_IMAGE"
        STAGE_TIMES+=("img-node=$(( $(date +%s) - t0 ))s")
        # Node images of older recipes are ~0.7 GB each and never used again: drop them
        # (one in use by a cluster stays; `prune` also drops older intermediate images).
        docker images --format '{{.Repository}}:{{.Tag}}' "$KA_IMAGE_REPO/kind-node" | grep -vx "$NODE_IMAGE" \
            | xargs -r docker rmi >/dev/null 2>&1 || true
    fi
    local helm
    helm=$("$KA_DIR/helm.sh" path) || ka_die "helm build failed"
    cat >"$KA_CACHE/env" <<EOF
KIND=$BIN_kind/kind
HELM=$helm
KUBECTL=$BIN_k8s/kubectl
NODE_IMAGE=$NODE_IMAGE
K8S_VERSION=$K8S_VERSION
EOF
}

# ---------------------------------------------------------------- main
cmd=${1:-build}
case "$cmd" in
    binaries)
        t0=$(date +%s)
        build_binaries
        ka_log "binaries ready in $(( $(date +%s) - t0 ))s ${STAGE_TIMES[*]:-}"
        ;;
    build|env)
        t0=$(date +%s)
        build_all
        took=$(( $(date +%s) - t0 ))
        if [ "$cmd" = env ]; then cat "$KA_CACHE/env"; else echo "$NODE_IMAGE"; fi
        ka_log "node image ready in ${took}s ${STAGE_TIMES[*]:-(all cached)}"
        ;;
    images)
        build_all >/dev/null
        plan_preload
        printf '%s\n' "${PRELOAD[@]}"
        ;;
    prune)
        build_all >/dev/null
        keep=" $IMG_debian $IMG_base $IMG_kube_apiserver $IMG_kube_controller_manager $IMG_kube_scheduler"
        keep+=" $IMG_kube_proxy $IMG_etcd $IMG_coredns $IMG_pause $IMG_kube_router $IMG_local_path $NODE_IMAGE "
        for ref in $(docker images --format '{{.Repository}}:{{.Tag}}' | grep -E "^$KA_IMAGE_REPO/kind-" | grep -v -- '-smoke:'); do
            case "$keep" in *" $ref "*) ;; *) ka_log "removing $ref"; docker rmi "$ref" >/dev/null || true ;; esac
        done
        for d in "$KA_CACHE"/bin/*; do
            case " $BIN_pause $BIN_kind $BIN_coredns $BIN_etcd $BIN_k8s $BIN_kube_router $BIN_local_path $(dirname "$("$KA_DIR/helm.sh" path)") " in
                *" $d "*) ;; *) ka_log "removing $d"; rm -rf "$d" ;;
            esac
        done
        rm -rf "$KA_CACHE/work"
        ;;
    *) ka_die "unknown command: $cmd (build | binaries | env | images | prune)" ;;
esac

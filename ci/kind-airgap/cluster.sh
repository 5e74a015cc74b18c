#!/usr/bin/env bash
# A real Kubernetes cluster (kind: one control plane and KIND_AIRGAP_WORKERS workers) built
# without any container registry.
#
#   cluster.sh up          build the node image if not cached, create the cluster (or reuse a
#                          healthy one of the same shape), install the pod network (kube-router:
#                          routes between nodes and enforces NetworkPolicies), wait for every
#                          node Ready, CoreDNS answering and local-path-provisioner behind the
#                          default StorageClass, and write the kubeconfig (merged into
#                          ~/.kube/config or $KUBECONFIG, and a dedicated copy: see `cluster.sh env`)
#   cluster.sh down        delete the cluster (the cached images stay)
#   cluster.sh status      exit 0 if the cluster is up and healthy
#   cluster.sh env         print KIND=, KUBECTL=, HELM=, KUBECONFIG=, CLUSTER=, NODE_IMAGE=
#   cluster.sh load IMAGE...   kind load docker-image into the cluster
#
# Environment: KIND_AIRGAP_CLUSTER (cluster name, default points-mesh), KIND_AIRGAP_CACHE,
# KIND_AIRGAP_READY_TIMEOUT (seconds, default 300), KIND_AIRGAP_WORKERS (worker nodes, default
# 2; 0 = one node that runs everything, for small machines).
set -euo pipefail
# shellcheck source=lib.sh
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

READY_TIMEOUT=${KIND_AIRGAP_READY_TIMEOUT:-300}
WORKERS=${KIND_AIRGAP_WORKERS:-2}
case "$WORKERS" in ''|*[!0-9]*) ka_die "KIND_AIRGAP_WORKERS must be a number of worker nodes, got '$WORKERS'" ;; esac
KUBECONFIG_FILE="$KA_CACHE/kubeconfig-$KA_CLUSTER"
NODE="$KA_CLUSTER-control-plane"

ensure_docker() {
    docker info >/dev/null 2>&1 && return 0
    local starter="$KA_DIR/../docker/start-dockerd.sh"
    [ -x "$starter" ] || ka_die "no Docker engine answers and $starter is missing"
    "$starter"
}

# kind bind-mounts the host's /lib/modules into the node (read-only); docker refuses a missing
# source, and some CI kernels (all drivers built in) have no /lib/modules at all.
ensure_host_prereqs() {
    if [ ! -d /lib/modules ]; then
        [ "$(id -u)" -eq 0 ] || ka_die "/lib/modules is missing (kind mounts it): create it as root"
        ka_log "creating an empty /lib/modules (kind mounts it; this kernel has no modules)"
        mkdir -p /lib/modules
    fi
    # Every node runs systemd, containerd and a kubelet on the host's kernel, and all of them
    # count against root's inotify limits; the defaults (128 instances) run out at about three
    # nodes ("too many open files" from kubelet). The values kind's known-issues page gives.
    local key want have
    for key in fs.inotify.max_user_instances=512 fs.inotify.max_user_watches=524288; do
        want=${key#*=} have=$(sysctl -n "${key%=*}" 2>/dev/null || echo 0)
        if [ "$have" -lt "$want" ]; then
            [ "$(id -u)" -eq 0 ] || ka_die "${key%=*} is $have; raise it to $want (as root) for a multi-node cluster"
            ka_log "raising ${key%=*} from $have to $want (several kind nodes share the host's inotify limits)"
            sysctl -qw "$key" >/dev/null
        fi
    done
}

# The docker network kind puts its nodes on. `kind create cluster` reuses a network of this name
# and otherwise makes one with a user-configured IPv6 subnet only, its IPv4 subnet left to
# Docker; on such a network `docker network connect --ip` is refused ("user specified IP
# address is supported only when connecting to networks with user configured subnets"), so a
# node cut from it could never come back with the address the API server knows. Made here, with
# both subnets explicit and kind's own options, and labelled so a later run recognises it.
KIND_NET=kind
KIND_NET_LABEL=io.points-mesh.kind-airgap.subnets=explicit
KIND_NET_V6=${KIND_AIRGAP_SUBNET6:-fc00:f853:ccd:e793::/64}

# A free /16 for the nodes: KIND_AIRGAP_SUBNET4 if set, else the first of 172.20-31.0.0/16 that
# no docker network and no route of this host uses.
pick_subnet4() {
    if [ -n "${KIND_AIRGAP_SUBNET4:-}" ]; then printf '%s' "$KIND_AIRGAP_SUBNET4"; return 0; fi
    local used n
    used=$( { docker network ls -q | xargs -r docker network inspect \
                  -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}' 2>/dev/null || true
              ip -4 route show 2>/dev/null | awk '{print $1}' || true; } | tr ' ' '\n')
    for n in $(seq 20 31); do
        grep -q "^172\.$n\." <<<"$used" || { printf '172.%s.0.0/16' "$n"; return 0; }
    done
    ka_die "no free subnet among 172.20-31.0.0/16 for the kind network: set KIND_AIRGAP_SUBNET4"
}

kind_network_explicit() {
    [ "$(docker network inspect -f '{{index .Labels "io.points-mesh.kind-airgap.subnets"}}' "$KIND_NET" 2>/dev/null)" = explicit ]
}

ensure_kind_network() {
    local attached subnet4 gw
    if docker network inspect "$KIND_NET" >/dev/null 2>&1; then
        kind_network_explicit && return 0
        attached=$(docker network inspect -f '{{len .Containers}}' "$KIND_NET")
        if [ "$attached" -gt 0 ]; then
            ka_log "WARNING: docker network $KIND_NET was made by someone else and has $attached container(s):" \
                "kept; node faults (docker network connect --ip) may be refused on it"
            return 0
        fi
        ka_log "docker network $KIND_NET has no explicit IPv4 subnet (made by kind or by hand) and nothing on it: recreating it"
        docker network rm "$KIND_NET" >/dev/null
    fi
    subnet4=$(pick_subnet4)
    gw="${subnet4%.0/*}.1"
    ka_log "creating docker network $KIND_NET: $subnet4 (gateway $gw) and $KIND_NET_V6, as kind would but with both subnets explicit"
    docker network create -d bridge --ipv6 --subnet "$KIND_NET_V6" --subnet "$subnet4" --gateway "$gw" \
        -o com.docker.network.bridge.enable_ip_masquerade=true \
        -o com.docker.network.driver.mtu=1500 --label "$KIND_NET_LABEL" "$KIND_NET" >/dev/null \
        || ka_die "could not create docker network $KIND_NET ($subnet4, $KIND_NET_V6)"
}

# Loads KIND, KUBECTL, HELM, NODE_IMAGE from the (cached) build.
load_env() {
    local out
    out=$("$KA_DIR/build-node-image.sh" env) || ka_die "node image build failed"
    eval "$(grep -E '^(KIND|HELM|KUBECTL|NODE_IMAGE|K8S_VERSION)=' <<<"$out")"
}

# Env without building (for `down`): the last build's record, else whatever is on PATH.
load_env_cached() {
    if [ -f "$KA_CACHE/env" ]; then
        eval "$(grep -E '^(KIND|HELM|KUBECTL|NODE_IMAGE|K8S_VERSION)=' "$KA_CACHE/env")"
    fi
    KIND=${KIND:-$(command -v kind || true)}
    KUBECTL=${KUBECTL:-$(command -v kubectl || true)}
}

k() { "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

cluster_exists() { "$KIND" get clusters 2>/dev/null | grep -qx "$KA_CLUSTER"; }

# The node containers kind made for this cluster, one per line.
node_containers() { docker ps -a --filter "label=io.x-k8s.kind.cluster=$KA_CLUSTER" --format '{{.Names}}' | sort; }

# The cluster has the requested shape, and every node container runs the current image with
# this script's containerd and kubelet settings (registry hosts, max pods: the config below).
nodes_current() {
    local n names
    names=$(node_containers)
    [ "$(grep -c . <<<"$names")" -eq $(( WORKERS + 1 )) ] || return 1
    for n in $names; do
        [ "$(docker inspect -f '{{.State.Running}} {{.Config.Image}}' "$n" 2>/dev/null)" = "true $NODE_IMAGE" ] || return 1
        docker exec "$n" grep -q 'config_path = "/etc/containerd/certs.d"' /etc/containerd/config.toml || return 1
        docker exec "$n" grep -qx 'maxPods: 250' /var/lib/kubelet/config.yaml || return 1
    done
}

write_kubeconfig() {
    mkdir -p "$(dirname "$KUBECONFIG_FILE")"
    "$KIND" get kubeconfig --name "$KA_CLUSTER" >"$KUBECONFIG_FILE.tmp"
    mv "$KUBECONFIG_FILE.tmp" "$KUBECONFIG_FILE"
    chmod 600 "$KUBECONFIG_FILE"
    "$KIND" export kubeconfig --name "$KA_CLUSTER" >/dev/null 2>&1 || true   # merge into the default one
}

# One DNS query (A kubernetes.default.svc.cluster.local) to the kube-dns Service, sent from the
# node with bash's /dev/udp: proves CoreDNS answers through the Service VIP (kube-proxy) without
# any image or tool beyond the node's bash. Prints the answer count; fails on no answer.
# (printf alone would send two datagrams: stdio flushes at the 0x0a length byte.)
dns_probe() {
    local ip=$1
    docker exec "$NODE" timeout 5 bash -c '
        exec 3<>/dev/udp/'"$ip"'/53
        printf "\x4b\x41\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x0akubernetes\x07default\x03svc\x07cluster\x05local\x00\x00\x01\x00\x01" \
            | dd bs=512 count=1 iflag=fullblock 2>/dev/null >&3   # one write = one datagram
        reply=$(timeout 3 dd bs=512 count=1 <&3 2>/dev/null | od -An -tx1 -v | tr -s " \n" " ")
        set -- $reply
        [ "$1$2" = 4b41 ] || exit 1                       # our query id
        [ $(( 0x$4 & 0x0f )) -eq 0 ] || exit 2            # rcode NOERROR
        echo $(( 0x$7 * 256 + 0x$8 ))                     # ANCOUNT
    ' 2>/dev/null
}

# Exit 0 when exactly WORKERS + 1 nodes are registered and all of them are Ready.
all_nodes_ready() {
    local st
    st=$(k get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null) || return 1
    [ "$(grep -c . <<<"$st")" -eq $(( WORKERS + 1 )) ] && ! grep -qv '^True$' <<<"$st"
}

wait_ready() {
    local deadline=$(( $(date +%s) + READY_TIMEOUT )) ip n
    ka_log "waiting for $(( WORKERS + 1 )) node(s) Ready (they turn Ready once the pod network is installed)"
    until all_nodes_ready; do
        [ "$(date +%s)" -lt "$deadline" ] || { k get nodes -o wide >&2 || true
            k -n kube-system get pods -l k8s-app=kube-router -o wide >&2 || true
            k -n kube-system logs daemonset/kube-router --tail=30 >&2 || true
            ka_die "nodes not Ready after ${READY_TIMEOUT}s"; }
        sleep 2
    done
    ka_log "waiting for CoreDNS"
    until k -n kube-system rollout status deployment/coredns --timeout=10s >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || { k -n kube-system get pods -o wide >&2 || true; ka_die "CoreDNS not available after ${READY_TIMEOUT}s"; }
        sleep 2
    done
    ip=$(k -n kube-system get service kube-dns -o jsonpath='{.spec.clusterIP}')
    until n=$(dns_probe "$ip") && [ "${n:-0}" -ge 1 ]; do
        [ "$(date +%s)" -lt "$deadline" ] || ka_die "CoreDNS at $ip does not answer after ${READY_TIMEOUT}s"
        sleep 2
    done
    ka_log "CoreDNS at $ip answers (kubernetes.default.svc.cluster.local: $n record)"
}

# Add-ons (addons/, images preloaded in the node image). local-path-provisioner and its
# StorageClass were applied by `kind create cluster` itself (the node's
# /kind/manifests/default-storage.yaml, as with stock kind); kube-router (the pod network and
# the policy firewall) is applied here from the node's copy of addons/kube-router.yaml, so
# manifest and preloaded image always match. No node is Ready before it runs.
# CI only: kube-router v2.1.0 is flagged for reported security flaws (see README).
apply_addons() {
    docker exec "$NODE" kubectl --kubeconfig=/etc/kubernetes/admin.conf apply \
        -f /kind/manifests/kube-router.yaml >/dev/null \
        || ka_die "could not apply /kind/manifests/kube-router.yaml in $NODE"
}

wait_addons() {
    local deadline=$(( $(date +%s) + READY_TIMEOUT )) sc
    ka_log "waiting for kube-router on every node (pod network and NetworkPolicy enforcement)"
    until k -n kube-system rollout status daemonset/kube-router --timeout=10s >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || { k -n kube-system get pods -l k8s-app=kube-router -o wide >&2 || true
            k -n kube-system logs daemonset/kube-router --tail=30 >&2 || true
            ka_die "kube-router not ready after ${READY_TIMEOUT}s"; }
        sleep 2
    done
    ka_log "waiting for local-path-provisioner (default StorageClass)"
    until k -n local-path-storage rollout status deployment/local-path-provisioner --timeout=10s >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || { k -n local-path-storage get pods -o wide >&2 || true
            ka_die "local-path-provisioner not available after ${READY_TIMEOUT}s"; }
        sleep 2
    done
    sc=$(k get storageclass -o jsonpath='{range .items[?(@.metadata.annotations.storageclass\.kubernetes\.io/is-default-class=="true")]}{.metadata.name}={.provisioner} {end}')
    [ "$sc" = "standard=rancher.io/local-path " ] || ka_die "default StorageClass is '$sc', expected standard=rancher.io/local-path"
    ka_log "add-ons ready: kube-router routes pods between nodes and enforces NetworkPolicies; default StorageClass standard (rancher.io/local-path)"
}

healthy() {
    cluster_exists && nodes_current && [ -f "$KUBECONFIG_FILE" ] \
        && k get --raw /readyz >/dev/null 2>&1 && all_nodes_ready
}

cmd_up() {
    local t0 t1
    t0=$(date +%s)
    ensure_docker
    ensure_host_prereqs
    load_env
    t1=$(date +%s)
    if cluster_exists; then
        if nodes_current && kind_network_explicit && write_kubeconfig && healthy; then
            ka_log "reusing healthy cluster $KA_CLUSTER"
            apply_addons
            wait_ready
            wait_addons
            ka_log "cluster ready: image $((t1 - t0))s, cluster $(( $(date +%s) - t1 ))s (reused)"
            return 0
        fi
        ka_log "cluster $KA_CLUSTER exists but is stale, of another shape, unhealthy or on a $KIND_NET network without explicit subnets: recreating"
        "$KIND" delete cluster --name "$KA_CLUSTER" >&2
    fi
    ensure_kind_network
    local cfg="$KA_CACHE/work/kind-$KA_CLUSTER.yaml"
    # One control plane only: several would need kind's haproxy load-balancer image.
    {
        cat <<'EOF'
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  # no kindnetd image: kube-router (addons/kube-router.yaml) is the pod network
  disableDefaultCNI: true
  # kube-proxy programs nftables directly: no iptables backend detection needed
  kubeProxyMode: nftables
# Registry hosts from /etc/containerd/certs.d (none by default: nothing is pulled); registry.sh
# adds one for a local OCI registry, as kind's local-registry recipe does.
containerdConfigPatches:
  - |-
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "/etc/containerd/certs.d"
# Room for a class of 200 members on the two workers (400 server pods, the client Jobs' pods):
# kubelet's default of 110 pods per node stops near 100 members. 250 stays within the /24 of
# pod addresses each node gets.
kubeadmConfigPatches:
  - |
    kind: KubeletConfiguration
    maxPods: 250
nodes:
  - role: control-plane
EOF
        local i
        for (( i = 0; i < WORKERS; i++ )); do echo "  - role: worker"; done
    } >"$cfg"
    local attempt
    for attempt in 1 2; do
        ka_log "creating cluster $KA_CLUSTER from $NODE_IMAGE: 1 control plane, $WORKERS worker(s) (attempt $attempt)"
        # No --wait: nodes turn Ready only after apply_addons has installed the pod network.
        if "$KIND" create cluster --name "$KA_CLUSTER" --image "$NODE_IMAGE" --config "$cfg" \
            --retain >&2; then
            break
        fi
        ka_log "kind create cluster failed; node logs follow"
        docker logs "$NODE" 2>&1 | tail -40 >&2 || true
        docker exec "$NODE" journalctl --no-pager -u kubelet -u containerd 2>/dev/null | tail -60 >&2 || true
        "$KIND" delete cluster --name "$KA_CLUSTER" >/dev/null 2>&1 || true
        [ "$attempt" -lt 2 ] || ka_die "kind create cluster failed twice"
    done
    write_kubeconfig
    apply_addons
    wait_ready
    wait_addons
    ka_log "cluster ready: image $((t1 - t0))s, cluster $(( $(date +%s) - t1 ))s, total $(( $(date +%s) - t0 ))s"
}

cmd_down() {
    "$KA_DIR/registry.sh" down >/dev/null 2>&1 || true
    load_env_cached
    if [ -n "${KIND:-}" ] && docker info >/dev/null 2>&1 && cluster_exists; then
        "$KIND" delete cluster --name "$KA_CLUSTER" >&2
    else   # kind binary gone: remove the node containers themselves
        node_containers 2>/dev/null | xargs -r docker rm -f >/dev/null || true
    fi
    rm -f "$KUBECONFIG_FILE"
    ka_log "cluster $KA_CLUSTER deleted"
}

cmd_env() {
    load_env
    cat <<EOF
KIND=$KIND
KUBECTL=$KUBECTL
HELM=$HELM
KUBECONFIG=$KUBECONFIG_FILE
CLUSTER=$KA_CLUSTER
NODE=$NODE
WORKERS=$WORKERS
NODE_IMAGE=$NODE_IMAGE
K8S_VERSION=$K8S_VERSION
EOF
}

case "${1:-}" in
    up) cmd_up ;;
    down|delete) cmd_down ;;
    status) load_env_cached; healthy ;;
    env) cmd_env ;;
    load)
        shift
        load_env_cached
        for img in "$@"; do "$KIND" load docker-image --name "$KA_CLUSTER" "$img" >&2; done
        ;;
    *) echo "usage: $0 up | down | status | env | load IMAGE..." >&2; exit 2 ;;
esac

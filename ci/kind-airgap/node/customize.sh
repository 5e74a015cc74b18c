#!/bin/sh
# Runs inside the node base image build (base.Dockerfile), after the Debian packages are in.
# Adapts kind's base files to Debian's containerd 1.6 / runc / CNI packages and to CI hosts
# that refuse negative OOM scores.
set -eux

# kind's units expect containerd in /usr/local/bin and CNI plugins in /opt/cni/bin.
ln -sf /usr/bin/containerd /usr/local/bin/containerd
mkdir -p /opt/cni/bin /etc/cni/net.d
cp -a /usr/lib/cni/. /opt/cni/bin/
# No CNI config of its own: kube-router (addons/) installs one with this node's pod CIDR. A
# config shipped here would let pods (CoreDNS) start on another IPAM before kube-router is up,
# and that IPAM later hands out the same addresses again.

# Base OCI spec for pods, as kind makes it (product_uuid hook, no rlimits).
ctr oci spec \
    | jq '.hooks.createContainer[.hooks.createContainer | length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \
    | jq 'del(.process.rlimits)' > /etc/containerd/cri-base.json

c=/etc/containerd/config.toml
# No fuse-overlayfs snapshotter here (rootless only): drop its proxy plugin.
sed -i '/^\[proxy_plugins\]/,/^  address = /d' "$c"
# Clamp negative oom_score_adj instead of failing (CI VMs without CAP_SYS_RESOURCE refuse them).
sed -i 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' "$c"
# Sandbox image = the pause tag kubeadm lists (our own pause program).
sed -i "s#sandbox_image = .*#sandbox_image = \"registry.k8s.io/pause:${PAUSE_TAG}\"#" "$c"
grep -q 'restrict_oom_score_adj = true' "$c"
grep -q "pause:${PAUSE_TAG}" "$c"
if grep -q fuse-overlayfs.sock "$c"; then
    echo "customize.sh: the fuse-overlayfs proxy plugin is still in $c" >&2
    exit 1
fi
containerd --version
runc --version

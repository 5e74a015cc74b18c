# Node root filesystem of the air-gapped kind node image ("kindest/base" equivalent).
# Context (assembled by build-node-image.sh at build time, never committed):
#   kind/   images/base/files of the sigs.k8s.io/kind module (entrypoint, units, containerd config)
#   node/   this directory (our additions)
# Follows kind's images/base/Dockerfile (packages first: kind's files then replace Debian's
# conffiles such as /etc/containerd/config.toml), with Debian's containerd, runc and CNI plugins
# instead of binaries built from GitHub clones.
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
COPY kind/usr/local/bin/clean-install /usr/local/bin/clean-install
RUN chmod 0755 /usr/local/bin/clean-install \
    && DEBIAN_FRONTEND=noninteractive clean-install \
      systemd conntrack iptables nftables iproute2 ethtool util-linux mount kmod \
      libseccomp2 pigz bash ca-certificates jq procps \
      containerd runc containernetworking-plugins
ARG PAUSE_TAG
COPY kind/ /usr/src/kind-files/
COPY node/ /usr/src/node-files/
RUN set -eux; \
    f=/usr/src/kind-files; \
    mkdir -p /kind/bin /etc/containerd /etc/default /etc/sysctl.d /etc/systemd/system/kubelet.service.d /LICENSES; \
    install -m 0755 $f/usr/local/bin/* /usr/local/bin/; \
    install -m 0644 $f/kind/README.txt /kind/; \
    install -m 0755 $f/kind/bin/* /kind/bin/; \
    install -m 0644 $f/LICENSES/* /LICENSES/; \
    install -m 0644 $f/etc/crictl.yaml /etc/; \
    install -m 0644 $f/etc/containerd/* /etc/containerd/; \
    install -m 0644 $f/etc/default/* /etc/default/; \
    install -m 0644 $f/etc/sysctl.d/* /etc/sysctl.d/; \
    install -m 0644 $f/etc/systemd/system/*.service $f/etc/systemd/system/*.slice /etc/systemd/system/; \
    install -m 0644 $f/etc/systemd/system/kubelet.service.d/* /etc/systemd/system/kubelet.service.d/; \
    find /lib/systemd/system/sysinit.target.wants/ -name "systemd-tmpfiles-setup.service" -delete; \
    rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \
          /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \
          /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/*; \
    echo "ReadKMsg=no" >> /etc/systemd/journald.conf; \
    ln -sf "$(command -v systemd)" /sbin/init; \
    sh /usr/src/node-files/customize.sh; \
    systemctl enable kubelet.service containerd.service undo-mount-hacks.service; \
    systemctl mask systemd-binfmt.service; \
    mkdir -p /etc/kubernetes/manifests; \
    rm -rf /usr/src/kind-files /usr/src/node-files
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]

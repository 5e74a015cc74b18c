# kube-router image for the CI cluster: the local Debian base, the userland its NetworkPolicy
# controller runs (iptables, ipset, ip, conntrack), and our kube-router build.
# CI ONLY: kube-router v2.1.0 is flagged for reported security flaws; this image exists only
# inside the throwaway kind-airgap cluster and is never shipped to users.
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
RUN DEBIAN_FRONTEND=noninteractive apt-get update \
    && apt-get install -y --no-install-recommends iptables ipset iproute2 conntrack \
    && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/debconf/* /var/log/* /usr/share/doc/* /usr/share/man/*
COPY kube-router /usr/local/bin/kube-router
ENTRYPOINT ["/usr/local/bin/kube-router"]

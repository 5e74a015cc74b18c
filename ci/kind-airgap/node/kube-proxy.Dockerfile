# kube-proxy image: Debian with iptables, nftables and conntrack, plus our kube-proxy build.
# The cluster runs kube-proxy in nftables mode (cluster.sh), so no iptables backend detection
# is needed; iptables stays for kube-proxy's start-up cleanup of other modes.
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
RUN DEBIAN_FRONTEND=noninteractive apt-get update \
    && apt-get install -y --no-install-recommends iptables nftables conntrack ipset kmod \
    && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/debconf/* /var/log/* /usr/share/doc/* /usr/share/man/*
COPY kube-proxy /usr/local/bin/kube-proxy

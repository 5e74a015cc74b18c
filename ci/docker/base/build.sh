#!/usr/bin/env bash
# CI only: build a local stand-in for the official `debian:bookworm-slim` image, because this CI
# machine reaches no container registry. Users never need this: they pull the official image.
#
#   ci/docker/base/build.sh            # build if missing, print the image reference
#   CI_BASE_FORCE=1 ci/docker/base/build.sh   # rebuild even when a cached image exists
#
# Recipe (the same steps the official image's builder, debuerreotype, takes):
#   debootstrap --variant=minbase bookworm, point apt at bookworm, bookworm-updates and
#   bookworm-security, apply the pending updates, then the "slim" and Docker tweaks: dpkg path
#   excludes for docs/man/locales, apt docker-clean/gzip-indexes/no-languages, policy-rc.d; empty
#   caches, lists and logs; `docker import` with CMD ["bash"] and the usual PATH.
# CI-only addition: the host's extra CA certificates (/usr/local/share/ca-certificates/*.crt)
# are copied to the same place in the image, so that pip and apt over TLS work through a TLS
# proxy on the CI host once a build installs `ca-certificates`. Images built in CI therefore
# trust that CA; images users build from the official base do not.
#
# Cache: the image is tagged pointsmesh-ci/debian:bookworm-slim-<hash>, where <hash> covers this
# script (comment lines aside) and the CA files; it is rebuilt only when one of them changes. The tag
# debian:bookworm-slim is then pointed at it unless a real (non-CI) image already holds that name.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
suite=bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security_mirror=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
repo=${CI_BASE_REPO:-pointsmesh-ci/debian}
alias_ref=debian:bookworm-slim
label=org.pointsmesh.ci.recipe

say() { printf '[ci-base] %s\n' "$*" >&2; }

ca_files=()
if [ -d /usr/local/share/ca-certificates ]; then
    while IFS= read -r -d '' f; do ca_files+=("$f"); done < <(
        find /usr/local/share/ca-certificates -type f -name '*.crt' -print0 | sort -z)
fi
hash=$(
    {
        grep -v '^[[:space:]]*#' "$here/build.sh"   # comments do not change the recipe
        printf '%s %s %s\n' "$suite" "$mirror" "$security_mirror"
        for f in "${ca_files[@]}"; do printf '%s\n' "${f##*/}"; cat "$f"; done
    } | sha256sum | cut -c1-12
)
ref="$repo:$suite-slim-$hash"

alias_to_ci_image() {
    local cur
    cur=$(docker image inspect -f "{{index .Config.Labels \"$label\"}}" "$alias_ref" 2>/dev/null || true)
    if docker image inspect "$alias_ref" >/dev/null 2>&1 && [ -z "$cur" ]; then
        say "$alias_ref exists and is not a CI stand-in: left as it is"
    else
        docker tag "$ref" "$alias_ref"
        say "$alias_ref -> $ref"
    fi
}

if [ -z "${CI_BASE_FORCE:-}" ] && docker image inspect "$ref" >/dev/null 2>&1; then
    say "cached: $ref"
    alias_to_ci_image
    printf '%s\n' "$ref"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    say "building the base image needs root (debootstrap)"
    exit 1
fi
if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap from Debian (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

start=$(date +%s)
work=$(mktemp -d /var/tmp/ci-base.XXXXXX)
cleanup() {
    for m in proc dev/pts dev sys; do
        mountpoint -q "$work/rootfs/$m" 2>/dev/null && umount -l "$work/rootfs/$m" || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
root=$work/rootfs

say "debootstrap --variant=minbase $suite (log: $work/debootstrap.log)"
if ! debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1; then
    tail -n 30 "$work/debootstrap.log" >&2
    exit 1
fi

# Docker tweaks, as debuerreotype-minimizing-config and debuerreotype-slimify write them.
cat >"$root/usr/sbin/policy-rc.d" <<'POLICY'
#!/bin/sh
# For most Docker users, "apt-get install" only happens during "docker build", where starting
# services doesn't work and often fails in humorous ways.
exit 101
POLICY
chmod 0755 "$root/usr/sbin/policy-rc.d"
cat >"$root/etc/dpkg/dpkg.cfg.d/docker-apt-speedup" <<'CFG'
# For most Docker users, package installs happen during "docker build", which doesn't survive
# power loss and gets restarted clean afterwards anyhow, so this minor tweak gives us a nice speedup.
force-unsafe-io
CFG
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
echo 'Acquire::GzipIndexes "true";' >"$root/etc/apt/apt.conf.d/docker-gzip-indexes"
echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'CFG'
# This is the "slim" variant of the Debian base image.
# Many files which are normally unnecessary in containers are excluded,
# and this configuration file keeps them that way.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
CFG

rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<SRC
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security_mirror
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC

say "applying $suite-updates and $suite-security"
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@"; }
mount -t proc proc "$root/proc"
if ! { in_root apt-get update -qq &&
    in_root apt-get -y -qq -o Dpkg::Options::=--force-confdef dist-upgrade &&
    in_root apt-get -y -qq --purge autoremove && in_root apt-get clean; } >"$work/apt.log" 2>&1; then
    tail -n 30 "$work/apt.log" >&2
    exit 1
fi
umount "$root/proc"

# Slim: drop what the dpkg excludes keep out from now on.
find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
for d in groff info linda lintian/overrides locale man; do
    rm -rf "${root:?}/usr/share/$d"/*
done
# Empty caches, indexes, logs and host-specific files.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
    "$root"/var/lib/dpkg/*-old "$root"/tmp/* "$root"/var/tmp/* "$root/etc/hostname" \
    "$root/etc/resolv.conf"
mkdir -p "$root/var/lib/apt/lists/partial"
find "$root/var/log" -type f -exec truncate -s 0 {} +
: >"$root/etc/machine-id"

# CI only: trust the host's extra CAs once `ca-certificates` is installed in a build.
mkdir -p "$root/usr/local/share/ca-certificates"
for f in "${ca_files[@]}"; do install -m 0644 "$f" "$root/usr/local/share/ca-certificates/"; done

say "docker import -> $ref"
tar --numeric-owner --xattrs -C "$root" -c . | docker import \
    --change 'CMD ["bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "LABEL $label=$hash" \
    --change 'LABEL org.opencontainers.image.description="CI-only local stand-in for debian:bookworm-slim (debootstrap minbase + slim tweaks + host CA)"' \
    - "$ref" >/dev/null
alias_to_ci_image
# Drop the images of older recipes.
docker image ls --format '{{.Repository}}:{{.Tag}}' "$repo" | grep -vx -e "$ref" \
    | xargs -r docker rmi >/dev/null 2>&1 || true
say "built in $(( $(date +%s) - start )) s: $(docker image inspect -f '{{.Size}}' "$ref") bytes"
printf '%s\n' "$ref"

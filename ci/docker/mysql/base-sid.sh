#!/usr/bin/env bash
# CI only: a minimal Debian sid (unstable) image, the base of the CI MySQL image, because Oracle's
# MySQL server is packaged in sid but in no stable Debian release, and this CI machine reaches no
# container registry. Users never need this: they run the official mysql image.
#
#   ci/docker/mysql/base-sid.sh              # build if missing, print the image reference
#   CI_SID_FORCE=1 ci/docker/mysql/base-sid.sh   # rebuild even when a cached image exists
#
# Recipe: as ci/docker/base/build.sh (debootstrap --variant=minbase, the official images' slim
# dpkg excludes and apt/dpkg Docker tweaks, caches/lists/logs emptied, `docker import`), for sid
# and without the -updates/-security suites (sid has none). Two CI-only additions:
#   - Acquire::Check-Valid-Until "false": the Release file of sid on the mirror may carry an
#     expired Valid-Until date, which makes a plain `apt-get update` refuse it;
#   - the host's extra CA certificates (/usr/local/share/ca-certificates/*.crt), as in the
#     bookworm stand-in, trusted once a build installs `ca-certificates`.
#
# Cache: tagged pointsmesh-ci/debian-sid:slim-<hash> (a repository of its own: ci/docker/base
# removes the other tags of pointsmesh-ci/debian), where <hash> covers this script (comment
# lines aside), the mirror and the CA files; rebuilt only when one of them changes. No alias
# (debian:sid-slim) is set: only ci/docker/mysql/Dockerfile uses this image, by reference.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
suite=sid
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
repo=${CI_SID_REPO:-pointsmesh-ci/debian-sid}
label=org.pointsmesh.ci.recipe

say() { printf '[ci-sid] %s\n' "$*" >&2; }

ca_files=()
if [ -d /usr/local/share/ca-certificates ]; then
    while IFS= read -r -d '' f; do ca_files+=("$f"); done < <(
        find /usr/local/share/ca-certificates -type f -name '*.crt' -print0 | sort -z)
fi
hash=$(
    {
        grep -v '^[[:space:]]*#' "$here/base-sid.sh"   # comments do not change the recipe
        printf '%s %s\n' "$suite" "$mirror"
        for f in "${ca_files[@]}"; do printf '%s\n' "${f##*/}"; cat "$f"; done
    } | sha256sum | cut -c1-12
)
ref="$repo:slim-$hash"

if [ -z "${CI_SID_FORCE:-}" ] && docker image inspect "$ref" >/dev/null 2>&1; then
    say "cached: $ref"
    printf '%s\n' "$ref"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    say "building the sid base image needs root (debootstrap)"
    exit 1
fi
if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap from Debian (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

start=$(date +%s)
work=$(mktemp -d /var/tmp/ci-sid.XXXXXX)
cleanup() {
    mountpoint -q "$work/rootfs/proc" 2>/dev/null && umount -l "$work/rootfs/proc" || true
    rm -rf "$work"
}
trap cleanup EXIT
root=$work/rootfs

say "debootstrap --variant=minbase $suite"
if ! debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1; then
    tail -n 30 "$work/debootstrap.log" >&2
    exit 1
fi

# Docker tweaks, as debuerreotype-minimizing-config and debuerreotype-slimify write them.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
echo force-unsafe-io >"$root/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
echo 'Acquire::GzipIndexes "true";' >"$root/etc/apt/apt.conf.d/docker-gzip-indexes"
echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
echo 'Acquire::Check-Valid-Until "false";' >"$root/etc/apt/apt.conf.d/ci-no-valid-until"
cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'CFG'
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
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC

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
    --change 'LABEL org.opencontainers.image.description="CI-only Debian sid base (debootstrap minbase + slim tweaks + host CA) for the CI MySQL image"' \
    - "$ref" >/dev/null
# Drop the images of older recipes.
docker image ls --format '{{.Repository}}:{{.Tag}}' "$repo" | grep -vx -e "$ref" | xargs -r docker rmi >/dev/null 2>&1 || true
say "built in $(( $(date +%s) - start )) s: $(docker image inspect -f '{{.Size}}' "$ref") bytes"
printf '%s\n' "$ref"

#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine, for CI stages that need one.
#  - installs Debian's docker.io (and jq) when dockerd is missing (needs root);
#  - starts dockerd in the background when none answers; on a host whose capability bounding set
#    lacks CAP_SYS_RESOURCE it registers runc-wrapper.sh as the default runtime, so that
#    privileged containers (kind nodes) can start;
#  - waits until `docker info` answers. Safe to run again: an answering engine is left alone.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
log=${DOCKERD_LOG:-/var/log/dockerd-ci.log}

say() { printf '[start-dockerd] %s\n' "$*" >&2; }

if docker info >/dev/null 2>&1; then
    say "a Docker engine already answers"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    say "no Docker engine answers and this is not root: start dockerd yourself"
    exit 1
fi
if ! command -v dockerd >/dev/null || ! command -v jq >/dev/null; then
    say "installing docker.io and jq from Debian (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io jq >/dev/null
fi

args=()
capbnd=$(awk '/^CapBnd:/ {print $2}' /proc/self/status)
if (( (0x$capbnd >> 24 & 1) == 0 )); then
    # Copy the wrapper out of the checkout: dockerd keeps using it after this clone is gone.
    install -D -m 0755 "$here/runc-wrapper.sh" /usr/local/libexec/ci-runc-wrapper
    say "CAP_SYS_RESOURCE is not in the bounding set: runtime wrapper enabled"
    args+=(--add-runtime "ci-runc=/usr/local/libexec/ci-runc-wrapper" --default-runtime ci-runc)
fi
say "starting dockerd (log: $log)"
nohup dockerd "${args[@]}" >"$log" 2>&1 &
for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
        say "dockerd is up"
        exit 0
    fi
    sleep 1
done
say "dockerd did not answer within 60 s; last log lines:"
tail -n 30 "$log" >&2
exit 1

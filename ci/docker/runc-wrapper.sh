#!/bin/sh
# OCI runtime wrapper for CI hosts whose capability bounding set lacks CAP_SYS_RESOURCE
# (privileged containers, and so kind nodes, then fail with "unable to apply caps").
# It removes that one capability from the container's (or exec'd process's) capability lists
# and hands every argument to the real runc unchanged. Registered with dockerd by
# start-dockerd.sh only on hosts that need it; never part of a user-facing image.
set -eu
RUNC=${CI_REAL_RUNC:-runc}
bundle=""
process=""
prev=""
for arg in "$@"; do
    case "$prev" in
        --bundle|-b) bundle=$arg ;;
        --process|-p) process=$arg ;;
    esac
    case "$arg" in
        --bundle=*) bundle=${arg#--bundle=} ;;
        --process=*) process=${arg#--process=} ;;
    esac
    prev=$arg
done
strip() { # $1: file, $2: jq path of the capabilities object
    tmp="$1.capfix.$$"
    jq "if $2 then $2 |= map_values(if type == \"array\" then map(select(. != \"CAP_SYS_RESOURCE\")) else . end) else . end" \
        "$1" > "$tmp" && mv "$tmp" "$1"
}
if [ -n "$bundle" ] && [ -f "$bundle/config.json" ]; then
    strip "$bundle/config.json" .process.capabilities
fi
if [ -n "$process" ] && [ -f "$process" ]; then
    strip "$process" .capabilities
fi
exec "$RUNC" "$@"

# Shared settings for hack/ scripts. Sourced, not run.
# shellcheck shell=bash
K8S_VERSION=v1.35.4
K8S_MINOR=1.35
KOMPOX_CACHE=${KOMPOX_CACHE:-$HOME/.cache/kompox}
KOMPOX_BIN=$KOMPOX_CACHE/k8s/$K8S_VERSION/bin
export KOMPOX_CACHE KOMPOX_BIN

log() { printf '[hack %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

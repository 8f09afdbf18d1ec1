#!/usr/bin/env bash
# Builds everything the real node (KOMPOX_REAL_NODE=1) needs beyond the control plane, one step
# at a time, within a time budget: the node's Go tools (hack/build-tools.sh), then the images
# (hack/images.sh). Every step keeps what it finished in caches outside the checkout (the tools'
# binaries and Go's build cache, the images, the musl target dir), so a step cut off by the
# deadline resumes where it stopped on the next run, and on a machine where everything is cached
# (CI after its first runs) the whole script takes seconds.
#
#   hack/real-node-builds.sh [--deadline EPOCH_SECONDS]
#
# Prints a line per step (cached, built in Ns, or not built and why) and exits 0 when every
# step is done, 3 when the deadline stopped it (the real node cannot run yet), 1 on a failure.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/lib/common.sh
source "$here/lib/common.sh"

deadline=
if [ "${1:-}" = --deadline ]; then deadline=${2:?--deadline needs epoch seconds}; fi

# The steps, cheapest first where order does not matter; each name is one hack/build-tools.sh
# tool or one hack/images.sh image (kompox: the musl release build of the three servers).
TOOLS=(kubelet containerd runc cni crictl coredns)
IMAGES=(pause busybox kompox traefik postgres gitea)

done_steps=() cut=() failed=()
summary() {
  log "real node builds: done: ${done_steps[*]:-none}${cut[*]:+; NOT built (out of time, resumes next run): ${cut[*]}}${failed[*]:+; FAILED: ${failed[*]}}"
}

# step <name> <command…>: runs it within what is left of the budget.
step() {
  local name=$1; shift
  local left=0 t=$SECONDS rc=0
  if [ -n "$deadline" ]; then
    left=$((deadline - $(date +%s)))
    if [ $left -le 0 ]; then cut+=("$name"); return 0; fi
    # timeout signals the whole process group (go build, cargo and their compilers).
    timeout -k 30 "$left" "$@" || rc=$?
  else
    "$@" || rc=$?
  fi
  case $rc in
    0) done_steps+=("$name"); log "real node builds: $name ready in $((SECONDS - t))s" ;;
    124 | 137) cut+=("$name"); log "real node builds: $name cut off by the deadline after $((SECONDS - t))s" ;;
    *) failed+=("$name"); log "real node builds: $name failed (exit $rc)" ;;
  esac
}

for t in "${TOOLS[@]}"; do
  step "$t" "$here/build-tools.sh" "$t"
done
for i in "${IMAGES[@]}"; do
  # pause's binary comes with the kubelet tool (pause.c of the same module).
  if [ "$i" = pause ] && [[ " ${cut[*]} ${failed[*]} " == *" kubelet "* ]]; then cut+=("image:$i"); continue; fi
  step "image:$i" "$here/images.sh" build "$i"
done
summary
[ ${#failed[@]} -eq 0 ] || exit 1
[ ${#cut[@]} -eq 0 ] || exit 3

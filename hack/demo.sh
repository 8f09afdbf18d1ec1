#!/usr/bin/env bash
# The demo behind `make demo`: the local control plane with three zoned nodes.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
eval "$("$here/cluster.sh" env)"
echo
echo "== The local control plane: three kwok nodes, one per zone"
kubectl get nodes -L topology.kubernetes.io/zone
echo
echo "Reach it yourself:  eval \"\$(hack/cluster.sh env)\"; kubectl get nodes"
echo "Tear it down:       make down   (hack/cluster.sh down --wipe also removes its state)"

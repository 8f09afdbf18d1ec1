#!/usr/bin/env bash
# The demo behind `make demo` (after `make build up`): Kompox installed as local processes next
# to the local control plane, the Gitea sample applied from its compose file, then a look at
# what Kompox made of it, a snapshot and a restore. Every wait is on a condition, with a timeout.
#
#   KOMPOX_DEMO_WORKSPACE   workspace of the app namespace (default: demo)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
eval "$("$here/cluster.sh" env)"
target=${CARGO_TARGET_DIR:-$root/target}
kompox="$target/debug/kubectl-kompox"
# `kubectl kompox …` finds the plugin on PATH.
export PATH="$target/debug:$PATH"
ws=${KOMPOX_DEMO_WORKSPACE:-demo}
start=$(date +%s)

step() { printf '\n\033[1m== %s\033[0m\n%s\n' "$1" "$2"; }
run() { printf '$ %s\n' "$*"; "$@"; }

[[ -x $kompox ]] || { echo "error: $kompox missing: run \`make demo\` (it builds first)" >&2; exit 1; }

step "The local control plane" \
  "A real kube-apiserver v1.35 with three kwok nodes, one per zone, and a CSI driver (StorageClass kompox-csi)."
run kubectl get nodes -L topology.kubernetes.io/zone

step "1. Install Kompox" \
  "CRDs, RBAC, the APIService and the webhook registration; the three servers run as local processes."
run kubectl kompox install --local --acme-email demo@example.com

step "2. Apply the Gitea sample" \
  "compose.yml + app.yml → a namespace, the compose ConfigMap, the env files Secret, a KompoxDisk, the KompoxApp; then wait for Ready."
run kubectl kompox apply -f "$root/samples/gitea/compose.yml" --app "$root/samples/gitea/app.yml" \
  --workspace "$ws" --timeout 300s
ns=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["apps"][sys.argv[2]+"/gitea"]["namespace"])' \
  "$root/samples/gitea/.kompox/state.json" "$ws")
echo "The app lives in namespace $ns (recorded in samples/gitea/.kompox/state.json)."

step "3. Kompox objects" "The app and its disk, as plain Kubernetes resources."
run kubectl get kompoxapps,kompoxdisks -A

step "4. The rendered view" \
  "What Kompox turns the compose file into, served by its aggregated API server (Secret values redacted):"
echo "\$ kubectl get --raw /apis/subresources.k8s.kompox.dev/v1alpha1/namespaces/$ns/kompoxapps/gitea/rendered"
kubectl get --raw "/apis/subresources.k8s.kompox.dev/v1alpha1/namespaces/$ns/kompoxapps/gitea/rendered" |
  python3 -c '
import json, sys
lst = json.load(sys.stdin)
for o in lst["items"]:
    m = o["metadata"]
    extra = " (values redacted)" if o["kind"] == "Secret" else ""
    print("  %-22s %s%s" % (o["kind"], m["name"], extra))
'

step "5. What the webhook injected into the Pod" \
  "Zone affinity from the KompoxDisk (the Pod follows its disk), and the env-hash annotation that rolls it when a Secret changes."
pod=$(kubectl get pods -n "$ns" -o jsonpath='{.items[0].metadata.name}')
echo "Pod $ns/$pod:"
kubectl get pod -n "$ns" "$pod" -o json | python3 -c '
import json, sys
p = json.load(sys.stdin)
aff = p["spec"].get("affinity", {}).get("nodeAffinity", {})
print("  nodeAffinity:", json.dumps(aff.get("requiredDuringSchedulingIgnoredDuringExecution", aff)))
print("  kompox.dev/env-hash:", p["metadata"].get("annotations", {}).get("kompox.dev/env-hash", "(none)"))
print("  node:", p["spec"].get("nodeName", "-"))
'
run kubectl get nodes -L topology.kubernetes.io/zone --no-headers

step "6. Status" "One command for conditions, zone, disks, pods and ingress hosts."
run kubectl kompox status gitea -n "$ns"

step "7. Snapshot the disk, restore it into a new disk" \
  "KompoxSnapshot → a CSI VolumeSnapshot; restore = a new KompoxDisk with fromSnapshot."
run kubectl kompox snapshot create gitea-snap -n "$ns" --disk default --timeout 120s
run kubectl kompox snapshot restore gitea-snap -n "$ns" --to default-restored --timeout 120s
run kubectl kompox disk list -n "$ns"

echo
printf '\033[1m== Done in %ss\033[0m\n' "$(( $(date +%s) - start ))"
cat <<EOF
Explore:   eval "\$(hack/cluster.sh env)"; export PATH="$target/debug:\$PATH"
           kubectl kompox status gitea -n $ns;  kubectl kompox diff gitea -n $ns
Tear down: kubectl kompox uninstall --local   # stops the local servers, removes the registrations
           make down                          # stops the control plane (hack/cluster.sh down --wipe also removes its state)
EOF

#!/usr/bin/env bash
# The demo behind `make demo` (after `make build up`): Kompox installed as local processes next
# to the local control plane, the Gitea sample applied from its compose file, then a look at
# what Kompox made of it, a snapshot and a restore. Every wait is on a condition, with a timeout.
#
#   KOMPOX_DEMO_WORKSPACE   workspace of the app namespace (default: demo)
#   KOMPOX_REAL_NODE=1      the production path on the real node: `install` without --local (the
#                           servers and Traefik as Pods of the images hack/images.sh built), the
#                           app's Pods on the containerd node, Gitea's page fetched through Traefik
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

real=0
[ "${KOMPOX_REAL_NODE:-0}" = 1 ] && real=1
app_ns() {
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["apps"][sys.argv[2]+"/gitea"]["namespace"])' \
    "$root/samples/gitea/.kompox/state.json" "$ws"
}
if [ $real = 1 ]; then
  # The same names and selectors as hack/lib/node.sh (the node's label and taint).
  step "1. Install Kompox" \
    "As on a real cluster: CRDs, RBAC, the APIService, the webhook registration, and the three servers and Traefik as Pods of the images hack/images.sh built, on the containerd node (it is tainted: the kwok tests' fake images never land there)."
  run kubectl kompox install --image ghcr.io/kompox/kompox:dev --node-selector kompox.dev/node=real \
    --toleration kompox.dev/real-node:NoSchedule --timeout 300s

  step "2. Apply the Gitea sample" \
    "compose.yml + app.yml → a namespace, the compose ConfigMap, the env files Secret, a KompoxDisk, the KompoxApp. Zone 1 also has a kwok node, so the namespace is annotated to send its Pods to the real node (PodNodeSelector, PodTolerationRestriction); a Pod placed before that is replaced. Then wait for Ready."
  run kubectl kompox apply -f "$root/samples/gitea/compose.yml" --app "$root/samples/gitea/app.yml" \
    --workspace "$ws" --wait=false
  ns=$(app_ns)
  run kubectl annotate --overwrite namespace "$ns" \
    scheduler.alpha.kubernetes.io/node-selector=kompox.dev/node=real \
    'scheduler.alpha.kubernetes.io/defaultTolerations=[{"key":"kompox.dev/real-node","operator":"Exists","effect":"NoSchedule"}]'
  for p in $(kubectl get pods -n "$ns" -o jsonpath='{range .items[?(@.spec.nodeName!="real-node-1")]}{.metadata.name}{" "}{end}'); do
    run kubectl delete pod -n "$ns" "$p" --wait=false
  done
  run kubectl kompox apply -f "$root/samples/gitea/compose.yml" --app "$root/samples/gitea/app.yml" \
    --workspace "$ws" --timeout 600s
else
  step "1. Install Kompox" \
    "CRDs, RBAC, the APIService and the webhook registration; the three servers run as local processes."
  run kubectl kompox install --local --acme-email demo@example.com

  step "2. Apply the Gitea sample" \
    "compose.yml + app.yml → a namespace, the compose ConfigMap, the env files Secret, a KompoxDisk, the KompoxApp; then wait for Ready."
  run kubectl kompox apply -f "$root/samples/gitea/compose.yml" --app "$root/samples/gitea/app.yml" \
    --workspace "$ws" --timeout 300s
  ns=$(app_ns)
fi
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

if [ $real = 1 ]; then
  port=$(kubectl get service -n k4x-traefik traefik -o jsonpath='{.spec.ports[?(@.name=="websecure")].nodePort}')
  step "6b. Gitea through Traefik" \
    "The Ingress (host gitea.example.com, entrypoint websecure) is served by Traefik; kube-proxy publishes its NodePort on 127.0.0.1. No ACME here, so Traefik answers with its default certificate (-k)."
  code=0
  for _ in $(seq 1 120); do
    code=$(curl -sk -o /tmp/kompox-demo-gitea.html -w '%{http_code}' --max-time 10 \
      --resolve "gitea.example.com:$port:127.0.0.1" "https://gitea.example.com:$port/" || true)
    [ "$code" = 200 ] && break
    sleep 2
  done
  echo "\$ curl -k --resolve gitea.example.com:$port:127.0.0.1 https://gitea.example.com:$port/"
  echo "HTTP $code; $(grep -o '<title>[^<]*</title>' /tmp/kompox-demo-gitea.html | head -n1)"
  [ "$code" = 200 ] || { echo "error: Gitea did not answer 200 through Traefik" >&2; exit 1; }
fi

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
Tear down: kubectl kompox uninstall$([ $real = 1 ] || printf ' --local')   # removes the servers and the registrations
           make down                          # stops the control plane (hack/cluster.sh down --wipe also removes its state)
EOF

#!/usr/bin/env bash
# Benchmark (docs/performance.md): `kubectl kompox apply` of samples/gitea → the first HTTP 200 from
# Gitea through Traefik, on the real node, images present. Each run starts from nothing of the
# app (no KompoxApp, no disk: Gitea installs into an empty database every time) in a namespace
# whose Pods go to the real node; prints each run and the median.
#
#   KOMPOX_REAL_NODE=1 hack/cluster.sh up && kubectl kompox install --image ghcr.io/kompox/kompox:dev \
#     --node-selector kompox.dev/node=real --toleration kompox.dev/real-node:NoSchedule
#   hack/bench-gitea.sh [RUNS]      # default 5
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
eval "$("$here/cluster.sh" env)"
export PATH="${CARGO_TARGET_DIR:-$root/target}/debug:$PATH"
runs=${1:-5}
ws=bench
sample=$root/samples/gitea
command -v kubectl-kompox > /dev/null || { echo "error: build kubectl-kompox first (cargo build -p kubectl-kompox)" >&2; exit 1; }
port=$(kubectl get service -n k4x-traefik traefik -o jsonpath='{.spec.ports[?(@.name=="websecure")].nodePort}')
[ -n "$port" ] || { echo "error: no Traefik: install Kompox first (see the header)" >&2; exit 1; }

# The namespace: apply makes it (recorded in samples/gitea/.kompox/state.json); it is then
# annotated for the real node and reused by every run, and the setup run's objects removed.
kubectl kompox apply -f "$sample/compose.yml" --app "$sample/app.yml" --workspace "$ws" --wait=false > /dev/null
ns=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["apps"][sys.argv[2]+"/gitea"]["namespace"])' \
  "$sample/.kompox/state.json" "$ws")
kubectl annotate --overwrite namespace "$ns" scheduler.alpha.kubernetes.io/node-selector=kompox.dev/node=real \
  'scheduler.alpha.kubernetes.io/defaultTolerations=[{"key":"kompox.dev/real-node","operator":"Exists","effect":"NoSchedule"}]' > /dev/null

reset() {
  kubectl delete kompoxapp -n "$ns" gitea --ignore-not-found --wait=true --timeout=180s > /dev/null
  kubectl delete kompoxdisk -n "$ns" default --ignore-not-found --wait=true --timeout=180s > /dev/null
  kubectl wait --for=delete pod -n "$ns" -l kompox.dev/app=gitea --timeout=180s > /dev/null 2>&1 || true
}
trap reset EXIT
times=()
for i in $(seq 1 "$runs"); do
  reset
  t0=$(date +%s.%N)
  kubectl kompox apply -f "$sample/compose.yml" --app "$sample/app.yml" --workspace "$ws" --wait=false > /dev/null
  code=0
  deadline=$(($(date +%s) + 600))
  until [ "$code" = 200 ]; do
    [ "$(date +%s)" -lt $deadline ] || { echo "run $i: no 200 within 600 s (last $code)" >&2; exit 1; }
    code=$(curl -sk -o /dev/null -w '%{http_code}' --max-time 5 \
      --resolve "gitea.example.com:$port:127.0.0.1" "https://gitea.example.com:$port/" || true)
    [ "$code" = 200 ] || sleep 0.2
  done
  t=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)")
  node=$(kubectl get pods -n "$ns" -l kompox.dev/app=gitea -o jsonpath='{.items[0].spec.nodeName}')
  echo "run $i: apply → first 200 through Traefik in ${t}s (Pod on $node)"
  times+=("$t")
done
printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END { printf "median of %d: %.1fs (min %.1fs, max %.1fs), load %s\n", NR, a[int((NR + 1) / 2)], a[1], a[NR], "'"$(cut -d' ' -f1-3 /proc/loadavg)"'" }'

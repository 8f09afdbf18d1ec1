#!/usr/bin/env bash
# A real local Kubernetes control plane for Kompox's demo and tests, run as local processes
# (the way controller-runtime's envtest does, plus kwok so Pods get scheduled and "run"):
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok, built from pinned
# upstream sources by hack/build-tools.sh.
#
#   hack/cluster.sh up       build what is missing, start everything (harmless when already up)
#   hack/cluster.sh down     stop exactly the processes `up` started (by pid); --wipe removes all state
#   hack/cluster.sh status   show what runs
#   hack/cluster.sh env      print `export KUBECONFIG=…` (admin) and `export KUBECONFIG_USER=…` (user "dev")
#
# State (certificates, kubeconfigs, logs, pid files, etcd data) lives in $KOMPOX_CLUSTER_DIR,
# default ${KOMPOX_CACHE:-~/.cache/kompox}/cluster. See hack/README.md.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/lib/common.sh
source "$here/lib/common.sh"

STATE=${KOMPOX_CLUSTER_DIR:-$KOMPOX_CACHE/cluster}
REGION=${KOMPOX_REGION:-japaneast}
PKI=$STATE/pki
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

pidfile() { echo "$STATE/pids/$1.pid"; }

running() {
  local pid
  pid=$(cat "$(pidfile "$1")" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# cert <name> <subject> <ca> <extensions>: an RSA key and a certificate signed by <ca>.
cert() {
  local name=$1 subj=$2 ca=$3 ext=$4
  [ -s "$PKI/$name.crt" ] && return 0
  openssl req -new -newkey rsa:2048 -nodes -keyout "$PKI/$name.key" -subj "$subj" \
    -out "$PKI/$name.csr" 2>/dev/null
  printf '%b\n' "$ext" > "$PKI/$name.ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

ca() {
  local name=$1 cn=$2
  [ -s "$PKI/$name.crt" ] && return 0
  openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$PKI/$name.key" -subj "/CN=$cn" \
    -days 3650 -sha256 -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" -out "$PKI/$name.crt" 2>/dev/null
}

gen_pki() {
  mkdir -p "$PKI"
  chmod 700 "$PKI"
  ca ca kompox-local-ca
  ca front-proxy-ca kompox-local-front-proxy-ca
  local client="basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth"
  cert apiserver "/CN=kube-apiserver" ca \
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.0.0.1"
  cert admin "/O=system:masters/CN=kompox-admin" ca "$client"
  cert dev "/CN=dev" ca "$client"
  cert controller-manager "/CN=system:kube-controller-manager" ca "$client"
  cert scheduler "/CN=system:kube-scheduler" ca "$client"
  cert front-proxy-client "/CN=front-proxy-client" front-proxy-ca "$client"
  if [ ! -s "$PKI/sa.key" ]; then
    openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
    openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  fi
}

# kubeconfig <file> <cert name>: a kubeconfig with embedded client cert for the API server.
kubeconfig() {
  local file=$1 who=$2
  cat > "$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: kompox-local
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 < "$PKI/ca.crt")
users:
- name: $who
  user:
    client-certificate-data: $(base64 -w0 < "$PKI/$who.crt")
    client-key-data: $(base64 -w0 < "$PKI/$who.key")
contexts:
- name: kompox-local
  context:
    cluster: kompox-local
    user: $who
current-context: kompox-local
EOF
  chmod 600 "$file"
}

# start <name> <binary> <args…>: a background process in its own session, logged, with a pid file.
start() {
  local name=$1 bin=$2; shift 2
  if running "$name"; then return 0; fi
  setsid "$KOMPOX_BIN/$bin" "$@" > "$STATE/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$(pidfile "$name")"
}

# wait_for <what> <seconds> <command…>: poll until the command succeeds.
wait_for() {
  local what=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" > /dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      die "timed out after ${timeout}s waiting for $what (logs in $STATE/logs)"
    fi
    sleep 0.5
  done
}

kc() { "$KOMPOX_BIN/kubectl" --kubeconfig "$STATE/admin.kubeconfig" "$@"; }

apiserver_ready() {
  curl -fsS --max-time 2 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://127.0.0.1:$APISERVER_PORT/readyz" | grep -qx ok
}

all_running() {
  local c
  for c in "${COMPONENTS[@]}"; do running "$c" || return 1; done
}

load_ports() {
  # shellcheck disable=SC1091
  [ -f "$STATE/ports.env" ] && source "$STATE/ports.env"
  return 0
}

up() {
  "$here/build-tools.sh" > /dev/null
  mkdir -p "$STATE/logs" "$STATE/pids" "$STATE/etcd"
  load_ports
  if all_running && [ -n "${APISERVER_PORT:-}" ] && apiserver_ready; then
    log "already up: API server at https://127.0.0.1:$APISERVER_PORT"
    return 0
  fi
  # Anything half-running from an earlier start goes, then everything starts fresh on free ports.
  stop_all
  rm -rf "$STATE/etcd"
  gen_pki
  ETCD_PORT=$(free_port); ETCD_PEER_PORT=$(free_port); APISERVER_PORT=$(free_port)
  KCM_PORT=$(free_port); SCHED_PORT=$(free_port); KWOK_PORT=$(free_port)
  cat > "$STATE/ports.env" <<EOF
ETCD_PORT=$ETCD_PORT
ETCD_PEER_PORT=$ETCD_PEER_PORT
APISERVER_PORT=$APISERVER_PORT
KCM_PORT=$KCM_PORT
SCHED_PORT=$SCHED_PORT
KWOK_PORT=$KWOK_PORT
EOF
  kubeconfig "$STATE/admin.kubeconfig" admin
  kubeconfig "$STATE/dev.kubeconfig" dev
  kubeconfig "$STATE/controller-manager.kubeconfig" controller-manager
  kubeconfig "$STATE/scheduler.kubeconfig" scheduler

  local start_t=$SECONDS
  start etcd etcd --name kompox --data-dir "$STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "kompox=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync --quota-backend-bytes=4294967296 --log-level=warn
  wait_for "etcd" 60 curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_PORT/health"

  # No --enable-aggregator-routing: with it the aggregator rejects ExternalName Services,
  # which is how an APIService reaches a server running on this machine (hack/README.md).
  start kube-apiserver kube-apiserver \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --service-account-issuer https://kubernetes.default.svc \
    --service-cluster-ip-range 10.0.0.0/24 --endpoint-reconciler-type none \
    --authorization-mode RBAC \
    --enable-admission-plugins NamespaceLifecycle,LimitRanger,ServiceAccount,DefaultStorageClass,ResourceQuota,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy \
    --requestheader-client-ca-file "$PKI/front-proxy-ca.crt" \
    --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$PKI/front-proxy-client.crt" --proxy-client-key-file "$PKI/front-proxy-client.key" \
    --allow-privileged=true --profiling=false -v=1
  wait_for "kube-apiserver /readyz" 120 apiserver_ready

  start kube-controller-manager kube-controller-manager \
    --kubeconfig "$STATE/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$STATE/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$STATE/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --leader-elect=false \
    --root-ca-file "$PKI/ca.crt" --service-account-private-key-file "$PKI/sa.key" \
    --use-service-account-credentials=true --cluster-name kompox-local \
    --node-monitor-grace-period=60s -v=1
  start kube-scheduler kube-scheduler \
    --kubeconfig "$STATE/scheduler.kubeconfig" \
    --authentication-kubeconfig "$STATE/scheduler.kubeconfig" \
    --authorization-kubeconfig "$STATE/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$SCHED_PORT" --leader-elect=false -v=1
  start kwok kwok --kubeconfig "$STATE/admin.kubeconfig" --config "$KOMPOX_BIN/kwok-stages.yaml" \
    --manage-all-nodes=false --manage-nodes-with-label-selector type=kwok \
    --node-lease-duration-seconds 40 --cidr 10.244.0.0/16 --node-ip 127.0.0.1 \
    --server-address "127.0.0.1:$KWOK_PORT"

  register_nodes
  wait_for "3 Ready kwok nodes" 120 nodes_ready
  wait_for "the default ServiceAccount" 60 kc get serviceaccount default -n default
  log "up in $((SECONDS - start_t))s: API server at https://127.0.0.1:$APISERVER_PORT, nodes in $REGION-1..3"
}

register_nodes() {
  local i
  for i in 1 2 3; do
    kc apply -f - > /dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    type: kwok
    kubernetes.io/arch: amd64
    kubernetes.io/os: linux
    kubernetes.io/hostname: kwok-node-$i
    node.kubernetes.io/instance-type: kwok-standard
    topology.kubernetes.io/region: $REGION
    topology.kubernetes.io/zone: $REGION-$i
spec: {}
EOF
  done
}

nodes_ready() {
  [ "$(kc get nodes -l type=kwok -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True)" = 3 ]
}

stop_all() {
  local i c pid
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    c=${COMPONENTS[$i]}
    pid=$(cat "$(pidfile "$c")" 2>/dev/null) || continue
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      local deadline=$((SECONDS + 20))
      while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$(pidfile "$c")"
  done
}

down() {
  stop_all
  if [ "${1:-}" = "--wipe" ]; then
    rm -rf "$STATE"
    log "stopped and wiped $STATE"
  else
    # etcd data is not worth keeping across a restart: the next `up` starts clean.
    rm -rf "$STATE/etcd"
    log "stopped"
  fi
}

status() {
  load_ports
  local c
  for c in "${COMPONENTS[@]}"; do
    if running "$c"; then echo "$c: running (pid $(cat "$(pidfile "$c")"))"; else echo "$c: stopped"; fi
  done
  if [ -n "${APISERVER_PORT:-}" ] && apiserver_ready; then
    echo "api server: ready at https://127.0.0.1:$APISERVER_PORT"
  else
    echo "api server: not ready"
    return 1
  fi
}

env_() {
  echo "export KUBECONFIG=$STATE/admin.kubeconfig"
  echo "export KUBECONFIG_USER=$STATE/dev.kubeconfig"
  echo "export KOMPOX_FRONT_PROXY_CA=$PKI/front-proxy-ca.crt"
  echo "export PATH=$KOMPOX_BIN:\$PATH"
}

case "${1:-}" in
  up) up ;;
  down) shift; down "${1:-}" ;;
  status) status ;;
  env) env_ ;;
  *) echo "usage: $0 up|down [--wipe]|status|env" >&2; exit 2 ;;
esac

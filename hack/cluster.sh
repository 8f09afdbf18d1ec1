#!/usr/bin/env bash
# A real local Kubernetes control plane for Kompox's demo and tests, run as local processes
# (the way controller-runtime's envtest does, plus kwok so Pods get scheduled and "run"):
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok, built from pinned
# upstream sources by hack/build-tools.sh; next to them a CSI stack (the upstream mock CSI
# driver, csi-provisioner, csi-resizer, csi-snapshotter, snapshot-controller, the VolumeSnapshot CRDs,
# StorageClass and VolumeSnapshotClass "kompox-csi"). hack/csi.sh check proves it works.
#
#   hack/cluster.sh up       build what is missing, start everything (harmless when already up)
#   hack/cluster.sh down     stop exactly the processes `up` started (by pid); --wipe removes all state
#   hack/cluster.sh status   show what runs
#   hack/cluster.sh env      print `export KUBECONFIG=…` (admin) and `export KUBECONFIG_USER=…` (user "dev")
#
# State (certificates, kubeconfigs, logs, pid files, etcd data) lives in $KOMPOX_CLUSTER_DIR,
# default ${KOMPOX_CACHE:-~/.cache/kompox}/cluster. See hack/README.md.
#
# KOMPOX_CLUSTER=<name> (e.g. b) runs a second, independent control plane beside it: its own
# etcd, API server, controllers, kwok nodes (same zones), CSI sidecars, ports and state dir
# ($KOMPOX_CLUSTER_DIR-<name>), context kompox-local-<name>. Each cluster runs its own mock CSI
# driver; all of them keep their volumes and snapshots in one store on disk, the storage
# backend, in the default cluster's state dir ($KOMPOX_CLUSTER_DIR/csi/data): as two clusters of
# one cloud account and region see the same disks and snapshots, a volume or snapshot either
# cluster created is found by its handle in the other, and a restarted driver loses nothing.
# Unset or empty: the default cluster, as before.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/lib/common.sh
source "$here/lib/common.sh"

BASE=${KOMPOX_CLUSTER_DIR:-$KOMPOX_CACHE/cluster}
NAME=${KOMPOX_CLUSTER:-}
if [ -n "$NAME" ]; then
  [[ $NAME =~ ^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$ ]] ||
    { echo "KOMPOX_CLUSTER=$NAME: want a DNS label (e.g. b)" >&2; exit 2; }
  STATE=$BASE-$NAME
  CONTEXT=kompox-local-$NAME
else
  STATE=$BASE
  CONTEXT=kompox-local
fi
REGION=${KOMPOX_REGION:-japaneast}
PKI=$STATE/pki
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
# The CSI tier runs on top of the core; `up` (re)starts it alone when the core is fine.
CSI_COMPONENTS=(csi-mock-driver csi-provisioner csi-resizer csi-snapshotter snapshot-controller)
CSI_DRIVER=mock.csi.kompox.dev
# The driver's socket is the cluster's; the storage backend every cluster of $BASE shares (the
# store behind -data-dir: a record and a directory of files per volume and per snapshot) lives
# in the default cluster's state dir.
CSI_SOCK=$STATE/csi/csi.sock
CSI_DATA=$BASE/csi/data
SNAPSHOT_CRDS=$KOMPOX_BIN/../snapshot-crds.yaml
# The real node (KOMPOX_REAL_NODE=1): hack/lib/node.sh.
# shellcheck source=hack/lib/node.sh
source "$here/lib/node.sh"

pidfile() { echo "$STATE/pids/$1.pid"; }

# alive <pid>: the process exists and is not a zombie. Our processes outlive the shell that
# started them, so a dead one stays a zombie until init reaps it (seconds, in some sandboxes),
# and kill -0 alone would still count it.
alive() {
  local s
  kill -0 "$1" 2>/dev/null || return 1
  [ -r "/proc/$1/stat" ] || return 0
  read -r s < "/proc/$1/stat" 2>/dev/null || return 1
  s=${s##*) }
  [ "${s%% *}" != Z ]
}

running() {
  local pid
  pid=$(cat "$(pidfile "$1")" 2>/dev/null) || return 1
  [ -n "$pid" ] && alive "$pid"
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
  # How kube-apiserver authenticates to a kubelet (logs, exec; the real node's).
  cert apiserver-kubelet-client "/CN=kube-apiserver-kubelet-client" ca "$client"
  # kube-apiserver's identity towards admission webhooks (admission.yaml): Kompox's webhook
  # answers only clients with a certificate from this CA (--client-ca-file).
  ca webhook-client-ca kompox-local-webhook-client-ca
  cert webhook-client "/CN=kube-apiserver-webhook-client" webhook-client-ca "$client"
  if [ ! -s "$PKI/sa.key" ]; then
    openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
    openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  fi
}

# kubeconfig <file> <cert name>: a kubeconfig with embedded client cert for the API server.
kubeconfig() {
  local file=$1 who=$2
  # Names unique per cluster, so that the kubeconfigs of two clusters merge ($KUBECONFIG=a:b).
  local user=$who${NAME:+-$NAME}
  cat > "$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $CONTEXT
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 < "$PKI/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 < "$PKI/$who.crt")
    client-key-data: $(base64 -w0 < "$PKI/$who.key")
contexts:
- name: $CONTEXT
  context:
    cluster: $CONTEXT
    user: $user
current-context: $CONTEXT
EOF
  chmod 600 "$file"
}

# admission_config: kube-apiserver's AdmissionConfiguration; its kubeConfigFile gives every
# webhook call ("*": whatever host the webhook has) the webhook-client certificate.
admission_config() {
  cat > "$STATE/webhook-client.kubeconfig" <<EOF
apiVersion: v1
kind: Config
users:
- name: "*"
  user:
    client-certificate: $PKI/webhook-client.crt
    client-key: $PKI/webhook-client.key
EOF
  chmod 600 "$STATE/webhook-client.kubeconfig"
  cat > "$STATE/admission.yaml" <<EOF
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: MutatingAdmissionWebhook
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: $STATE/webhook-client.kubeconfig
- name: ValidatingAdmissionWebhook
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: $STATE/webhook-client.kubeconfig
EOF
}

# start <name> <binary> <args…>: a background process in its own session, logged, with a pid
# file. <binary> is a file of $KOMPOX_BIN, or an absolute path (a script of hack/lib).
start() {
  local name=$1 bin=$2; shift 2
  if running "$name"; then return 0; fi
  [[ $bin == /* ]] || bin=$KOMPOX_BIN/$bin
  setsid "$bin" "$@" > "$STATE/logs/$name.log" 2>&1 < /dev/null 8>&- 9>&- &
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
  for c in "$@"; do running "$c" || return 1; done
}

load_ports() {
  # shellcheck disable=SC1091
  [ -f "$STATE/ports.env" ] && source "$STATE/ports.env"
  return 0
}

up() {
  if [ -n "$NAME" ] && real_node_enabled; then
    die "KOMPOX_REAL_NODE=1 runs with the default cluster only (unset KOMPOX_CLUSTER)"
  fi
  "$here/build-tools.sh" > /dev/null
  mkdir -p "$STATE/logs" "$STATE/pids" "$STATE/etcd"
  load_ports
  # The real node's Pods reach the API server at the node IP: it listens on all addresses then.
  local bind=127.0.0.1 keep_node=0
  real_node_enabled && bind=0.0.0.0
  local core_up=0
  all_running etcd kube-apiserver && [ -n "${APISERVER_PORT:-}" ] && apiserver_ready && core_up=1
  if [ $core_up = 1 ] && ! real_node_enabled && [ "${APISERVER_BIND:-127.0.0.1}" = 0.0.0.0 ]; then
    # Started with the real node, called without KOMPOX_REAL_NODE=1 (e.g. one kwok test binary
    # run by hand): restarting would drop the node and etcd's state. Keep both, and say so.
    log "warning: this cluster runs the real node (it was started with KOMPOX_REAL_NODE=1) but" \
      "KOMPOX_REAL_NODE is not 1 here: the node is kept as it is (not checked, its images not" \
      "imported); to drop it: hack/cluster.sh down, then up"
    bind=0.0.0.0 keep_node=1
  elif [ $core_up = 1 ] && [ "${APISERVER_BIND:-127.0.0.1}" != "$bind" ]; then
    log "restarting the cluster (its state is dropped): the real node needs kube-apiserver on all" \
      "addresses, and it was started without KOMPOX_REAL_NODE=1"
  fi
  if [ $core_up = 1 ] && [ "${APISERVER_BIND:-127.0.0.1}" = "$bind" ]; then
    # etcd and the API server hold the state: keep them, start only what is missing of the
    # stateless rest (e.g. one component stopped to run it with new flags or a new build).
    if running kwok && ! kwok_current; then
      log "restarting kwok: it serves the kubelet API (logs, exec, port-forward) now"
      stop_components kwok
    fi
    if ! all_running "${COMPONENTS[@]}"; then
      start_controllers
      kubelet_endpoints
    fi
    if ! all_running "${CSI_COMPONENTS[@]}"; then
      csi_up
    fi
    if real_node_enabled; then node_up; fi
    if [ $keep_node = 1 ] && ! running kubelet; then
      log "warning: the real node's kubelet is not running (KOMPOX_REAL_NODE=1 hack/cluster.sh up restarts it)"
    fi
    log "already up: API server at https://127.0.0.1:$APISERVER_PORT"
    return 0
  fi
  # Anything half-running from an earlier start goes, then everything starts fresh on free ports.
  node_down
  stop_all
  forget_store
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
APISERVER_BIND=$bind
EOF
  kubeconfig "$STATE/admin.kubeconfig" admin
  kubeconfig "$STATE/dev.kubeconfig" dev
  kubeconfig "$STATE/controller-manager.kubeconfig" controller-manager
  kubeconfig "$STATE/scheduler.kubeconfig" scheduler
  admission_config

  local start_t=$SECONDS
  local plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,DefaultStorageClass,ResourceQuota,PodSecurity,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy
  # With the real node, a namespace can send its Pods there (hack/README.md, "The real node"):
  # annotations scheduler.alpha.kubernetes.io/node-selector and .../defaultTolerations.
  real_node_enabled && plugins=$plugins,PodNodeSelector,PodTolerationRestriction
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
    --bind-address "$bind" --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --service-account-issuer https://kubernetes.default.svc \
    --service-cluster-ip-range 10.0.0.0/24 --endpoint-reconciler-type none \
    --authorization-mode RBAC \
    --enable-admission-plugins "$plugins" \
    --admission-control-config-file "$STATE/admission.yaml" \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types InternalIP,Hostname \
    --requestheader-client-ca-file "$PKI/front-proxy-ca.crt" \
    --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$PKI/front-proxy-client.crt" --proxy-client-key-file "$PKI/front-proxy-client.key" \
    --allow-privileged=true --profiling=false -v=1
  wait_for "kube-apiserver /readyz" 120 apiserver_ready

  start_controllers
  register_nodes
  wait_for "3 Ready kwok nodes" 120 nodes_ready
  wait_for "the default ServiceAccount" 60 kc get serviceaccount default -n default
  csi_up
  if real_node_enabled; then node_up; fi
  log "up in $((SECONDS - start_t))s: API server at https://127.0.0.1:$APISERVER_PORT, nodes in $REGION-1..3"
}

# kwok_kubelet: kwok serves the kubelet API of its fake nodes (kube-apiserver's logs, exec and
# port-forward of their Pods) over TLS on $KWOK_PORT, as its config below says: every container
# logs $STATE/kwok/container.log (CRI log format; tests append to it), exec runs the command on
# this machine in $STATE/kwok, a forwarded port is `cat` (an echo server).
kwok_kubelet() {
  cert kwok-kubelet "/CN=kwok-kubelet" ca \
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost"
  mkdir -p "$STATE/kwok"
  [ -e "$STATE/kwok/container.log" ] ||
    printf '%s stdout F kwok: the fake container started\n' "$(date -u +%Y-%m-%dT%H:%M:%S.000000000Z)" \
      > "$STATE/kwok/container.log"
  [ -e "$STATE/kwok/previous.log" ] ||
    printf '%s stdout F kwok: the previous instance of the fake container\n' "$(date -u +%Y-%m-%dT%H:%M:%S.000000000Z)" \
      > "$STATE/kwok/previous.log"
  cat > "$STATE/kwok/kubelet.yaml" <<EOF
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata:
  name: kompox-local
spec:
  logs:
  - logsFile: $STATE/kwok/container.log
    previousLogsFile: $STATE/kwok/previous.log
    follow: true
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterExec
metadata:
  name: kompox-local
spec:
  execs:
  - local:
      workDir: $STATE/kwok
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterPortForward
metadata:
  name: kompox-local
spec:
  forwards:
  - command: [cat]
EOF
}

# kwok_current: the running kwok serves the kubelet API (a cluster started before it did gets
# kwok restarted, and its nodes the kubelet port, by `up`).
kwok_current() {
  local pid
  pid=$(cat "$(pidfile kwok)" 2>/dev/null) || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- '--node-port'
}

# start_controllers: kube-controller-manager, kube-scheduler and kwok (each unless running).
start_controllers() {
  # --kube-api-qps/burst (default 20/30): at the default, 1,000 Kompox apps need 240 s to Ready, 42-80 s at 100/200.
  start kube-controller-manager kube-controller-manager \
    --kubeconfig "$STATE/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$STATE/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$STATE/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --leader-elect=false \
    --root-ca-file "$PKI/ca.crt" --service-account-private-key-file "$PKI/sa.key" \
    --use-service-account-credentials=true --cluster-name kompox-local \
    --node-monitor-grace-period=60s --pvclaimbinder-sync-period=2s \
    --kube-api-qps=100 --kube-api-burst=200 -v=1
  start kube-scheduler kube-scheduler \
    --kubeconfig "$STATE/scheduler.kubeconfig" \
    --authentication-kubeconfig "$STATE/scheduler.kubeconfig" \
    --authorization-kubeconfig "$STATE/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$SCHED_PORT" --leader-elect=false -v=1
  kwok_kubelet
  start kwok kwok --kubeconfig "$STATE/admin.kubeconfig" --config "$KOMPOX_BIN/kwok-stages.yaml" \
    --config "$STATE/kwok/kubelet.yaml" \
    --manage-all-nodes=false --manage-nodes-with-label-selector type=kwok \
    --node-lease-duration-seconds 40 --cidr 10.244.0.0/16 --node-ip 127.0.0.1 \
    --server-address "127.0.0.1:$KWOK_PORT" --node-port "$KWOK_PORT" \
    --tls-cert-file "$PKI/kwok-kubelet.crt" --tls-private-key-file "$PKI/kwok-kubelet.key"
}

# kubelet_endpoints: the kwok nodes' status names kwok's port as their kubelet's (nodes
# registered by a kwok that did not serve it keep none otherwise).
kubelet_endpoints() {
  local i
  for i in 1 2 3; do
    kc patch node "kwok-node-$i" --subresource=status --type=merge \
      -p "{\"status\":{\"daemonEndpoints\":{\"kubeletEndpoint\":{\"Port\":$KWOK_PORT}}}}" > /dev/null
  done
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

# csi_up: the CSI tier on a running core: whatever of it is missing starts. A driver older than
# its binary (rebuilt since) is restarted first: the volumes are in the store, not in it.
csi_up() {
  local t=$SECONDS
  mkdir -p "$STATE/csi" "$CSI_DATA"
  if running csi-mock-driver && ! driver_current; then
    log "restarting the mock CSI driver: its binary was rebuilt (volumes and snapshots are kept)"
    stop_components csi-mock-driver
  fi
  # A store of the earlier layout (volumes without records, kept by a driver in memory) is
  # no one's now: emptied once, under the backend's lock (fd 8, closed for the processes
  # `start` leaves running).
  exec 8> "$BASE/csi/.data.lock"
  flock 8
  if [ -d "$CSI_DATA/volumes" ] && [ ! -d "$CSI_DATA/catalog" ]; then
    log "emptying $CSI_DATA: it holds volumes of an earlier, in-memory driver (gone with it)"
    rm -rf "$CSI_DATA" && mkdir -p "$CSI_DATA"
  fi
  flock -u 8
  [ ${#CSI_SOCK} -lt 100 ] || die "unix socket path too long (${#CSI_SOCK} chars): $CSI_SOCK"
  [ -s "$SNAPSHOT_CRDS" ] || die "$SNAPSHOT_CRDS missing: run hack/build-tools.sh"
  kc apply -f "$SNAPSHOT_CRDS" > /dev/null
  kc wait --for=condition=Established --timeout=60s crd/volumesnapshotclasses.snapshot.storage.k8s.io \
    crd/volumesnapshotcontents.snapshot.storage.k8s.io crd/volumesnapshots.snapshot.storage.k8s.io > /dev/null

  # The upstream mock CSI driver over the shared store (volumes and snapshots in $CSI_DATA),
  # with zonal topology; -v=3 logs every CSI call.
  if ! running csi-mock-driver; then
    # The sidecars exit when they lose the driver's socket (as in a Pod, where the kubelet
    # restarts them): they start again below, with the driver.
    stop_components "${CSI_COMPONENTS[@]}"
    rm -f "$CSI_SOCK"
    # With the real node, the same process is its node plugin: it registers with the
    # kubelet and bind-mounts volumes' data directories into Pods (hack/lib/node.sh).
    local node_args=()
    if real_node_enabled || [ "${keep_node:-0}" = 1 ]; then
      node_args=(-node-id "$NODE_NAME" -node-topology "$REGION-1"
        -kubelet-registration-dir "$NODE_DIR/kubelet/plugins_registry")
    fi
    start csi-mock-driver csi-mock-driver -endpoint "$CSI_SOCK" -name "$CSI_DRIVER" \
      -topology-key topology.kubernetes.io/zone -data-dir "$CSI_DATA" "${node_args[@]}" -v=3
  fi
  wait_log csi-mock-driver "mock CSI driver serving" 30
  csi_objects

  # Controller-side sidecars only: no kubelet, so no node plugin, registrar or attacher.
  # They use the admin kubeconfig (a local test cluster; no RBAC for them is set up).
  start csi-provisioner csi-provisioner --csi-address "$CSI_SOCK" \
    --kubeconfig "$STATE/admin.kubeconfig" --leader-election=false --node-deployment=false \
    --extra-create-metadata --timeout=30s --retry-interval-max=30s --feature-gates=Topology=true -v=2
  start csi-resizer csi-resizer --csi-address "$CSI_SOCK" \
    --kubeconfig "$STATE/admin.kubeconfig" --leader-election=false \
    --timeout=30s --resize-timeout=30s --retry-interval-max=30s -v=2
  start csi-snapshotter csi-snapshotter --csi-address "$CSI_SOCK" \
    --kubeconfig "$STATE/admin.kubeconfig" --leader-election=false --node-deployment=false \
    --extra-create-metadata --timeout=30s --retry-interval-max=30s \
    --feature-gates=CSIVolumeGroupSnapshot=false -v=2
  start snapshot-controller snapshot-controller --kubeconfig "$STATE/admin.kubeconfig" \
    --leader-election=false --retry-interval-max=30s --feature-gates=CSIVolumeGroupSnapshot=false -v=2
  wait_log csi-provisioner "Started provisioner controller" 60
  wait_log csi-resizer "Starting external resizer" 60
  wait_log csi-snapshotter "Starting CSI snapshotter" 60
  wait_log snapshot-controller "Starting snapshot controller" 60
  log "CSI driver $CSI_DRIVER with provisioner, resizer and snapshotter up in $((SECONDS - t))s (StorageClass and VolumeSnapshotClass kompox-csi)"
}

# wait_log <component> <text> <seconds>: until its log has the text; fails at once if it exits.
wait_log() {
  local c=$1 text=$2 deadline=$((SECONDS + $3)) log
  log=$STATE/logs/$c.log
  until grep -qF "$text" "$log" 2>/dev/null; do
    if ! running "$c"; then
      tail -n 20 "$log" >&2 || true
      die "$c exited during start-up (log: $log)"
    fi
    [ $SECONDS -lt "$deadline" ] || die "timed out waiting for $c: \"$text\" (log: $log)"
    sleep 0.2
  done
}

# csi_objects: CSIDriver, a CSINode per kwok node (what kubelet's node registrar would write:
# the provisioner takes topology from CSINode topologyKeys + node labels), StorageClass and
# VolumeSnapshotClass "kompox-csi".
csi_objects() {
  local i uid
  {
    cat <<EOF
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata:
  name: $CSI_DRIVER
spec:
  attachRequired: false
  podInfoOnMount: false
  volumeLifecycleModes: [Persistent]
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: kompox-csi
provisioner: $CSI_DRIVER
reclaimPolicy: Retain
volumeBindingMode: Immediate
allowVolumeExpansion: true
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata:
  name: kompox-csi
driver: $CSI_DRIVER
deletionPolicy: Delete
EOF
    for i in 1 2 3; do
      uid=$(kc get node "kwok-node-$i" -o jsonpath='{.metadata.uid}')
      cat <<EOF
---
apiVersion: storage.k8s.io/v1
kind: CSINode
metadata:
  name: kwok-node-$i
  ownerReferences:
  - {apiVersion: v1, kind: Node, name: kwok-node-$i, uid: $uid}
spec:
  drivers:
  - name: $CSI_DRIVER
    nodeID: kwok-node-$i
    topologyKeys: [topology.kubernetes.io/zone]
EOF
    done
  } | kc apply -f - > /dev/null
}

nodes_ready() {
  [ "$(kc get nodes -l type=kwok -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True)" = 3 ]
}

# driver_current: the running driver's binary is the one in $KOMPOX_BIN (not replaced since).
driver_current() {
  local pid exe
  pid=$(cat "$(pidfile csi-mock-driver)" 2>/dev/null) || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 0
  [[ $exe != *" (deleted)" ]]
}

# backend_users: the other clusters of $BASE whose CSI driver runs (they use the shared store).
backend_users() {
  local d pid
  for d in "$BASE" "$BASE"-*; do
    [ "$d" != "$STATE" ] && [ -f "$d/pids/csi-mock-driver.pid" ] || continue
    pid=$(cat "$d/pids/csi-mock-driver.pid" 2>/dev/null) || continue
    if [ -n "$pid" ] && alive "$pid"; then echo "$d"; fi
  done
}

# forget_store: when no cluster of $BASE runs a driver any more, the store's volumes and
# snapshots belong to no cluster (their PVs went with etcd, which `down` drops): emptied.
# While another cluster runs, it stays as it is (as a cloud keeps disks a deleted cluster left).
forget_store() {
  [ -z "$(backend_users)" ] || return 0
  [ -d "$BASE/csi" ] || return 0
  exec 8> "$BASE/csi/.data.lock"
  flock 8
  [ -n "$(backend_users)" ] || rm -rf "$CSI_DATA"
  flock -u 8
}

stop_all() {
  stop_components "${COMPONENTS[@]}" "${CSI_COMPONENTS[@]}"
  rm -f "$CSI_SOCK"
  # The stopped processes are zombies until init reaps them; wait (briefly, all at once) so
  # that nothing of ours is in the process table when down returns.
  local pid deadline=$((SECONDS + 10))
  for pid in "${STOPPED[@]}"; do
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  done
}

# stop_components <name>...: stop each by its pid file, last one first; their pids go to STOPPED.
STOPPED=()
stop_components() {
  local names=("$@") i c pid
  for ((i = ${#names[@]} - 1; i >= 0; i--)); do
    c=${names[$i]}
    pid=$(cat "$(pidfile "$c")" 2>/dev/null) || continue
    if [ -n "$pid" ] && alive "$pid"; then
      STOPPED+=("$pid")
      kill "$pid" 2>/dev/null || true
      local deadline=$((SECONDS + 20))
      while alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
      if alive "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$(pidfile "$c")"
  done
}

down() {
  node_down
  stop_all
  forget_store
  if [ "${1:-}" = "--wipe" ]; then
    if [ "$STATE" = "$BASE" ] && [ -n "$(backend_users)" ]; then
      die "not wiping $STATE: it holds the CSI store that $(backend_users | tr '\n' ' ')uses; down that cluster first"
    fi
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
  for c in "${COMPONENTS[@]}" "${CSI_COMPONENTS[@]}" "${NODE_COMPONENTS[@]}"; do
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
  echo "export KOMPOX_WEBHOOK_CLIENT_CA_FILE=$PKI/webhook-client-ca.crt"
  echo "export KOMPOX_CSI_DATA_DIR=$CSI_DATA"
  echo "export KOMPOX_CONTEXT=$CONTEXT"
  # `kubectl kompox install --local` keeps its servers' state per cluster.
  [ -z "$NAME" ] || echo "export KOMPOX_LOCAL_DIR=$STATE/local"
  echo "export PATH=$KOMPOX_BIN:\$PATH"
}

# lock: one up/down at a time (several engineers' test runs call `up`); fd 9 is closed for
# the processes `start` leaves running, so the lock ends with this script.
lock() {
  mkdir -p "$STATE"
  exec 9> "$STATE/.lock"
  if ! flock -n 9; then
    log "waiting for another hack/cluster.sh up/down to finish"
    flock 9
  fi
}

case "${1:-}" in
  up) lock; up ;;
  down) shift; lock; down "${1:-}" ;;
  status) status ;;
  env) env_ ;;
  *) echo "usage: $0 up|down [--wipe]|status|env" >&2; exit 2 ;;
esac

# The real node of the local cluster (KOMPOX_REAL_NODE=1): containerd (runc, CNI bridge),
# kubelet and kube-proxy (iptables) as processes of this machine, registered as node
# "$NODE_NAME" in zone 1 next to the kwok nodes. Sourced by hack/cluster.sh, which provides
# STATE, PKI, REGION, start, running, alive, wait_for, wait_log, kc, cert, free_port,
# stop_components. See hack/README.md, "The real node".
# shellcheck shell=bash

NODE_NAME=${KOMPOX_NODE_NAME:-real-node-1}
# The Pod network of the node: a bridge with the node's IP as gateway. The node IP is also
# where Pods reach kube-apiserver (it listens on all addresses while the real node is on).
NODE_CIDR=${KOMPOX_NODE_CIDR:-10.85.0.0/24}
NODE_PREFIX=${NODE_CIDR%.*}
NODE_IP=$NODE_PREFIX.1
NODE_BRIDGE=kompox0
SERVICE_CIDR=10.0.0.0/24
CLUSTER_DNS=10.0.0.10
# kwok hands out fake Pod IPs from this range; nothing may ever be sent there.
KWOK_CIDR=10.244.0.0/16
# The taint keeps the kwok-based tests' Pods (fake images) off the real node; Pods meant to
# run tolerate it and select the node by its label kompox.dev/node=real.
NODE_TAINT=kompox.dev/real-node
NODE_COMPONENTS=(containerd kube-proxy kubelet coredns servicelb)
NODE_DIR=$STATE/node
NODE_SOCK=$NODE_DIR/run/containerd.sock
# One real node per machine: iptables chains, the bridge and the kernel settings are global.
NODE_OWNER=/run/kompox-real-node.owner
# Images every real-node Pod may need, imported into containerd at `up` (hack/images.sh).
PAUSE_IMAGE=registry.k8s.io/pause:3.10.1
GUARD_CHAIN=KOMPOX-NODE-GUARD

real_node_enabled() { [ "${KOMPOX_REAL_NODE:-0}" = 1 ]; }

crictl_() { "$KOMPOX_BIN/crictl" --runtime-endpoint "unix://$NODE_SOCK" --timeout 10s "$@"; }
ctr_() { "$KOMPOX_BIN/ctr" --address "$NODE_SOCK" --namespace k8s.io "$@"; }

node_pki() {
  local client="basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth"
  cert "node-$NODE_NAME" "/O=system:nodes/CN=system:node:$NODE_NAME" ca "$client"
  cert kube-proxy "/CN=system:kube-proxy" ca "$client"
  cert coredns "/CN=kompox:coredns" ca "$client"
  cert "kubelet-serving" "/CN=$NODE_NAME" ca \
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:$NODE_NAME,IP:$NODE_IP"
}

# sysctl_set <key> <value>: remembers the first value it replaced (restored by node_down).
sysctl_set() {
  local key=$1 value=$2 file=/proc/sys/${1//.//} old
  old=$(cat "$file")
  grep -q "^$key " "$NODE_DIR/sysctl.saved" 2>/dev/null || echo "$key $old" >> "$NODE_DIR/sysctl.saved"
  [ "$old" = "$value" ] || echo "$value" > "$file"
}

node_network() {
  if ! ip link show "$NODE_BRIDGE" > /dev/null 2>&1; then
    ip link add "$NODE_BRIDGE" type bridge
    echo "$NODE_BRIDGE" > "$NODE_DIR/bridge.created"
  fi
  ip addr replace "$NODE_IP/${NODE_CIDR#*/}" dev "$NODE_BRIDGE"
  ip link set "$NODE_BRIDGE" up
  # What kubelet, kube-proxy and the bridge plugin would set, set here so that `down` can
  # put back exactly what was there before.
  sysctl_set net.ipv4.ip_forward 1
  sysctl_set net.bridge.bridge-nf-call-iptables 1
  # kube-proxy sets it for the NodePorts on 127.0.0.1; recorded here so down restores it.
  sysctl_set net.ipv4.conf.all.route_localnet 1
  sysctl_set vm.overcommit_memory 1
  sysctl_set vm.panic_on_oom 0
  sysctl_set kernel.panic 10
  sysctl_set kernel.panic_on_oops 1
  sysctl_set kernel.keys.root_maxkeys 1000000
  sysctl_set kernel.keys.root_maxbytes 25000000
  # The guard: nothing from the node's Pods leaves through another interface, and nothing
  # is ever sent to a Service IP that has no local endpoint or to a kwok Pod's fake IP.
  iptables -w -N "$GUARD_CHAIN" 2> /dev/null || iptables -w -F "$GUARD_CHAIN"
  iptables -w -A "$GUARD_CHAIN" -i "$NODE_BRIDGE" ! -o "$NODE_BRIDGE" -j REJECT
  iptables -w -A "$GUARD_CHAIN" -d "$SERVICE_CIDR" ! -o "$NODE_BRIDGE" -j REJECT
  iptables -w -A "$GUARD_CHAIN" -d "$KWOK_CIDR" -j REJECT
  local c
  for c in OUTPUT FORWARD; do
    iptables -w -C "$c" -j "$GUARD_CHAIN" 2> /dev/null || iptables -w -I "$c" 1 -j "$GUARD_CHAIN"
  done
}

node_config() {
  mkdir -p "$NODE_DIR"/{run,containerd,cni,kubelet,logs} "$NODE_DIR/kubelet-pki"
  # containerd 2.x, config version 3. Facts of this machine kind: runc cannot lower
  # oom_score_adj (no CAP_SYS_RESOURCE) -> restrict_oom_score_adj; no hugetlb hierarchy.
  cat > "$NODE_DIR/containerd.toml" <<EOF
version = 3
root = "$NODE_DIR/containerd/root"
state = "$NODE_DIR/containerd/state"
[grpc]
  address = "$NODE_SOCK"
[ttrpc]
  address = "$NODE_SOCK.ttrpc"
[plugins.'io.containerd.internal.v1.opt']
  path = "$NODE_DIR/containerd/opt"
[plugins.'io.containerd.nri.v1.nri']
  disable = true
[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = '$PAUSE_IMAGE'
[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  disable_hugetlb_controller = true
  tolerate_missing_hugetlb_controller = true
  netns_mounts_under_state_dir = true
  cdi_spec_dirs = []
  enable_criu = false
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = 'runc'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = '$KOMPOX_BIN/runc'
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['$KOMPOX_BIN']
    conf_dir = '$NODE_DIR/cni'
[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = '127.0.0.1'
EOF
  # The bridge plugin with the node IP as gateway; no masquerade (no Pod talks to anything
  # outside this machine) and portmap for hostPort.
  cat > "$NODE_DIR/cni/10-kompox.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "kompox",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$NODE_BRIDGE",
      "isGateway": true,
      "isDefaultGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$NODE_CIDR", "gateway": "$NODE_IP"}]],
        "dataDir": "$NODE_DIR/cni-ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
  kubeconfig "$NODE_DIR/kubelet.kubeconfig" "node-$NODE_NAME"
  kubeconfig "$NODE_DIR/kube-proxy.kubeconfig" kube-proxy
  kubeconfig "$NODE_DIR/coredns.kubeconfig" coredns
  # The cluster DNS: CoreDNS on the node IP, behind the kube-dns Service ($CLUSTER_DNS). Names
  # outside the cluster answer NXDOMAIN at once: no Pod here reaches anything beyond this
  # machine, and a forwarder would hand their queries to this machine's resolver.
  cat > "$NODE_DIR/Corefile" <<EOF
cluster.local:$COREDNS_PORT in-addr.arpa:$COREDNS_PORT ip6.arpa:$COREDNS_PORT {
    bind $NODE_IP
    errors
    health 127.0.0.1:$COREDNS_HEALTH_PORT
    ready 127.0.0.1:$COREDNS_READY_PORT
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $NODE_DIR/coredns.kubeconfig
        pods insecure
        ttl 5
    }
    cache 5
    loadbalance
}
.:$COREDNS_PORT {
    bind $NODE_IP
    errors
    template ANY ANY {
        rcode NXDOMAIN
    }
}
EOF
  # An empty resolv.conf: Pods get the cluster DNS only, never this machine's resolver.
  : > "$NODE_DIR/resolv.conf"
  # Facts of this machine kind: cgroup v1 without systemd (cgroupfs driver), open files
  # capped at 20000. Eviction thresholds low: the disk is shared with the builds.
  cat > "$NODE_DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
maxOpenFiles: 20000
containerRuntimeEndpoint: unix://$NODE_SOCK
clusterDNS: [$CLUSTER_DNS]
clusterDomain: cluster.local
resolvConf: $NODE_DIR/resolv.conf
podCIDR: $NODE_CIDR
maxPods: 50
serializeImagePulls: false
protectKernelDefaults: false
enforceNodeAllocatable: [pods]
evictionHard:
  memory.available: 200Mi
  nodefs.available: 2%
  imagefs.available: 2%
  nodefs.inodesFree: 2%
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
syncFrequency: 10s
fileCheckFrequency: 10s
nodeStatusUpdateFrequency: 10s
registerWithTaints:
- {key: $NODE_TAINT, value: "true", effect: NoSchedule}
EOF
  cat > "$NODE_DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection:
  kubeconfig: $NODE_DIR/kube-proxy.kubeconfig
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
clusterCIDR: $NODE_CIDR
healthzBindAddress: 127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:$KUBE_PROXY_METRICS_PORT
# NodePorts on the node IP and on 127.0.0.1 (kube-proxy sets route_localnet for the latter):
# the host reaches Traefik's Service at 127.0.0.1:<nodePort>.
nodePortAddresses: [$NODE_IP/32, 127.0.0.1/32]
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
}

# The rshared mount the kubelet's root needs for mount propagation (the root mount here is
# private); recorded so down unmounts it.
node_mounts() {
  if ! findmnt -rn -o TARGET "$NODE_DIR/kubelet" > /dev/null 2>&1 ||
    [ "$(findmnt -rn -o TARGET "$NODE_DIR/kubelet" | head -n1)" != "$NODE_DIR/kubelet" ]; then
    mount --bind "$NODE_DIR/kubelet" "$NODE_DIR/kubelet"
  fi
  mount --make-rshared "$NODE_DIR/kubelet"
}

node_claim() {
  local owner
  owner=$(cat "$NODE_OWNER" 2>/dev/null || true)
  if [ -n "$owner" ] && [ "$owner" != "$STATE" ] && [ -d "$owner/node" ]; then
    if [ -s "$owner/pids/kubelet.pid" ] && alive "$(cat "$owner/pids/kubelet.pid")"; then
      die "another local cluster ($owner) runs the real node of this machine; one per machine (iptables and the bridge are global)"
    fi
    # Its processes are gone (ended without `down`: a killed CI run, a stopped session), but
    # its mounts, iptables chains, bridge and kernel settings may be left: remove them first.
    # Its processes are not signalled: their pid files may name unrelated processes by now.
    log "warning: the real node of $owner was not stopped with down; removing what it left (mounts, iptables chains, bridge)"
    (NODE_DIR=$owner/node STATE=$owner node_clean)
  fi
  mkdir -p /run
  echo "$STATE" > "$NODE_OWNER"
}

node_ports() {
  if [ -z "${COREDNS_PORT:-}" ]; then
    COREDNS_PORT=$(free_port); COREDNS_HEALTH_PORT=$(free_port); COREDNS_READY_PORT=$(free_port)
    cat >> "$STATE/ports.env" <<EOF
COREDNS_PORT=$COREDNS_PORT
COREDNS_HEALTH_PORT=$COREDNS_HEALTH_PORT
COREDNS_READY_PORT=$COREDNS_READY_PORT
EOF
  fi
  if [ -z "${KUBELET_PORT:-}" ]; then
    KUBELET_PORT=$(free_port); KUBELET_HEALTHZ_PORT=$(free_port)
    KUBE_PROXY_HEALTHZ_PORT=$(free_port); KUBE_PROXY_METRICS_PORT=$(free_port)
    cat >> "$STATE/ports.env" <<EOF
KUBELET_PORT=$KUBELET_PORT
KUBELET_HEALTHZ_PORT=$KUBELET_HEALTHZ_PORT
KUBE_PROXY_HEALTHZ_PORT=$KUBE_PROXY_HEALTHZ_PORT
KUBE_PROXY_METRICS_PORT=$KUBE_PROXY_METRICS_PORT
EOF
  fi
}

# node_endpoints: the node's RBAC and the `kubernetes` Service's endpoints (the API server runs with
# --endpoint-reconciler-type none): the node IP and the API server's port, so in-cluster
# clients (KUBERNETES_SERVICE_HOST) reach it through kube-proxy.
node_endpoints() {
  kc apply -f - > /dev/null <<EOF
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kubernetes
  namespace: default
  labels:
    kubernetes.io/service-name: kubernetes
    endpointslice.kubernetes.io/managed-by: kompox-cluster-sh
addressType: IPv4
endpoints:
- addresses: [$NODE_IP]
  conditions: {ready: true}
ports:
- name: https
  port: $APISERVER_PORT
  protocol: TCP
EOF
  # The cluster DNS: Service kube-dns at $CLUSTER_DNS (the kubelet's clusterDNS) with CoreDNS,
  # a process on the node IP, as its endpoint; CoreDNS reads Services and EndpointSlices.
  kc apply -f - > /dev/null <<EOF
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns, kubernetes.io/name: CoreDNS}
spec:
  clusterIP: $CLUSTER_DNS
  ports:
  - {name: dns, port: 53, protocol: UDP, targetPort: $COREDNS_PORT}
  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: $COREDNS_PORT}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns
  namespace: kube-system
  labels:
    kubernetes.io/service-name: kube-dns
    endpointslice.kubernetes.io/managed-by: kompox-cluster-sh
addressType: IPv4
endpoints:
- addresses: [$NODE_IP]
  conditions: {ready: true}
ports:
- {name: dns, port: $COREDNS_PORT, protocol: UDP}
- {name: dns-tcp, port: $COREDNS_PORT, protocol: TCP}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: kompox-coredns
rules:
- {apiGroups: [""], resources: [services, namespaces, pods], verbs: [list, watch]}
- {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: kompox-coredns
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kompox-coredns}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "kompox:coredns"}
EOF
  kc apply -f - > /dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: kompox-kube-apiserver-kubelet-api
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:kubelet-api-admin}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: kube-apiserver-kubelet-client}
---
# The kubelet's rights by RBAC (the API server authorizes RBAC only: with the Node
# authorizer on, an e2e test of disk resizing lost the app's Resizing condition).
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: kompox-node-$NODE_NAME
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:node}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:node:$NODE_NAME"}
EOF
}

node_ready() {
  [ "$(kc get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

node_up() {
  local t=$SECONDS
  [ "$(id -u)" = 0 ] || die "the real node needs root (mounts, iptables, cgroups)"
  command -v iptables > /dev/null || die "the real node needs iptables: apt-get install iptables"
  if all_running "${NODE_COMPONENTS[@]}" && node_ready; then
    # Images built since (hack/images.sh build) go in; importing what is there is quick.
    "$here/images.sh" import-node > /dev/null
    return 0
  fi
  stop_components "${NODE_COMPONENTS[@]}"
  node_claim
  mkdir -p "$NODE_DIR"
  node_ports
  node_pki
  node_config
  node_mounts
  node_network
  PATH="$KOMPOX_BIN:$PATH" start containerd containerd --config "$NODE_DIR/containerd.toml"
  wait_for "containerd's CRI" 60 crictl_ info
  "$here/images.sh" import-node > /dev/null
  node_endpoints
  start kube-proxy kube-proxy --config "$NODE_DIR/kube-proxy.yaml" -v=1
  start coredns coredns -conf "$NODE_DIR/Corefile"
  start servicelb "$here/lib/servicelb.sh" "$KOMPOX_BIN/kubectl" "$STATE/admin.kubeconfig" "$NODE_IP"
  start kubelet kubelet --config "$NODE_DIR/kubelet.yaml" --kubeconfig "$NODE_DIR/kubelet.kubeconfig" \
    --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" --root-dir "$NODE_DIR/kubelet" \
    --cert-dir "$NODE_DIR/kubelet-pki" \
    --node-labels "kompox.dev/node=real,topology.kubernetes.io/region=$REGION,topology.kubernetes.io/zone=$REGION-1" \
    -v=1
  wait_for "node $NODE_NAME Ready" 120 node_ready
  wait_for "CoreDNS ready" 60 curl -fsS --max-time 2 "http://127.0.0.1:$COREDNS_READY_PORT/ready"
  log "real node $NODE_NAME Ready in $((SECONDS - t))s (containerd, kubelet, kube-proxy; Pods on $NODE_CIDR)"
}

# node_down: stops the node's processes and removes what node_up made: Pod sandboxes (their
# netns and veths via CNI DEL), shims, mounts, cgroups, iptables rules, the bridge and the
# kernel settings it changed.
node_down() {
  [ -d "$NODE_DIR" ] || return 0
  stop_components kubelet
  if running containerd; then
    crictl_ rmp --all --force > /dev/null 2>&1 || true
  fi
  stop_components containerd
  # Shims outlive containerd; anything of ours still running goes by pid.
  local p exe
  for p in /proc/[0-9]*; do
    exe=$(readlink "$p/exe" 2>/dev/null) || continue
    if [ "$exe" = "$KOMPOX_BIN/containerd-shim-runc-v2" ]; then kill -9 "${p#/proc/}" 2>/dev/null || true; fi
  done
  stop_components kube-proxy coredns servicelb
  node_clean
}

# node_clean: what the node leaves on the machine once its processes are gone (see node_down).
node_clean() {
  if [ -x "$KOMPOX_BIN/kube-proxy" ] && [ -s "$NODE_DIR/kube-proxy.yaml" ]; then
    "$KOMPOX_BIN/kube-proxy" --cleanup --config "$NODE_DIR/kube-proxy.yaml" > "$NODE_DIR/logs/kube-proxy-cleanup.log" 2>&1 || true
  fi
  # Mounts below the node's dir (overlay rootfs, shm, netns, volumes), deepest first.
  local m
  while read -r m; do
    umount -l "$m" 2> /dev/null || true
  done < <(findmnt -rn -o TARGET | grep -F "$NODE_DIR" | awk '{ print length, $0 }' | sort -rn | cut -d' ' -f2-)
  # Pod cgroups: the kubelet's /kubepods tree in every hierarchy, leaves first.
  local h
  for h in /sys/fs/cgroup/*/; do
    [ -d "$h/kubepods" ] || continue
    find "$h/kubepods" -depth -type d -exec rmdir {} \; 2> /dev/null || true
  done
  # iptables: the guard, and the chains the CNI portmap plugin created.
  local c
  for c in OUTPUT FORWARD; do
    while iptables -w -D "$c" -j "$GUARD_CHAIN" 2> /dev/null; do :; done
  done
  iptables -w -F "$GUARD_CHAIN" 2> /dev/null && iptables -w -X "$GUARD_CHAIN" 2> /dev/null || true
  ipt_remove_chains '^(CNI-|KUBE-)'
  # veths left by a sandbox that CNI DEL did not reach, then the bridge if we made it.
  local l
  for l in $(ip -o link show master "$NODE_BRIDGE" 2> /dev/null | awk -F': ' '{ print $2 }' | cut -d@ -f1); do
    ip link del "$l" 2> /dev/null || true
  done
  if [ -s "$NODE_DIR/bridge.created" ]; then
    ip link del "$NODE_BRIDGE" 2> /dev/null || true
    rm -f "$NODE_DIR/bridge.created"
  fi
  if [ -s "$NODE_DIR/sysctl.saved" ]; then
    local key value
    while read -r key value; do
      echo "$value" > "/proc/sys/${key//.//}" 2> /dev/null || true
    done < "$NODE_DIR/sysctl.saved"
    rm -f "$NODE_DIR/sysctl.saved"
  fi
  [ "$(cat "$NODE_OWNER" 2>/dev/null)" != "$STATE" ] || rm -f "$NODE_OWNER"
  # Runtime state goes (Pods do not survive down); images stay in containerd's root. Never
  # while something is still mounted there: that could be a volume's data directory.
  if findmnt -rn -o TARGET | grep -qF "$NODE_DIR"; then
    log "warning: mounts left below $NODE_DIR; its runtime state is kept"
  else
    rm -rf "$NODE_DIR/containerd/state" "$NODE_DIR/cni-ipam" "$NODE_DIR/kubelet" "$NODE_DIR/run"
  fi
}

# ipt_remove_chains <regex>: every chain whose name matches, in every table, with the rules
# that jump to it (one real node per machine: such chains are the node's). kube-proxy
# --cleanup removes most of its own; the kubelet's canaries and CNI's portmap chains stay.
ipt_remove_chains() {
  local re=$1 t chains chain rule
  for t in nat filter mangle; do
    chains=$(iptables -w -t "$t" -S 2> /dev/null | awk -v re="$re" '$1 == "-N" && $2 ~ re { print $2 }')
    [ -n "$chains" ] || continue
    for chain in $chains; do
      while read -r rule; do
        [ -n "$rule" ] || continue
        eval "iptables -w -t $t ${rule/-A/-D}" 2> /dev/null || true
      done < <(iptables -w -t "$t" -S 2> /dev/null | awk -v c="$chain" '$1 == "-A" && ($0 ~ ("-j " c "$") || $0 ~ ("-j " c " ")) ')
    done
    for chain in $chains; do iptables -w -t "$t" -F "$chain" 2> /dev/null || true; done
    for chain in $chains; do iptables -w -t "$t" -X "$chain" 2> /dev/null || true; done
  done
}

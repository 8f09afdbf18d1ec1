#!/usr/bin/env bash
# The CSI stack that hack/cluster.sh runs next to the local API server (hack/README.md, "CSI").
#
#   hack/csi.sh check       end to end: PVC -> Bound, VolumeSnapshot -> readyToUse, PVC from the
#                           snapshot -> Bound with the snapshot-time bytes (after a restart
#                           of the driver: it keeps nothing in memory), PVC expansion,
#                           deletion reaches the driver and its data dir; prints the timings
#   hack/csi.sh volumes     what the mock driver holds now (CSI ListVolumes: "<id> <bytes> <name>")
#   hack/csi.sh snapshots   same for snapshots (CSI ListSnapshots: "<id> <source volume id>")
#
# check works in a scratch namespace and removes it, and every volume and snapshot it made,
# also when it fails. Every wait is a watch or a poll with a timeout.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/lib/common.sh
source "$here/lib/common.sh"

STATE=${KOMPOX_CLUSTER_DIR:-$KOMPOX_CACHE/cluster}
DRIVER=mock.csi.kompox.dev
CLASS=kompox-csi
SOCK=$STATE/csi/csi.sock
DATA=$STATE/csi/data
TIMEOUT=${KOMPOX_CSI_TIMEOUT:-60}

kc() { "$KOMPOX_BIN/kubectl" --kubeconfig "$STATE/admin.kubeconfig" "$@"; }
driver_list() { "$KOMPOX_BIN/csi-mock-driver" -endpoint "$SOCK" -list "$1"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
fail() { die "check failed: $*"; }

# until_true <what> <command…>: poll (0.2 s) until the command succeeds, at most $TIMEOUT s.
until_true() {
  local what=$1 deadline=$((SECONDS + TIMEOUT)); shift
  until "$@" > /dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || fail "timed out after ${TIMEOUT}s: $what"
    sleep 0.2
  done
}

# (grep without -q reads the whole list: -q exits at the first match, and the lister, still
# writing, would die of SIGPIPE and fail the pipeline.)
has_volume() { driver_list volumes | grep "^$1 " > /dev/null; }
has_snapshot() { driver_list snapshots | grep "^$1 " > /dev/null; }
gone() { ! "$@"; }
has_dir() { [ -e "$DATA/$1" ]; }
# same_content <expected file> <file>: fails naming both when they differ.
same_content() {
  cmp -s "$1" "$2" || fail "$2 does not hold the expected bytes ($(wc -c < "$2" 2>/dev/null || echo no) bytes; want $(wc -c < "$1"))"
}
# deleted_in_driver <rpc> <id key> <id>: the mock logged a successful call (it logs each one at -v=3).
deleted_in_driver() {
  grep -F "\"Method\":\"/csi.v1.Controller/$1\",\"Request\":{\"$2\":\"$3\"" "$STATE/logs/csi-mock-driver.log" |
    grep -qF '"Error":""'
}

ns=""
want=""
cleanup() {
  [ -z "$want" ] || rm -f "$want"
  [ -n "$ns" ] || return 0
  local pv
  # The class retains volumes: hand what is left back to the driver, then drop the namespace.
  for pv in $(kc get pv -o jsonpath="{range .items[?(@.spec.claimRef.namespace==\"$ns\")]}{.metadata.name}{\"\n\"}{end}" 2>/dev/null); do
    kc patch pv "$pv" -p '{"spec":{"persistentVolumeReclaimPolicy":"Delete"}}' > /dev/null 2>&1 || true
  done
  kc delete namespace "$ns" --wait=true --timeout="${TIMEOUT}s" > /dev/null 2>&1 || log "namespace $ns not gone yet"
  local deadline=$((SECONDS + TIMEOUT))
  while [ -n "$(kc get pv -o jsonpath="{.items[?(@.spec.claimRef.namespace==\"$ns\")].metadata.name}" 2>/dev/null)" ]; do
    if [ $SECONDS -ge $deadline ]; then log "PVs of $ns still there after ${TIMEOUT}s"; break; fi
    sleep 0.2
  done
}

pvc() { # pvc <name> [<snapshot to restore>]
  cat <<EOF
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: $1
spec:
  storageClassName: $CLASS
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
EOF
  if [ -n "${2:-}" ]; then
    cat <<EOF
  dataSource:
    apiGroup: snapshot.storage.k8s.io
    kind: VolumeSnapshot
    name: $2
EOF
  fi
}

# bound_pv <pvc>: waits until Bound, checks the PV, prints "<pv> <volume handle>".
bound_pv() {
  kc -n "$ns" wait --for=jsonpath='{.status.phase}'=Bound "pvc/$1" --timeout="${TIMEOUT}s" > /dev/null ||
    fail "PVC $1 not Bound: $(kc -n "$ns" describe pvc "$1" | tail -n 5)"
  local pv driver handle
  pv=$(kc -n "$ns" get pvc "$1" -o jsonpath='{.spec.volumeName}')
  driver=$(kc get pv "$pv" -o jsonpath='{.spec.csi.driver}')
  handle=$(kc get pv "$pv" -o jsonpath='{.spec.csi.volumeHandle}')
  [ "$driver" = "$DRIVER" ] || fail "PV $pv: spec.csi.driver is '$driver', want $DRIVER"
  [ -n "$handle" ] || fail "PV $pv has no spec.csi.volumeHandle"
  has_volume "$handle" || fail "volume $handle of PV $pv is not in the driver"
  echo "$pv $handle"
}

check() {
  [ -S "$SOCK" ] || die "no CSI socket at $SOCK: run hack/cluster.sh up"
  ns=kompox-csi-check-$$
  trap cleanup EXIT
  kc create namespace "$ns" > /dev/null

  # 1. Dynamic provisioning.
  local t out pv handle zone
  t=$(now)
  pvc src | kc -n "$ns" apply -f - > /dev/null
  out=$(bound_pv src)
  read -r pv handle <<< "$out"
  local t_bound; t_bound=$(since "$t")
  zone=$(kc get pv "$pv" -o jsonpath='{.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[?(@.key=="topology.kubernetes.io/zone")].values[0]}')
  log "PVC src Bound in ${t_bound}s: PV $pv, volumeHandle $handle, zone ${zone:-none}"
  # Bytes in the volume, as a pod would write them (no kubelet here: straight into its dir).
  local vdir=$DATA/volumes/$handle
  [ -d "$vdir" ] || fail "no data directory $vdir for volume $handle (is csi-mock-driver running with -data-dir?)"
  want=$(mktemp)
  head -c 65536 /dev/urandom > "$want"
  mkdir -p "$vdir/sub"
  cp "$want" "$vdir/sub/data.bin"

  # 2. Snapshot.
  t=$(now)
  kc -n "$ns" apply -f - > /dev/null <<EOF
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata:
  name: snap
spec:
  volumeSnapshotClassName: $CLASS
  source:
    persistentVolumeClaimName: src
EOF
  kc -n "$ns" wait --for=jsonpath='{.status.readyToUse}'=true volumesnapshot/snap --timeout="${TIMEOUT}s" > /dev/null ||
    fail "VolumeSnapshot snap not readyToUse: $(kc -n "$ns" get volumesnapshot snap -o jsonpath='{.status}')"
  local t_ready; t_ready=$(since "$t")
  local content snaphandle
  content=$(kc -n "$ns" get volumesnapshot snap -o jsonpath='{.status.boundVolumeSnapshotContentName}')
  snaphandle=$(kc get volumesnapshotcontent "$content" -o jsonpath='{.status.snapshotHandle}')
  [ -n "$snaphandle" ] || fail "VolumeSnapshotContent $content has no status.snapshotHandle"
  driver_list snapshots | grep -x "$snaphandle $handle" > /dev/null || fail "snapshot $snaphandle of volume $handle is not in the driver"
  log "VolumeSnapshot snap readyToUse in ${t_ready}s: content $content, snapshotHandle $snaphandle"
  # Written after the snapshot: must not show up in the restore.
  echo "after the snapshot" > "$vdir/sub/data.bin"
  echo "after the snapshot" > "$vdir/later.txt"

  # The driver restarts: its volumes and snapshots are in the store (csi/data/catalog), not
  # in its memory, so the restore below still finds the snapshot and the volume its data.
  local old
  old=$(cat "$STATE/pids/csi-mock-driver.pid")
  kill "$old"
  until_true "the driver (pid $old) stopped" gone kill -0 "$old"
  t=$(now)
  "$here/cluster.sh" up > /dev/null 2>&1 || fail "hack/cluster.sh up did not restart the driver"
  has_snapshot "$snaphandle" || fail "snapshot $snaphandle lost in a driver restart"
  has_volume "$handle" || fail "volume $handle lost in a driver restart"
  log "driver restarted in $(since "$t")s (pid $old -> $(cat "$STATE/pids/csi-mock-driver.pid")): volume and snapshot kept"

  # 3. Restore.
  local rpv rhandle
  t=$(now)
  pvc restored snap | kc -n "$ns" apply -f - > /dev/null
  out=$(bound_pv restored)
  read -r rpv rhandle <<< "$out"
  local t_restore; t_restore=$(since "$t")
  [ "$rhandle" != "$handle" ] || fail "restored PV has the source's volume handle"
  same_content "$want" "$DATA/volumes/$rhandle/sub/data.bin"
  [ ! -e "$DATA/volumes/$rhandle/later.txt" ] || fail "the restored volume has a file written after the snapshot"
  log "PVC restored (dataSource snap) Bound in ${t_restore}s: PV $rpv, volumeHandle $rhandle, with the snapshot-time bytes"

  # 4. Expansion (csi-resizer -> ControllerExpandVolume; the mock needs no node expansion).
  t=$(now)
  kc -n "$ns" patch pvc src -p '{"spec":{"resources":{"requests":{"storage":"2Gi"}}}}' > /dev/null
  kc -n "$ns" wait --for=jsonpath='{.status.capacity.storage}'=2Gi pvc/src --timeout="${TIMEOUT}s" > /dev/null ||
    fail "PVC src not expanded: $(kc -n "$ns" get pvc src -o jsonpath='{.status}')"
  local t_expand; t_expand=$(since "$t")
  driver_list volumes | grep "^$handle 2147483648 " > /dev/null || fail "volume $handle is not 2Gi in the driver"
  log "PVC src expanded to 2Gi in ${t_expand}s (PV $(kc get pv "$pv" -o jsonpath='{.spec.capacity.storage}'))"

  # 5. Deletion reaches the driver. The class says Retain, so switch the PVs to Delete first.
  t=$(now)
  kc patch pv "$rpv" -p '{"spec":{"persistentVolumeReclaimPolicy":"Delete"}}' > /dev/null
  kc patch pv "$pv" -p '{"spec":{"persistentVolumeReclaimPolicy":"Delete"}}' > /dev/null
  kc -n "$ns" delete pvc restored --wait=false > /dev/null
  kc wait --for=delete "pv/$rpv" --timeout="${TIMEOUT}s" > /dev/null || fail "PV $rpv not deleted"
  until_true "volume $rhandle gone from the driver" gone has_volume "$rhandle"
  deleted_in_driver DeleteVolume volume_id "$rhandle" || fail "no successful DeleteVolume $rhandle in the mock's log"
  ! has_dir "volumes/$rhandle" || fail "data directory of deleted volume $rhandle left"
  kc -n "$ns" delete volumesnapshot snap --wait=false > /dev/null
  kc wait --for=delete "volumesnapshotcontent/$content" --timeout="${TIMEOUT}s" > /dev/null ||
    fail "VolumeSnapshotContent $content not deleted"
  until_true "snapshot $snaphandle gone from the driver" gone has_snapshot "$snaphandle"
  deleted_in_driver DeleteSnapshot snapshot_id "$snaphandle" || fail "no successful DeleteSnapshot $snaphandle in the mock's log"
  ! has_dir "snapshots/$snaphandle" || fail "data directory of deleted snapshot $snaphandle left"
  kc -n "$ns" delete pvc src --wait=false > /dev/null
  kc wait --for=delete "pv/$pv" --timeout="${TIMEOUT}s" > /dev/null || fail "PV $pv not deleted"
  until_true "volume $handle gone from the driver" gone has_volume "$handle"
  deleted_in_driver DeleteVolume volume_id "$handle" || fail "no successful DeleteVolume $handle in the mock's log"
  ! has_dir "volumes/$handle" || fail "data directory of deleted volume $handle left"
  log "PVs (reclaim policy Delete) and snapshot deleted, and gone from the driver and its data dir, in $(since "$t")s"

  cleanup
  ns=""
  echo "ok: provision ${t_bound}s, snapshot readyToUse ${t_ready}s, restore (same bytes) ${t_restore}s, expand ${t_expand}s (zone ${zone:-none})"
}

case "${1:-}" in
  check) check ;;
  volumes) driver_list volumes ;;
  snapshots) driver_list snapshots ;;
  *) echo "usage: $0 check|volumes|snapshots" >&2; exit 2 ;;
esac

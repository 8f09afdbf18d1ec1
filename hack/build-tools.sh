#!/usr/bin/env bash
# Builds the pinned upstream binaries the local control plane runs (kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl, etcd, kwok; the CSI stack: the mock CSI
# driver, csi-provisioner, csi-resizer, csi-snapshotter, snapshot-controller), and the compose
# reference loader the differential test compares Kompox with (compose-oracle), an OTLP
# receiver for the tracing test (otelcol), from the Go
# module proxy into a cache OUTSIDE the checkout, so fresh clones on the same machine reuse it.
# A tool is rebuilt only when its pinned module (hack/tools/<tool>/go.{mod,sum}, plus any
# Go source of ours in it other than tools.go) changes; our own Go code is tested then too.
#
# Usage: hack/build-tools.sh            # build what is missing, print the bin dir
#        hack/build-tools.sh TOOL...    # only these (names of hack/tools/*), whatever KOMPOX_REAL_NODE says
#        hack/build-tools.sh --missing [TOOL...]   # print the tools that a build would (re)build, build nothing
#
# Without names: the control plane's tools, and with KOMPOX_REAL_NODE=1 also the real node's
# (kubelet … coredns). The binaries that only go into images (traefik, gitea) are built when
# named: hack/images.sh names them.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/lib/common.sh
source "$here/lib/common.sh"

mkdir -p "$KOMPOX_BIN"
DRY=0
if [ "${1:-}" = --missing ]; then DRY=1; shift; fi
SELECT=("$@")
for t in "${SELECT[@]}"; do
  [ -d "$here/tools/$t" ] || die "no tool $t (one of: $(cd "$here/tools" && echo *))"
done
# selected <tool> <group>: whether this run builds it. group: core (always), node (KOMPOX_REAL_NODE=1),
# image (only when named).
selected() {
  local t
  if [ ${#SELECT[@]} -gt 0 ]; then
    for t in "${SELECT[@]}"; do [ "$t" = "$1" ] && return 0; done
    return 1
  fi
  case $2 in
    core) return 0 ;;
    node) [ "${KOMPOX_REAL_NODE:-0}" = 1 ] ;;
    *) return 1 ;;
  esac
}

# binname <package>: the file go build writes for a main package (etcd's is renamed).
binname() {
  case $1 in
    go.etcd.io/etcd/server/v3) echo etcd ;;
    *) basename "$1" ;;
  esac
}

# build <module dir> <ldflags> <package>...
build() {
  local mod=$1 ldflags=$2; shift 2
  selected "$(basename "$mod")" "${group:-core}" || return 0
  local stamp="$KOMPOX_BIN/.$(basename "$mod").stamp"
  local want
  # tools.go only pins imports; a module with a main package of ours (csi-mock) hashes its
  # sources too. For the other modules this is exactly go.mod + go.sum, as before.
  want=$({
    cat "$mod/go.mod" "$mod/go.sum"
    find "$mod" -name '*.go' ! -name tools.go -type f | LC_ALL=C sort | xargs -r cat
  } | sha256sum | cut -c1-64)
  local missing=0 pkg
  for pkg in "$@"; do [ -x "$KOMPOX_BIN/$(binname "$pkg")" ] || missing=1; done
  if [ "$missing" = 0 ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  if [ $DRY = 1 ]; then basename "$mod"; return 0; fi
  # main.version as the upstream Makefiles set it (-X main.version=<tag>), from the pin.
  if [ -n "${ver_module:-}" ]; then
    ldflags="$ldflags -X main.version=$(cd "$mod" && GOFLAGS=-mod=readonly go list -m -f '{{.Version}}' "$ver_module")"
  fi
  log "building $(basename "$mod"): $* (cold builds take minutes)"
  local start=$SECONDS
  # Our own Go code (csi-mock) is tested whenever it is rebuilt; a failing test fails the build.
  if find "$mod" -name '*_test.go' -type f | grep -q .; then
    (cd "$mod" && GOFLAGS=-mod=readonly go test -count=1 ./...)
  fi
  # cgo=1 for a tool that needs C (runc: libseccomp); tags=… as the upstream Makefile sets them.
  (cd "$mod" && GOFLAGS=-mod=readonly CGO_ENABLED=${cgo:-0} go build -trimpath -tags "${tags:-}" \
    -ldflags "-s -w $ldflags" -o "$KOMPOX_BIN/" "$@")
  # etcd's main package is its server module's root, which go names "server".
  if [ -x "$KOMPOX_BIN/server" ]; then mv -f "$KOMPOX_BIN/server" "$KOMPOX_BIN/etcd"; fi
  echo "$want" > "$stamp"
  log "built $(basename "$mod") in $((SECONDS - start))s"
}

v="gitVersion=$K8S_VERSION gitMajor=${K8S_MINOR%%.*} gitMinor=${K8S_MINOR#*.} gitTreeState=clean"
ld=""
for kv in $v; do
  ld="$ld -X k8s.io/component-base/version.$kv -X k8s.io/client-go/pkg/version.$kv"
done
build "$here/tools/k8s" "$ld" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
build "$here/tools/etcd" "" go.etcd.io/etcd/server/v3
[ -x "$KOMPOX_BIN/etcd" ] || die "etcd binary missing after build"
build "$here/tools/kwok" "" sigs.k8s.io/kwok/cmd/kwok

# kwok needs Stage objects describing node and pod lifecycles. Take kwok's own
# "fast" stages from the pinned module (the same ones kwokctl uses by default).
stages="$KOMPOX_BIN/kwok-stages.yaml"
if [ $DRY = 0 ] && [ -s "$KOMPOX_BIN/.kwok.stamp" ] &&
  { [ ! -s "$stages" ] || [ "$stages" -ot "$KOMPOX_BIN/.kwok.stamp" ]; }; then
  kwokdir=$(cd "$here/tools/kwok" && GOFLAGS=-mod=readonly go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
  {
    for f in "$kwokdir"/kustomize/stage/node/fast/node-initialize.yaml \
      "$kwokdir"/kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
      "$kwokdir"/kustomize/stage/pod/fast/pod-*.yaml; do
      echo "---"; cat "$f"
    done
  } > "$stages.tmp"
  mv "$stages.tmp" "$stages"
fi

# The CSI stack (hack/README.md, "CSI"). The mock driver is upstream Kubernetes' e2e mock
# CSI service behind a small main of ours (hack/tools/csi-mock/cmd/csi-mock-driver).
build "$here/tools/csi-mock" "" kompox.dev/hack/tools/csi-mock/cmd/csi-mock-driver
ver_module=github.com/kubernetes-csi/external-provisioner/v6 \
  build "$here/tools/csi-provisioner" "" github.com/kubernetes-csi/external-provisioner/v6/cmd/csi-provisioner
ver_module=github.com/kubernetes-csi/external-resizer/v2 \
  build "$here/tools/csi-resizer" "" github.com/kubernetes-csi/external-resizer/v2/cmd/csi-resizer
ver_module=github.com/kubernetes-csi/external-snapshotter/v8 \
  build "$here/tools/snapshotter" "" github.com/kubernetes-csi/external-snapshotter/v8/cmd/csi-snapshotter \
  github.com/kubernetes-csi/external-snapshotter/v8/cmd/snapshot-controller

# The VolumeSnapshot CRDs, from the pinned external-snapshotter client module (group
# snapshot CRDs are left out: the mock has no group controller service).
crds="$KOMPOX_BIN/../snapshot-crds.yaml"
if [ $DRY = 0 ] && [ -s "$KOMPOX_BIN/.snapshotter.stamp" ] &&
  { [ ! -s "$crds" ] || [ "$crds" -ot "$KOMPOX_BIN/.snapshotter.stamp" ]; }; then
  clientdir=$(cd "$here/tools/snapshotter" && GOFLAGS=-mod=readonly go list -m -f '{{.Dir}}' \
    github.com/kubernetes-csi/external-snapshotter/client/v8)
  {
    for r in volumesnapshotclasses volumesnapshotcontents volumesnapshots; do
      echo "---"; cat "$clientdir/config/crd/snapshot.storage.k8s.io_$r.yaml"
    done
  } > "$crds.tmp"
  mv "$crds.tmp" "$crds"
fi

# compose-spec's reference loader behind a small main of ours (hack/tools/compose-oracle): the
# oracle of the differential test cli/tests/compose_oracle.rs.
build "$here/tools/compose-oracle" "" kompox.dev/hack/tools/compose-oracle/cmd/compose-oracle
# An OpenTelemetry Collector (OTLP receiver + file exporter) behind a small main of ours: the
# receiver the tracing e2e test (tests/e2e/tests/tracing.rs) points the servers' OTLP exporter at.
build "$here/tools/otelcol" "" kompox.dev/hack/tools/otelcol/cmd/otelcol
# Helm, for the packaging tests (tests/e2e/tests/packaging.rs): `helm template` of charts/kompox
# must equal what `kubectl kompox install` applies, and `helm install` must bring Kompox up.
build "$here/tools/helm" \
  "-X helm.sh/helm/v4/internal/version.version=$(cd "$here/tools/helm" && GOFLAGS=-mod=readonly go list -m -f '{{.Version}}' helm.sh/helm/v4)" \
  helm.sh/helm/v4/cmd/helm
# The real node (KOMPOX_REAL_NODE=1; hack/README.md, "The real node"): kubelet and kube-proxy,
# containerd with its runc shim, runc (cgo, libseccomp), the CNI plugins, crictl, and the
# pause image's binary (pause.c of the pinned Kubernetes module, compiled static).
group=node
build "$here/tools/kubelet" "$ld" k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy
cver() { (cd "$here/tools/$1" && GOFLAGS=-mod=readonly go list -m -f '{{.Version}}' "$2"); }
build "$here/tools/containerd" \
  "-X github.com/containerd/containerd/v2/version.Version=$(cver containerd github.com/containerd/containerd/v2)" \
  github.com/containerd/containerd/v2/cmd/containerd \
  github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 github.com/containerd/containerd/v2/cmd/ctr
if selected runc node && [ $DRY = 0 ]; then
  pkg-config --exists libseccomp || die "runc needs libseccomp's headers: apt-get install libseccomp-dev pkg-config"
fi
cgo=1 tags="seccomp urfave_cli_no_docs" build "$here/tools/runc" \
  "-X main.version=$(cver runc github.com/opencontainers/runc)" github.com/opencontainers/runc
build "$here/tools/cni" "" github.com/containernetworking/plugins/plugins/main/bridge \
  github.com/containernetworking/plugins/plugins/main/loopback \
  github.com/containernetworking/plugins/plugins/ipam/host-local \
  github.com/containernetworking/plugins/plugins/meta/portmap
build "$here/tools/crictl" "-X sigs.k8s.io/cri-tools/pkg/version.Version=$(cver crictl sigs.k8s.io/cri-tools)" \
  sigs.k8s.io/cri-tools/cmd/crictl
# The cluster DNS: a process of this machine, next to the kubelet.
build "$here/tools/coredns" "" kompox.dev/hack/tools/coredns/cmd/coredns
# The ingress controller `kubectl kompox install` runs (hack/images.sh packs it into the image
# install names).
group=image
if selected traefik image; then
  build "$here/tools/traefik" \
    "-X github.com/traefik/traefik/v3/pkg/version.Version=$(cver traefik github.com/traefik/traefik/v3)" \
    github.com/traefik/traefik/v3/cmd/traefik
fi
# Gitea at the version samples/gitea runs, and environment-to-ini, which its image's start-up
# script runs (hack/images.sh packs both with git from Debian into the image the sample
# names, as upstream's Dockerfile does with Alpine). No bindata tag: templates, options and
# public/ are read from the image's /app/gitea, copied from the same module; no cgo (the
# sample's database is postgres, so no sqlite tag).
if selected gitea image; then
  gver=$(cver gitea code.gitea.io/gitea)
  build "$here/tools/gitea" "-X main.Version=${gver#v} -X main.Tags= -X main.MakeVersion=$(go env GOVERSION)" \
    code.gitea.io/gitea code.gitea.io/gitea/contrib/environment-to-ini
fi
group=node
if selected kubelet node && [ $DRY = 0 ] &&
  { [ ! -x "$KOMPOX_BIN/pause" ] || [ "$KOMPOX_BIN/pause" -ot "$KOMPOX_BIN/.kubelet.stamp" ]; }; then
  k8sdir=$(cd "$here/tools/kubelet" && GOFLAGS=-mod=readonly go list -m -f '{{.Dir}}' k8s.io/kubernetes)
  cc -Os -Wall -Werror -static -DVERSION="$K8S_VERSION" -o "$KOMPOX_BIN/pause.tmp" "$k8sdir/build/pause/linux/pause.c"
  strip "$KOMPOX_BIN/pause.tmp"
  mv -f "$KOMPOX_BIN/pause.tmp" "$KOMPOX_BIN/pause"
fi
[ $DRY = 1 ] || echo "$KOMPOX_BIN"

//go:build tools

// Package tools pins the upstream Kubernetes node binaries (kubelet, kube-proxy) that
// hack/cluster.sh runs for the real node, and the pause container's source
// (build/pause/linux/pause.c of the same module). Nothing here is Kompox code.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kubelet"
)

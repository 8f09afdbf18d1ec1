//go:build tools

// Package tools pins the upstream Kubernetes control-plane binaries that
// hack/cluster.sh runs. Nothing here is Kompox code.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)

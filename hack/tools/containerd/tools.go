//go:build tools

// Package tools pins github.com/containerd/containerd/v2 v2.4.2 for hack/build-tools.sh. Nothing here is Kompox code.
package tools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
)

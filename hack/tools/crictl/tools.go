//go:build tools

// Package tools pins sigs.k8s.io/cri-tools v1.37.0 for hack/build-tools.sh. Nothing here is Kompox code.
package tools

import (
	_ "sigs.k8s.io/cri-tools/cmd/crictl"
)

//go:build tools

// Package tools pins github.com/opencontainers/runc v1.5.3 for hack/build-tools.sh. Nothing here is Kompox code.
package tools

import (
	_ "github.com/opencontainers/runc"
)

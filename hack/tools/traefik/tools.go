//go:build tools

// Package tools pins github.com/traefik/traefik/v3 v3.6.12 (the ingress controller `kubectl
// kompox install` runs) for hack/build-tools.sh. Nothing here is Kompox code.
package tools

import (
	_ "github.com/traefik/traefik/v3/cmd/traefik"
)

//go:build tools

// Package tools pins Helm, whose `helm template` and `helm install` the packaging tests run
// against charts/kompox.
package tools

import _ "helm.sh/helm/v4/cmd/helm"

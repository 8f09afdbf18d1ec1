//go:build tools

// Package tools pins the upstream CSI external-resizer, the sidecar that turns a larger
// PVC request into a CSI ControllerExpandVolume call, so StorageClass kompox-csi's
// allowVolumeExpansion really expands. Nothing here is Kompox code.
package tools

import _ "github.com/kubernetes-csi/external-resizer/v2/cmd/csi-resizer"

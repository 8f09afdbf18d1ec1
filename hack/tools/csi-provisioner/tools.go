//go:build tools

// Package tools pins the upstream CSI external-provisioner, the sidecar that turns
// PersistentVolumeClaims into CSI CreateVolume/DeleteVolume calls. hack/cluster.sh
// runs it next to the mock CSI driver. Nothing here is Kompox code.
package tools

import _ "github.com/kubernetes-csi/external-provisioner/v6/cmd/csi-provisioner"

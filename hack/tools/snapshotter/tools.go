//go:build tools

// Package tools pins the upstream CSI external-snapshotter: the csi-snapshotter
// sidecar (VolumeSnapshotContent -> CSI CreateSnapshot/DeleteSnapshot) and the
// snapshot-controller (VolumeSnapshot <-> VolumeSnapshotContent). The VolumeSnapshot
// CRDs are copied from the client module at build time. Nothing here is Kompox code.
package tools

import (
	_ "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	_ "github.com/kubernetes-csi/external-snapshotter/v8/cmd/csi-snapshotter"
	_ "github.com/kubernetes-csi/external-snapshotter/v8/cmd/snapshot-controller"
)

package main

import (
	"context"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	mockservice "k8s.io/kubernetes/test/e2e/storage/drivers/csi-test/mock/service"
)

func TestExpansionIsCappedAtTheCreationLimit(t *testing.T) {
	ctx := context.Background()
	m := newMaxSize(mockservice.New(mockservice.Config{DriverName: "test.csi", DisableAttach: true}))
	created, err := m.CreateVolume(ctx, sizedVolumeReq("v", 1<<30, nil))
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetVolume().GetVolumeId()
	expand := func(bytes int64) (*csi.ControllerExpandVolumeResponse, error) {
		return m.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{
			VolumeId: id, CapacityRange: &csi.CapacityRange{RequiredBytes: bytes},
		})
	}
	if r, err := expand(2 << 30); err != nil || r.GetCapacityBytes() != 2<<30 {
		t.Fatalf("2 GiB: %v, %v", r, err)
	}
	for _, bytes := range []int64{mockservice.MaxStorageCapacity, 2 * mockservice.MaxStorageCapacity} {
		_, err := expand(bytes)
		if status.Code(err) != codes.OutOfRange {
			t.Fatalf("%d bytes: want OutOfRange, got %v", bytes, err)
		}
	}
	// A refused expansion leaves the volume as it was.
	vols, err := m.ListVolumes(ctx, &csi.ListVolumesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range vols.GetEntries() {
		if e.GetVolume().GetVolumeId() == id && e.GetVolume().GetCapacityBytes() != 2<<30 {
			t.Fatalf("capacity after refusals: %d", e.GetVolume().GetCapacityBytes())
		}
	}
}

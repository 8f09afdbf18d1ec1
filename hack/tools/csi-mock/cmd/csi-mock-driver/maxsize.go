package main

// The upstream mock refuses to create a volume of MaxStorageCapacity (1 TiB) or more with
// OutOfRange, as a cloud refuses a disk above its SKU's limit, but expands a volume to any
// size. maxSize applies the same limit to ControllerExpandVolume, so an expansion a real
// driver would refuse for good is refused here too (the external-resizer marks such a PVC
// ControllerResizeInfeasible).

import (
	"context"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	mockservice "k8s.io/kubernetes/test/e2e/storage/drivers/csi-test/mock/service"
)

type maxSize struct {
	csi.ControllerServer
	limit int64
}

func (m maxSize) ControllerExpandVolume(ctx context.Context, req *csi.ControllerExpandVolumeRequest) (*csi.ControllerExpandVolumeResponse, error) {
	if got := req.GetCapacityRange().GetRequiredBytes(); got >= m.limit {
		return nil, status.Errorf(codes.OutOfRange, "Requested capacity %d exceeds maximum allowed %d", got, m.limit)
	}
	return m.ControllerServer.ControllerExpandVolume(ctx, req)
}

// newMaxSize caps expansion at the mock's own creation limit.
func newMaxSize(inner csi.ControllerServer) maxSize {
	return maxSize{ControllerServer: inner, limit: mockservice.MaxStorageCapacity}
}

package main

// Snapshot sizes. The upstream mock answers CreateSnapshot and ListSnapshots with
// size_bytes 0 ("unknown" in the CSI spec), so csi-snapshotter records no restoreSize and a
// restore cannot be sized from the snapshot. snapshotSizes gives each snapshot the capacity
// its source volume had when the snapshot was taken, as the CSI hostpath driver does, and
// keeps that size for the snapshot's life: a repeated CreateSnapshot (the mock returns the
// existing snapshot) and ListSnapshots answer the same size even after the source volume
// was expanded.

import (
	"context"
	"sync"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
)

type snapshotSizes struct {
	csi.ControllerServer // the upstream mock, possibly behind zonal
	// mu makes "the mock creates or deletes a snapshot" and the change of sizes one step,
	// so ListSnapshots, which reads sizes after asking the mock, finds every snapshot the
	// mock listed (unless it was deleted in between).
	mu    sync.Mutex
	sizes map[string]int64 // snapshot ID → bytes
}

// newSnapshotSizes records the sizes of the snapshots the mock starts with (its seeded ones;
// one whose source volume is not there keeps the mock's unknown size).
func newSnapshotSizes(ctx context.Context, inner csi.ControllerServer) (*snapshotSizes, error) {
	s := &snapshotSizes{ControllerServer: inner, sizes: map[string]int64{}}
	token := ""
	for {
		r, err := inner.ListSnapshots(ctx, &csi.ListSnapshotsRequest{StartingToken: token})
		if err != nil {
			return nil, err
		}
		for _, e := range r.GetEntries() {
			snap := e.GetSnapshot()
			size, err := s.volumeCapacity(ctx, snap.GetSourceVolumeId())
			switch {
			case status.Code(err) == codes.NotFound:
			case err != nil:
				return nil, err
			default:
				s.sizes[snap.GetSnapshotId()] = size
			}
		}
		if token = r.GetNextToken(); token == "" {
			return s, nil
		}
	}
}

// volumeCapacity is the capacity of volume id now; codes.NotFound if there is none.
func (s *snapshotSizes) volumeCapacity(ctx context.Context, id string) (int64, error) {
	r, err := s.ControllerServer.ControllerGetVolume(ctx, &csi.ControllerGetVolumeRequest{VolumeId: id})
	if err != nil {
		if status.Code(err) == codes.NotFound {
			return 0, status.Errorf(codes.NotFound, "source volume %s not found", id)
		}
		return 0, err
	}
	return r.GetVolume().GetCapacityBytes(), nil
}

// sized is a copy of snap (the mock's answers may share its stored objects) with the
// recorded size, or snap itself when none is recorded.
func (s *snapshotSizes) sized(snap *csi.Snapshot) *csi.Snapshot {
	size, ok := s.sizes[snap.GetSnapshotId()]
	if !ok {
		return snap
	}
	out := *snap
	out.SizeBytes = size
	return &out
}

// CreateSnapshot: a new snapshot gets its source volume's capacity now; a repeated call
// answers the recorded size. The mock does not check that the source volume exists: when
// it does not, the new snapshot is deleted again and the call fails with codes.NotFound,
// as the CSI spec asks.
func (s *snapshotSizes) CreateSnapshot(ctx context.Context, req *csi.CreateSnapshotRequest) (*csi.CreateSnapshotResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	resp, err := s.ControllerServer.CreateSnapshot(ctx, req)
	if err != nil || resp.GetSnapshot() == nil {
		return resp, err
	}
	id := resp.GetSnapshot().GetSnapshotId()
	if _, ok := s.sizes[id]; !ok {
		size, err := s.volumeCapacity(ctx, req.GetSourceVolumeId())
		if err != nil {
			if _, uerr := s.ControllerServer.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: id}); uerr != nil {
				klog.ErrorS(uerr, "undoing the mock's snapshot of a missing volume", "id", id)
			}
			return nil, err
		}
		s.sizes[id] = size
	}
	return &csi.CreateSnapshotResponse{Snapshot: s.sized(resp.GetSnapshot())}, nil
}

func (s *snapshotSizes) DeleteSnapshot(ctx context.Context, req *csi.DeleteSnapshotRequest) (*csi.DeleteSnapshotResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	resp, err := s.ControllerServer.DeleteSnapshot(ctx, req)
	if err == nil {
		delete(s.sizes, req.GetSnapshotId())
	}
	return resp, err
}

// ListSnapshots: the mock's page, each snapshot with its recorded size.
func (s *snapshotSizes) ListSnapshots(ctx context.Context, req *csi.ListSnapshotsRequest) (*csi.ListSnapshotsResponse, error) {
	resp, err := s.ControllerServer.ListSnapshots(ctx, req)
	if err != nil || resp == nil {
		return resp, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := &csi.ListSnapshotsResponse{NextToken: resp.GetNextToken()}
	for _, e := range resp.GetEntries() {
		out.Entries = append(out.Entries, &csi.ListSnapshotsResponse_Entry{Snapshot: s.sized(e.GetSnapshot())})
	}
	return out, nil
}

package main

// The data plane behind -data-dir, laid out like the CSI hostpath driver's:
//
//	DIR/volumes/<volume id>/      a volume's files
//	DIR/snapshots/<snapshot id>/  a copy of the source volume's files, taken at CreateSnapshot
//	DIR/tmp/                      copies in progress, renamed into place when complete
//
// dataPlane wraps the upstream mock's controller service: the mock keeps deciding IDs,
// idempotency and errors. Once it has created an object, dataPlane creates or copies the
// object's directory; before it deletes one, dataPlane removes the directory. A directory that exists is never
// touched by a create: a repeated CreateVolume/CreateSnapshot (for which the mock returns
// the existing object) keeps the data as it is. A copy is made in DIR/tmp and renamed into
// place, so a failed one leaves no half directory; the mock's new object is then deleted
// again and the call fails with codes.Internal.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
)

const (
	volumesDir   = "volumes"
	snapshotsDir = "snapshots"
	tmpDir       = "tmp"
)

type dataPlane struct {
	csi.ControllerServer // the upstream mock behind snapshotSizes (and zonal, with -topology-key)
	dir                  string
	// mu serialises the calls that create or delete objects, so that "ask the mock, then
	// populate the directory if it is missing" is one step for every other such call.
	mu sync.Mutex
}

// newDataPlane prepares dir and gives every object the mock starts with (its seeded
// volumes and snapshots) an empty directory. dir must not hold volumes or snapshots of an
// earlier process: their objects died with it, and the new process's IDs would reuse them.
func newDataPlane(ctx context.Context, inner csi.ControllerServer, dir string) (*dataPlane, error) {
	d := &dataPlane{ControllerServer: inner, dir: dir}
	for _, sub := range []string{volumesDir, snapshotsDir} {
		p := filepath.Join(dir, sub)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return nil, err
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, err
		}
		if len(entries) > 0 {
			return nil, fmt.Errorf("%s is not empty: it holds data of an earlier driver process, whose volumes and snapshots are gone (they live in memory); empty it", p)
		}
	}
	if err := os.RemoveAll(filepath.Join(dir, tmpDir)); err != nil {
		return nil, err
	}
	if err := os.Mkdir(filepath.Join(dir, tmpDir), 0o755); err != nil {
		return nil, err
	}

	var seeds []string
	vols, err := inner.ListVolumes(ctx, &csi.ListVolumesRequest{})
	if err != nil {
		return nil, err
	}
	for _, e := range vols.GetEntries() {
		seeds = append(seeds, filepath.Join(volumesDir, e.GetVolume().GetVolumeId()))
	}
	snaps, err := inner.ListSnapshots(ctx, &csi.ListSnapshotsRequest{})
	if err != nil {
		return nil, err
	}
	for _, e := range snaps.GetEntries() {
		seeds = append(seeds, filepath.Join(snapshotsDir, e.GetSnapshot().GetSnapshotId()))
	}
	for _, s := range seeds {
		if err := os.Mkdir(filepath.Join(dir, s), 0o755); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// path is the directory of a volume or snapshot; ok is false for an ID that is not a
// single path element (no object of ours can have it).
func (d *dataPlane) path(kind, id string) (p string, ok bool) {
	if !filepath.IsLocal(id) || filepath.Base(id) != id {
		return "", false
	}
	return filepath.Join(d.dir, kind, id), true
}

// populate creates dst as a copy of src ("": empty), through DIR/tmp.
func (d *dataPlane) populate(dst, src string) error {
	if src != "" {
		if fi, err := os.Stat(src); err != nil || !fi.IsDir() {
			return fmt.Errorf("no data directory %s", src)
		}
	}
	tmp, err := os.MkdirTemp(filepath.Join(d.dir, tmpDir), filepath.Base(dst)+"-")
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			_ = os.RemoveAll(tmp)
		}
	}()
	if src != "" {
		if err := os.CopyFS(tmp, os.DirFS(src)); err != nil {
			return fmt.Errorf("copying %s: %w", src, err)
		}
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	done = true
	return nil
}

// exists reports whether p is there (a directory or not: either way it is not ours to fill).
func exists(p string) (bool, error) {
	_, err := os.Lstat(p)
	if os.IsNotExist(err) {
		return false, nil
	}
	return err == nil, err
}

// create gives the object the mock answered with its directory, unless it has one: a
// copy of object srcID of srcKind, or empty when srcKind is "". On failure it calls undo
// and returns a codes.Internal error.
func (d *dataPlane) create(kind, id, srcKind, srcID string, undo func() error) error {
	dst, ok := d.path(kind, id)
	if !ok {
		return status.Errorf(codes.Internal, "the mock answered with %s ID %q, which cannot name a directory", kind, id)
	}
	have, err := exists(dst)
	if err == nil && have {
		return nil
	}
	src := ""
	if err == nil && srcKind != "" {
		if src, ok = d.path(srcKind, srcID); !ok {
			err = fmt.Errorf("source ID %q cannot name a directory", srcID)
		}
	}
	if err == nil {
		err = d.populate(dst, src)
	}
	if err == nil {
		klog.V(2).InfoS("data directory created", "path", dst, "copyOf", src)
		return nil
	}
	if uerr := undo(); uerr != nil {
		klog.ErrorS(uerr, "undoing the mock's object after a failed copy", "kind", kind, "id", id)
	}
	return status.Errorf(codes.Internal, "%s %s: %v", kind, id, err)
}

// CreateVolume: an empty directory, or a copy of the content source (snapshot or volume).
func (d *dataPlane) CreateVolume(ctx context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	resp, err := d.ControllerServer.CreateVolume(ctx, req)
	if err != nil {
		return resp, err
	}
	id := resp.GetVolume().GetVolumeId()
	// The source from the request: the mock's response names a snapshot by its list index.
	srcKind, srcID := "", ""
	switch s := req.GetVolumeContentSource().GetType().(type) {
	case *csi.VolumeContentSource_Snapshot:
		srcKind, srcID = snapshotsDir, s.Snapshot.GetSnapshotId()
	case *csi.VolumeContentSource_Volume:
		srcKind, srcID = volumesDir, s.Volume.GetVolumeId()
	}
	undo := func() error {
		_, err := d.ControllerServer.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id})
		return err
	}
	if err := d.create(volumesDir, id, srcKind, srcID, undo); err != nil {
		return nil, err
	}
	return resp, nil
}

// CreateSnapshot: a copy of the source volume's directory as it is now. (The mock does not
// check that the source volume exists; without its directory the copy fails.)
func (d *dataPlane) CreateSnapshot(ctx context.Context, req *csi.CreateSnapshotRequest) (*csi.CreateSnapshotResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	resp, err := d.ControllerServer.CreateSnapshot(ctx, req)
	if err != nil {
		return resp, err
	}
	id := resp.GetSnapshot().GetSnapshotId()
	undo := func() error {
		_, err := d.ControllerServer.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: id})
		return err
	}
	if err := d.create(snapshotsDir, id, volumesDir, req.GetSourceVolumeId(), undo); err != nil {
		return nil, err
	}
	return resp, nil
}

// remove deletes an object's directory, before the mock deletes the object: whoever sees
// it gone from ListVolumes/ListSnapshots finds its data gone too. A failed removal fails
// the call, and the retry removes what is left.
func (d *dataPlane) remove(kind, id string) error {
	p, ok := d.path(kind, id)
	if !ok {
		return nil
	}
	if err := os.RemoveAll(p); err != nil {
		return status.Errorf(codes.Internal, "removing %s: %v", p, err)
	}
	return nil
}

func (d *dataPlane) DeleteVolume(ctx context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.remove(volumesDir, req.GetVolumeId()); err != nil {
		return nil, err
	}
	return d.ControllerServer.DeleteVolume(ctx, req)
}

func (d *dataPlane) DeleteSnapshot(ctx context.Context, req *csi.DeleteSnapshotRequest) (*csi.DeleteSnapshotResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.remove(snapshotsDir, req.GetSnapshotId()); err != nil {
		return nil, err
	}
	return d.ControllerServer.DeleteSnapshot(ctx, req)
}

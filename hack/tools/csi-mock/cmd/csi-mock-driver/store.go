package main

// The storage backend behind -data-dir: volumes and snapshots kept on disk, as a cloud keeps
// its disks and snapshots outside any one driver process. Laid out like the CSI hostpath
// driver's data, plus a catalog:
//
//	DIR/volumes/<id>/            a volume's files
//	DIR/snapshots/<id>/          a copy of the source volume's files, taken at CreateSnapshot
//	DIR/catalog/volumes/<id>     the volume's record (JSON: name, capacity, zone, source)
//	DIR/catalog/snapshots/<id>   the snapshot's record (JSON: name, source volume, size, time)
//	DIR/tmp/                     copies and records being written, renamed into place when complete
//	DIR/faults/<Method>          optional: a fault to inject (below)
//	DIR/.lock                    flock: one changing call at a time, across processes
//
// Several driver processes may serve one DIR (the local clusters' drivers do: two clusters
// of one cloud account and region see the same disks and snapshots), and a restarted driver
// finds everything it had: every call reads the catalog, none keeps objects in memory. IDs
// are random, so no two processes hand out the same one.
//
// store replaces the upstream mock's volume and snapshot bookkeeping (which lives in one
// process's memory, with IDs counted from 1); the mock still answers everything else
// (identity, capabilities, capacity, the node service).
//
// A fault file makes every call of that method fail with the gRPC code and message it holds
// ("Internal: disk quota exhausted"), before anything changes, until it is removed — how the
// tests make a snapshot fail in a cloud, without a special build.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/klog/v2"

	mockservice "k8s.io/kubernetes/test/e2e/storage/drivers/csi-test/mock/service"
)

const (
	volumesDir   = "volumes"
	snapshotsDir = "snapshots"
	catalogDir   = "catalog"
	tmpDir       = "tmp"
	faultsDir    = "faults"
	// defaultCapacity is what a volume gets when the request names no size (the mock's 100 GiB).
	defaultCapacity = int64(100) << 30
	// maxCapacity: creating or expanding to this size or more is refused with OutOfRange, as a
	// cloud refuses a disk above its SKU's limit (the mock's limit, 1 TiB).
	maxCapacity = mockservice.MaxStorageCapacity
)

// volumeRecord is a volume in the catalog.
type volumeRecord struct {
	ID       string            `json:"id"`
	Name     string            `json:"name"`
	Capacity int64             `json:"capacityBytes"`
	Topology map[string]string `json:"topology,omitempty"`
	// The content source: "snapshot" or "volume", and its ID.
	SourceKind string `json:"sourceKind,omitempty"`
	SourceID   string `json:"sourceID,omitempty"`
}

// snapshotRecord is a snapshot in the catalog.
type snapshotRecord struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Source     string            `json:"sourceVolumeID"`
	Size       int64             `json:"sizeBytes"`
	Created    time.Time         `json:"created"`
	Parameters map[string]string `json:"parameters,omitempty"`
}

type store struct {
	csi.ControllerServer // the upstream mock: capabilities, GetCapacity, publish (disabled)
	dir                  string
	topologyKey          string
	// mu and the flock on DIR/.lock: one changing call at a time, in this process and across
	// the processes sharing DIR.
	mu sync.Mutex
}

// newStore prepares dir (keeping what it holds: the objects of an earlier process, or of
// another one serving it now).
func newStore(inner csi.ControllerServer, dir, topologyKey string) (*store, error) {
	s := &store{ControllerServer: inner, dir: dir, topologyKey: topologyKey}
	for _, sub := range []string{volumesDir, snapshotsDir, tmpDir, faultsDir,
		filepath.Join(catalogDir, volumesDir), filepath.Join(catalogDir, snapshotsDir)} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, err
		}
	}
	// Copies left by a process killed mid-copy: nobody else copies while we hold the lock.
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	entries, err := os.ReadDir(filepath.Join(dir, tmpDir))
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, tmpDir, e.Name())); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// lock takes the store's lock; the returned function releases it.
func (s *store) lock() (func(), error) {
	s.mu.Lock()
	f, err := os.OpenFile(filepath.Join(s.dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		s.mu.Unlock()
		return nil, status.Errorf(codes.Internal, "opening the store's lock: %v", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		_ = f.Close()
		s.mu.Unlock()
		return nil, status.Errorf(codes.Internal, "locking the store: %v", err)
	}
	return func() {
		_ = f.Close() // releases the flock
		s.mu.Unlock()
	}, nil
}

// fault is the injected failure of method, if DIR/faults/<method> exists.
func (s *store) fault(method string) error {
	b, err := os.ReadFile(filepath.Join(s.dir, faultsDir, method))
	if err != nil {
		return nil
	}
	text := strings.TrimSpace(string(b))
	name, msg, _ := strings.Cut(text, ":")
	code := codes.Internal
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if c.String() == strings.TrimSpace(name) && c != codes.OK {
			code = c
		}
	}
	return status.Errorf(code, "injected fault (%s): %s", method, strings.TrimSpace(msg))
}

// plain reports whether id can be an object's ID: one path element of ours.
func plain(id string) bool {
	return id != "" && filepath.IsLocal(id) && filepath.Base(id) == id && !strings.HasPrefix(id, ".")
}

func newID(prefix string) (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return prefix + hex.EncodeToString(b), nil
}

func (s *store) recordPath(kind, id string) string {
	return filepath.Join(s.dir, catalogDir, kind, id)
}

// read fills v from the record of kind/id; found is false when there is none.
func (s *store) read(kind, id string, v any) (found bool, err error) {
	if !plain(id) {
		return false, nil
	}
	b, err := os.ReadFile(s.recordPath(kind, id))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, status.Errorf(codes.Internal, "reading %s %s: %v", kind, id, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, status.Errorf(codes.Internal, "%s %s: bad record: %v", kind, id, err)
	}
	return true, nil
}

// write stores the record of kind/id, through DIR/tmp.
func (s *store) write(kind, id string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Join(s.dir, tmpDir), "record-")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), s.recordPath(kind, id))
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}

// all reads every record of kind, sorted by ID; new(T) for each.
func all[T any](s *store, kind string) ([]T, error) {
	entries, err := os.ReadDir(filepath.Join(s.dir, catalogDir, kind))
	if err != nil {
		return nil, status.Errorf(codes.Internal, "listing %s: %v", kind, err)
	}
	var out []T
	for _, e := range entries {
		var v T
		found, err := s.read(kind, e.Name(), &v)
		if err != nil {
			return nil, err
		}
		if found {
			out = append(out, v)
		}
	}
	return out, nil // ReadDir sorts by name, the ID
}

// populate creates DIR/kind/id as a copy of src ("": empty) that keeps owners, modes and
// times (copyTree), through DIR/tmp, so a failed copy leaves no half directory.
func (s *store) populate(kind, id, src string) error {
	if src != "" {
		if fi, err := os.Stat(src); err != nil || !fi.IsDir() {
			return fmt.Errorf("no data directory %s", src)
		}
	}
	tmp, err := os.MkdirTemp(filepath.Join(s.dir, tmpDir), id+"-")
	if err != nil {
		return err
	}
	if src != "" {
		err = copyTree(tmp, src)
		if err != nil {
			err = fmt.Errorf("copying %s: %w", src, err)
		}
	} else {
		err = os.Chmod(tmp, 0o755)
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(s.dir, kind, id))
	}
	if err != nil {
		_ = os.RemoveAll(tmp)
	}
	return err
}

// remove deletes an object: its record first (whoever lists finds it gone), then its data.
func (s *store) remove(kind, id string) error {
	if !plain(id) {
		return nil
	}
	if err := os.Remove(s.recordPath(kind, id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return status.Errorf(codes.Internal, "removing %s %s: %v", kind, id, err)
	}
	if err := os.RemoveAll(filepath.Join(s.dir, kind, id)); err != nil {
		return status.Errorf(codes.Internal, "removing the data of %s %s: %v", kind, id, err)
	}
	return nil
}

func (v volumeRecord) csi() *csi.Volume {
	out := &csi.Volume{
		VolumeId:      v.ID,
		CapacityBytes: v.Capacity,
		VolumeContext: map[string]string{"name": v.Name},
	}
	if v.Topology != nil {
		out.AccessibleTopology = []*csi.Topology{{Segments: v.Topology}}
	}
	switch v.SourceKind {
	case snapshotsDir:
		out.ContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{
			Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: v.SourceID}}}
	case volumesDir:
		out.ContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{
			Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: v.SourceID}}}
	}
	return out
}

func (r snapshotRecord) csi() *csi.Snapshot {
	return &csi.Snapshot{
		SnapshotId:     r.ID,
		SourceVolumeId: r.Source,
		SizeBytes:      r.Size,
		CreationTime:   timestamppb.New(r.Created),
		ReadyToUse:     true,
	}
}

// CreateVolume: empty, or a copy of its content source (snapshot or volume). The volume is in
// the first requested segment of the topology key (preferred, else requisite). A repeated call
// for a name answers the existing volume, if it is large enough and of the same source.
func (s *store) CreateVolume(ctx context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "Volume Name cannot be empty")
	}
	if len(req.GetVolumeCapabilities()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "Volume Capabilities cannot be empty")
	}
	capacity := defaultCapacity
	if rb := req.GetCapacityRange().GetRequiredBytes(); rb > 0 {
		capacity = rb
	}
	if lb := req.GetCapacityRange().GetLimitBytes(); lb > 0 && lb < capacity {
		return nil, status.Errorf(codes.InvalidArgument, "limit_bytes %d below required_bytes %d", lb, capacity)
	}
	if capacity >= maxCapacity {
		return nil, status.Errorf(codes.OutOfRange, "Requested capacity %d exceeds maximum allowed %d", capacity, maxCapacity)
	}
	rec := volumeRecord{Name: req.GetName(), Capacity: capacity}
	switch src := req.GetVolumeContentSource().GetType().(type) {
	case *csi.VolumeContentSource_Snapshot:
		rec.SourceKind, rec.SourceID = snapshotsDir, src.Snapshot.GetSnapshotId()
	case *csi.VolumeContentSource_Volume:
		rec.SourceKind, rec.SourceID = volumesDir, src.Volume.GetVolumeId()
	}
	if s.topologyKey != "" {
		ar := req.GetAccessibilityRequirements()
		for _, t := range append(ar.GetPreferred(), ar.GetRequisite()...) {
			if v, ok := t.GetSegments()[s.topologyKey]; ok {
				rec.Topology = map[string]string{s.topologyKey: v}
				break
			}
		}
	}

	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := s.fault("CreateVolume"); err != nil {
		return nil, err
	}
	vols, err := all[volumeRecord](s, volumesDir)
	if err != nil {
		return nil, err
	}
	for _, v := range vols {
		if v.Name != rec.Name {
			continue
		}
		if v.Capacity < capacity || v.SourceKind != rec.SourceKind || v.SourceID != rec.SourceID {
			return nil, status.Errorf(codes.AlreadyExists, "Volume with name %s already exists", rec.Name)
		}
		return &csi.CreateVolumeResponse{Volume: v.csi()}, nil
	}
	src := ""
	switch rec.SourceKind {
	case snapshotsDir:
		var snap snapshotRecord
		found, err := s.read(snapshotsDir, rec.SourceID, &snap)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, status.Errorf(codes.NotFound, "Requested source snapshot %s not found", rec.SourceID)
		}
		if snap.Size > capacity {
			return nil, status.Errorf(codes.OutOfRange, "snapshot %s is %d bytes, more than the %d requested", snap.ID, snap.Size, capacity)
		}
	case volumesDir:
		var vol volumeRecord
		found, err := s.read(volumesDir, rec.SourceID, &vol)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, status.Errorf(codes.NotFound, "Requested source volume %s not found", rec.SourceID)
		}
	}
	if rec.SourceKind != "" {
		src = filepath.Join(s.dir, rec.SourceKind, rec.SourceID)
	}
	if rec.ID, err = newID("vol-"); err != nil {
		return nil, status.Errorf(codes.Internal, "volume ID: %v", err)
	}
	if err := s.populate(volumesDir, rec.ID, src); err != nil {
		return nil, status.Errorf(codes.Internal, "volume %s: %v", rec.ID, err)
	}
	if err := s.write(volumesDir, rec.ID, rec); err != nil {
		_ = os.RemoveAll(filepath.Join(s.dir, volumesDir, rec.ID))
		return nil, status.Errorf(codes.Internal, "volume %s: %v", rec.ID, err)
	}
	klog.V(2).InfoS("volume created", "id", rec.ID, "name", rec.Name, "copyOf", src)
	return &csi.CreateVolumeResponse{Volume: rec.csi()}, nil
}

// DeleteVolume removes the volume and its data; an unknown ID is already deleted.
func (s *store) DeleteVolume(ctx context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "Volume ID cannot be empty")
	}
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := s.fault("DeleteVolume"); err != nil {
		return nil, err
	}
	if err := s.remove(volumesDir, req.GetVolumeId()); err != nil {
		return nil, err
	}
	return &csi.DeleteVolumeResponse{}, nil
}

// volume is the catalog's volume id; codes.NotFound when there is none.
func (s *store) volume(id string) (volumeRecord, error) {
	var v volumeRecord
	if id == "" {
		return v, status.Error(codes.InvalidArgument, "Volume ID cannot be empty")
	}
	found, err := s.read(volumesDir, id, &v)
	if err == nil && !found {
		err = status.Errorf(codes.NotFound, "volume %s not found", id)
	}
	return v, err
}

func (s *store) ControllerGetVolume(ctx context.Context, req *csi.ControllerGetVolumeRequest) (*csi.ControllerGetVolumeResponse, error) {
	v, err := s.volume(req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	return &csi.ControllerGetVolumeResponse{
		Volume: v.csi(),
		Status: &csi.ControllerGetVolumeResponse_VolumeStatus{VolumeCondition: &csi.VolumeCondition{}},
	}, nil
}

func (s *store) ValidateVolumeCapabilities(ctx context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	if _, err := s.volume(req.GetVolumeId()); err != nil {
		return nil, err
	}
	if len(req.GetVolumeCapabilities()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "Volume Capabilities cannot be empty")
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext:      req.GetVolumeContext(),
		VolumeCapabilities: req.GetVolumeCapabilities(),
		Parameters:         req.GetParameters(),
	}}, nil
}

// ControllerExpandVolume grows a volume (never shrinks it), below the creation limit.
func (s *store) ControllerExpandVolume(ctx context.Context, req *csi.ControllerExpandVolumeRequest) (*csi.ControllerExpandVolumeResponse, error) {
	want := req.GetCapacityRange().GetRequiredBytes()
	if req.GetCapacityRange() == nil {
		return nil, status.Error(codes.InvalidArgument, "Request capacity cannot be empty")
	}
	if want >= maxCapacity {
		return nil, status.Errorf(codes.OutOfRange, "Requested capacity %d exceeds maximum allowed %d", want, maxCapacity)
	}
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := s.fault("ControllerExpandVolume"); err != nil {
		return nil, err
	}
	v, err := s.volume(req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	if want < v.Capacity {
		return nil, status.Error(codes.InvalidArgument, "cannot change volume capacity to a smaller size")
	}
	if want > v.Capacity {
		v.Capacity = want
		if err := s.write(volumesDir, v.ID, v); err != nil {
			return nil, status.Errorf(codes.Internal, "volume %s: %v", v.ID, err)
		}
	}
	return &csi.ControllerExpandVolumeResponse{CapacityBytes: v.Capacity}, nil
}

// page answers entries[token:token+max] and the next token, as the mock pages.
func page[T any](entries []T, token string, max int32) ([]T, string, error) {
	start := 0
	if token != "" {
		i, err := strconv.Atoi(token)
		if err != nil || i < 0 || i > len(entries) {
			return nil, "", status.Errorf(codes.Aborted, "startingToken=%s: not a position in %d entries", token, len(entries))
		}
		start = i
	}
	end := len(entries)
	if max > 0 && start+int(max) < end {
		end = start + int(max)
	}
	next := ""
	if end < len(entries) {
		next = strconv.Itoa(end)
	}
	return entries[start:end], next, nil
}

func (s *store) ListVolumes(ctx context.Context, req *csi.ListVolumesRequest) (*csi.ListVolumesResponse, error) {
	vols, err := all[volumeRecord](s, volumesDir)
	if err != nil {
		return nil, err
	}
	got, next, err := page(vols, req.GetStartingToken(), req.GetMaxEntries())
	if err != nil {
		return nil, err
	}
	out := &csi.ListVolumesResponse{NextToken: next}
	for _, v := range got {
		out.Entries = append(out.Entries, &csi.ListVolumesResponse_Entry{Volume: v.csi()})
	}
	return out, nil
}

// CreateSnapshot copies the source volume's files as they are now; the snapshot's size is
// the volume's capacity now, and stays so. A repeated call for a name answers the existing
// snapshot if it is of the same volume and parameters.
func (s *store) CreateSnapshot(ctx context.Context, req *csi.CreateSnapshotRequest) (*csi.CreateSnapshotResponse, error) {
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "Snapshot Name cannot be empty")
	}
	if req.GetSourceVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "Snapshot SourceVolumeId cannot be empty")
	}
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := s.fault("CreateSnapshot"); err != nil {
		return nil, err
	}
	snaps, err := all[snapshotRecord](s, snapshotsDir)
	if err != nil {
		return nil, err
	}
	for _, sn := range snaps {
		if sn.Name != req.GetName() {
			continue
		}
		if sn.Source != req.GetSourceVolumeId() || !sameParameters(sn.Parameters, req.GetParameters()) {
			return nil, status.Errorf(codes.AlreadyExists, "Snapshot with name %s already exists", sn.Name)
		}
		return &csi.CreateSnapshotResponse{Snapshot: sn.csi()}, nil
	}
	v, err := s.volume(req.GetSourceVolumeId())
	if status.Code(err) == codes.NotFound {
		return nil, status.Errorf(codes.NotFound, "source volume %s not found", req.GetSourceVolumeId())
	}
	if err != nil {
		return nil, err
	}
	rec := snapshotRecord{Name: req.GetName(), Source: v.ID, Size: v.Capacity,
		Created: time.Now().UTC(), Parameters: req.GetParameters()}
	if rec.ID, err = newID("snap-"); err != nil {
		return nil, status.Errorf(codes.Internal, "snapshot ID: %v", err)
	}
	if err := s.populate(snapshotsDir, rec.ID, filepath.Join(s.dir, volumesDir, v.ID)); err != nil {
		return nil, status.Errorf(codes.Internal, "snapshot %s: %v", rec.ID, err)
	}
	if err := s.write(snapshotsDir, rec.ID, rec); err != nil {
		_ = os.RemoveAll(filepath.Join(s.dir, snapshotsDir, rec.ID))
		return nil, status.Errorf(codes.Internal, "snapshot %s: %v", rec.ID, err)
	}
	klog.V(2).InfoS("snapshot created", "id", rec.ID, "name", rec.Name, "volume", v.ID)
	return &csi.CreateSnapshotResponse{Snapshot: rec.csi()}, nil
}

func sameParameters(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// DeleteSnapshot removes the snapshot and its data; an unknown ID is already deleted.
func (s *store) DeleteSnapshot(ctx context.Context, req *csi.DeleteSnapshotRequest) (*csi.DeleteSnapshotResponse, error) {
	if req.GetSnapshotId() == "" {
		return nil, status.Error(codes.InvalidArgument, "Snapshot ID cannot be empty")
	}
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := s.fault("DeleteSnapshot"); err != nil {
		return nil, err
	}
	if err := s.remove(snapshotsDir, req.GetSnapshotId()); err != nil {
		return nil, err
	}
	return &csi.DeleteSnapshotResponse{}, nil
}

// ListSnapshots: one by ID (none if unknown), those of a source volume, or all; paged.
func (s *store) ListSnapshots(ctx context.Context, req *csi.ListSnapshotsRequest) (*csi.ListSnapshotsResponse, error) {
	snaps, err := all[snapshotRecord](s, snapshotsDir)
	if err != nil {
		return nil, err
	}
	var match []snapshotRecord
	for _, sn := range snaps {
		if (req.GetSnapshotId() == "" || sn.ID == req.GetSnapshotId()) &&
			(req.GetSourceVolumeId() == "" || sn.Source == req.GetSourceVolumeId()) {
			match = append(match, sn)
		}
	}
	sort.Slice(match, func(i, j int) bool { return match[i].ID < match[j].ID })
	got, next, err := page(match, req.GetStartingToken(), req.GetMaxEntries())
	if err != nil {
		return nil, err
	}
	out := &csi.ListSnapshotsResponse{NextToken: next}
	for _, sn := range got {
		out.Entries = append(out.Entries, &csi.ListSnapshotsResponse_Entry{Snapshot: sn.csi()})
	}
	return out, nil
}

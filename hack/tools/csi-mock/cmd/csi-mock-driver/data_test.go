package main

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	mockservice "k8s.io/kubernetes/test/e2e/storage/drivers/csi-test/mock/service"
)

var ctx = context.Background()

func newTestPlane(t *testing.T) (*dataPlane, string) {
	t.Helper()
	dir := t.TempDir()
	svc := mockservice.New(mockservice.Config{DriverName: "test.csi", DisableAttach: true})
	// As main wires it: the data plane over snapshot sizes over the mock.
	sizes, err := newSnapshotSizes(ctx, svc)
	if err != nil {
		t.Fatal(err)
	}
	d, err := newDataPlane(ctx, sizes, dir)
	if err != nil {
		t.Fatal(err)
	}
	return d, dir
}

func volumeReq(name string, src *csi.VolumeContentSource) *csi.CreateVolumeRequest {
	return sizedVolumeReq(name, 1<<30, src)
}

func sizedVolumeReq(name string, bytes int64, src *csi.VolumeContentSource) *csi.CreateVolumeRequest {
	return &csi.CreateVolumeRequest{
		Name: name,
		VolumeCapabilities: []*csi.VolumeCapability{{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
		}},
		CapacityRange:       &csi.CapacityRange{RequiredBytes: bytes},
		VolumeContentSource: src,
	}
}

func fromSnapshot(id string) *csi.VolumeContentSource {
	return &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{
		Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: id}}}
}

func createVolume(t *testing.T, d *dataPlane, req *csi.CreateVolumeRequest) string {
	t.Helper()
	r, err := d.CreateVolume(ctx, req)
	if err != nil {
		t.Fatalf("CreateVolume %s: %v", req.GetName(), err)
	}
	return r.GetVolume().GetVolumeId()
}

func createSnapshot(t *testing.T, d *dataPlane, name, volume string) string {
	t.Helper()
	r, err := d.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: name, SourceVolumeId: volume})
	if err != nil {
		t.Fatalf("CreateSnapshot %s: %v", name, err)
	}
	return r.GetSnapshot().GetSnapshotId()
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func wantFile(t *testing.T, path, want string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("%s: got %q, want %q", path, got, want)
	}
}

func wantGone(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatalf("%s: want it gone, stat says %v", path, err)
	}
}

func wantEmptyTmp(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, tmpDir))
	if err != nil || len(entries) > 0 {
		t.Fatalf("tmp: %v, err %v", entries, err)
	}
}

func TestSnapshotRestoreCloneAndDelete(t *testing.T) {
	d, dir := newTestPlane(t)
	vol := filepath.Join(dir, volumesDir)
	v := createVolume(t, d, volumeReq("src", nil))
	write(t, filepath.Join(vol, v, "a.txt"), "before")
	write(t, filepath.Join(vol, v, "sub/b.bin"), "nested")

	s := createSnapshot(t, d, "s1", v)
	write(t, filepath.Join(vol, v, "a.txt"), "after")
	write(t, filepath.Join(vol, v, "later.txt"), "later")

	// Repeated calls for the same names return the existing objects and keep their data.
	if again := createVolume(t, d, volumeReq("src", nil)); again != v {
		t.Fatalf("repeated CreateVolume: volume %s, want %s", again, v)
	}
	wantFile(t, filepath.Join(vol, v, "a.txt"), "after")
	if again := createSnapshot(t, d, "s1", v); again != s {
		t.Fatalf("repeated CreateSnapshot: snapshot %s, want %s", again, s)
	}
	wantFile(t, filepath.Join(dir, snapshotsDir, s, "a.txt"), "before")

	r := createVolume(t, d, volumeReq("restored", fromSnapshot(s)))
	wantFile(t, filepath.Join(vol, r, "a.txt"), "before")
	wantFile(t, filepath.Join(vol, r, "sub/b.bin"), "nested")
	wantGone(t, filepath.Join(vol, r, "later.txt"))

	c := createVolume(t, d, volumeReq("clone", &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{
		Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: v}}}))
	wantFile(t, filepath.Join(vol, c, "a.txt"), "after")
	wantFile(t, filepath.Join(vol, c, "later.txt"), "later")

	if _, err := d.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: s}); err != nil {
		t.Fatal(err)
	}
	wantGone(t, filepath.Join(dir, snapshotsDir, s))
	for _, id := range []string{v, r, c} {
		if _, err := d.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
			t.Fatal(err)
		}
		wantGone(t, filepath.Join(vol, id))
		// Idempotent: the mock answers an unknown ID with success, and so do we.
		if _, err := d.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
			t.Fatal(err)
		}
	}
	// An ID that cannot name a directory touches nothing outside the data dir.
	outside := filepath.Join(dir, "keep")
	write(t, filepath.Join(outside, "f"), "x")
	if _, err := d.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: "../keep"}); err != nil {
		t.Fatal(err)
	}
	wantFile(t, filepath.Join(outside, "f"), "x")
	wantEmptyTmp(t, dir)
}

func TestFailedCopyLeavesNoHalfDirectoryAndNoObject(t *testing.T) {
	d, dir := newTestPlane(t)
	vol := filepath.Join(dir, volumesDir)
	v := createVolume(t, d, volumeReq("src", nil))
	write(t, filepath.Join(vol, v, "a.txt"), "data")
	// os.CopyFS copies regular files, directories and symlinks; a FIFO fails it midway.
	if err := syscall.Mkfifo(filepath.Join(vol, v, "z.fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := d.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s1", SourceVolumeId: v})
	if status.Code(err) != codes.Internal {
		t.Fatalf("CreateSnapshot of a volume with a FIFO: got %v, want codes.Internal", err)
	}
	snaps, lerr := d.ListSnapshots(ctx, &csi.ListSnapshotsRequest{SourceVolumeId: v})
	if lerr != nil || len(snaps.GetEntries()) > 0 {
		t.Fatalf("the failed snapshot is still in the mock: %v %v", snaps.GetEntries(), lerr)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, snapshotsDir))
	for _, e := range entries {
		if e.Name() != "1" && e.Name() != "2" && e.Name() != "3" { // the mock's seeded snapshots
			t.Fatalf("half snapshot directory %s left", e.Name())
		}
	}
	wantEmptyTmp(t, dir)

	// A restore from a snapshot without data (one the mock seeded, backed by an empty
	// directory, is fine; one whose directory went is not) fails the same way.
	if err := os.Remove(filepath.Join(vol, v, "z.fifo")); err != nil {
		t.Fatal(err)
	}
	s := createSnapshot(t, d, "s2", v)
	if err := os.RemoveAll(filepath.Join(dir, snapshotsDir, s)); err != nil {
		t.Fatal(err)
	}
	_, err = d.CreateVolume(ctx, volumeReq("restored", fromSnapshot(s)))
	if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "no data directory") {
		t.Fatalf("restore without data: got %v, want codes.Internal naming the missing directory", err)
	}
	list, lerr := d.ListVolumes(ctx, &csi.ListVolumesRequest{})
	if lerr != nil {
		t.Fatal(lerr)
	}
	for _, e := range list.GetEntries() {
		if e.GetVolume().GetVolumeContext()["name"] == "restored" {
			t.Fatalf("the failed volume %s is still in the mock", e.GetVolume().GetVolumeId())
		}
	}
	wantEmptyTmp(t, dir)
}

func TestSeedsAndRefusesDataOfAnEarlierProcess(t *testing.T) {
	_, dir := newTestPlane(t)
	for _, p := range []string{"volumes/1", "volumes/3", "snapshots/2"} {
		if fi, err := os.Stat(filepath.Join(dir, p)); err != nil || !fi.IsDir() {
			t.Fatalf("seeded %s: %v", p, err)
		}
	}
	svc := mockservice.New(mockservice.Config{DriverName: "test.csi", DisableAttach: true})
	if _, err := newDataPlane(ctx, svc, dir); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("a data dir of an earlier process: got %v, want a refusal", err)
	}
}

// snapshotSize calls CreateSnapshot and returns the snapshot's ID and size.
func snapshotSize(t *testing.T, d *dataPlane, name, volume string) (string, int64) {
	t.Helper()
	r, err := d.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: name, SourceVolumeId: volume})
	if err != nil {
		t.Fatalf("CreateSnapshot %s: %v", name, err)
	}
	return r.GetSnapshot().GetSnapshotId(), r.GetSnapshot().GetSizeBytes()
}

// listedSizes is ListSnapshots(req), all pages, as snapshot ID -> size.
func listedSizes(t *testing.T, d *dataPlane, req *csi.ListSnapshotsRequest) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for {
		r, err := d.ListSnapshots(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range r.GetEntries() {
			out[e.GetSnapshot().GetSnapshotId()] = e.GetSnapshot().GetSizeBytes()
		}
		if req.StartingToken = r.GetNextToken(); req.StartingToken == "" {
			return out
		}
	}
}

func TestSnapshotSizeIsTheSourceCapacityAtSnapshotTime(t *testing.T) {
	const gib = int64(1) << 30
	d, _ := newTestPlane(t)
	v := createVolume(t, d, sizedVolumeReq("src", 2*gib, nil))
	s1, size := snapshotSize(t, d, "s1", v)
	if size != 2*gib {
		t.Fatalf("CreateSnapshot of a 2 GiB volume: size_bytes %d, want %d", size, 2*gib)
	}

	// The source grows; s1 keeps its size (also when asked again), a new snapshot has the new one.
	if _, err := d.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{
		VolumeId: v, CapacityRange: &csi.CapacityRange{RequiredBytes: 3 * gib}}); err != nil {
		t.Fatal(err)
	}
	if again, size := snapshotSize(t, d, "s1", v); again != s1 || size != 2*gib {
		t.Fatalf("repeated CreateSnapshot s1: snapshot %s of %d bytes, want %s of %d", again, size, s1, 2*gib)
	}
	s2, size := snapshotSize(t, d, "s2", v)
	if size != 3*gib {
		t.Fatalf("CreateSnapshot after expanding to 3 GiB: size_bytes %d, want %d", size, 3*gib)
	}

	// ListSnapshots answers the same sizes: all (one entry a page, so paging is covered),
	// by ID, by source volume. The mock's seeded snapshots have their 100 GiB volumes' size.
	all := listedSizes(t, d, &csi.ListSnapshotsRequest{MaxEntries: 1})
	want := map[string]int64{"1": 100 * gib, "2": 100 * gib, "3": 100 * gib, s1: 2 * gib, s2: 3 * gib}
	if !maps.Equal(all, want) {
		t.Fatalf("ListSnapshots: %v, want %v", all, want)
	}
	if got := listedSizes(t, d, &csi.ListSnapshotsRequest{SnapshotId: s2}); !maps.Equal(got, map[string]int64{s2: 3 * gib}) {
		t.Fatalf("ListSnapshots by ID %s: %v", s2, got)
	}
	// (The mock answers a source volume with its first snapshot only.)
	if got := listedSizes(t, d, &csi.ListSnapshotsRequest{SourceVolumeId: v}); !maps.Equal(got, map[string]int64{s1: 2 * gib}) {
		t.Fatalf("ListSnapshots of volume %s: %v", v, got)
	}

	// Deleted and created again under the same name: a new snapshot with the size of now.
	if _, err := d.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: s1}); err != nil {
		t.Fatal(err)
	}
	if again, size := snapshotSize(t, d, "s1", v); again == s1 || size != 3*gib {
		t.Fatalf("s1 again after deletion: snapshot %s of %d bytes, want a new one of %d", again, size, 3*gib)
	}
}

func TestSnapshotOfAMissingVolumeIsNotFound(t *testing.T) {
	d, dir := newTestPlane(t)
	_, err := d.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s1", SourceVolumeId: "404"})
	if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "source volume 404") {
		t.Fatalf("CreateSnapshot of volume 404: got %v, want codes.NotFound naming it", err)
	}
	for id := range listedSizes(t, d, &csi.ListSnapshotsRequest{}) {
		if id != "1" && id != "2" && id != "3" {
			t.Fatalf("the failed snapshot %s is still in the mock", id)
		}
	}
	wantEmptyTmp(t, dir)
}

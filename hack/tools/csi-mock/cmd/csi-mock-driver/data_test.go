package main

import (
	"context"
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
	d, err := newDataPlane(ctx, svc, dir)
	if err != nil {
		t.Fatal(err)
	}
	return d, dir
}

func volumeReq(name string, src *csi.VolumeContentSource) *csi.CreateVolumeRequest {
	return &csi.CreateVolumeRequest{
		Name: name,
		VolumeCapabilities: []*csi.VolumeCapability{{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
		}},
		CapacityRange:       &csi.CapacityRange{RequiredBytes: 1 << 30},
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

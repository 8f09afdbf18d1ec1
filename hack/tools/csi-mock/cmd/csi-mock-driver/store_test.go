package main

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	mockservice "k8s.io/kubernetes/test/e2e/storage/drivers/csi-test/mock/service"
)

var ctx = context.Background()

func newMock() csi.ControllerServer {
	return mockservice.New(mockservice.Config{DriverName: "test.csi", DisableAttach: true})
}

// newTestStore is a store on a fresh directory, as main wires it (with zonal topology).
func newTestStore(t *testing.T) (*store, string) {
	t.Helper()
	dir := t.TempDir()
	return openStore(t, dir), dir
}

// openStore is another driver process's store on dir (a restarted one, or another cluster's).
func openStore(t *testing.T, dir string) *store {
	t.Helper()
	d, err := newStore(newMock(), dir, "topology.kubernetes.io/zone")
	if err != nil {
		t.Fatal(err)
	}
	return d
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

func createVolume(t *testing.T, d *store, req *csi.CreateVolumeRequest) string {
	t.Helper()
	r, err := d.CreateVolume(ctx, req)
	if err != nil {
		t.Fatalf("CreateVolume %s: %v", req.GetName(), err)
	}
	return r.GetVolume().GetVolumeId()
}

func createSnapshot(t *testing.T, d *store, name, volume string) string {
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
	d, dir := newTestStore(t)
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
	// The same name for another volume, or a larger size: AlreadyExists.
	if _, err := d.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s1", SourceVolumeId: "vol-other"}); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("snapshot s1 of another volume: %v, want AlreadyExists", err)
	}
	if _, err := d.CreateVolume(ctx, sizedVolumeReq("src", 2<<30, nil)); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("volume src, larger: %v, want AlreadyExists", err)
	}

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
	wantGone(t, filepath.Join(dir, catalogDir, snapshotsDir, s))
	if _, err := d.CreateVolume(ctx, volumeReq("late", fromSnapshot(s))); status.Code(err) != codes.NotFound {
		t.Fatalf("restore of a deleted snapshot: %v, want NotFound", err)
	}
	for _, id := range []string{v, r, c} {
		if _, err := d.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
			t.Fatal(err)
		}
		wantGone(t, filepath.Join(vol, id))
		wantGone(t, filepath.Join(dir, catalogDir, volumesDir, id))
		// Idempotent: an unknown ID is already deleted.
		if _, err := d.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
			t.Fatal(err)
		}
	}
	// An ID that cannot name a directory touches nothing outside the data dir.
	outside := filepath.Join(dir, "keep")
	write(t, filepath.Join(outside, "f"), "x")
	for _, id := range []string{"../keep", "..", ".lock"} {
		if _, err := d.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
			t.Fatal(err)
		}
	}
	wantFile(t, filepath.Join(outside, "f"), "x")
	wantEmptyTmp(t, dir)
}

// A restarted driver, and another process on the same directory (another cluster's driver),
// find every volume and snapshot by its ID: nothing lives in one process's memory.
func TestARestartedOrSecondDriverFindsEverything(t *testing.T) {
	a, dir := newTestStore(t)
	v := createVolume(t, a, volumeReq("src", nil))
	write(t, filepath.Join(dir, volumesDir, v, "data.bin"), "bytes")
	s := createSnapshot(t, a, "s1", v)

	b := openStore(t, dir) // while a serves too
	got, err := b.ControllerGetVolume(ctx, &csi.ControllerGetVolumeRequest{VolumeId: v})
	if err != nil || got.GetVolume().GetCapacityBytes() != 1<<30 {
		t.Fatalf("b: ControllerGetVolume %s: %v, %v", v, got, err)
	}
	list, err := b.ListSnapshots(ctx, &csi.ListSnapshotsRequest{SnapshotId: s})
	if err != nil || len(list.GetEntries()) != 1 || list.Entries[0].GetSnapshot().GetSourceVolumeId() != v ||
		!list.Entries[0].GetSnapshot().GetReadyToUse() {
		t.Fatalf("b: ListSnapshots by ID %s: %v, %v", s, list, err)
	}
	r := createVolume(t, b, volumeReq("restored-in-b", fromSnapshot(s)))
	wantFile(t, filepath.Join(dir, volumesDir, r, "data.bin"), "bytes")
	// A repeated call for a name a created answers a's object in b as well.
	if again := createSnapshot(t, b, "s1", v); again != s {
		t.Fatalf("b: CreateSnapshot s1 again: %s, want a's %s", again, s)
	}

	// What b deletes is gone for a.
	if _, err := b.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: s}); err != nil {
		t.Fatal(err)
	}
	list, err = a.ListSnapshots(ctx, &csi.ListSnapshotsRequest{SnapshotId: s})
	if err != nil || len(list.GetEntries()) != 0 {
		t.Fatalf("a: deleted snapshot %s still listed: %v, %v", s, list, err)
	}

	// A restart (a new store on the directory, a fresh mock behind it) lists both volumes.
	c := openStore(t, dir)
	vols, err := c.ListVolumes(ctx, &csi.ListVolumesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range vols.GetEntries() {
		ids = append(ids, e.GetVolume().GetVolumeId())
	}
	want := []string{v, r}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("after a restart: volumes %v, want %v", ids, want)
	}
	if v == r || !strings.HasPrefix(v, "vol-") || !strings.HasPrefix(s, "snap-") {
		t.Fatalf("IDs %s %s %s: want distinct random ones", v, r, s)
	}
}

// Two processes asked for the same new name at once create one volume between them.
func TestConcurrentCreatesOfOneNameMakeOneVolume(t *testing.T) {
	a, dir := newTestStore(t)
	b := openStore(t, dir)
	ids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := a
			if i%2 == 1 {
				d = b
			}
			r, err := d.CreateVolume(ctx, volumeReq("same", nil))
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = r.GetVolume().GetVolumeId()
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("one name, several volumes: %v", ids)
		}
	}
}

func TestFailedCopyLeavesNoHalfDirectoryAndNoObject(t *testing.T) {
	d, dir := newTestStore(t)
	vol := filepath.Join(dir, volumesDir)
	v := createVolume(t, d, volumeReq("src", nil))
	write(t, filepath.Join(vol, v, "a.txt"), "data")
	// copyTree copies regular files, directories and symlinks; a FIFO fails it midway.
	if err := syscall.Mkfifo(filepath.Join(vol, v, "z.fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := d.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s1", SourceVolumeId: v})
	if status.Code(err) != codes.Internal {
		t.Fatalf("CreateSnapshot of a volume with a FIFO: got %v, want codes.Internal", err)
	}
	snaps, lerr := d.ListSnapshots(ctx, &csi.ListSnapshotsRequest{})
	if lerr != nil || len(snaps.GetEntries()) > 0 {
		t.Fatalf("the failed snapshot is listed: %v %v", snaps.GetEntries(), lerr)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, snapshotsDir)); len(entries) > 0 {
		t.Fatalf("half snapshot directory left: %v", entries)
	}
	wantEmptyTmp(t, dir)

	// A restore from a snapshot whose data went fails the same way.
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
	if lerr != nil || len(list.GetEntries()) != 1 {
		t.Fatalf("volumes after a failed restore: %v %v, want only src", list.GetEntries(), lerr)
	}
	wantEmptyTmp(t, dir)
}

// A snapshot and a volume restored from it keep what a disk snapshot keeps: owners, permission
// bits (setgid and sticky too), modification times and symlinks, so a database's files (Postgres:
// its data directory 0700 and its files its own) work in the restored volume.
func TestSnapshotAndRestoreKeepOwnersModesTimesAndSymlinks(t *testing.T) {
	d, dir := newTestStore(t)
	vol := filepath.Join(dir, volumesDir)
	v := createVolume(t, d, volumeReq("src", nil))
	root := filepath.Join(vol, v)
	pg := filepath.Join(root, "pgdata")
	write(t, filepath.Join(pg, "global", "pg_control"), "control")
	if err := os.Symlink("global/pg_control", filepath.Join(pg, "link")); err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(root, "shared")
	if err := os.Mkdir(shared, 0o700); err != nil {
		t.Fatal(err)
	}
	when := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	modes := map[string]os.FileMode{
		"pgdata":                   0o700,
		"pgdata/global":            0o700,
		"pgdata/global/pg_control": 0o600,
		"shared":                   0o775 | os.ModeSetgid | os.ModeSticky,
	}
	owned := os.Geteuid() == 0
	for rel, m := range modes {
		p := filepath.Join(root, rel)
		if owned {
			if err := os.Lchown(p, 999, 998); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(p, m); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, when, when); err != nil {
			t.Fatal(err)
		}
	}
	s := createSnapshot(t, d, "s", v)
	r := createVolume(t, d, volumeReq("restored", fromSnapshot(s)))
	for _, copied := range []string{filepath.Join(dir, snapshotsDir, s), filepath.Join(vol, r)} {
		for rel, m := range modes {
			fi, err := os.Lstat(filepath.Join(copied, rel))
			if err != nil {
				t.Fatal(err)
			}
			want := m & (os.ModePerm | os.ModeSetgid | os.ModeSticky)
			if got := fi.Mode() & (os.ModePerm | os.ModeSetgid | os.ModeSticky); got != want {
				t.Errorf("%s %s: mode %v, want %v", copied, rel, got, want)
			}
			if !fi.ModTime().Equal(when) {
				t.Errorf("%s %s: time %v, want %v", copied, rel, fi.ModTime(), when)
			}
			if st := fi.Sys().(*syscall.Stat_t); owned && (st.Uid != 999 || st.Gid != 998) {
				t.Errorf("%s %s: owner %d:%d, want 999:998", copied, rel, st.Uid, st.Gid)
			}
		}
		if target, err := os.Readlink(filepath.Join(copied, "pgdata", "link")); err != nil || target != "global/pg_control" {
			t.Errorf("%s: symlink %q %v", copied, target, err)
		}
		wantFile(t, filepath.Join(copied, "pgdata", "global", "pg_control"), "control")
	}
	wantEmptyTmp(t, dir)
}

// snapshotSize calls CreateSnapshot and returns the snapshot's ID and size.
func snapshotSize(t *testing.T, d *store, name, volume string) (string, int64) {
	t.Helper()
	r, err := d.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: name, SourceVolumeId: volume})
	if err != nil {
		t.Fatalf("CreateSnapshot %s: %v", name, err)
	}
	return r.GetSnapshot().GetSnapshotId(), r.GetSnapshot().GetSizeBytes()
}

// listedSizes is ListSnapshots(req), all pages, as snapshot ID -> size.
func listedSizes(t *testing.T, d *store, req *csi.ListSnapshotsRequest) map[string]int64 {
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
	d, _ := newTestStore(t)
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
	other := createVolume(t, d, sizedVolumeReq("other", gib, nil))
	s3, _ := snapshotSize(t, d, "s3", other)

	// ListSnapshots answers the same sizes: all (one entry a page, so paging is covered),
	// by ID, by source volume.
	all := listedSizes(t, d, &csi.ListSnapshotsRequest{MaxEntries: 1})
	want := map[string]int64{s1: 2 * gib, s2: 3 * gib, s3: gib}
	if !maps.Equal(all, want) {
		t.Fatalf("ListSnapshots: %v, want %v", all, want)
	}
	if got := listedSizes(t, d, &csi.ListSnapshotsRequest{SnapshotId: s2}); !maps.Equal(got, map[string]int64{s2: 3 * gib}) {
		t.Fatalf("ListSnapshots by ID %s: %v", s2, got)
	}
	if got := listedSizes(t, d, &csi.ListSnapshotsRequest{SourceVolumeId: v}); !maps.Equal(got, map[string]int64{s1: 2 * gib, s2: 3 * gib}) {
		t.Fatalf("ListSnapshots of volume %s: %v", v, got)
	}
	if got := listedSizes(t, d, &csi.ListSnapshotsRequest{SnapshotId: "snap-none"}); len(got) != 0 {
		t.Fatalf("ListSnapshots of an unknown ID: %v", got)
	}
	// A restore smaller than its snapshot is refused.
	if _, err := d.CreateVolume(ctx, sizedVolumeReq("small", gib, fromSnapshot(s2))); status.Code(err) != codes.OutOfRange {
		t.Fatalf("1 GiB restore of a 3 GiB snapshot: %v, want OutOfRange", err)
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
	d, dir := newTestStore(t)
	_, err := d.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s1", SourceVolumeId: "vol-404"})
	if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "source volume vol-404") {
		t.Fatalf("CreateSnapshot of volume vol-404: got %v, want codes.NotFound naming it", err)
	}
	if got := listedSizes(t, d, &csi.ListSnapshotsRequest{}); len(got) != 0 {
		t.Fatalf("the failed snapshot is listed: %v", got)
	}
	wantEmptyTmp(t, dir)
}

func TestExpansionIsCappedAtTheCreationLimit(t *testing.T) {
	d, _ := newTestStore(t)
	id := createVolume(t, d, sizedVolumeReq("v", 1<<30, nil))
	expand := func(bytes int64) (*csi.ControllerExpandVolumeResponse, error) {
		return d.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{
			VolumeId: id, CapacityRange: &csi.CapacityRange{RequiredBytes: bytes},
		})
	}
	if r, err := expand(2 << 30); err != nil || r.GetCapacityBytes() != 2<<30 {
		t.Fatalf("2 GiB: %v, %v", r, err)
	}
	for _, bytes := range []int64{maxCapacity, 2 * maxCapacity} {
		if _, err := expand(bytes); status.Code(err) != codes.OutOfRange {
			t.Fatalf("%d bytes: want OutOfRange, got %v", bytes, err)
		}
	}
	if _, err := expand(1 << 30); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("shrinking: want InvalidArgument, got %v", err)
	}
	if _, err := d.CreateVolume(ctx, sizedVolumeReq("huge", maxCapacity, nil)); status.Code(err) != codes.OutOfRange {
		t.Fatalf("creating at the limit: want OutOfRange, got %v", err)
	}
	// A refused expansion leaves the volume as it was.
	got, err := d.ControllerGetVolume(ctx, &csi.ControllerGetVolumeRequest{VolumeId: id})
	if err != nil || got.GetVolume().GetCapacityBytes() != 2<<30 {
		t.Fatalf("capacity after refusals: %v, %v", got, err)
	}
}

func TestAVolumeIsInTheFirstRequestedZone(t *testing.T) {
	d, _ := newTestStore(t)
	zone := func(z string) *csi.Topology {
		return &csi.Topology{Segments: map[string]string{"topology.kubernetes.io/zone": z, "other": "x"}}
	}
	cases := []struct {
		name string
		ar   *csi.TopologyRequirement
		want map[string]string
	}{
		{"preferred first", &csi.TopologyRequirement{Preferred: []*csi.Topology{zone("z-2")}, Requisite: []*csi.Topology{zone("z-1"), zone("z-2")}}, map[string]string{"topology.kubernetes.io/zone": "z-2"}},
		{"requisite without preference", &csi.TopologyRequirement{Requisite: []*csi.Topology{zone("z-3")}}, map[string]string{"topology.kubernetes.io/zone": "z-3"}},
		{"none asked", nil, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := volumeReq(c.name, nil)
			req.AccessibilityRequirements = c.ar
			r, err := d.CreateVolume(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]string
			if at := r.GetVolume().GetAccessibleTopology(); len(at) > 0 {
				got = at[0].GetSegments()
			}
			if !maps.Equal(got, c.want) {
				t.Fatalf("topology %v, want %v", got, c.want)
			}
		})
	}
}

// A fault file fails its method with its code and message, before anything changes, until removed.
func TestInjectedFaultFailsTheCallUntilRemoved(t *testing.T) {
	d, dir := newTestStore(t)
	v := createVolume(t, d, volumeReq("src", nil))
	fault := filepath.Join(dir, faultsDir, "CreateSnapshot")
	write(t, fault, "ResourceExhausted: snapshot quota exhausted\n")
	_, err := d.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s1", SourceVolumeId: v})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "snapshot quota exhausted") {
		t.Fatalf("with the fault: %v, want ResourceExhausted with its message", err)
	}
	if got := listedSizes(t, d, &csi.ListSnapshotsRequest{}); len(got) != 0 {
		t.Fatalf("a failed snapshot is listed: %v", got)
	}
	write(t, fault, "gibberish")
	if _, err := d.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s1", SourceVolumeId: v}); status.Code(err) != codes.Internal {
		t.Fatalf("an unknown code: %v, want Internal", err)
	}
	if err := os.Remove(fault); err != nil {
		t.Fatal(err)
	}
	createSnapshot(t, d, "s1", v)
}

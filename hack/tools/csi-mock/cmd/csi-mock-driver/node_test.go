package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	mockservice "k8s.io/kubernetes/test/e2e/storage/drivers/csi-test/mock/service"
)

func TestUnescapeMountPath(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"plain", "/var/lib/kubelet/pods", "/var/lib/kubelet/pods"},
		{"space", `/a\040b`, "/a b"},
		{"tab and backslash", `/a\011b\134c`, "/a\tb\\c"},
		{"trailing backslash", `/a\`, `/a\`},
		{"not octal", `/a\9zz`, `/a\9zz`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := unescapeMountPath(c.in); got != c.want {
				t.Fatalf("unescapeMountPath(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

// TestNodeStagePublishBindMountsTheVolume needs root (mount(2)); it is skipped otherwise.
func TestNodeStagePublishBindMountsTheVolume(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("bind mounts need root")
	}
	dir := t.TempDir()
	svc := mockservice.New(mockservice.Config{DriverName: "test.csi", DisableAttach: true})
	d := openStore(t, filepath.Join(dir, "data"))
	n := newNodeData(svc, filepath.Join(dir, "data"), "node-a", "topology.kubernetes.io/zone", "zone-1")
	id := createVolume(t, d, volumeReq("v", nil))
	write(t, filepath.Join(dir, "data", volumesDir, id, "hello"), "from the volume")

	info, err := n.NodeGetInfo(ctx, &csi.NodeGetInfoRequest{})
	if err != nil || info.GetNodeId() != "node-a" || info.GetAccessibleTopology().GetSegments()["topology.kubernetes.io/zone"] != "zone-1" {
		t.Fatalf("NodeGetInfo = %v, %v", info, err)
	}

	staging, target := filepath.Join(dir, "staging"), filepath.Join(dir, "pod", "mount")
	capability := volumeReq("v", nil).VolumeCapabilities[0]
	// The kubelet makes the staging directory and the target's parent.
	for _, p := range []string{staging, filepath.Dir(target)} {
		if err := os.MkdirAll(p, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	stage := &csi.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: staging, VolumeCapability: capability}
	publish := &csi.NodePublishVolumeRequest{VolumeId: id, StagingTargetPath: staging, TargetPath: target, VolumeCapability: capability}
	t.Cleanup(func() { _ = unmount(target); _ = unmount(staging) })

	// Publishing before staging is refused.
	if _, err := n.NodePublishVolume(ctx, publish); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("publish before stage: %v, want FailedPrecondition", err)
	}
	for i := range 2 { // idempotent: the second call mounts nothing more
		if _, err := n.NodeStageVolume(ctx, stage); err != nil {
			t.Fatalf("NodeStageVolume #%d: %v", i, err)
		}
		if _, err := n.NodePublishVolume(ctx, publish); err != nil {
			t.Fatalf("NodePublishVolume #%d: %v", i, err)
		}
	}
	if got := mountsAt(t, target); got != 1 {
		t.Fatalf("%d mounts at the target, want 1", got)
	}
	if b, err := os.ReadFile(filepath.Join(target, "hello")); err != nil || string(b) != "from the volume" {
		t.Fatalf("reading through the target: %q, %v", b, err)
	}
	write(t, filepath.Join(target, "sub", "written"), "by the pod")
	if b, err := os.ReadFile(filepath.Join(dir, "data", volumesDir, id, "sub", "written")); err != nil || string(b) != "by the pod" {
		t.Fatalf("the volume's directory does not hold what was written at the target: %q, %v", b, err)
	}

	unpublish := &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target}
	unstage := &csi.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: staging}
	for i := range 2 {
		if _, err := n.NodeUnpublishVolume(ctx, unpublish); err != nil {
			t.Fatalf("NodeUnpublishVolume #%d: %v", i, err)
		}
		if _, err := n.NodeUnstageVolume(ctx, unstage); err != nil {
			t.Fatalf("NodeUnstageVolume #%d: %v", i, err)
		}
	}
	for _, p := range []string{target, staging} {
		if m, err := isMountPoint(p); err != nil || m {
			t.Fatalf("%s still mounted (%v)", p, err)
		}
	}
	// Unpublishing removed the (then empty) target, never the volume's files.
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Fatalf("target %s still there: %v", target, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "data", volumesDir, id, "sub", "written")); err != nil || string(b) != "by the pod" {
		t.Fatalf("the volume lost its files on unpublish: %q, %v", b, err)
	}

	// A volume without a data directory cannot be staged.
	if _, err := n.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: "../x", StagingTargetPath: staging, VolumeCapability: capability}); status.Code(err) != codes.NotFound {
		t.Fatalf("staging ../x: %v, want NotFound", err)
	}
}

func mountsAt(t *testing.T, p string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && unescapeMountPath(f[4]) == p {
			n++
		}
	}
	return n
}

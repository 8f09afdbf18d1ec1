package main

// The node side on the real node (-node-id), as the CSI hostpath driver does it:
//
//	NodeStageVolume      bind-mounts DIR/volumes/<id> at the staging path
//	NodePublishVolume    bind-mounts the staging path at the target path (read-only if asked)
//	NodeUnpublishVolume  unmounts the target path and removes it
//	NodeUnstageVolume    unmounts the staging path
//
// so a Pod reads and writes the volume's own files. NodeGetInfo answers with the node's
// name and zone (the mock's answer is its driver name and a fixed segment). Every call is
// idempotent: a path that is already a mount point is not mounted again, one that is not is
// not unmounted. Which volumes exist is the store's (store.go) business: a volume is known
// here by its data directory; the mount points are the only state. The upstream mock's node
// service answers the rest (capabilities).

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
)

type nodeData struct {
	csi.NodeServer // the upstream mock: NodeGetCapabilities, NodeExpandVolume
	dataDir        string
	nodeID         string
	topology       map[string]string
	// mu serialises mount changes (the kubelet may stage and publish volumes in parallel).
	mu sync.Mutex
}

func newNodeData(inner csi.NodeServer, dataDir, nodeID, topologyKey, topologyValue string) *nodeData {
	n := &nodeData{NodeServer: inner, dataDir: dataDir, nodeID: nodeID}
	if topologyKey != "" && topologyValue != "" {
		n.topology = map[string]string{topologyKey: topologyValue}
	}
	return n
}

func (n *nodeData) NodeGetInfo(ctx context.Context, req *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	resp := &csi.NodeGetInfoResponse{NodeId: n.nodeID}
	if n.topology != nil {
		resp.AccessibleTopology = &csi.Topology{Segments: n.topology}
	}
	return resp, nil
}

// volumeDir is the volume's data directory; codes.NotFound when the ID names none.
func (n *nodeData) volumeDir(id string) (string, error) {
	if !filepath.IsLocal(id) || filepath.Base(id) != id {
		return "", status.Errorf(codes.NotFound, "volume %q: no such volume", id)
	}
	p := filepath.Join(n.dataDir, volumesDir, id)
	fi, err := os.Stat(p)
	if err != nil || !fi.IsDir() {
		return "", status.Errorf(codes.NotFound, "volume %q has no data directory %s", id, p)
	}
	return p, nil
}

func (n *nodeData) NodeStageVolume(ctx context.Context, req *csi.NodeStageVolumeRequest) (*csi.NodeStageVolumeResponse, error) {
	if req.GetStagingTargetPath() == "" {
		return nil, status.Error(codes.InvalidArgument, "Staging Target Path cannot be empty")
	}
	if req.GetVolumeCapability() == nil {
		return nil, status.Error(codes.InvalidArgument, "Volume Capability cannot be empty")
	}
	src, err := n.volumeDir(req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := bindMount(src, req.GetStagingTargetPath(), false); err != nil {
		return nil, status.Errorf(codes.Internal, "staging volume %s: %v", req.GetVolumeId(), err)
	}
	return &csi.NodeStageVolumeResponse{}, nil
}

func (n *nodeData) NodePublishVolume(ctx context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	if req.GetTargetPath() == "" {
		return nil, status.Error(codes.InvalidArgument, "Target Path cannot be empty")
	}
	if req.GetVolumeCapability() == nil {
		return nil, status.Error(codes.InvalidArgument, "Volume Capability cannot be empty")
	}
	if _, err := n.volumeDir(req.GetVolumeId()); err != nil {
		return nil, err
	}
	staging := req.GetStagingTargetPath()
	if staging == "" {
		return nil, status.Error(codes.FailedPrecondition, "no staging target path: the driver stages every volume (STAGE_UNSTAGE_VOLUME)")
	}
	n.mu.Lock()
	staged, err := isMountPoint(staging)
	n.mu.Unlock()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	if !staged {
		return nil, status.Errorf(codes.FailedPrecondition, "volume %s is not staged at %s", req.GetVolumeId(), staging)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := bindMount(staging, req.GetTargetPath(), req.GetReadonly()); err != nil {
		return nil, status.Errorf(codes.Internal, "publishing volume %s: %v", req.GetVolumeId(), err)
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

func (n *nodeData) NodeUnpublishVolume(ctx context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	if req.GetVolumeId() == "" || req.GetTargetPath() == "" {
		return nil, status.Error(codes.InvalidArgument, "Volume ID and Target Path cannot be empty")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := unmount(req.GetTargetPath()); err != nil {
		return nil, status.Errorf(codes.Internal, "unpublishing volume %s: %v", req.GetVolumeId(), err)
	}
	// Only now may the target directory go: it is empty, not the volume.
	if err := os.Remove(req.GetTargetPath()); err != nil && !os.IsNotExist(err) {
		return nil, status.Errorf(codes.Internal, "removing the target path of volume %s: %v", req.GetVolumeId(), err)
	}
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

func (n *nodeData) NodeUnstageVolume(ctx context.Context, req *csi.NodeUnstageVolumeRequest) (*csi.NodeUnstageVolumeResponse, error) {
	if req.GetVolumeId() == "" || req.GetStagingTargetPath() == "" {
		return nil, status.Error(codes.InvalidArgument, "Volume ID and Staging Target Path cannot be empty")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := unmount(req.GetStagingTargetPath()); err != nil {
		return nil, status.Errorf(codes.Internal, "unstaging volume %s: %v", req.GetVolumeId(), err)
	}
	return &csi.NodeUnstageVolumeResponse{}, nil
}

// bindMount mounts src at target (creating target), unless target is a mount point already.
func bindMount(src, target string, readonly bool) error {
	if target == "" {
		return fmt.Errorf("empty target path")
	}
	if err := os.MkdirAll(target, 0o750); err != nil {
		return err
	}
	mounted, err := isMountPoint(target)
	if err != nil || mounted {
		return err
	}
	if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind-mounting %s at %s: %w", src, target, err)
	}
	if readonly {
		if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			_ = unix.Unmount(target, 0)
			return fmt.Errorf("remounting %s read-only: %w", target, err)
		}
	}
	klog.V(2).InfoS("bind-mounted", "source", src, "target", target, "readonly", readonly)
	return nil
}

// unmount unmounts target if it is a mount point (all mounts stacked there).
func unmount(target string) error {
	if target == "" {
		return nil
	}
	for {
		mounted, err := isMountPoint(target)
		if err != nil || !mounted {
			return err
		}
		if err := unix.Unmount(target, 0); err != nil {
			return fmt.Errorf("unmounting %s: %w", target, err)
		}
		klog.V(2).InfoS("unmounted", "target", target)
	}
}

// isMountPoint reports whether p is a mount point of this mount namespace (a bind mount of a
// directory of the same filesystem has the same device, so st_dev cannot tell).
func isMountPoint(p string) (bool, error) {
	clean, err := filepath.Abs(p)
	if err != nil {
		return false, err
	}
	if real, err := filepath.EvalSymlinks(clean); err == nil {
		clean = real
	} else if os.IsNotExist(err) {
		return false, nil
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64*1024), 1024*1024)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 4 && unescapeMountPath(fields[4]) == clean {
			return true, nil
		}
	}
	return false, s.Err()
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space, …).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Command csi-mock-driver serves the upstream Kubernetes mock CSI driver — the one
// Kubernetes' own "csi-mock" e2e tests embed (k8s.io/kubernetes/test/e2e/storage/drivers/
// csi-test/{driver,mock/service}) — on a unix socket, so the upstream external-provisioner
// and csi-snapshotter can drive it next to hack/cluster.sh's local control plane.
//
// Upstream has no standalone binary for it any more: csi-test v5 dropped its mock driver
// (v5's driver package is a gomock double for csi-sanity) and Kubernetes runs the mock
// inside e2e.test. This command is the process around it: flags, socket, and the store of
// volumes and snapshots (store.go): the mock keeps them in one process's memory with nothing
// behind them; the store keeps them on disk under -data-dir (a record and a directory of
// files each, as with the CSI hostpath driver — a snapshot copies its volume's files, a
// restore or clone copies its source's), so a restarted driver loses nothing and several
// driver processes (one per local cluster) share one backend, as two clusters of one cloud
// account share its disks. With -topology-key, a volume is zonal (the upstream mock only
// knows a fixed per-node key). The upstream mock answers identity, capabilities and the
// node service; its code is used as it is.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/klog/v2"

	mockdriver "k8s.io/kubernetes/test/e2e/storage/drivers/csi-test/driver"
	mockservice "k8s.io/kubernetes/test/e2e/storage/drivers/csi-test/mock/service"
)

func socketPath(endpoint string) string {
	return strings.TrimPrefix(endpoint, "unix://")
}

func main() {
	endpoint := flag.String("endpoint", "", "unix socket to serve CSI on: /path or unix:///path")
	name := flag.String("name", "mock.csi.kompox.dev", "CSI driver name (GetPluginInfo); the mock also answers NodeGetInfo with it as node id")
	topologyKey := flag.String("topology-key", "", "if set (e.g. topology.kubernetes.io/zone): advertise VOLUME_ACCESSIBILITY_CONSTRAINTS and give each new volume the first requested segment of this key")
	dataDir := flag.String("data-dir", "", "required: the store of volumes and snapshots (DIR/catalog: their records; DIR/volumes/<id>, DIR/snapshots/<id>: their files), kept across restarts and shareable by several driver processes; DIR/faults/<Method> injects a failure (store.go)")
	nodeID := flag.String("node-id", "", "if set: serve the node side for this node: NodeStage/NodePublish bind-mount the volume's data directory, NodeGetInfo answers this id and -node-topology")
	nodeTopology := flag.String("node-topology", "", "the node's segment of -topology-key (e.g. japaneast-1), for NodeGetInfo")
	registrationDir := flag.String("kubelet-registration-dir", "", "with -node-id: register with the kubelet's plugin watcher through a socket in this directory (<kubelet root>/plugins_registry)")
	list := flag.String("list", "", "client mode: print the driver's volumes|snapshots (ListVolumes/ListSnapshots over -endpoint) and exit")
	klog.InitFlags(nil)
	flag.Parse()
	if *endpoint == "" {
		klog.Fatal("-endpoint is required")
	}
	path := socketPath(*endpoint)

	if *list != "" {
		if err := listObjects(path, *list); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}

	svc := mockservice.New(mockservice.Config{
		DriverName:    *name,
		DisableAttach: true, // CSIDriver attachRequired=false: no ControllerPublish, no external-attacher
		// The provisioner only sends accessibility requirements when the plugin advertises them.
		EnableTopology: *topologyKey != "",
	})
	if *dataDir == "" {
		klog.Fatal("-data-dir is required (the store of volumes and snapshots)")
	}
	controller, err := newStore(svc, *dataDir, *topologyKey)
	if err != nil {
		klog.Fatalf("-data-dir: %v", err)
	}
	var node csi.NodeServer = svc
	if *nodeID != "" {
		node = newNodeData(svc, *dataDir, *nodeID, *topologyKey, *nodeTopology)
	}
	drv := mockdriver.NewCSIDriver(&mockdriver.CSIDriverServers{Controller: controller, Identity: svc, Node: node})

	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		klog.Fatalf("removing stale socket %s: %v", path, err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		klog.Fatalf("listen on %s: %v", path, err)
	}
	// nil interceptor: the upstream one, which logs every call as JSON at -v=3.
	if err := drv.Start(l, nil); err != nil {
		klog.Fatalf("start: %v", err)
	}
	stopRegistration := func() {}
	if *nodeID != "" && *registrationDir != "" {
		stopRegistration, err = serveRegistration(*registrationDir, *name, path)
		if err != nil {
			klog.Fatalf("kubelet registration: %v", err)
		}
	}
	klog.InfoS("mock CSI driver serving", "name", *name, "endpoint", path, "topologyKey", *topologyKey, "dataDir", *dataDir, "nodeID", *nodeID)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	stopRegistration()
	drv.Stop()
	_ = os.Remove(path)
	klog.Info("mock CSI driver stopped")
}

// listObjects prints one line per volume ("<id> <capacity bytes> <name>") or snapshot
// ("<id> <source volume id>").
func listObjects(path, what string) error {
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := csi.NewControllerClient(conn)
	var lines []string
	token := ""
	for {
		switch what {
		case "volumes":
			r, err := c.ListVolumes(ctx, &csi.ListVolumesRequest{StartingToken: token})
			if err != nil {
				return err
			}
			for _, e := range r.GetEntries() {
				v := e.GetVolume()
				lines = append(lines, fmt.Sprintf("%s %d %s", v.GetVolumeId(), v.GetCapacityBytes(), v.GetVolumeContext()["name"]))
			}
			token = r.GetNextToken()
		case "snapshots":
			r, err := c.ListSnapshots(ctx, &csi.ListSnapshotsRequest{StartingToken: token})
			if err != nil {
				return err
			}
			for _, e := range r.GetEntries() {
				lines = append(lines, e.GetSnapshot().GetSnapshotId()+" "+e.GetSnapshot().GetSourceVolumeId())
			}
			token = r.GetNextToken()
		default:
			return fmt.Errorf("-list: want volumes or snapshots, got %q", what)
		}
		if token == "" {
			break
		}
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	return nil
}

package main

// Registration with the kubelet's plugin watcher, what node-driver-registrar does for a
// driver in a DaemonSet: a socket in the kubelet's plugins_registry directory answering
// GetInfo with the driver's name and its CSI endpoint. The kubelet then calls NodeGetInfo,
// writes the node's CSINode entry and its topology labels, and stages and publishes volumes.

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"google.golang.org/grpc"
	"k8s.io/klog/v2"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

type registration struct {
	registerapi.UnimplementedRegistrationServer
	driver, endpoint string
}

func (r *registration) GetInfo(ctx context.Context, req *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return &registerapi.PluginInfo{
		Type:              registerapi.CSIPlugin,
		Name:              r.driver,
		Endpoint:          r.endpoint,
		SupportedVersions: []string{"1.0.0"},
	}, nil
}

func (r *registration) NotifyRegistrationStatus(ctx context.Context, s *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	if !s.PluginRegistered {
		klog.ErrorS(nil, "the kubelet refused the registration", "error", s.Error)
	} else {
		klog.InfoS("registered with the kubelet", "driver", r.driver)
	}
	return &registerapi.RegistrationStatusResponse{}, nil
}

// serveRegistration listens on dir/<driver>-reg.sock until stop is called.
func serveRegistration(dir, driver, endpoint string) (stop func(), err error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, driver+"-reg.sock")
	if err := os.Remove(sock); err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", sock, err)
	}
	s := grpc.NewServer()
	registerapi.RegisterRegistrationServer(s, &registration{driver: driver, endpoint: endpoint})
	go func() {
		if err := s.Serve(l); err != nil {
			klog.ErrorS(err, "registration server")
		}
	}()
	return func() { s.Stop(); _ = os.Remove(sock) }, nil
}

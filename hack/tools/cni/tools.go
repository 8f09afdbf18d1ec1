//go:build tools

// Package tools pins github.com/containernetworking/plugins v1.10.0 for hack/build-tools.sh. Nothing here is Kompox code.
package tools

import (
	_ "github.com/containernetworking/plugins/plugins/main/bridge"
	_ "github.com/containernetworking/plugins/plugins/main/loopback"
	_ "github.com/containernetworking/plugins/plugins/ipam/host-local"
	_ "github.com/containernetworking/plugins/plugins/meta/portmap"
)

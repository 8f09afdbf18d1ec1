//go:build tools

// Package tools pins the upstream etcd server that hack/cluster.sh runs.
package tools

import _ "go.etcd.io/etcd/server/v3"

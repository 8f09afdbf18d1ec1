// Command coredns is CoreDNS v1.15.0 (github.com/coredns/coredns, pinned in go.mod) with only
// the plugins the real node's cluster DNS uses, instead of every plugin of upstream's
// core/plugin (cloud DNS providers among them), which would make the cold build several
// times longer. coremain and the plugins are upstream's, unchanged; the Corefile is written by
// hack/lib/node.sh. Nothing here is Kompox code.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/template"
)

func main() {
	coremain.Run()
}

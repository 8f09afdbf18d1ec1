#!/usr/bin/env bash
# Benchmark of the Kompox admission webhook (bench/src/bin/bench-webhook/): direct
# AdmissionReviews/s and latency over TLS keep-alive, then Pod creation through kube-apiserver
# with and without the webhook registered. Prints markdown tables; figures go to
# docs/performance.md. Extra arguments go to bench-webhook (see --help).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

hack/cluster.sh up > /dev/null
eval "$(hack/cluster.sh env)"
cargo build --release -q -p kompox-webhook -p kompox-bench --bins
exec target/release/bench-webhook --kubeconfig "$KUBECONFIG" "$@"

#!/usr/bin/env bash
# The local cluster's load balancer (KOMPOX_REAL_NODE=1), what a cloud provider's is on AKS and
# k3s's ServiceLB is on k3s: every Service of type LoadBalancer gets the real node's IP as its
# status.loadBalancer.ingress, and kube-proxy then forwards <node IP>:<port> to the Service's
# endpoints. Traefik copies that status into the Ingresses it serves (its publishedService),
# which is how an Ingress shows it was admitted. Started and stopped by hack/lib/node.sh.
#
#   servicelb.sh <kubectl> <kubeconfig> <ip>
set -uo pipefail
kubectl=$1 kubeconfig=$2 ip=$3
# Stopping this process (by its pid) stops the kubectl watch it runs too: it leads its own group.
# Everything runs in the background with `wait`, which a signal interrupts: bash runs a trap
# only after the foreground command ends, and the watch never does (down waited 20 s for it).
trap 'trap - TERM EXIT; kill -- -$$ 2> /dev/null' TERM EXIT
k() { "$kubectl" --kubeconfig "$kubeconfig" "$@"; }
while :; do
  # Every Service as it is now and then each change: namespace, name, type, the first LB IP.
  k get services --all-namespaces --watch \
    -o jsonpath='{.metadata.namespace}{" "}{.metadata.name}{" "}{.spec.type}{" "}{.status.loadBalancer.ingress[0].ip}{"\n"}' |
    while read -r ns name type lb; do
      [ "$type" = LoadBalancer ] && [ "${lb:-}" != "$ip" ] || continue
      k patch service -n "$ns" "$name" --subresource=status --type=merge \
        -p "{\"status\":{\"loadBalancer\":{\"ingress\":[{\"ip\":\"$ip\",\"ipMode\":\"VIP\"}]}}}" > /dev/null ||
        echo "servicelb: could not set the status of Service $ns/$name" >&2
    done &
  wait $!
  # The watch ended (API server restarted, connection dropped): start over.
  sleep 1 &
  wait $!
done

//! The real node (`KOMPOX_REAL_NODE=1`): Pods run processes in containerd on this machine, their
//! logs come back through kube-apiserver from the kubelet, Services work through kube-proxy, and
//! Pods reach kube-apiserver through the `kubernetes` Service, and resolve Services by name through
//! the cluster DNS (CoreDNS behind `kube-dns`). Without the real node each test says it was skipped
//! and passes.

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::storage::v1::StorageClass;
use kompox_e2e::node::{self, NODE};
use kompox_e2e::{TestNamespace, admin_client};
use kube::api::{Api, PostParams};
use serde_json::json;

#[tokio::test]
async fn the_real_node_is_ready_in_zone_1_and_tainted() -> Result<()> {
    if node::skip("the_real_node_is_ready_in_zone_1_and_tainted") {
        return Ok(());
    }
    let client = admin_client().await?;
    let n = Api::<Node>::all(client).get(NODE).await?;
    let labels = n.metadata.labels.clone().unwrap_or_default();
    let zone = labels
        .get("topology.kubernetes.io/zone")
        .cloned()
        .unwrap_or_default();
    ensure!(
        zone.ends_with("-1"),
        "{NODE} is in zone {zone:?}, want zone 1"
    );
    ensure!(
        labels.get(node::LABEL.0).map(String::as_str) == Some(node::LABEL.1),
        "{NODE} lacks label {}={}",
        node::LABEL.0,
        node::LABEL.1
    );
    let spec = n.spec.clone().unwrap_or_default();
    ensure!(
        spec.taints
            .iter()
            .flatten()
            .any(|t| t.key == node::TAINT && t.effect == "NoSchedule"),
        "{NODE} lacks taint {}:NoSchedule: {:?}",
        node::TAINT,
        spec.taints
    );
    let status = n.status.clone().unwrap_or_default();
    let info = status.node_info.context("no nodeInfo")?;
    ensure!(
        info.container_runtime_version
            .starts_with("containerd://2."),
        "container runtime {}",
        info.container_runtime_version
    );
    ensure!(
        info.kubelet_version == "v1.35.4",
        "kubelet {}",
        info.kubelet_version
    );
    Ok(())
}

#[tokio::test]
async fn a_busybox_pod_runs_and_its_log_is_read_back() -> Result<()> {
    if node::skip("a_busybox_pod_runs_and_its_log_is_read_back") {
        return Ok(());
    }
    let client = admin_client().await?;
    let ns = TestNamespace::create(&client, "node-run", &[]).await?;
    let pods: Api<Pod> = ns.api();
    let log = node::run_to_completion(
        &pods,
        "hello",
        "echo \"hello from $(hostname) as uid $(id -u)\"; grep -c . /proc/self/mountinfo > /dev/null && echo done",
    )
    .await?;
    ensure!(log.contains("hello from hello as uid 0"), "log: {log:?}");
    ensure!(log.contains("done"), "log: {log:?}");
    let p = pods.get("hello").await?;
    let spec = p.spec.clone().unwrap_or_default();
    ensure!(
        spec.node_name.as_deref() == Some(NODE),
        "ran on {:?}",
        spec.node_name
    );
    let ip = p.status.and_then(|s| s.pod_ip).unwrap_or_default();
    ensure!(
        ip.starts_with(node::POD_PREFIX),
        "Pod IP {ip:?} not on the node's bridge"
    );
    ns.cleanup().await
}

#[tokio::test]
async fn a_service_reaches_its_pod_by_ip_and_name_and_pods_reach_the_api_server() -> Result<()> {
    if node::skip("a_service_reaches_its_pod_by_ip_and_name_and_pods_reach_the_api_server") {
        return Ok(());
    }
    let client = admin_client().await?;
    let ns = TestNamespace::create(&client, "node-svc", &[]).await?;
    let pods: Api<Pod> = ns.api();
    let web = node::busybox_pod(
        "web",
        "mkdir -p /www && echo \"served by $(hostname)\" > /www/index.html && exec httpd -f -p 8080 -h /www",
        "Always",
        json!({}),
    )?;
    node::run(&pods, &web, &["Running"]).await?;
    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }))?;
    let svc = ns
        .api::<Service>()
        .create(&PostParams::default(), &svc)
        .await?;
    let ip = svc
        .spec
        .and_then(|s| s.cluster_ip)
        .context("no clusterIP")?;
    // kube-proxy programs the rule once the Pod is Ready: retry the request for a while. The API
    // server's port answers plain HTTP with a 400. HTTP by hand with nc: the wget of Debian's
    // busybox-static 1.35 crashes (SIGSEGV) on these answers.
    let get = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3";
    // Then by name through the cluster DNS: the short name (the Pod's search path), the full name,
    // and a name that does not exist (NXDOMAIN, not the ClusterIP of something else).
    let fqdn = format!("web.{}.svc.cluster.local", ns.name);
    let log = node::run_to_completion(
        &pods,
        "client",
        &format!(
            "for i in $(seq 1 60); do {get} {ip} 80 | grep 'served by' && break; sleep 0.5; done; \
             {get} $KUBERNETES_SERVICE_HOST $KUBERNETES_SERVICE_PORT; \
             echo \"by name: $({get} web 80 | grep 'served by')\"; \
             echo \"fqdn: $(nslookup {fqdn} | grep -A1 '^Name:' | tail -n1)\"; \
             nslookup no-such-service.{ns}.svc.cluster.local > /dev/null 2>&1 || echo 'missing: NXDOMAIN'",
            ns = ns.name
        ),
    )
    .await?;
    ensure!(log.contains("served by web"), "client log: {log:?}");
    ensure!(
        log.contains("Client sent an HTTP request to an HTTPS server"),
        "client log (kube-apiserver through the kubernetes Service): {log:?}"
    );
    ensure!(
        log.contains("by name: served by web"),
        "client log (the Service by its short name through the cluster DNS): {log:?}"
    );
    ensure!(
        log.contains(&format!("fqdn: Address: {ip}"))
            || log.contains(&format!("fqdn: Address 1: {ip}")),
        "client log ({fqdn} resolves to the ClusterIP {ip}): {log:?}"
    );
    ensure!(
        log.contains("missing: NXDOMAIN"),
        "client log (a Service that does not exist does not resolve): {log:?}"
    );
    ns.cleanup().await
}

/// A volume of the mock CSI driver in zone 1: a Pod on the real node writes into it, the Pod
/// goes, a new Pod reads the same bytes; they are the volume's files in the driver's data plane.
#[tokio::test]
async fn a_volume_keeps_what_a_pod_wrote_for_the_next_pod() -> Result<()> {
    if node::skip("a_volume_keeps_what_a_pod_wrote_for_the_next_pod") {
        return Ok(());
    }
    let client = admin_client().await?;
    let ns = TestNamespace::create(&client, "node-csi", &[]).await?;
    // A class of the driver restricted to zone 1 (the real node's), named after the namespace.
    let class: StorageClass = serde_json::from_value(json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": ns.name, "labels": {"kompox.dev/e2e": "true"}},
        "provisioner": "mock.csi.kompox.dev",
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
        "allowedTopologies": [{"matchLabelExpressions": [{
            "key": "topology.kubernetes.io/zone", "values": [node::zone(1)?],
        }]}],
    }))?;
    let classes = Api::<StorageClass>::all(client.clone());
    classes.create(&PostParams::default(), &class).await?;
    let result = volume_round_trip(&ns).await;
    // The PVC goes with the namespace; its PV (Delete) and the driver's volume follow.
    let cleanup = ns.cleanup().await;
    classes
        .delete(&class_name(&class)?, &Default::default())
        .await?;
    result?;
    cleanup
}

fn class_name(c: &StorageClass) -> Result<String> {
    c.metadata.name.clone().context("class has a name")
}

async fn volume_round_trip(ns: &TestNamespace) -> Result<()> {
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"storageClassName": ns.name, "accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "1Gi"}}},
    }))?;
    let pvcs: Api<PersistentVolumeClaim> = ns.api();
    pvcs.create(&PostParams::default(), &pvc).await?;
    let mount = json!({
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
    });
    let with_mount = |mut p: Pod| -> Result<Pod> {
        let c = p
            .spec
            .as_mut()
            .and_then(|s| s.containers.first_mut())
            .context("pod has a container")?;
        c.volume_mounts = Some(vec![serde_json::from_value(
            json!({"name": "data", "mountPath": "/data"}),
        )?]);
        Ok(p)
    };
    let secret = format!("written on the real node {}", rand::random::<u64>());
    let pods: Api<Pod> = ns.api();
    let writer = with_mount(node::busybox_pod(
        "writer",
        &format!("mkdir -p /data/sub && echo '{secret}' > /data/sub/file && cat /data/sub/file"),
        "Never",
        mount.clone(),
    )?)?;
    node::run(&pods, &writer, &["Succeeded"]).await?;
    ensure!(node::logs(&pods, "writer").await?.contains(&secret));

    // The bytes are the volume's, in the driver's data plane.
    let pv = pvcs
        .get("data")
        .await?
        .spec
        .and_then(|s| s.volume_name)
        .context("PVC data has no volume")?;
    let handle = Api::<PersistentVolume>::all(pods.clone().into_client())
        .get(&pv)
        .await?
        .spec
        .and_then(|s| s.csi)
        .map(|c| c.volume_handle)
        .context("PV has no CSI volume handle")?;
    let on_disk = kompox_e2e::controller::read_volume_file(&handle, "sub/file")?;
    ensure!(
        String::from_utf8_lossy(&on_disk).trim() == secret,
        "volume {handle} holds {:?}",
        String::from_utf8_lossy(&on_disk)
    );

    kompox_e2e::delete_and_wait(&pods, "writer").await?;
    let reader = with_mount(node::busybox_pod(
        "reader",
        "cat /data/sub/file && echo appended >> /data/sub/file",
        "Never",
        mount,
    )?)?;
    node::run(&pods, &reader, &["Succeeded"]).await?;
    let log = node::logs(&pods, "reader").await?;
    ensure!(log.contains(&secret), "the second Pod read {log:?}");
    kompox_e2e::delete_and_wait(&pods, "reader").await?;
    let after = kompox_e2e::controller::read_volume_file(&handle, "sub/file")?;
    ensure!(
        String::from_utf8_lossy(&after).ends_with("appended\n"),
        "the second Pod's write is not in the volume: {:?}",
        String::from_utf8_lossy(&after)
    );
    Ok(())
}

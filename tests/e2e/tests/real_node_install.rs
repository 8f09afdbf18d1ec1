//! The production install on the real node (`KOMPOX_REAL_NODE=1`): `kubectl kompox install`
//! without `--local`, with the image hack/images.sh built from the Containerfile's recipe, runs
//! kompox-apiserver, kompox-webhook and kompox-controller as Pods on the containerd node. The
//! APIService is Available through its Service's endpoints, the webhook mutates a Pod through its
//! Service, the aggregated API answers, and a deleted apiserver Pod is replaced and the APIService
//! is Available again. Then `uninstall`. Cluster-wide registrations: this binary runs alone (cargo
//! runs test binaries one after another), like tests/demo.rs.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kompox_e2e::cli::{kompox, temp_dir};
use kompox_e2e::node::{self, NODE};
use kompox_e2e::webhook::{dry_run_pod, env_hash, managed_labels, pod, test_id};
use kompox_e2e::{TestNamespace, admin_client, kubectl, wait_until};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

const SYSTEM_NS: &str = "k4x-system";
const APISERVICE: &str = "v1alpha1.subresources.k8s.kompox.dev";
const SERVERS: [&str; 3] = ["kompox-apiserver", "kompox-webhook", "kompox-controller"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_runs_the_servers_as_pods_on_the_real_node() -> Result<()> {
    if node::skip("install_runs_the_servers_as_pods_on_the_real_node") {
        return Ok(());
    }
    let client = admin_client().await?;
    // `make test` builds the image (`make images`) before the cluster comes up, which imports it.
    let images = tokio::task::spawn_blocking(|| {
        std::process::Command::new("bash")
            .arg(kompox_e2e::repo_root().join("hack/images.sh"))
            .arg("import-node")
            .output()
    })
    .await??;
    ensure!(
        images.status.success(),
        "hack/images.sh import-node: {}",
        String::from_utf8_lossy(&images.stderr)
    );
    ensure!(
        node::has_image(node::KOMPOX_IMAGE)?,
        "{} is not on the real node: build it with `make images` (hack/images.sh build)",
        node::KOMPOX_IMAGE
    );
    let cache = temp_dir("node-install")?;
    let result = installed_and_serving(&cache, &client).await;
    let uninstall = tokio::task::spawn_blocking(move || kompox(&cache, &["uninstall"]))
        .await
        .context("joining")??
        .ok();
    result?;
    uninstall.map(|_| ())
}

async fn installed_and_serving(cache: &std::path::Path, client: &kube::Client) -> Result<()> {
    let started = Instant::now();
    let selector = format!("--node-selector={}={}", node::LABEL.0, node::LABEL.1);
    let toleration = format!("--toleration={}:NoSchedule", node::TAINT);
    let cache2 = cache.to_path_buf();
    let r = tokio::task::spawn_blocking(move || {
        kompox(
            &cache2,
            &[
                "install",
                "--image",
                node::KOMPOX_IMAGE,
                &selector,
                &toleration,
                "--timeout=180s",
            ],
        )
    })
    .await
    .context("joining")??
    .ok()?;
    ensure!(
        r.stdout
            .contains(&format!("APIService {APISERVICE} is Available")),
        "{r:?}"
    );
    eprintln!(
        "install (no --local) to an Available APIService: {:.1?}",
        started.elapsed()
    );

    // Every server runs as Pods of the image on the real node, all containers ready.
    let pods: Api<Pod> = Api::namespaced(client.clone(), SYSTEM_NS);
    for server in SERVERS {
        let deploy = Api::<Deployment>::namespaced(client.clone(), SYSTEM_NS);
        wait_until(
            &format!("Deployment {server} available"),
            Duration::from_secs(120),
            || async {
                let d = deploy.get(server).await?;
                let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                Ok(d.status.and_then(|s| s.available_replicas).unwrap_or(0) >= want)
            },
        )
        .await?;
        let list = pods
            .list(&ListParams::default().labels(&format!("app.kubernetes.io/name={server}")))
            .await?;
        ensure!(!list.items.is_empty(), "no Pods of {server}");
        for p in &list.items {
            let spec = p.spec.clone().unwrap_or_default();
            ensure!(
                spec.node_name.as_deref() == Some(NODE),
                "{server} Pod on {:?}",
                spec.node_name
            );
            let c = spec.containers.first().context("no container")?;
            ensure!(
                c.image.as_deref() == Some(node::KOMPOX_IMAGE),
                "{server} image {:?}",
                c.image
            );
            let statuses = p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.clone())
                .unwrap_or_default();
            ensure!(
                statuses
                    .iter()
                    .all(|s| s.ready && s.state.as_ref().is_some_and(|st| st.running.is_some())),
                "{server} Pod not running and ready: {}",
                node::container_state(p)
            );
        }
    }

    // The APIService's Service has ready endpoints (Pod IPs on the node's bridge).
    let slices = Api::<EndpointSlice>::namespaced(client.clone(), SYSTEM_NS)
        .list(&ListParams::default().labels("kubernetes.io/service-name=kompox-apiserver"))
        .await?;
    let ready: Vec<String> = slices
        .items
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false))
        .flat_map(|e| e.addresses.clone())
        .collect();
    ensure!(
        !ready.is_empty() && ready.iter().all(|a| a.starts_with(node::POD_PREFIX)),
        "kompox-apiserver endpoints: {ready:?}"
    );

    // The aggregated API answers through kube-apiserver.
    let discovery = tokio::task::spawn_blocking(|| {
        kubectl(&["get", "--raw", "/apis/subresources.k8s.kompox.dev/v1alpha1"])
    })
    .await??;
    ensure!(
        discovery.contains("kompoxapps/rendered"),
        "discovery: {discovery}"
    );

    // The webhook serves through its Service: a Pod using a Secret gets its env-hash.
    webhook_mutates(client).await?;

    // A deleted apiserver Pod is replaced; the APIService is Available again.
    let victim = pods
        .list(&ListParams::default().labels("app.kubernetes.io/name=kompox-apiserver"))
        .await?
        .items
        .into_iter()
        .find_map(|p| p.metadata.name)
        .context("no apiserver Pod")?;
    let t = Instant::now();
    pods.delete(&victim, &DeleteParams::default()).await?;
    let apiservices: Api<APIService> = Api::all(client.clone());
    wait_until(
        "the APIService Available with the replacement Pod",
        Duration::from_secs(60),
        || async {
            let replaced = pods
                .list(&ListParams::default().labels("app.kubernetes.io/name=kompox-apiserver"))
                .await?
                .items
                .iter()
                .filter(|p| p.metadata.name.as_deref() != Some(victim.as_str()))
                .filter(|p| {
                    p.status
                        .as_ref()
                        .and_then(|s| s.container_statuses.as_ref())
                        .is_some_and(|cs| cs.iter().all(|c| c.ready))
                })
                .count();
            let available = apiservices
                .get(APISERVICE)
                .await?
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Available" && c.status == "True");
            Ok(replaced >= 2 && available)
        },
    )
    .await?;
    eprintln!(
        "apiserver Pod deleted -> two ready Pods and Available again: {:.1?}",
        t.elapsed()
    );
    webhook_mutates(client).await
}

async fn webhook_mutates(client: &kube::Client) -> Result<()> {
    let id = test_id();
    let ns = TestNamespace::create(client, "node-webhook", &managed_labels(&id)).await?;
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "env"},
        "stringData": {"TOKEN": "t"},
    }))?;
    ns.api::<Secret>()
        .create(&PostParams::default(), &secret)
        .await?;
    let t = Instant::now();
    let mutated = dry_run_pod(client, &ns.name, &pod("probe", &[], Some("env"))?).await;
    let cleanup = ns.cleanup().await;
    let mutated = mutated.context("Pod create through the in-cluster webhook")?;
    ensure!(
        env_hash(&mutated).is_some(),
        "no env-hash: the webhook did not mutate the Pod"
    );
    eprintln!("webhook through its Service: {:.0?}", t.elapsed());
    cleanup
}

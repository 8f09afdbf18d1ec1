//! The phase through kube-apiserver: a namespace with a Kompox disk, a bound PVC and a Secret,
//! the webhook registered and not, Pods created concurrently.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolume, PersistentVolumeClaim, Pod, Secret};
use kompox_bench::wait_for;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::{Client, ResourceExt as _};
use serde_json::{Value, json};

use crate::{BENCH_LABEL, Samples};

/// The namespace, disk, bound PVC and Secret the Pods use.
pub(crate) struct Fixture {
    pub(crate) ns: String,
    pub(crate) pv: String,
}

impl Fixture {
    pub(crate) async fn create(client: &Client, ns: &str, id: &str) -> Result<Fixture> {
        kompox_bench::apply_crds(client, "kompox-bench").await?;
        // Not labelled managed-by=kompox: a Kompox installation elsewhere in the cluster must not
        // mutate the "not registered" rounds. The bench's registration selects this label only.
        let namespace: Namespace =
            serde_json::from_value(json!({"metadata": {"name": ns, "labels": {BENCH_LABEL: id}}}))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await?;
        let fx = Fixture {
            ns: ns.to_owned(),
            pv: format!("{ns}-main"),
        };
        wait_for(
            Duration::from_secs(60),
            "the default ServiceAccount",
            || {
                let sa: Api<k8s_openapi::api::core::v1::ServiceAccount> =
                    Api::namespaced(client.clone(), ns);
                async move { Ok(sa.get_opt("default").await?.is_some()) }
            },
        )
        .await?;
        let disk: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxDisk",
            "metadata": {"name": "main", "namespace": ns},
            "spec": {"size": "1Gi", "zone": "2"}}))?;
        let ar = kube::api::ApiResource::erase::<kompox_core::api::KompoxDisk>(&());
        Api::<DynamicObject>::namespaced_with(client.clone(), ns, &ar)
            .create(&PostParams::default(), &disk)
            .await?;
        let pv: PersistentVolume = serde_json::from_value(
            json!({"metadata": {"name": fx.pv, "labels": {
                kompox_core::naming::DISK_LABEL: "main", kompox_core::naming::DISK_NAMESPACE_LABEL: ns}},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                "persistentVolumeReclaimPolicy": "Retain", "claimRef": {"namespace": ns, "name": "data"},
                "csi": {"driver": "hostpath.csi.k8s.io", "volumeHandle": fx.pv}}}),
        )?;
        Api::<PersistentVolume>::all(client.clone())
            .create(&PostParams::default(), &pv)
            .await?;
        let pvc: PersistentVolumeClaim =
            serde_json::from_value(json!({"metadata": {"name": "data", "namespace": ns},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "", "volumeName": fx.pv,
                "resources": {"requests": {"storage": "1Gi"}}}}))?;
        Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &pvc)
            .await?;
        let secret: Secret =
            serde_json::from_value(json!({"metadata": {"name": "env", "namespace": ns},
            "stringData": {"DATABASE_URL": "postgres://bench@db/bench", "API_KEY": "bench"}}))?;
        Api::<Secret>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &secret)
            .await?;
        Ok(fx)
    }

    pub(crate) async fn delete(&self, client: &Client) {
        let _ = Api::<Namespace>::all(client.clone())
            .delete(&self.ns, &DeleteParams::background())
            .await;
        let _ = Api::<PersistentVolume>::all(client.clone())
            .delete(&self.pv, &DeleteParams::background())
            .await;
    }
}

pub(crate) fn bench_pod(name: &str) -> Result<Pod> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {
            // No such scheduler: the Pods stay Pending, so only creation is measured.
            "schedulerName": "kompox-bench-unscheduled",
            "containers": [{"name": "app", "image": "registry.example/app:1",
                "envFrom": [{"secretRef": {"name": "env"}}]}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
        },
    }))?)
}

/// Waits until a dry-run create of `probe` comes back mutated (`registered`) or not.
pub(crate) async fn wait_registration(
    client: &Client,
    ns: &str,
    probe: &Pod,
    registered: bool,
) -> Result<()> {
    let what = if registered {
        "the registration to take effect"
    } else {
        "the registration to go away"
    };
    wait_for(Duration::from_secs(30), what, || {
        let p = dry_run(client, ns, probe);
        async move {
            let mutated = p
                .await?
                .annotations()
                .contains_key(kompox_core::naming::ENV_HASH_ANNOTATION);
            Ok(mutated == registered)
        }
    })
    .await
}

pub(crate) async fn dry_run(client: &Client, ns: &str, pod: &Pod) -> Result<Pod> {
    Ok(Api::<Pod>::namespaced(client.clone(), ns)
        .create(
            &PostParams {
                dry_run: true,
                ..PostParams::default()
            },
            pod,
        )
        .await?)
}

/// Registers the manifest's webhooks at `url` for the bench namespace only.
pub(crate) async fn register(
    client: &Client,
    id: &str,
    url: &str,
    ca_pem: &str,
    match_conditions: bool,
) -> Result<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../manifests/webhook/mutatingwebhookconfiguration.yaml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let v: Value = serde_saphyr::from_str(&text)?;
    let mut cfg: MutatingWebhookConfiguration = serde_json::from_value(v)?;
    let name = format!("kompox-bench-{id}");
    cfg.metadata.name = Some(name.clone());
    for w in cfg.webhooks.iter_mut().flatten() {
        if !match_conditions {
            w.match_conditions = None;
        }
        w.client_config.service = None;
        w.client_config.url = Some(url.to_owned());
        w.client_config.ca_bundle = Some(k8s_openapi::ByteString(ca_pem.as_bytes().to_vec()));
        w.namespace_selector = Some(serde_json::from_value(
            json!({"matchLabels": {BENCH_LABEL: id}}),
        )?);
    }
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &cfg)
        .await?;
    Ok(name)
}

/// Creates `n` Pods with `concurrency` creators; returns the create latencies and how many
/// came back mutated.
pub(crate) async fn create_pods(
    noop: bool,
    client: &Client,
    ns: &str,
    n: usize,
    concurrency: usize,
    round: usize,
    registered: bool,
) -> Result<(Samples, usize)> {
    let start = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (api, next) = (Api::<Pod>::namespaced(client.clone(), ns), next.clone());
        tasks.spawn(async move {
            let mut lat = Vec::new();
            let mut mutated = 0;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let name = format!("web-{round}-{}-{i}", u8::from(registered));
                let mut p = bench_pod(&name)?;
                if noop && let Some(spec) = p.spec.as_mut() {
                    spec.volumes = None;
                    spec.containers[0].env_from = None;
                }
                let t = Instant::now();
                let created = api.create(&PostParams::default(), &p).await?;
                lat.push(t.elapsed());
                if created
                    .annotations()
                    .contains_key(kompox_core::naming::ENV_HASH_ANNOTATION)
                {
                    mutated += 1;
                }
            }
            anyhow::Ok((lat, mutated))
        });
    }
    let mut s = Samples::default();
    let mut mutated = 0;
    while let Some(r) = tasks.join_next().await {
        let (lat, m) = r??;
        s.add(lat);
        mutated += m;
    }
    s.elapsed = start.elapsed();
    Ok((s, mutated))
}

pub(crate) async fn delete_pods(client: &Client, ns: &str) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    api.delete_collection(
        &DeleteParams::default().grace_period(0),
        &ListParams::default(),
    )
    .await?;
    wait_for(
        Duration::from_secs(120),
        "the round's Pods to be gone",
        || {
            let api = api.clone();
            async move {
                Ok(api
                    .list(&ListParams::default().limit(1))
                    .await?
                    .items
                    .is_empty())
            }
        },
    )
    .await
}

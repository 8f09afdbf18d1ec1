//! Harness for the admission webhook's end-to-end tests: the webhook runs in-process on
//! `127.0.0.1:<ephemeral>` with a CA and serving certificate from `kompox_serve::certs`, and
//! kube-apiserver reaches it through a MutatingWebhookConfiguration built from
//! `manifests/webhook/mutatingwebhookconfiguration.yaml` with a `clientConfig.url`, the
//! `caBundle`, a unique name and a namespaceSelector narrowed to one test's namespaces.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::core::v1::{Namespace, PersistentVolume, PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
use kompox_serve::certs::{CertifiedCa, generate_ca, issue_serving_cert};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt as _};
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::{TestNamespace, repo_root, wait_until};

/// Label narrowing a test's webhook registration to that test's namespaces.
pub const E2E_WEBHOOK_LABEL: &str = "kompox.dev/e2e-webhook";

/// The webhook running in this process.
pub struct WebhookServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The CA its serving certificate chains to (PEM).
    pub ca: CertifiedCa,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl WebhookServer {
    /// Starts the webhook with a fresh CA and a serving certificate for `127.0.0.1` and
    /// `localhost`, and waits until its caches are synced (`/readyz`).
    pub async fn start(client: &Client) -> Result<Self> {
        let ca = generate_ca("kompox-e2e-webhook-ca")?;
        let leaf = issue_serving_cert(&ca, &["localhost"], &[IpAddr::V4(Ipv4Addr::LOCALHOST)], 1)?;
        let config = kompox_webhook::Config {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            tls: kompox_webhook::TlsSource::Pem {
                cert: leaf.cert_pem,
                key: leaf.key_pem,
            },
            region: None,
            hash_key: crate::hash_key(),
            client_auth: None,
            serve: kompox_serve::ServeOptions::default(),
        };
        Self::start_with(client, config, ca).await
    }

    /// Starts the webhook with `config`; `ca` is what clients should trust.
    pub async fn start_with(
        client: &Client,
        config: kompox_webhook::Config,
        ca: CertifiedCa,
    ) -> Result<Self> {
        let webhook = kompox_webhook::Webhook::bind(config, client.clone()).await?;
        let addr = webhook.local_addr()?;
        let health = webhook.health();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(webhook.run(async move {
            let _ = stopped.await;
        }));
        wait_until("webhook caches synced", Duration::from_secs(60), || {
            let ready = health.is_ready();
            async move { Ok(ready) }
        })
        .await?;
        Ok(Self {
            addr,
            ca,
            stop: Some(stop),
            task,
        })
    }

    /// `https://127.0.0.1:<port>/mutate`.
    pub fn url(&self) -> String {
        format!("https://{}/mutate", self.addr)
    }

    /// Stops the webhook and waits for it.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), &mut self.task)
            .await
            .context("webhook did not stop")??;
        Ok(())
    }
}

impl Drop for WebhookServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The webhook registration from `manifests/webhook/`.
pub fn manifest() -> Result<MutatingWebhookConfiguration> {
    let path = repo_root().join("manifests/webhook/mutatingwebhookconfiguration.yaml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value =
        serde_saphyr::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(serde_json::from_value(value)?)
}

/// A test's registration of the webhook; delete it with [`Registration::delete`].
pub struct Registration {
    /// Name of the MutatingWebhookConfiguration.
    pub name: String,
    client: Client,
}

impl Registration {
    /// Registers the manifest's webhooks under `kompox-e2e-<id>`, calling `url` and trusting
    /// `ca_bundle` (`None`: left empty for the webhook to fill), for namespaces labelled
    /// `kompox.dev/e2e-webhook=<id>` (in addition to the manifest's own selectors).
    pub async fn create(
        client: &Client,
        id: &str,
        url: &str,
        ca_bundle: Option<&str>,
    ) -> Result<Self> {
        let mut cfg = manifest()?;
        let name = format!("kompox-e2e-{id}");
        cfg.metadata.name = Some(name.clone());
        cfg.metadata.resource_version = None;
        for w in cfg.webhooks.iter_mut().flatten() {
            w.client_config = WebhookClientConfig {
                url: Some(url.to_owned()),
                service: None,
                ca_bundle: ca_bundle.map(|c| ByteString(c.as_bytes().to_vec())),
            };
            let sel = w.namespace_selector.get_or_insert_with(Default::default);
            sel.match_expressions
                .get_or_insert_with(Vec::new)
                .push(LabelSelectorRequirement {
                    key: E2E_WEBHOOK_LABEL.to_owned(),
                    operator: "In".to_owned(),
                    values: Some(vec![id.to_owned()]),
                });
        }
        Api::<MutatingWebhookConfiguration>::all(client.clone())
            .create(&PostParams::default(), &cfg)
            .await
            .with_context(|| format!("registering {name}"))?;
        Ok(Self {
            name,
            client: client.clone(),
        })
    }

    /// Deletes the registration.
    pub async fn delete(self) -> Result<()> {
        Api::<MutatingWebhookConfiguration>::all(self.client)
            .delete(&self.name, &DeleteParams::default())
            .await?;
        Ok(())
    }
}

/// A random id for one test's objects and labels.
pub fn test_id() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// Labels of a Kompox-managed namespace matched by the registration of test `id`.
pub fn managed_labels(id: &str) -> [(&'static str, &str); 2] {
    [
        ("app.kubernetes.io/managed-by", "kompox"),
        (E2E_WEBHOOK_LABEL, id),
    ]
}

/// Creates a KompoxDisk in `ns` with `spec.zone = zone`.
pub async fn create_disk(client: &Client, ns: &str, name: &str, zone: &str) -> Result<()> {
    let disk: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxDisk",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"size": "1Gi", "zone": zone, "deletionPolicy": "Orphan"},
    }))?;
    disks(client, ns)
        .create(&PostParams::default(), &disk)
        .await
        .with_context(|| format!("creating KompoxDisk {ns}/{name}"))?;
    Ok(())
}

fn disks(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        ns,
        &kube::api::ApiResource {
            group: "k8s.kompox.dev".into(),
            version: "v1alpha1".into(),
            api_version: "k8s.kompox.dev/v1alpha1".into(),
            kind: "KompoxDisk".into(),
            plural: "kompoxdisks".into(),
        },
    )
}

/// A Kompox static PV for disk `ns/disk` (labelled as the storage controller labels them,
/// reserved for claim `ns/claim`) and the PVC bound to it; waits until the PVC is Bound.
/// Returns the PV's name (cluster-scoped: delete it with [`delete_pv`]).
pub async fn create_bound_claim(
    client: &Client,
    ns: &str,
    claim: &str,
    disk: &str,
) -> Result<String> {
    let pv_name = format!("{ns}-{disk}");
    let pv: PersistentVolume = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": pv_name, "labels": {
            kompox_core::naming::DISK_LABEL: disk,
            kompox_core::naming::DISK_NAMESPACE_LABEL: ns,
        }},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "claimRef": {"namespace": ns, "name": claim},
            "csi": {"driver": "hostpath.csi.k8s.io", "volumeHandle": format!("handle-{pv_name}")},
        },
    }))?;
    Api::<PersistentVolume>::all(client.clone())
        .create(&PostParams::default(), &pv)
        .await
        .with_context(|| format!("creating PV {pv_name}"))?;
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": claim, "namespace": ns},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "",
            "volumeName": pv_name,
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }))?;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    pvcs.create(&PostParams::default(), &pvc)
        .await
        .with_context(|| format!("creating PVC {ns}/{claim}"))?;
    let claim_name = claim.to_owned();
    wait_until(
        &format!("PVC {ns}/{claim} Bound"),
        Duration::from_secs(60),
        || {
            let (pvcs, claim) = (pvcs.clone(), claim_name.clone());
            async move {
                let p = pvcs.get(&claim).await?;
                Ok(p.status.and_then(|s| s.phase).as_deref() == Some("Bound"))
            }
        },
    )
    .await?;
    Ok(pv_name)
}

/// Deletes a PV created by [`create_bound_claim`].
pub async fn delete_pv(client: &Client, name: &str) -> Result<()> {
    Api::<PersistentVolume>::all(client.clone())
        .delete(name, &DeleteParams::background())
        .await?;
    Ok(())
}

/// Creates (or replaces the data of) an Opaque Secret.
pub async fn put_secret(
    client: &Client,
    ns: &str,
    name: &str,
    data: &[(&str, &str)],
) -> Result<()> {
    let s: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "stringData": data.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect::<serde_json::Map<_, _>>(),
    }))?;
    Api::<Secret>::namespaced(client.clone(), ns)
        .patch(
            name,
            &PatchParams::apply("kompox-e2e").force(),
            &Patch::Apply(&s),
        )
        .await
        .with_context(|| format!("applying Secret {ns}/{name}"))?;
    Ok(())
}

/// A Pod object (not created) using the given claims and, if set, `envFrom` a Secret.
pub fn pod(name: &str, claims: &[&str], env_secret: Option<&str>) -> Result<Pod> {
    let volumes: Vec<serde_json::Value> = claims
        .iter()
        .map(|c| json!({"name": c, "persistentVolumeClaim": {"claimName": c}}))
        .collect();
    let env_from: Vec<serde_json::Value> = env_secret
        .iter()
        .map(|s| json!({"secretRef": {"name": s}}))
        .collect();
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "containers": [{"name": "app", "image": "registry.example/app:1", "envFrom": env_from}],
            "volumes": volumes,
        },
    }))?)
}

/// Server-side dry-run create of `pod` in `ns`: what the API server would store.
pub async fn dry_run_pod(client: &Client, ns: &str, pod: &Pod) -> Result<Pod, kube::Error> {
    Api::<Pod>::namespaced(client.clone(), ns)
        .create(
            &PostParams {
                dry_run: true,
                ..PostParams::default()
            },
            pod,
        )
        .await
}

/// The zone values the Pod's required node affinity pins it to, per term.
pub fn required_zones(pod: &Pod) -> Vec<Vec<String>> {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|r| {
            r.node_selector_terms
                .iter()
                .map(|t| {
                    t.match_expressions
                        .iter()
                        .flatten()
                        .filter(|e| {
                            e.key == kompox_core::provider::ZONE_LABEL && e.operator == "In"
                        })
                        .flat_map(|e| e.values.clone().unwrap_or_default())
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The env-hash annotation on a Deployment's pod template.
pub fn template_hash(d: &k8s_openapi::api::apps::v1::Deployment) -> Option<String> {
    d.spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(kompox_core::naming::ENV_HASH_ANNOTATION)
        .cloned()
}

/// The Pod's env-hash annotation.
pub fn env_hash(pod: &Pod) -> Option<String> {
    pod.annotations()
        .get(kompox_core::naming::ENV_HASH_ANNOTATION)
        .cloned()
}

/// Waits until kube-apiserver calls the registered webhook for `ns` and the webhook's
/// caches hold the objects `probe` needs: a dry-run create of `probe` is mutated as `ok` says.
pub async fn wait_mutating(
    client: &Client,
    ns: &str,
    probe: &Pod,
    ok: impl Fn(&Pod) -> bool,
) -> Result<()> {
    wait_until(
        "kube-apiserver to call the webhook",
        Duration::from_secs(60),
        || {
            let result = dry_run_pod(client, ns, probe);
            let ok = &ok;
            async move { Ok(ok(&result.await?)) }
        },
    )
    .await
}

/// A namespace managed by Kompox (for the registration of test `id`).
pub async fn managed_namespace(client: &Client, prefix: &str, id: &str) -> Result<TestNamespace> {
    TestNamespace::create(client, prefix, &managed_labels(id)).await
}

/// Sets (`Some`) or removes (`None`) labels on a namespace with a JSON merge patch.
pub async fn label_namespace(
    client: &Client,
    ns: &str,
    labels: &[(&str, Option<&str>)],
) -> Result<()> {
    let map: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .map(|(k, v)| {
            (
                (*k).to_owned(),
                v.map_or(serde_json::Value::Null, |v| json!(v)),
            )
        })
        .collect();
    Api::<Namespace>::all(client.clone())
        .patch(
            ns,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": map}})),
        )
        .await
        .with_context(|| format!("labelling namespace {ns}"))?;
    Ok(())
}

/// Fails unless `err` is an API error whose message contains every `needle`.
pub fn assert_api_error(err: &kube::Error, needles: &[&str]) -> Result<()> {
    let msg = match err {
        kube::Error::Api(s) => s.message.clone(),
        other => bail!("expected an API error, got {other}"),
    };
    for n in needles {
        if !msg.contains(n) {
            bail!("error {msg:?} lacks {n:?}");
        }
    }
    Ok(())
}

//! Helpers for the app controller's e2e tests (`tests/apps.rs`) and its benchmark: loading a
//! sample into a namespace, applying raw objects, waiting on a KompoxApp's status, reading the
//! controller's metrics, and a Pod watch that records how many Pods ever used one PVC at once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kompox_core::api::condition::{self, types};
use kompox_core::api::{KompoxApp, KompoxAppStatus};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::controller::ControllerProcess;
use crate::{repo_root, wait_until};

/// Field manager of the objects tests apply.
pub const TEST_MANAGER: &str = "kompox-e2e";

/// The documents of a sample's `app.yml` (KompoxApp, KompoxDisks, Secrets/ConfigMaps).
pub fn sample_documents(sample: &str) -> Result<Vec<Value>> {
    let path = repo_root().join("samples").join(sample).join("app.yml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
        .map_err(|e| anyhow::anyhow!("parsing {}: {e}", path.display()))?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// A sample's `compose.yml`.
pub fn sample_compose(sample: &str) -> Result<String> {
    let path = repo_root().join("samples").join(sample).join("compose.yml");
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// The API of an object's kind, from its apiVersion and kind (plural = lowercase kind + "s",
/// right for every kind the tests apply).
fn dynamic_api(client: &Client, ns: &str, obj: &Value) -> Result<(Api<DynamicObject>, String)> {
    let av = obj["apiVersion"].as_str().context("apiVersion")?;
    let kind = obj["kind"].as_str().context("kind")?;
    let name = obj["metadata"]["name"]
        .as_str()
        .context("metadata.name")?
        .to_owned();
    let (group, version) = av.split_once('/').unwrap_or(("", av));
    let plural = format!("{}s", kind.to_lowercase());
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), &plural);
    Ok((Api::namespaced_with(client.clone(), ns, &ar), name))
}

/// Server-side applies `obj` in `ns` (field manager [`TEST_MANAGER`]).
pub async fn apply(client: &Client, ns: &str, obj: &Value) -> Result<()> {
    let (api, name) = dynamic_api(client, ns, obj)?;
    api.patch(
        &name,
        &PatchParams::apply(TEST_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
    .with_context(|| format!("applying {} {name}", obj["kind"]))?;
    Ok(())
}

/// Writes the compose ConfigMap `name` (key `compose.yml`).
pub async fn put_compose(client: &Client, ns: &str, name: &str, compose: &str) -> Result<()> {
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"compose.yml": compose},
    });
    apply(client, ns, &cm).await
}

/// Loads a sample into `ns`: its compose ConfigMap (named by the KompoxApp), then every
/// document of `app.yml`, KompoxDisks first. Returns the documents.
pub async fn load_sample(client: &Client, ns: &str, sample: &str) -> Result<Vec<Value>> {
    let mut docs = sample_documents(sample)?;
    let compose = sample_compose(sample)?;
    let cm_name = docs
        .iter()
        .find(|d| d["kind"] == "KompoxApp")
        .and_then(|d| d["spec"]["compose"]["configMapRef"]["name"].as_str())
        .context("sample without a KompoxApp")?
        .to_owned();
    put_compose(client, ns, &cm_name, &compose).await?;
    docs.sort_by_key(|d| d["kind"] == "KompoxApp");
    for d in &docs {
        apply(client, ns, d).await?;
    }
    Ok(docs)
}

/// Whether `status` reports Ready for the current `generation`.
pub fn is_ready(status: &KompoxAppStatus, generation: Option<i64>) -> bool {
    status.ready
        && status.observed_generation == generation
        && condition::is_true(&status.conditions, types::READY)
}

/// Waits until the app's status satisfies `pred` (given the app), at most `timeout`.
pub async fn wait_app(
    api: &Api<KompoxApp>,
    name: &str,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&KompoxApp) -> bool,
) -> Result<KompoxApp> {
    let found: Arc<Mutex<Option<KompoxApp>>> = Arc::new(Mutex::new(None));
    let res = wait_until(what, timeout, || {
        let found = found.clone();
        let api = api.clone();
        let pred = &pred;
        async move {
            let a = api.get(name).await?;
            let ok = pred(&a);
            *found.lock().unwrap_or_else(PoisonError::into_inner) = Some(a);
            Ok(ok)
        }
    })
    .await;
    let last = found.lock().unwrap_or_else(PoisonError::into_inner).take();
    match (res, last) {
        (Ok(()), Some(a)) => Ok(a),
        (Err(e), last) => {
            let status = last
                .and_then(|a| a.status)
                .map(|s| serde_json::to_string(&s).unwrap_or_default())
                .unwrap_or_default();
            Err(e.context(format!("last status of {name}: {status}")))
        }
        (Ok(()), None) => bail!("{what}: no app read"),
    }
}

/// Waits until the app is Ready for its current generation.
pub async fn wait_ready(api: &Api<KompoxApp>, name: &str, timeout: Duration) -> Result<KompoxApp> {
    wait_app(
        api,
        name,
        &format!("KompoxApp {name} Ready"),
        timeout,
        |a| {
            a.status
                .as_ref()
                .is_some_and(|s| is_ready(s, a.metadata.generation))
        },
    )
    .await
}

/// Waits until the app is Degraded with `reason` for its current generation; returns the
/// Degraded message.
pub async fn wait_degraded(
    api: &Api<KompoxApp>,
    name: &str,
    reason: &str,
    timeout: Duration,
) -> Result<String> {
    let a = wait_app(
        api,
        name,
        &format!("KompoxApp {name} Degraded {reason}"),
        timeout,
        |a| {
            a.status.as_ref().is_some_and(|s| {
                s.observed_generation == a.metadata.generation
                    && condition::find(&s.conditions, types::DEGRADED)
                        .is_some_and(|c| c.status == "True" && c.reason == reason)
            })
        },
    )
    .await?;
    Ok(a.status
        .as_ref()
        .and_then(|s| condition::find(&s.conditions, types::DEGRADED))
        .map(|c| c.message.clone())
        .unwrap_or_default())
}

/// Sum of the samples of metric `name` whose label set contains `labels` (e.g.
/// `controller="app"`), from the controller's `/metrics`.
pub async fn metric(proc: &ControllerProcess, name: &str, labels: &str) -> Result<f64> {
    let token = crate::metrics_tokens().await?.reader;
    let (code, body) = proc.get_as("/metrics", Some(&token)).await?;
    if code != 200 {
        bail!("/metrics answered {code}");
    }
    Ok(body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum())
}

/// Reconciles of the app controller finished so far.
pub async fn app_reconciles(proc: &ControllerProcess) -> Result<f64> {
    metric(
        proc,
        "kompox_controller_reconcile_duration_seconds_count",
        "controller=\"app\"",
    )
    .await
}

/// A watch on the Pods of a namespace, recording for each PVC the largest number of Pods
/// (terminating ones included: they may still hold the mount) that referenced it at the same
/// time, and every Pod seen.
pub struct PodWatch {
    state: Arc<Mutex<PodState>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct PodState {
    live: BTreeMap<String, BTreeSet<String>>,
    max: BTreeMap<String, (usize, Vec<String>)>,
    seen: BTreeSet<String>,
    error: Option<String>,
    synced: bool,
}

impl PodWatch {
    /// Starts watching Pods in `ns`; returns once the initial list is in.
    pub async fn start(client: &Client, ns: &str) -> Result<Self> {
        let state = Arc::new(Mutex::new(PodState::default()));
        let api: Api<Pod> = Api::namespaced(client.clone(), ns);
        let st = state.clone();
        let task = tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(ev) = stream.next().await {
                let mut s = st.lock().unwrap_or_else(PoisonError::into_inner);
                match ev {
                    Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => {
                        let name = p.name_any();
                        s.seen.insert(name.clone());
                        let claims: BTreeSet<String> = p
                            .spec
                            .iter()
                            .flat_map(|sp| sp.volumes.iter().flatten())
                            .filter_map(|v| v.persistent_volume_claim.as_ref())
                            .map(|c| c.claim_name.clone())
                            .collect();
                        s.live.insert(name, claims);
                    }
                    Ok(watcher::Event::Delete(p)) => {
                        s.live.remove(&p.name_any());
                    }
                    Ok(watcher::Event::Init) => s.live.clear(),
                    Ok(watcher::Event::InitDone) => s.synced = true,
                    Err(e) => s.error = Some(e.to_string()),
                }
                let mut per_claim: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for (pod, claims) in &s.live {
                    for c in claims {
                        per_claim.entry(c.clone()).or_default().push(pod.clone());
                    }
                }
                for (c, pods) in per_claim {
                    let e = s.max.entry(c).or_default();
                    if pods.len() > e.0 {
                        *e = (pods.len(), pods);
                    }
                }
            }
        });
        let w = Self { state, task };
        wait_until("the Pod watch to list", Duration::from_secs(30), || async {
            Ok(w.lock().synced)
        })
        .await?;
        Ok(w)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PodState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most Pods that referenced `claim` at once, and their names at that moment.
    pub fn max_concurrent(&self, claim: &str) -> (usize, Vec<String>) {
        self.lock().max.get(claim).cloned().unwrap_or_default()
    }

    /// Every Pod name seen.
    pub fn seen(&self) -> BTreeSet<String> {
        self.lock().seen.clone()
    }

    /// The last watch error, if any.
    pub fn error(&self) -> Option<String> {
        self.lock().error.clone()
    }
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A small compose file: one service named `service` (nginx on 8080).
pub fn small_compose(service: &str) -> String {
    format!(
        "services:\n  {service}:\n    image: nginx:1.27\n    ports: [\"8080:80\"]\n    environment:\n      MODE: test\n"
    )
}

/// A KompoxApp named `name` reading compose ConfigMap `compose` (no disks, no ingress).
pub fn small_app(name: &str, compose: &str) -> Value {
    json!({
        "apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxApp",
        "metadata": {"name": name},
        "spec": {"compose": {"configMapRef": {"name": compose, "key": "compose.yml"}}},
    })
}

//! What every reconcile of a KompoxApp shares: the app controller's state ([`AppCtx`]: the
//! cheap path's memory, the statuses this process wrote, the namespace facts), the requeue
//! intervals, and one run ([`Run`]: the app, its status as read and as being built, writing
//! it and the Events of a transition, the cheap path). The full path is in
//! [`super::reconcile`], its steps in the modules beside it.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kompox_core::api::{API_VERSION, KompoxApp, KompoxAppStatus};
use kompox_core::render::APP_LABEL;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, ResourceExt};

use super::FIELD_MANAGER;
use super::conditions::{self, Outcome, readiness};
use super::hygiene::{self, NamespaceFacts};
use super::watch::{Stores, app_label_value};
use crate::Context;
use crate::events::{self, Note};
use crate::{Error, Result};

/// A full apply is repeated at least this often (drift of objects no cache covers: the
/// namespace hygiene objects, Namespace labels), plus a per-app jitter of up to a minute.
pub const RESYNC: Duration = Duration::from_secs(300);
/// Re-check while a rollout is under way (Deployment events usually come first).
pub(super) const ROLLOUT: Duration = Duration::from_secs(30);
/// Re-check while an RWO switch or a cleanup waits.
pub(super) const SWITCH_POLL: Duration = Duration::from_secs(2);
/// Retry of a reconcile that waits ([`Error::Waiting`]: Pods or PVCs of a deleted app still
/// there, an object without the metadata the reconcile needs).
pub(super) const WAIT: Duration = Duration::from_secs(2);
/// Re-check of a Degraded app (its inputs are watched, so this is a safety net).
pub(super) const DEGRADED: Duration = Duration::from_secs(120);
/// Re-check after the API server refused an object.
pub(super) const REFUSED: Duration = Duration::from_secs(60);

/// What the last full reconcile of an app concluded, for the cheap path.
#[derive(Debug, Clone)]
pub(super) struct Applied {
    pub(super) uid: String,
    pub(super) fingerprint: u64,
    pub(super) at: Instant,
    pub(super) result: AppliedResult,
}

#[derive(Debug, Clone)]
pub(super) enum AppliedResult {
    /// Objects applied: readiness comes from these (cached) objects.
    Objects {
        deployment: Option<String>,
        /// The Deployment's generation as applied: a cached copy older than this (its watch
        /// event not yet delivered) says nothing about the rollout.
        generation: Option<i64>,
        ingress: Option<String>,
    },
    /// The same inputs give the same verdict.
    Degraded(&'static str, String),
}

/// Shared state of the app controller.
pub struct AppCtx {
    /// The process context.
    pub ctx: Arc<Context>,
    /// The caches.
    pub stores: Stores,
    applied: Mutex<HashMap<String, Applied>>,
    written: Mutex<HashMap<String, Written>>,
    namespaces: Mutex<HashMap<String, (Instant, NamespaceFacts)>>,
}

/// How long what a Namespace says about hygiene is reused (labels rarely change; a change is
/// picked up within this time by the next full reconcile).
pub(super) const NAMESPACE_TTL: Duration = Duration::from_secs(30);

/// The status this process last wrote for an app, with the resource version the write
/// produced. The watch cache may still hold an older object when the next reconcile starts
/// (the status event is filtered out but can arrive late); reading that older status would
/// repeat transition Events and could resume an RWO switch from a stale phase.
#[derive(Debug, Clone)]
pub(super) struct Written {
    uid: String,
    resource_version: u64,
    status: KompoxAppStatus,
}

impl std::fmt::Debug for AppCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCtx")
            .field("stores", &self.stores)
            .finish_non_exhaustive()
    }
}

impl AppCtx {
    /// The app controller's state over `ctx` and `stores`.
    #[must_use]
    pub fn new(ctx: Arc<Context>, stores: Stores) -> Self {
        Self {
            ctx,
            stores,
            applied: Mutex::new(HashMap::new()),
            written: Mutex::new(HashMap::new()),
            namespaces: Mutex::new(HashMap::new()),
        }
    }

    /// The hygiene facts of namespace `ns` (a GET at most every [`NAMESPACE_TTL`]).
    pub(super) async fn namespace_facts(
        &self,
        client: &Client,
        ns: &str,
    ) -> Result<NamespaceFacts> {
        {
            let map = self
                .namespaces
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some((at, f)) = map.get(ns)
                && at.elapsed() < NAMESPACE_TTL
            {
                return Ok(f.clone());
            }
        }
        let facts = Api::<Namespace>::all(client.clone())
            .get_opt(ns)
            .await
            .map_err(|e| Error::kube(format!("reading Namespace {ns}"), e))?
            .map(|n| {
                NamespaceFacts::from_meta(
                    n.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()),
                    n.metadata.annotations.as_ref().unwrap_or(&BTreeMap::new()),
                )
            })
            .unwrap_or_default();
        self.namespaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(ns.to_owned(), (Instant::now(), facts.clone()));
        Ok(facts)
    }

    /// Labels a Kompox app namespace for PodSecurity admission with the most permissive level
    /// of its apps (`app` counted as it is now, the others as the cache holds them), when the
    /// labels say otherwise ([`hygiene::pod_security_labels`]).
    pub(super) async fn label_namespace(
        &self,
        client: &Client,
        ns: &str,
        app: &KompoxApp,
        facts: &NamespaceFacts,
    ) -> Result<()> {
        let uid = app.metadata.uid.as_deref();
        let others = self.stores.apps.state();
        let here = others
            .iter()
            .map(AsRef::as_ref)
            .filter(|a| a.namespace().as_deref() == Some(ns) && a.metadata.uid.as_deref() != uid)
            .chain(std::iter::once(app));
        let level = hygiene::namespace_level(here);
        let Some(body) = hygiene::pod_security_labels(ns, level, facts) else {
            return Ok(());
        };
        let params = PatchParams::apply(hygiene::POD_SECURITY_MANAGER).force();
        let applied = Api::<Namespace>::all(client.clone())
            .patch(ns, &params, &Patch::Apply(&body))
            .await
            .map_err(|e| Error::kube(format!("labelling Namespace {ns} for PodSecurity"), e))?;
        let facts = NamespaceFacts::from_meta(
            applied.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()),
            applied
                .metadata
                .annotations
                .as_ref()
                .unwrap_or(&BTreeMap::new()),
        );
        self.namespaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(ns.to_owned(), (Instant::now(), facts));
        tracing::info!(
            namespace = ns,
            level = level.as_str(),
            "PodSecurity labels set"
        );
        Ok(())
    }

    /// The app's status: ours if we wrote a newer one than the cached object holds.
    ///
    /// Resource versions are compared as integers (etcd revisions); a version that is not an
    /// integer falls back to the cached object.
    fn latest_status(&self, key: &str, app: &KompoxApp) -> KompoxAppStatus {
        let cached_rv = app
            .metadata
            .resource_version
            .as_deref()
            .and_then(|v| v.parse::<u64>().ok());
        let map = self.written.lock().unwrap_or_else(PoisonError::into_inner);
        match (map.get(key), cached_rv) {
            (Some(w), Some(rv))
                if Some(w.uid.as_str()) == app.metadata.uid.as_deref()
                    && w.resource_version > rv =>
            {
                w.status.clone()
            }
            _ => app.status.clone().unwrap_or_default(),
        }
    }

    pub(super) fn wrote(&self, key: &str, written: Option<Written>) {
        let mut map = self.written.lock().unwrap_or_else(PoisonError::into_inner);
        match written {
            Some(w) => map.insert(key.to_owned(), w),
            None => map.remove(key),
        };
    }

    pub(super) fn cached(&self, key: &str, uid: &str, fingerprint: u64) -> Option<Applied> {
        let map = self.applied.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(key)
            .filter(|a| a.uid == uid && a.fingerprint == fingerprint && a.at.elapsed() < RESYNC)
            .cloned()
    }

    pub(super) fn remember(&self, key: &str, applied: Option<Applied>) {
        let mut map = self.applied.lock().unwrap_or_else(PoisonError::into_inner);
        match applied {
            Some(a) => map.insert(key.to_owned(), a),
            None => map.remove(key),
        };
    }
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

fn jitter(key: &str) -> Duration {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    Duration::from_millis(h.finish() % 60_000)
}

/// The outcome of the full path.
pub(super) struct Step {
    pub(super) outcome: Outcome,
    pub(super) requeue: Duration,
    pub(super) cache: Option<AppliedResult>,
}

impl Step {
    pub(super) fn degraded(reason: &'static str, message: String) -> Step {
        Step {
            outcome: Outcome::Degraded(reason, message.clone()),
            requeue: DEGRADED,
            cache: Some(AppliedResult::Degraded(reason, message)),
        }
    }

    pub(super) fn waiting(reason: &'static str, message: String, requeue: Duration) -> Step {
        Step {
            outcome: Outcome::Progressing(reason, message),
            requeue,
            cache: None,
        }
    }
}

/// How the Deployment is applied in this pass.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Replicas {
    /// As rendered.
    Rendered,
    /// Zero (an RWO switch's ScaleDown/Rebind).
    Zero,
}

/// One reconcile of one app.
pub(super) struct Run<'a> {
    pub(super) app: &'a KompoxApp,
    pub(super) actx: &'a AppCtx,
    pub(super) client: Client,
    pub(super) ns: String,
    pub(super) name: String,
    pub(super) uid: String,
    pub(super) key: String,
    pub(super) label: String,
    pub(super) api: Api<KompoxApp>,
    /// The status as read.
    pub(super) old: KompoxAppStatus,
    /// The status as last written (or read).
    pub(super) written: KompoxAppStatus,
    /// The status being built.
    pub(super) status: KompoxAppStatus,
    /// The tracked version of every object applied in this reconcile, by (kind, name).
    pub(super) versions: HashMap<(String, String), String>,
}

impl<'a> Run<'a> {
    pub(super) fn new(app: &'a KompoxApp, actx: &'a AppCtx) -> Result<Self> {
        let missing = |f: &str| Error::waiting(format!("KompoxApp without {f}"), WAIT);
        let ns = app
            .metadata
            .namespace
            .clone()
            .ok_or_else(|| missing("namespace"))?;
        let name = app.metadata.name.clone().ok_or_else(|| missing("name"))?;
        let uid = app.metadata.uid.clone().ok_or_else(|| missing("uid"))?;
        let client = actx.ctx.client.clone();
        let old = actx.latest_status(&format!("{ns}/{name}"), app);
        Ok(Run {
            app,
            actx,
            api: Api::namespaced(client.clone(), &ns),
            client,
            key: format!("{ns}/{name}"),
            label: app_label_value(&name),
            ns,
            name,
            uid,
            written: old.clone(),
            status: old.clone(),
            old,
            versions: HashMap::new(),
        })
    }

    /// Publishes `note` about the app.
    pub(super) async fn publish(&self, note: Note) {
        events::publish(&self.actx.ctx.recorder, self.app, note).await;
    }

    /// Writes `self.status` by server-side apply on the status subresource if it differs from
    /// what was last written.
    pub(super) async fn write(&mut self) -> Result<()> {
        if self.status == self.written {
            return Ok(());
        }
        let patch = serde_json::json!({
            "apiVersion": API_VERSION,
            "kind": "KompoxApp",
            "metadata": {"name": self.name},
            "status": self.status,
        });
        let live = self
            .api
            .patch_status(
                &self.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
            .map_err(|e| Error::kube(format!("writing status of KompoxApp {}", self.key), e))?;
        self.written = self.status.clone();
        let rv = live
            .metadata
            .resource_version
            .as_deref()
            .and_then(|v| v.parse::<u64>().ok());
        self.actx.wrote(
            &self.key,
            rv.map(|resource_version| Written {
                uid: self.uid.clone(),
                resource_version,
                status: self.status.clone(),
            }),
        );
        Ok(())
    }

    /// Merges the outcome into the status, writes it, publishes transition Events, and says
    /// when to come back.
    pub(super) async fn finish(&mut self, outcome: Outcome, requeue: Duration) -> Result<Action> {
        let running = if self.app.spec.suspend {
            Some(self.running_pods().await?)
        } else {
            None
        };
        let (outcome, requeue) = match &running {
            Some(pods) => {
                let out = conditions::suspension_outcome(outcome, pods);
                let again = if pods.is_empty() {
                    requeue
                } else {
                    SWITCH_POLL
                };
                (out, again)
            }
            None => (outcome, requeue),
        };
        let (generation, at) = (self.app.metadata.generation, now());
        let status = std::mem::take(&mut self.status);
        let status = conditions::with_outcome(status, &outcome, generation, &at);
        self.status = conditions::with_suspension(status, running.as_deref(), generation, &at);
        self.write().await?;
        for n in conditions::transition_events(&self.old.conditions, &outcome) {
            self.publish(n).await;
        }
        Ok(match outcome {
            Outcome::Ready(_) | Outcome::Suspended(_) => {
                Action::requeue(RESYNC + jitter(&self.key))
            }
            _ => Action::requeue(requeue),
        })
    }

    /// Names of the app's Pods (label `kompox.dev/app`) that still run: not Succeeded or
    /// Failed, terminating ones included (they run until they are gone). A LIST, not a cache:
    /// `Suspended` must not turn True on a cache that lags.
    pub(super) async fn running_pods(&self) -> Result<Vec<String>> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.ns);
        let selector = format!("{APP_LABEL}={}", self.label);
        let full = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| Error::kube(format!("listing Pods of app {}", self.key), e))?;
        Ok(full
            .items
            .into_iter()
            .filter(|p| {
                let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
                !matches!(phase, Some("Succeeded" | "Failed"))
            })
            .map(|p| p.name_any())
            .collect())
    }

    /// Holds a suspended app at zero before anything else of the reconcile (which may stop
    /// early: a render error, a disk not ready): each Deployment of the inventory whose cached
    /// copy asks for replicas is scaled to zero through its scale subresource. The full apply
    /// that follows, if it gets there, applies zero as well (`apply_all`).
    pub(super) async fn hold_at_zero(&self) -> Result<()> {
        let deps: Api<Deployment> = Api::namespaced(self.client.clone(), &self.ns);
        for e in self.old.inventory.iter().filter(|e| e.kind == "Deployment") {
            let cached = self
                .actx
                .stores
                .deployments
                .get(&ObjectRef::new(&e.name).within(&self.ns));
            if cached.is_some_and(|d| d.spec.as_ref().and_then(|s| s.replicas) == Some(0)) {
                continue;
            }
            let body = serde_json::json!({"spec": {"replicas": 0}});
            match deps
                .patch_scale(&e.name, &PatchParams::default(), &Patch::Merge(&body))
                .await
            {
                Ok(_) => {}
                Err(err) if kompox_cluster::is_not_found(&err) => {}
                Err(err) => {
                    return Err(Error::kube(
                        format!("scaling Deployment {}/{} to zero", self.ns, e.name),
                        err,
                    ));
                }
            }
        }
        Ok(())
    }

    /// The cheap path: only the status, from the caches.
    pub(super) async fn observe(&mut self, hit: &Applied) -> Result<Action> {
        let outcome = match &hit.result {
            AppliedResult::Degraded(r, m) => Outcome::Degraded(r, m.clone()),
            AppliedResult::Objects {
                deployment,
                generation,
                ingress,
            } => {
                let dep = deployment.as_ref().and_then(|d| {
                    self.actx
                        .stores
                        .deployments
                        .get(&ObjectRef::new(d).within(&self.ns))
                });
                let ing = ingress.as_ref().map(|i| {
                    let cached = self
                        .actx
                        .stores
                        .ingresses
                        .get(&ObjectRef::new(i).within(&self.ns));
                    self.actx
                        .ctx
                        .config
                        .ingress_admission
                        .admitted(cached.as_deref())
                });
                readiness(
                    dep.as_deref(),
                    *generation,
                    deployment.as_deref(),
                    ingress.as_deref(),
                    ing,
                )
            }
        };
        let requeue = match outcome {
            Outcome::Degraded(..) => DEGRADED,
            _ => ROLLOUT,
        };
        self.finish(outcome, requeue).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_is_bounded_and_stable() {
        assert!(jitter("ns/a") < Duration::from_secs(60));
        assert_eq!(jitter("ns/a"), jitter("ns/a"));
    }
}

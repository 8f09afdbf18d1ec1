//! What the app controller watches, the caches it keeps, and how a change of another object
//! maps back to the KompoxApps it concerns.
//!
//! | watched (in the scope) | kept | maps to |
//! |---|---|---|
//! | KompoxApps | full objects (no managedFields), filtered by [`app_predicate`] | itself |
//! | KompoxDisks | full objects | apps whose `spec.volumes` or `status.volumeSwitch` name the disk, and the app in its `status.attachedTo` |
//! | ConfigMaps, Secrets | **metadata only**, without annotations (kubectl's last-applied annotation of a Secret holds its data) | apps naming them (`spec.compose`, `spec.files.mounts`), and the owning app of derived ones |
//! | Deployments labelled `kompox.dev/app` | without the pod template's spec | the owning app |
//! | Services, Ingresses, PVCs labelled `kompox.dev/app` | metadata only | the owning app |
//! | Pods labelled `kompox.dev/app` | nothing | the app, only while it switches a volume, is being deleted or is suspended |
//! | Namespaces entering a `--namespace-selector` scope ([`crate::Scope`]) | name and uid, shared by every controller | every app in the namespace |
//!
//! No Secret value is ever cached: the renderer gets values from `kompox_cluster::gather_inputs`
//! (GETs) for the one render that needs them.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kompox_core::api::{API_VERSION, KompoxApp, KompoxDisk};
use kompox_core::naming::{MAX_LABEL_LEN, sanitize_label};
use kompox_core::render::APP_LABEL;
use kube::api::PartialObjectMeta;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{PredicateConfig, WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};

use crate::{Context, ReadyToken};

/// The caches the reconcile reads.
#[derive(Clone)]
pub struct Stores {
    /// KompoxApps in scope.
    pub apps: Store<KompoxApp>,
    /// KompoxDisks in scope.
    pub disks: Store<KompoxDisk>,
    /// ConfigMap metadata.
    pub config_maps: Store<PartialObjectMeta<ConfigMap>>,
    /// Secret metadata.
    pub secrets: Store<PartialObjectMeta<Secret>>,
    /// Kompox Deployments (pod template spec dropped).
    pub deployments: Store<Deployment>,
    /// Kompox Service metadata.
    pub services: Store<PartialObjectMeta<Service>>,
    /// Kompox Ingresses (spec dropped; readiness reads their status).
    pub ingresses: Store<Ingress>,
    /// Kompox PVC metadata.
    pub pvcs: Store<PartialObjectMeta<PersistentVolumeClaim>>,
    synced: Arc<AtomicBool>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores")
            .field("apps", &self.apps.len())
            .field("synced", &self.is_synced())
            .finish_non_exhaustive()
    }
}

impl Stores {
    /// Whether every cache has listed once (before that, decisions from the caches wait).
    #[must_use]
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }
}

/// The label value the renderer gives an app name (`kompox.dev/app`): the name when it is a
/// valid label value, else its sanitized, hash-suffixed form. Same rule as `kompox_core`'s
/// renderer.
#[must_use]
pub fn app_label_value(name: &str) -> String {
    let ok = !name.is_empty()
        && name.len() <= MAX_LABEL_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        && name
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_alphanumeric)
        && name
            .as_bytes()
            .last()
            .is_some_and(u8::is_ascii_alphanumeric);
    if ok {
        name.to_owned()
    } else {
        sanitize_label(name, MAX_LABEL_LEN)
    }
}

/// What makes an app worth reconciling again: identity, spec (generation), annotations
/// (quota/limit annotations), finalizers and deletion. Status writes — ours — are filtered out.
#[must_use]
pub fn app_predicate(app: &KompoxApp) -> Option<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    app.metadata.uid.hash(&mut h);
    app.metadata.generation.hash(&mut h);
    app.metadata.annotations.hash(&mut h);
    app.metadata.finalizers.hash(&mut h);
    app.metadata.deletion_timestamp.is_some().hash(&mut h);
    Some(h.finish())
}

/// The KompoxApp that controls `meta` (its controller owner reference).
pub fn owner_app<K: Resource>(obj: &K) -> Option<ObjectRef<KompoxApp>> {
    let meta = obj.meta();
    let ns = meta.namespace.as_deref()?;
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| {
            o.controller == Some(true) && o.kind == "KompoxApp" && o.api_version == API_VERSION
        })
        .map(|o| ObjectRef::new(&o.name).within(ns))
}

fn apps_in<'a>(apps: &'a [Arc<KompoxApp>], ns: &'a str) -> impl Iterator<Item = &'a KompoxApp> {
    apps.iter()
        .map(AsRef::as_ref)
        .filter(move |a| a.metadata.namespace.as_deref() == Some(ns))
}

fn app_ref(app: &KompoxApp) -> ObjectRef<KompoxApp> {
    ObjectRef::from_obj(app)
}

/// Apps a KompoxDisk change concerns.
#[must_use]
pub fn disk_apps(apps: &Store<KompoxApp>, disk: &KompoxDisk) -> Vec<ObjectRef<KompoxApp>> {
    let (Some(ns), Some(name)) = (
        disk.metadata.namespace.as_deref(),
        disk.metadata.name.as_deref(),
    ) else {
        return Vec::new();
    };
    let holder = disk
        .status
        .as_ref()
        .and_then(|s| s.attached_to.as_ref())
        .map(|a| a.app.as_str());
    let state = apps.state();
    let mut out: Vec<_> = apps_in(&state, ns)
        .filter(|a| {
            a.spec.volumes.iter().any(|v| v.disk_ref.name == name)
                || a.status
                    .as_ref()
                    .and_then(|s| s.volume_switch.as_ref())
                    .is_some_and(|s| s.from_disk == name || s.to_disk == name)
                || holder == a.metadata.name.as_deref()
        })
        .map(app_ref)
        .collect();
    if let Some(h) = holder
        && !out.iter().any(|r| r.name == h)
    {
        out.push(ObjectRef::new(h).within(ns));
    }
    out
}

/// Apps a ConfigMap (`secret == false`) or Secret change concerns: those naming it as their
/// compose file, in `spec.compose.envFrom`, `spec.envOverrides` or in `spec.files.mounts`, and the app owning it
/// (derived objects).
#[must_use]
pub fn source_apps<K: Resource>(
    apps: &Store<KompoxApp>,
    obj: &K,
    secret: bool,
) -> Vec<ObjectRef<KompoxApp>> {
    let meta = obj.meta();
    let (Some(ns), Some(name)) = (meta.namespace.as_deref(), meta.name.as_deref()) else {
        return Vec::new();
    };
    let state = apps.state();
    let mut out: Vec<_> = apps_in(&state, ns)
        .filter(|a| {
            let compose = !secret && a.spec.compose.config_map_ref.name == name;
            let env_from = a.spec.compose.env_from.iter().any(|e| {
                let r = if secret {
                    &e.secret_ref
                } else {
                    &e.config_map_ref
                };
                r.as_ref().is_some_and(|r| r.name == name)
            });
            let overrides = secret
                && a.spec
                    .env_overrides
                    .iter()
                    .any(|o| o.secret_ref.name == name);
            compose
                || env_from
                || overrides
                || a.spec.files.iter().flat_map(|f| &f.mounts).any(|m| {
                    if secret {
                        m.secret_ref.as_ref().is_some_and(|r| r.name == name)
                    } else {
                        m.config_map_ref.as_ref().is_some_and(|r| r.name == name)
                    }
                })
        })
        .map(app_ref)
        .collect();
    if let Some(o) = owner_app(obj)
        && !out.contains(&o)
    {
        out.push(o);
    }
    out
}

/// The app a Pod belongs to (by its `kompox.dev/app` label), only while that app switches a
/// volume, is being deleted or is suspended: the only times the reconcile waits on Pods.
#[must_use]
pub fn pod_app(
    apps: &Store<KompoxApp>,
    pod: &PartialObjectMeta<Pod>,
) -> Option<ObjectRef<KompoxApp>> {
    let ns = pod.metadata.namespace.as_deref()?;
    let label = pod.labels().get(APP_LABEL)?;
    let state = apps.state();
    apps_in(&state, ns)
        .filter(|a| {
            a.metadata.deletion_timestamp.is_some()
                || a.spec.suspend
                || a.status.as_ref().is_some_and(|s| s.volume_switch.is_some())
        })
        .find(|a| app_label_value(a.metadata.name.as_deref().unwrap_or_default()) == *label)
        .map(app_ref)
}

/// What of a Deployment the app's readiness depends on: generation, what the Deployment
/// controller observed and counted, and a progress deadline. Its other status updates
/// (condition timestamps and messages, `readyReplicas` before `availableReplicas`) do not
/// trigger a reconcile.
#[must_use]
pub fn deployment_predicate(d: &Deployment) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    d.metadata.generation.hash(&mut h);
    for o in d.metadata.owner_references.iter().flatten() {
        (&o.uid, o.controller).hash(&mut h);
    }
    d.metadata.labels.hash(&mut h);
    d.spec.as_ref().and_then(|s| s.replicas).hash(&mut h);
    if let Some(st) = &d.status {
        (
            st.observed_generation,
            st.replicas,
            st.updated_replicas,
            st.available_replicas,
        )
            .hash(&mut h);
        st.conditions
            .iter()
            .flatten()
            .any(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded"))
            .hash(&mut h);
    }
    h.finish()
}

/// The objects of a watch stream whose `predicate` value changed since last seen, and every
/// deleted object (unlike kube-runtime's `predicate_filter`, a deletion always passes).
pub fn significant<K, S>(
    stream: S,
    predicate: fn(&K) -> u64,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send
where
    K: Resource + Send + 'static,
    S: futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
{
    use futures::StreamExt as _;
    let mut seen: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    stream.filter_map(move |ev| {
        let key = |o: &K| {
            o.meta()
                .uid
                .clone()
                .unwrap_or_else(|| format!("{:?}/{:?}", o.meta().namespace, o.meta().name))
        };
        let out = match ev {
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                let h = predicate(&o);
                (seen.insert(key(&o), h) != Some(h)).then_some(Ok(o))
            }
            Ok(watcher::Event::Delete(o)) => {
                seen.remove(&key(&o));
                Some(Ok(o))
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
            Err(e) => Some(Err(e)),
        };
        futures::future::ready(out)
    })
}

fn strip_meta<K>(o: &mut PartialObjectMeta<K>) {
    o.metadata.managed_fields = None;
    o.metadata.annotations = None;
}

/// Builds the KompoxApp controller with every watch, and the caches it fills.
pub fn controller(ctx: &Context) -> (Controller<KompoxApp>, Stores) {
    let client = ctx.client.clone();
    let scope = &ctx.scope;
    let wc = || watcher::Config::default().any_semantic();
    let labelled = || watcher::Config::default().labels(APP_LABEL).any_semantic();

    let (apps, apps_w) = reflector::store::<KompoxApp>();
    let app_stream = watcher(scope.api::<KompoxApp>(client.clone()), wc())
        .default_backoff()
        .modify(|a: &mut KompoxApp| a.metadata.managed_fields = None)
        .reflect(apps_w)
        .applied_objects()
        .predicate_filter(app_predicate, PredicateConfig::default());

    let (disks, disks_w) = reflector::store::<KompoxDisk>();
    let disk_stream = watcher(scope.api::<KompoxDisk>(client.clone()), wc())
        .default_backoff()
        .modify(|d: &mut KompoxDisk| d.metadata.managed_fields = None)
        .reflect(disks_w)
        .touched_objects();

    let (config_maps, cms_w) = reflector::store();
    let cm_stream = watcher(
        scope.api::<PartialObjectMeta<ConfigMap>>(client.clone()),
        wc(),
    )
    .default_backoff()
    .modify(strip_meta)
    .reflect(cms_w)
    .touched_objects();

    let (secrets, secrets_w) = reflector::store();
    let secret_stream = watcher(scope.api::<PartialObjectMeta<Secret>>(client.clone()), wc())
        .default_backoff()
        .modify(strip_meta)
        .reflect(secrets_w)
        .touched_objects();

    let (deployments, deps_w) = reflector::store::<Deployment>();
    let dep_stream = significant(
        watcher(scope.api::<Deployment>(client.clone()), labelled())
            .default_backoff()
            .modify(|d: &mut Deployment| {
                d.metadata.managed_fields = None;
                if let Some(s) = d.spec.as_mut() {
                    s.template.spec = None;
                }
            })
            .reflect(deps_w),
        deployment_predicate,
    );

    let (services, svc_w) = reflector::store();
    let svc_stream = watcher(
        scope.api::<PartialObjectMeta<Service>>(client.clone()),
        labelled(),
    )
    .default_backoff()
    .modify(strip_meta)
    .reflect(svc_w)
    .touched_objects();

    let (ingresses, ing_w) = reflector::store::<Ingress>();
    let ing_stream = watcher(scope.api::<Ingress>(client.clone()), labelled())
        .default_backoff()
        .modify(|i: &mut Ingress| {
            i.metadata.managed_fields = None;
            i.metadata.annotations = None;
            i.spec = None;
        })
        .reflect(ing_w)
        .touched_objects();

    let (pvcs, pvc_w) = reflector::store();
    let pvc_stream = watcher(
        scope.api::<PartialObjectMeta<PersistentVolumeClaim>>(client.clone()),
        labelled(),
    )
    .default_backoff()
    .modify(strip_meta)
    .reflect(pvc_w)
    .touched_objects();

    let pod_stream = watcher(
        scope.api::<PartialObjectMeta<Pod>>(client.clone()),
        labelled(),
    )
    .default_backoff()
    .touched_objects();

    let synced = Arc::new(AtomicBool::new(false));
    let stores = Stores {
        apps: apps.clone(),
        disks,
        config_maps,
        secrets,
        deployments,
        services,
        ingresses,
        pvcs,
        synced,
    };

    let (a1, a2, a3, a4) = (apps.clone(), apps.clone(), apps.clone(), apps.clone());
    let controller = Controller::for_stream(app_stream, apps)
        .with_config(
            ControllerConfig::default()
                .debounce(Duration::from_millis(200))
                .concurrency(64),
        )
        .watches_stream(disk_stream, move |d: KompoxDisk| disk_apps(&a1, &d))
        .watches_stream(cm_stream, move |c: PartialObjectMeta<ConfigMap>| {
            source_apps(&a2, &c, false)
        })
        .watches_stream(secret_stream, move |s: PartialObjectMeta<Secret>| {
            source_apps(&a3, &s, true)
        })
        .watches_stream(dep_stream, |d: Deployment| owner_app(&d))
        .watches_stream(svc_stream, |s: PartialObjectMeta<Service>| owner_app(&s))
        .watches_stream(ing_stream, |i: Ingress| owner_app(&i))
        .watches_stream(pvc_stream, |p: PartialObjectMeta<PersistentVolumeClaim>| {
            owner_app(&p)
        })
        .watches_stream(pod_stream, move |p: PartialObjectMeta<Pod>| {
            pod_app(&a4, &p)
        })
        .graceful_shutdown_on(ctx.shutdown.clone().wait());
    let controller = crate::runtime::reconcile_on_entry(controller, &ctx.scope);
    (controller, stores)
}

/// Marks the stores synced and reports `token` ready once every cache has listed. Polls (see
/// [`crate::runtime::report_when_synced`] for why).
pub fn report_when_synced(stores: Stores, mut token: ReadyToken) {
    tokio::spawn(async move {
        loop {
            let all = [
                ready(&stores.apps).await,
                ready(&stores.disks).await,
                ready(&stores.config_maps).await,
                ready(&stores.secrets).await,
                ready(&stores.deployments).await,
                ready(&stores.services).await,
                ready(&stores.ingresses).await,
                ready(&stores.pvcs).await,
            ];
            if all.iter().any(Option::is_none) {
                return; // a writer is gone: the controller stopped
            }
            if all.iter().all(|r| *r == Some(true)) {
                stores.synced.store(true, Ordering::Release);
                token.ready();
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

/// `Some(true)` when `store` has synced, `Some(false)` not yet, `None` when its writer is gone.
async fn ready<K>(store: &Store<K>) -> Option<bool>
where
    K: reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    match tokio::time::timeout(Duration::from_millis(50), store.wait_until_ready()).await {
        Ok(Ok(())) => Some(true),
        Ok(Err(_)) => None,
        Err(_) => Some(false),
    }
}

/// Resource versions of the cached objects named `names` of one kind in `ns` (`None` for an
/// absent one), for the reconcile's input fingerprint.
pub fn versions<K>(store: &Store<K>, ns: &str, names: &[&str]) -> BTreeMap<String, Option<String>>
where
    K: Resource + reflector::Lookup<DynamicType = ()> + Clone + 'static,
{
    names
        .iter()
        .map(|n| {
            let rv = store
                .get(&ObjectRef::new(n).within(ns))
                .map(|o| o.meta().resource_version.clone().unwrap_or_default());
            ((*n).to_owned(), rv)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use kompox_core::api::{
        AppVolume, AttachedTo, FileMount, FilesSpec, KompoxAppSpec, KompoxAppStatus,
        KompoxDiskStatus, LocalKeyRef, LocalRef, VolumeSwitch,
    };
    use kube::runtime::watcher::Event;

    fn app(
        name: &str,
        ns: &str,
        compose: &str,
        disk: Option<&str>,
        secret: Option<&str>,
    ) -> KompoxApp {
        let mut a = KompoxApp::new(
            name,
            KompoxAppSpec {
                compose: kompox_core::api::ComposeSource {
                    config_map_ref: LocalKeyRef {
                        name: compose.into(),
                        key: "compose.yml".into(),
                    },
                    env_from: Vec::new(),
                },
                volumes: disk
                    .map(|d| AppVolume {
                        name: "data".into(),
                        disk_ref: LocalRef { name: d.into() },
                    })
                    .into_iter()
                    .collect(),
                files: secret.map(|s| FilesSpec {
                    mounts: vec![FileMount {
                        path: "/kompox/project/app.env".into(),
                        secret_ref: Some(LocalKeyRef {
                            name: s.into(),
                            key: "app.env".into(),
                        }),
                        ..FileMount::default()
                    }],
                }),
                ..KompoxAppSpec::default()
            },
        );
        a.metadata.namespace = Some(ns.into());
        a
    }

    fn store(apps: Vec<KompoxApp>) -> Store<KompoxApp> {
        let (r, mut w) = reflector::store();
        w.apply_watcher_event(&Event::Init);
        for a in apps {
            w.apply_watcher_event(&Event::InitApply(a));
        }
        w.apply_watcher_event(&Event::InitDone);
        r
    }

    fn names(refs: &[ObjectRef<KompoxApp>]) -> Vec<String> {
        let mut v: Vec<String> = refs.iter().map(|r| r.name.clone()).collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn significant_drops_repeats_but_never_deletions() {
        use futures::StreamExt as _;
        use k8s_openapi::api::apps::v1::DeploymentStatus;
        let dep = |rv: &str, available: i32| {
            let mut d = Deployment::default();
            d.metadata.name = Some("a-app".into());
            d.metadata.uid = Some("u".into());
            d.metadata.resource_version = Some(rv.into());
            d.metadata.generation = Some(1);
            d.status = Some(DeploymentStatus {
                observed_generation: Some(1),
                available_replicas: Some(available),
                ..DeploymentStatus::default()
            });
            d
        };
        let events = vec![
            Ok(Event::Init),
            Ok(Event::InitApply(dep("1", 0))),
            Ok(Event::InitDone),
            Ok(Event::Apply(dep("2", 0))),
            Ok(Event::Apply(dep("3", 1))),
            Ok(Event::Delete(dep("4", 1))),
            Ok(Event::Apply(dep("5", 1))),
        ];
        let out: Vec<String> = significant(futures::stream::iter(events), deployment_predicate)
            .filter_map(|r| async move { r.ok().and_then(|d| d.metadata.resource_version) })
            .collect()
            .await;
        assert_eq!(out, ["1", "3", "4", "5"]);
    }

    #[test]
    fn label_value_matches_the_renderer() {
        assert_eq!(app_label_value("gitea"), "gitea");
        let long = "a".repeat(70);
        let l = app_label_value(&long);
        assert!(l.len() <= 63 && l != long, "{l}");
        assert_eq!(app_label_value("a.b"), "a.b");
    }

    #[test]
    fn predicate_ignores_status() {
        let a = app("a", "ns", "c", None, None);
        let mut b = a.clone();
        b.status = Some(KompoxAppStatus {
            ready: true,
            ..KompoxAppStatus::default()
        });
        b.metadata.resource_version = Some("99".into());
        assert_eq!(app_predicate(&a), app_predicate(&b));
        let mut c = a.clone();
        c.metadata.generation = Some(2);
        assert_ne!(app_predicate(&a), app_predicate(&c));
        let mut d = a.clone();
        d.metadata.annotations = Some([("x".to_owned(), "y".to_owned())].into());
        assert_ne!(app_predicate(&a), app_predicate(&d));
    }

    #[test]
    fn mapping_sources_disks_and_owners() {
        let mut switching = app("switching", "ns", "c2", Some("new"), None);
        switching.status = Some(KompoxAppStatus {
            volume_switch: Some(VolumeSwitch {
                volume: "data".into(),
                from_disk: "old".into(),
                to_disk: "new".into(),
                phase: kompox_core::api::VolumeSwitchPhase::ScaleDown,
            }),
            ..KompoxAppStatus::default()
        });
        let mut vars = app("v", "ns", "own", None, None);
        vars.spec.compose.env_from = vec![
            kompox_core::api::ComposeEnvFrom {
                secret_ref: Some(kompox_core::api::OptionalRef {
                    name: "dotenv".into(),
                    optional: None,
                }),
                ..kompox_core::api::ComposeEnvFrom::default()
            },
            kompox_core::api::ComposeEnvFrom {
                config_map_ref: Some(kompox_core::api::OptionalRef {
                    name: "shared".into(),
                    optional: Some(true),
                }),
                ..kompox_core::api::ComposeEnvFrom::default()
            },
        ];
        vars.spec.env_overrides = vec![kompox_core::api::EnvOverride {
            service: "web".into(),
            secret_ref: kompox_core::api::LocalRef {
                name: "v-web-override".into(),
            },
        }];
        let s = store(vec![
            app("a", "ns", "shared", Some("d1"), Some("env")),
            app("b", "ns", "shared", None, None),
            app("c", "other", "shared", Some("d1"), Some("env")),
            switching,
            vars,
        ]);

        let mut cm = PartialObjectMeta::<ConfigMap>::default();
        cm.metadata.name = Some("shared".into());
        cm.metadata.namespace = Some("ns".into());
        // The compose ConfigMap of a and b, an envFrom ConfigMap of v.
        assert_eq!(names(&source_apps(&s, &cm, false)), ["a", "b", "v"]);
        // A Secret named like the compose ConfigMap is not the compose file.
        assert!(source_apps(&s, &cm, true).is_empty());

        let mut sec = PartialObjectMeta::<Secret>::default();
        sec.metadata.name = Some("env".into());
        sec.metadata.namespace = Some("ns".into());
        assert_eq!(names(&source_apps(&s, &sec, true)), ["a"]);
        sec.metadata.name = Some("dotenv".into());
        assert_eq!(names(&source_apps(&s, &sec, true)), ["v"]);
        // The Secret of an env override (`secret env set`) re-renders its app.
        sec.metadata.name = Some("v-web-override".into());
        assert_eq!(names(&source_apps(&s, &sec, true)), ["v"]);

        let mut derived = PartialObjectMeta::<Secret>::default();
        derived.metadata.name = Some("b-web-env".into());
        derived.metadata.namespace = Some("ns".into());
        derived.metadata.owner_references = Some(vec![OwnerReference {
            api_version: API_VERSION.into(),
            kind: "KompoxApp".into(),
            name: "b".into(),
            uid: "u".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]);
        assert_eq!(names(&source_apps(&s, &derived, true)), ["b"]);

        let mut disk: KompoxDisk = match serde_json::from_value(serde_json::json!({
            "apiVersion": API_VERSION, "kind": "KompoxDisk",
            "metadata": {"name": "d1", "namespace": "ns"},
            "spec": {"size": "1Gi"},
        })) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(names(&disk_apps(&s, &disk)), ["a"]);
        disk.status = Some(KompoxDiskStatus {
            attached_to: Some(AttachedTo {
                app: "gone".into(),
                volume: "data".into(),
            }),
            ..KompoxDiskStatus::default()
        });
        assert_eq!(names(&disk_apps(&s, &disk)), ["a", "gone"]);
        disk.metadata.name = Some("old".into());
        disk.status = None;
        assert_eq!(names(&disk_apps(&s, &disk)), ["switching"]);

        let mut pod = PartialObjectMeta::<Pod>::default();
        pod.metadata.namespace = Some("ns".into());
        pod.metadata.labels = Some([(APP_LABEL.to_owned(), "a".to_owned())].into());
        assert_eq!(
            pod_app(&s, &pod),
            None,
            "a is neither switching nor deleting"
        );
        pod.metadata.labels = Some([(APP_LABEL.to_owned(), "switching".to_owned())].into());
        assert_eq!(pod_app(&s, &pod).map(|r| r.name), Some("switching".into()));
    }
}

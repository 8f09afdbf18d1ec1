//! The cluster state the webhook decides on: reflector caches (kube-rs `watcher` +
//! `reflector`) of PVCs, PVs, KompoxDisks, Secrets, ConfigMaps and Node regions, behind
//! [`Lookup`]. Requests never call the API server.
//!
//! # No Secret values in memory
//!
//! Secrets and ConfigMaps are turned into [`ObjectDigests`] (identity + one SHA-256 digest
//! per key) as each watch event arrives, before anything is stored; the store holds
//! [`Digested`] values, which have no field that could carry a value. Metadata that may
//! embed values (`last-applied-configuration`, `managedFields`) is not kept either. The env
//! hash is defined over these digests ([`kompox_core::hash`]), so nothing is lost.
//!
//! Other objects are trimmed (`managedFields`, annotations, status where unused) to keep the
//! caches small.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::marker::PhantomData;
use std::sync::{Arc, PoisonError, RwLock};

use futures::{Stream, StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::{
    ConfigMap, Node, PersistentVolume, PersistentVolumeClaim, Secret,
};
use kompox_core::api::KompoxDisk;
use kompox_core::hash::{ObjectDigests, SourceKind};
use kompox_core::provider::REGION_LABEL;
use kube::api::{Api, PartialObjectMeta, ResourceExt as _};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt as _, reflector::Lookup as ReflectorLookup};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

use crate::mutate::Lookup;

/// A Secret or ConfigMap reduced to its digests: what the Secret/ConfigMap caches store.
#[derive(Clone, Debug)]
pub struct Digested<K> {
    /// Identity and per-key digests.
    pub digests: Arc<ObjectDigests>,
    resource_version: Option<String>,
    uid: Option<String>,
    _kind: PhantomData<fn() -> K>,
}

impl Digested<Secret> {
    /// Digests a Secret. The Secret is dropped by the caller; only digests remain.
    #[must_use]
    pub fn secret(s: &Secret) -> Self {
        Self::new(ObjectDigests::from_secret(s), &s.metadata)
    }
}

impl Digested<ConfigMap> {
    /// Digests a ConfigMap.
    #[must_use]
    pub fn config_map(c: &ConfigMap) -> Self {
        Self::new(ObjectDigests::from_config_map(c), &c.metadata)
    }
}

impl<K> Digested<K> {
    fn new(
        digests: ObjectDigests,
        meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ) -> Self {
        Digested {
            digests: Arc::new(digests),
            resource_version: meta.resource_version.clone(),
            uid: meta.uid.clone(),
            _kind: PhantomData,
        }
    }
}

impl<K: Resource<DynamicType = ()>> ReflectorLookup for Digested<K> {
    type DynamicType = ();

    crate::type_info_of!(K);
    fn name(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(&self.digests.name))
    }
    fn namespace(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(&self.digests.namespace))
    }
    fn resource_version(&self) -> Option<Cow<'_, str>> {
        self.resource_version.as_deref().map(Cow::Borrowed)
    }
    fn uid(&self) -> Option<Cow<'_, str>> {
        self.uid.as_deref().map(Cow::Borrowed)
    }
}

/// Maps every object of a watch event (the event kinds stay the same).
fn map_event<A, B>(ev: Event<A>, f: impl Fn(&A) -> B) -> Event<B> {
    match ev {
        Event::Apply(o) => Event::Apply(f(&o)),
        Event::Delete(o) => Event::Delete(f(&o)),
        Event::InitApply(o) => Event::InitApply(f(&o)),
        Event::Init => Event::Init,
        Event::InitDone => Event::InitDone,
    }
}

/// Drops what the webhook never reads from cached objects.
fn trim_meta<K: Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    meta.annotations = None;
    meta.owner_references = None;
    meta.finalizers = None;
}

/// Tracks the most common `topology.kubernetes.io/region` label among Nodes, updated per
/// watch event in O(log n) (Node objects change often; their region does not).
#[derive(Debug, Default)]
pub struct RegionTracker {
    by_node: HashMap<String, String>,
    counts: BTreeMap<String, usize>,
    /// Nodes seen since the last `Init` (a relist replaces everything at `InitDone`).
    relist: Option<HashMap<String, String>>,
    ready: bool,
}

impl RegionTracker {
    /// Feeds one watch event.
    pub fn apply(&mut self, ev: &Event<PartialObjectMeta<Node>>) {
        let region_of = |n: &PartialObjectMeta<Node>| {
            n.labels()
                .get(REGION_LABEL)
                .filter(|r| !r.is_empty())
                .cloned()
        };
        match ev {
            Event::Init => self.relist = Some(HashMap::new()),
            Event::InitApply(n) => {
                if let Some(r) = region_of(n) {
                    self.relist
                        .get_or_insert_with(HashMap::new)
                        .insert(n.name_any(), r);
                }
            }
            Event::InitDone => {
                let nodes = self.relist.take().unwrap_or_default();
                self.by_node.clear();
                self.counts.clear();
                for (node, region) in nodes {
                    self.set(node, Some(region));
                }
                self.ready = true;
            }
            Event::Apply(n) => self.set(n.name_any(), region_of(n)),
            Event::Delete(n) => self.set(n.name_any(), None),
        }
    }

    fn set(&mut self, node: String, region: Option<String>) {
        if self.by_node.get(&node) == region.as_ref() {
            return;
        }
        if let Some(old) = self.by_node.remove(&node)
            && let Some(c) = self.counts.get_mut(&old)
        {
            *c -= 1;
            if *c == 0 {
                self.counts.remove(&old);
            }
        }
        if let Some(r) = region {
            *self.counts.entry(r.clone()).or_default() += 1;
            self.by_node.insert(node, r);
        }
    }

    /// The most common region (ties: the alphabetically first), if any node has one.
    #[must_use]
    pub fn region(&self) -> Option<String> {
        let mut best: Option<(&String, usize)> = None;
        for (r, n) in &self.counts {
            if best.is_none_or(|(_, m)| *n > m) {
                best = Some((r, *n));
            }
        }
        best.map(|(r, _)| r.clone())
    }

    /// Whether the first full list has been seen.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.ready
    }
}

/// The reflector caches behind [`Lookup`]. Cheap to clone.
#[derive(Clone)]
pub struct ClusterState {
    pvcs: Store<PersistentVolumeClaim>,
    pvs: Store<PersistentVolume>,
    disks: Store<KompoxDisk>,
    secrets: Store<Digested<Secret>>,
    config_maps: Store<Digested<ConfigMap>>,
    regions: Arc<RwLock<RegionTracker>>,
    /// `--region`: used when no Node carries a region label.
    fallback_region: Option<String>,
}

impl Debug for ClusterState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterState")
            .field("pvcs", &self.pvcs.len())
            .field("pvs", &self.pvs.len())
            .field("disks", &self.disks.len())
            .field("secrets", &self.secrets.len())
            .field("config_maps", &self.config_maps.len())
            .finish_non_exhaustive()
    }
}

/// Page size for the initial lists; Secrets are listed in small pages because each page is
/// decoded in full (values included) before being digested.
const PAGE_SIZE: u32 = 200;
const SECRET_PAGE_SIZE: u32 = 50;

/// Runs a reflector to completion (it only ends when the watch stream does), logging watch
/// errors; the watcher retries with kube-rs's default backoff.
async fn drive<K, S>(what: &'static str, writer: reflector::store::Writer<K>, stream: S)
where
    K: ReflectorLookup + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
    S: Stream<Item = watcher::Result<Event<K>>> + Send,
{
    let stream = reflector::reflector(writer, stream);
    futures::pin_mut!(stream);
    let mut last_error: Option<String> = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(_) => last_error = None,
            Err(e) => {
                let msg = e.to_string();
                if last_error.as_deref() != Some(msg.as_str()) {
                    tracing::warn!(cache = what, error = %msg, "watch failed; retrying");
                    last_error = Some(msg);
                }
            }
        }
    }
}

fn watch<K>(
    api: Api<K>,
    page: u32,
) -> impl Stream<Item = watcher::Result<Event<K>>> + Send + 'static
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    watcher::watcher(api, watcher::Config::default().page_size(page)).default_backoff()
}

impl ClusterState {
    /// Starts the watches (tasks on the current runtime) and returns the caches at once;
    /// [`ClusterState::wait_synced`] resolves when every cache holds a full list. The tasks
    /// end when `shutdown` resolves.
    pub fn start(
        client: &Client,
        fallback_region: Option<String>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> (ClusterState, tokio::task::JoinHandle<()>) {
        let (pvcs, pvc_w) = reflector::store::<PersistentVolumeClaim>();
        let (pvs, pv_w) = reflector::store::<PersistentVolume>();
        let (disks, disk_w) = reflector::store::<KompoxDisk>();
        let (secrets, secret_w) = reflector::store::<Digested<Secret>>();
        let (config_maps, cm_w) = reflector::store::<Digested<ConfigMap>>();
        let regions = Arc::new(RwLock::new(RegionTracker::default()));

        let pvc_stream = watch(Api::<PersistentVolumeClaim>::all(client.clone()), PAGE_SIZE)
            .map_ok(|ev| {
                ev.modify(|p| {
                    trim_meta(p);
                    p.status = None;
                })
            });
        let pv_stream =
            watch(Api::<PersistentVolume>::all(client.clone()), PAGE_SIZE).map_ok(|ev| {
                ev.modify(|p| {
                    trim_meta(p);
                    p.status = None;
                })
            });
        let disk_stream = watch(Api::<KompoxDisk>::all(client.clone()), PAGE_SIZE)
            .map_ok(|ev| ev.modify(trim_meta));
        // Values are digested here, before the store sees the event.
        let secret_stream = watch(Api::<Secret>::all(client.clone()), SECRET_PAGE_SIZE)
            .map_ok(|ev| map_event(ev, Digested::secret));
        let cm_stream = watch(Api::<ConfigMap>::all(client.clone()), PAGE_SIZE)
            .map_ok(|ev| map_event(ev, Digested::config_map));
        let node_stream = watch(
            Api::<PartialObjectMeta<Node>>::all(client.clone()),
            PAGE_SIZE,
        );

        let tracker = regions.clone();
        let nodes = async move {
            futures::pin_mut!(node_stream);
            while let Some(item) = node_stream.next().await {
                match item {
                    Ok(ev) => tracker
                        .write()
                        .unwrap_or_else(PoisonError::into_inner)
                        .apply(&ev),
                    Err(e) => tracing::warn!(cache = "nodes", error = %e, "watch failed; retrying"),
                }
            }
        };
        let all = async move {
            tokio::join!(
                drive("persistentvolumeclaims", pvc_w, pvc_stream),
                drive("persistentvolumes", pv_w, pv_stream),
                drive("kompoxdisks", disk_w, disk_stream),
                drive("secrets", secret_w, secret_stream),
                drive("configmaps", cm_w, cm_stream),
                nodes,
            );
        };
        let task = tokio::spawn(async move {
            tokio::select! {
                () = all => {}
                () = shutdown => {}
            }
        });
        (
            ClusterState {
                pvcs,
                pvs,
                disks,
                secrets,
                config_maps,
                regions,
                fallback_region,
            },
            task,
        )
    }

    /// Resolves once every cache has completed its first list (and Node regions are known).
    ///
    /// # Errors
    ///
    /// When a cache's writer was dropped (its watch task ended) before it synced.
    pub async fn wait_synced(&self) -> Result<(), reflector::store::WriterDropped> {
        self.pvcs.wait_until_ready().await?;
        self.pvs.wait_until_ready().await?;
        self.disks.wait_until_ready().await?;
        self.secrets.wait_until_ready().await?;
        self.config_maps.wait_until_ready().await?;
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(20));
        while !self
            .regions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_ready()
        {
            tick.tick().await;
        }
        Ok(())
    }
}

impl Lookup for ClusterState {
    fn persistent_volume_claim(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<PersistentVolumeClaim>> {
        self.pvcs.get(&ObjectRef::new(name).within(namespace))
    }

    fn persistent_volume(&self, name: &str) -> Option<Arc<PersistentVolume>> {
        self.pvs.get(&ObjectRef::new(name))
    }

    fn disk(&self, namespace: &str, name: &str) -> Option<Arc<KompoxDisk>> {
        self.disks.get(&ObjectRef::new(name).within(namespace))
    }

    fn env_object(
        &self,
        kind: SourceKind,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<ObjectDigests>> {
        match kind {
            SourceKind::Secret => self
                .secrets
                .get(&ObjectRef::new(name).within(namespace))
                .map(|d| d.digests.clone()),
            SourceKind::ConfigMap => self
                .config_maps
                .get(&ObjectRef::new(name).within(namespace))
                .map(|d| d.digests.clone()),
        }
    }

    fn region(&self) -> Option<String> {
        self.regions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .region()
            .or_else(|| self.fallback_region.clone())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;
    use serde_json::json;

    fn node(name: &str, region: Option<&str>) -> PartialObjectMeta<Node> {
        let labels = region.map(|r| [(REGION_LABEL.to_string(), r.to_string())].into());
        PartialObjectMeta {
            types: None,
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels,
                ..Default::default()
            },
            _phantom: PhantomData,
        }
    }

    #[test]
    fn region_is_the_most_common_label() {
        let mut t = RegionTracker::default();
        assert!(!t.is_ready());
        assert_eq!(t.region(), None);
        t.apply(&Event::Init);
        t.apply(&Event::InitApply(node("a", Some("westus"))));
        t.apply(&Event::InitApply(node("b", Some("japaneast"))));
        t.apply(&Event::InitApply(node("c", Some("japaneast"))));
        t.apply(&Event::InitApply(node("d", None)));
        assert_eq!(t.region(), None, "nothing counts before InitDone");
        t.apply(&Event::InitDone);
        assert!(t.is_ready());
        assert_eq!(t.region().as_deref(), Some("japaneast"));
        // Heartbeat updates do not change counts.
        t.apply(&Event::Apply(node("b", Some("japaneast"))));
        assert_eq!(t.region().as_deref(), Some("japaneast"));
        t.apply(&Event::Apply(node("b", Some("westus"))));
        t.apply(&Event::Delete(node("c", Some("japaneast"))));
        assert_eq!(t.region().as_deref(), Some("westus"));
        // A relist replaces everything.
        t.apply(&Event::Init);
        t.apply(&Event::InitApply(node("z", Some("eastus"))));
        t.apply(&Event::InitDone);
        assert_eq!(t.region().as_deref(), Some("eastus"));
        t.apply(&Event::Delete(node("z", None)));
        assert_eq!(t.region(), None);
    }

    #[test]
    fn digested_secrets_hold_no_values() {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "env", "namespace": "ns", "resourceVersion": "7",
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration":
                    "{\"stringData\":{\"PASSWORD\":\"hunter2\"}}"}},
            "data": {"PASSWORD": "aHVudGVyMg=="},
            "stringData": {"TOKEN": "s3cr3t-token"},
        }))
        .unwrap();
        let ev = map_event(Event::Apply(secret.clone()), Digested::secret);
        let Event::Apply(d) = ev else {
            panic!("event kind changed")
        };
        let shown = format!("{d:?}");
        for needle in ["hunter2", "aHVudGVyMg", "s3cr3t", "last-applied"] {
            assert!(!shown.contains(needle), "{needle} in {shown}");
        }
        assert_eq!(
            *d.digests,
            ObjectDigests::from_secret(&secret),
            "same digests as the full object"
        );
        assert_eq!(ReflectorLookup::name(&d).as_deref(), Some("env"));
        assert_eq!(ReflectorLookup::namespace(&d).as_deref(), Some("ns"));
        assert_eq!(ReflectorLookup::resource_version(&d).as_deref(), Some("7"));
        assert_eq!(
            <Digested<Secret> as ReflectorLookup>::plural(&()),
            "secrets"
        );
    }

    #[test]
    fn digested_store_answers_lookups() {
        let (store, mut writer) = reflector::store::<Digested<ConfigMap>>();
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": "cfg", "namespace": "ns"}, "data": {"k": "v"}}))
        .unwrap();
        writer.apply_watcher_event(&map_event(Event::Apply(cm.clone()), Digested::config_map));
        let got = store.get(&ObjectRef::new("cfg").within("ns")).unwrap();
        assert_eq!(*got.digests, ObjectDigests::from_config_map(&cm));
        assert!(store.get(&ObjectRef::new("cfg").within("other")).is_none());
    }
}

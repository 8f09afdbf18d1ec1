//! The fingerprint of an app reconcile: a hash of everything a full pass read that the watch
//! caches can see, and of what it applied. Unchanged ⇒ the cheap path (status only).

use std::hash::{Hash, Hasher};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kompox_cluster::referenced_sources;
use kompox_core::api::{InventoryEntry, KompoxApp};
use kompox_core::render::ClusterInfo;
use kube::runtime::reflector::ObjectRef;

use super::watch::{Stores, versions};

/// A hash of the inputs of a full reconcile of `app` that the caches can see: the app's
/// identity, spec and annotations; the cluster facts; the resource versions of the compose
/// ConfigMap and the `spec.files.mounts` sources; the fields of its disks that the render and
/// claims read.
pub(super) fn inputs_fingerprint(
    app: &KompoxApp,
    stores: &Stores,
    cluster: &ClusterInfo,
    ns: &str,
) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    app.metadata.uid.hash(&mut h);
    app.metadata.generation.hash(&mut h);
    app.metadata.annotations.hash(&mut h);
    format!("{cluster:?}").hash(&mut h);
    let refs = referenced_sources(app);
    let mut cms: Vec<&str> = refs.config_maps.iter().map(String::as_str).collect();
    cms.push(&app.spec.compose.config_map_ref.name);
    let secrets: Vec<&str> = refs.secrets.iter().map(String::as_str).collect();
    versions(&stores.config_maps, ns, &cms).hash(&mut h);
    versions(&stores.secrets, ns, &secrets).hash(&mut h);
    for v in &app.spec.volumes {
        let d = stores
            .disks
            .get(&ObjectRef::new(&v.disk_ref.name).within(ns));
        match d {
            Some(d) => {
                d.metadata.generation.hash(&mut h);
                let s = d.status.clone().unwrap_or_default();
                (s.pv_name, s.zone, s.attached_to, s.storage_class_name).hash(&mut h);
            }
            None => "absent".hash(&mut h),
        }
    }
    h.finish()
}

/// The version of an owned object that the fingerprint tracks: a Deployment's generation
/// (its status changes all the time; only spec changes matter), else the resource version.
pub(super) fn tracked_version(kind: &str, meta: &ObjectMeta) -> Option<String> {
    if kind == "Deployment" {
        meta.generation.map(|g| g.to_string())
    } else {
        meta.resource_version.clone()
    }
}

/// Kinds whose objects the caches hold (and the fingerprint therefore covers).
const CACHED_KINDS: [&str; 6] = [
    "Deployment",
    "Service",
    "Ingress",
    "PersistentVolumeClaim",
    "Secret",
    "ConfigMap",
];

/// A hash of the inventoried objects of cached kinds, each with its [`tracked_version`] from
/// `version` (`None`: absent). A deleted or edited object changes it.
pub(super) fn owned_fingerprint(
    inventory: &[InventoryEntry],
    version: impl Fn(&InventoryEntry) -> Option<String>,
) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for e in inventory
        .iter()
        .filter(|e| CACHED_KINDS.contains(&e.kind.as_str()))
    {
        (e, version(e)).hash(&mut h);
    }
    h.finish()
}

/// [`owned_fingerprint`] from the caches.
pub(super) fn cached_owned_fingerprint(
    inventory: &[InventoryEntry],
    stores: &Stores,
    ns: &str,
) -> u64 {
    owned_fingerprint(inventory, |e| {
        cached_meta(stores, ns, &e.kind, &e.name).and_then(|m| tracked_version(&e.kind, &m))
    })
}

/// The metadata of object `kind` `ns/name` in the watch caches (`None` for kinds without a
/// cache, or when the cache does not hold it).
pub(super) fn cached_meta(stores: &Stores, ns: &str, kind: &str, name: &str) -> Option<ObjectMeta> {
    match kind {
        "Deployment" => stores
            .deployments
            .get(&ObjectRef::new(name).within(ns))
            .map(|o| o.metadata.clone()),
        "Service" => stores
            .services
            .get(&ObjectRef::new(name).within(ns))
            .map(|o| o.metadata.clone()),
        "Ingress" => stores
            .ingresses
            .get(&ObjectRef::new(name).within(ns))
            .map(|o| o.metadata.clone()),
        "PersistentVolumeClaim" => stores
            .pvcs
            .get(&ObjectRef::new(name).within(ns))
            .map(|o| o.metadata.clone()),
        "Secret" => stores
            .secrets
            .get(&ObjectRef::new(name).within(ns))
            .map(|o| o.metadata.clone()),
        "ConfigMap" => stores
            .config_maps
            .get(&ObjectRef::new(name).within(ns))
            .map(|o| o.metadata.clone()),
        _ => None,
    }
}

/// Whether the caches show a disk claimed by `app` for a volume that no longer names it: the
/// full path releases such claims once no PVC binds the disk, so the cheap path is not taken
/// (the PVC's deletion event then finds it).
pub(super) fn holds_stale_claims(app: &KompoxApp, stores: &Stores, ns: &str) -> bool {
    let name = app.metadata.name.as_deref().unwrap_or_default();
    stores.disks.state().iter().any(|d| {
        d.metadata.namespace.as_deref() == Some(ns)
            && d.status
                .as_ref()
                .and_then(|s| s.attached_to.as_ref())
                .is_some_and(|a| {
                    a.app == name
                        && !app.spec.volumes.iter().any(|v| {
                            v.name == a.volume
                                && Some(v.disk_ref.name.as_str()) == d.metadata.name.as_deref()
                        })
                })
    })
}

/// The fingerprint of a reconcile: unchanged ⇒ a full reconcile would apply nothing new, so
/// only the status is refreshed. After a full reconcile the owned part is taken from the apply
/// responses, so the watch events of the controller's own writes find it unchanged.
pub(super) fn combine(inputs: u64, owned: u64) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (inputs, owned).hash(&mut h);
    h.finish()
}

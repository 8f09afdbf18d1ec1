//! Test support shared by the unit tests: an in-memory [`Lookup`].

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Secret};
use kompox_core::api::KompoxDisk;
use kompox_core::hash::{HashKey, ObjectDigests, SourceKind};
use kompox_core::naming::{DISK_LABEL, DISK_NAMESPACE_LABEL};
use serde_json::{Value, json};

use crate::mutate::Lookup;

/// An in-memory [`Lookup`].
#[derive(Default)]
pub(crate) struct Fake {
    pub pvcs: BTreeMap<(String, String), Arc<PersistentVolumeClaim>>,
    pub pvs: BTreeMap<String, Arc<PersistentVolume>>,
    pub disks: BTreeMap<(String, String), Arc<KompoxDisk>>,
    pub env: BTreeMap<(SourceKind, String, String), Arc<ObjectDigests>>,
    pub region: Option<String>,
}

/// The key the unit tests hash with.
pub(crate) fn key() -> HashKey {
    match HashKey::new(&[3; 32]) {
        Ok(k) => k,
        Err(e) => panic!("{e}"),
    }
}

pub(crate) fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
    match serde_json::from_value(v) {
        Ok(t) => t,
        Err(e) => panic!("test object does not decode: {e}"),
    }
}

impl Fake {
    pub fn new() -> Self {
        Fake {
            region: Some("japaneast".into()),
            ..Fake::default()
        }
    }

    /// A KompoxDisk with `spec` (size added).
    pub fn disk(mut self, ns: &str, name: &str, mut spec: Value, status: Value) -> Self {
        spec["size"] = json!("1Gi");
        let d: KompoxDisk = from(json!({
            "apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxDisk",
            "metadata": {"name": name, "namespace": ns},
            "spec": spec, "status": status,
        }));
        self.disks.insert((ns.into(), name.into()), Arc::new(d));
        self
    }

    /// A zoned KompoxDisk plus a Kompox static PV for it and a PVC bound to the PV.
    pub fn kompox_claim(self, ns: &str, claim: &str, disk: &str, zone: &str) -> Self {
        self.disk(ns, disk, json!({"zone": zone}), json!({}))
            .pv(
                &format!("pv-{disk}"),
                json!({DISK_LABEL: disk, DISK_NAMESPACE_LABEL: ns}),
                Some((ns, claim)),
            )
            .pvc(ns, claim, json!({}), Some(&format!("pv-{disk}")))
    }

    pub fn pv(mut self, name: &str, labels: Value, claim: Option<(&str, &str)>) -> Self {
        let claim_ref = claim.map(|(ns, n)| json!({"namespace": ns, "name": n}));
        let pv: PersistentVolume = from(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"claimRef": claim_ref, "csi": {"driver": "hostpath.csi.k8s.io", "volumeHandle": name}},
        }));
        self.pvs.insert(name.into(), Arc::new(pv));
        self
    }

    pub fn pvc(mut self, ns: &str, name: &str, labels: Value, volume: Option<&str>) -> Self {
        let pvc: PersistentVolumeClaim = from(json!({
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"volumeName": volume},
        }));
        self.pvcs.insert((ns.into(), name.into()), Arc::new(pvc));
        self
    }

    pub fn secret(mut self, ns: &str, name: &str, data: &[(&str, &str)]) -> Self {
        let s: Secret = from(json!({
            "metadata": {"name": name, "namespace": ns},
            "stringData": data.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        }));
        self.env.insert(
            (SourceKind::Secret, ns.into(), name.into()),
            Arc::new(ObjectDigests::from_secret(&s)),
        );
        self
    }
}

impl Lookup for Fake {
    fn persistent_volume_claim(&self, ns: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>> {
        self.pvcs.get(&(ns.into(), name.into())).cloned()
    }
    fn persistent_volume(&self, name: &str) -> Option<Arc<PersistentVolume>> {
        self.pvs.get(name).cloned()
    }
    fn disk(&self, ns: &str, name: &str) -> Option<Arc<KompoxDisk>> {
        self.disks.get(&(ns.into(), name.into())).cloned()
    }
    fn env_object(&self, kind: SourceKind, ns: &str, name: &str) -> Option<Arc<ObjectDigests>> {
        self.env.get(&(kind, ns.into(), name.into())).cloned()
    }
    fn region(&self) -> Option<String> {
        self.region.clone()
    }
}

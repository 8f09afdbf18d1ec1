//! The objects the disk controller creates, built without I/O.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kompox_core::naming::{short_hash, truncate_with_hash};
use kompox_core::provider::ZONE_LABEL;
use serde_json::json;

use crate::error::{Error, Result};
use crate::labels::{
    DISK_LABEL, DISK_NAMESPACE_LABEL, DISK_UID_ANNOTATION, HANDLE_ANNOTATION, MANAGED_BY,
    MANAGED_BY_LABEL, PROVISIONED_BY_ANNOTATION, ROLE_LABEL, ROLE_PROVISION, ROLE_RESIZE,
    ROLE_STATIC, ROLE_STORAGE_CLASS,
};

/// The StorageClass of every static PV, and so of every PVC that binds one: no provisioner
/// (Kompox's PVCs name their PV), volume expansion allowed — the PersistentVolumeClaimResize
/// admission plugin lets a PVC grow only when its class allows it. Not the provisioning
/// classes: an unbound PVC of a class may be bound to any Available PV of that class, and a
/// provisioning PVC must never get another disk's volume.
pub const STATIC_STORAGE_CLASS: &str = "k4x-static";
/// `provisioner` of a StorageClass whose volumes are created by hand (Kubernetes' convention).
pub const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";

/// StorageClass parameter the CSI provisioner turns into the PV's `csi.fsType`.
pub const FSTYPE_PARAMETER: &str = "csi.storage.k8s.io/fstype";
/// API group of VolumeSnapshots (a PVC `dataSource`).
pub const SNAPSHOT_GROUP: &str = "snapshot.storage.k8s.io";

/// The static PV name of a disk: `k4x-<namespace>-<disk>`, shortened with a hash when longer
/// than 63 characters (deterministic, so a restarted controller finds it again).
#[must_use]
pub fn pv_name(namespace: &str, disk: &str) -> String {
    truncate_with_hash(&format!("k4x-{namespace}-{disk}"), 63)
}

/// The provisioning PVC name of a disk (in the disk's namespace).
#[must_use]
pub fn provision_pvc_name(disk: &str) -> String {
    truncate_with_hash(&format!("k4x-provision-{disk}"), 63)
}

/// A PV's `storageClassName` (`""` without one).
#[must_use]
pub fn pv_class(pv: &PersistentVolume) -> &str {
    pv.spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .unwrap_or_default()
}

/// A PV's `capacity.storage`.
#[must_use]
pub fn pv_capacity(pv: &PersistentVolume) -> Option<&Quantity> {
    pv.spec
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
}

/// The temporary PVC a detached disk grows through (in the disk's namespace).
#[must_use]
pub fn resize_pvc_name(disk: &str) -> String {
    truncate_with_hash(&format!("k4x-resize-{disk}"), 63)
}

/// A name for the Kompox-owned StorageClass of one provider + driver + parameters + zone:
/// `k4x-<provider>-<hash>`. Equal inputs give the same class, so disks share classes.
#[must_use]
pub fn storage_class_name(
    provider: &str,
    driver: &str,
    parameters: &BTreeMap<String, String>,
    zone: Option<&str>,
) -> String {
    let key = json!({"driver": driver, "parameters": parameters, "zone": zone}).to_string();
    format!("k4x-{provider}-{}", short_hash(&key))
}

fn from_json<T: serde::de::DeserializeOwned>(what: &str, v: serde_json::Value) -> Result<T> {
    serde_json::from_value(v).map_err(|source| Error::Serde {
        what: what.to_string(),
        source,
    })
}

/// The skeleton of an object Kompox manages: `apiVersion`, `kind`, `metadata.name` and
/// `metadata.labels` = `app.kubernetes.io/managed-by: kompox` plus `labels`. Callers add the
/// namespace, annotations and the body.
#[must_use]
pub fn managed_object(
    api_version: &str,
    kind: &str,
    name: &str,
    labels: &[(&str, &str)],
) -> serde_json::Value {
    let mut all = serde_json::Map::new();
    all.insert(MANAGED_BY_LABEL.into(), json!(MANAGED_BY));
    for (k, v) in labels {
        all.insert((*k).into(), json!(v));
    }
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "labels": all}})
}

/// The spec of a PVC bound to the static PV `pv` (StorageClass `class`, the PV's) by
/// `volumeName`, RWO, requesting `size`: what snapshot sources and resize claims use.
#[must_use]
pub fn bind_claim_spec(pv: &str, class: &str, size: &str) -> serde_json::Value {
    json!({
        "storageClassName": class,
        "volumeName": pv,
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}},
    })
}

/// The Kompox-owned StorageClass: `Retain`, `Immediate`, volume expansion allowed, the
/// provider's parameters and, with a zone, `allowedTopologies` on it.
///
/// # Errors
///
/// [`Error::Serde`] only if the object cannot be represented (not expected).
pub fn storage_class(
    name: &str,
    driver: &str,
    parameters: &BTreeMap<String, String>,
    zone: Option<&str>,
) -> Result<StorageClass> {
    let mut sc = kompox_class(name, driver);
    sc["parameters"] = json!(parameters);
    if let Some(z) = zone {
        sc["allowedTopologies"] =
            json!([{"matchLabelExpressions": [{"key": ZONE_LABEL, "values": [z]}]}]);
    }
    from_json("StorageClass", sc)
}

/// [`STATIC_STORAGE_CLASS`]: no provisioner, `Retain`, `Immediate`, expansion allowed.
///
/// # Errors
///
/// [`Error::Serde`] only if the object cannot be represented (not expected).
pub fn static_storage_class() -> Result<StorageClass> {
    from_json(
        "StorageClass",
        kompox_class(STATIC_STORAGE_CLASS, NO_PROVISIONER),
    )
}

/// What every Kompox StorageClass is: managed by Kompox, `provisioner`, `Retain`,
/// `Immediate`, volume expansion allowed.
fn kompox_class(name: &str, provisioner: &str) -> serde_json::Value {
    let mut sc = managed_object(
        "storage.k8s.io/v1",
        "StorageClass",
        name,
        &[(ROLE_LABEL, ROLE_STORAGE_CLASS)],
    );
    sc["provisioner"] = json!(provisioner);
    sc["reclaimPolicy"] = json!("Retain");
    sc["volumeBindingMode"] = json!("Immediate");
    sc["allowVolumeExpansion"] = json!(true);
    sc
}

/// The temporary PVC `resize_pvc_name(disk)` in `namespace` that binds the disk's Available
/// static PV `pv` (class `class`) with the PV's current capacity `size` as request, so its
/// request can then be raised (only a bound PVC can grow).
///
/// # Errors
///
/// [`Error::Serde`] only if the object cannot be represented (not expected).
pub fn resize_pvc(
    namespace: &str,
    disk: &str,
    pv: &str,
    class: &str,
    size: &str,
) -> Result<PersistentVolumeClaim> {
    let mut pvc = managed_object(
        "v1",
        "PersistentVolumeClaim",
        &resize_pvc_name(disk),
        &[(DISK_LABEL, disk), (ROLE_LABEL, ROLE_RESIZE)],
    );
    pvc["metadata"]["namespace"] = json!(namespace);
    pvc["spec"] = bind_claim_spec(pv, class, size);
    from_json("PersistentVolumeClaim", pvc)
}

/// What a provisioning PVC needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionClaim<'a> {
    /// Disk namespace (the PVC's).
    pub namespace: &'a str,
    /// Disk name.
    pub disk: &'a str,
    /// Disk UID (annotation; a PVC of an older disk of the same name is not adopted).
    pub disk_uid: &'a str,
    /// StorageClass.
    pub storage_class: &'a str,
    /// Requested size (quantity).
    pub size: &'a str,
    /// VolumeSnapshot to restore from.
    pub from_volume_snapshot: Option<&'a str>,
}

/// The short-lived PVC whose dynamic PV gives the disk its volume.
///
/// # Errors
///
/// [`Error::Serde`] only if the object cannot be represented (not expected).
pub fn provision_pvc(c: &ProvisionClaim<'_>) -> Result<PersistentVolumeClaim> {
    let mut pvc = managed_object(
        "v1",
        "PersistentVolumeClaim",
        &provision_pvc_name(c.disk),
        &[(DISK_LABEL, c.disk), (ROLE_LABEL, ROLE_PROVISION)],
    );
    pvc["metadata"]["namespace"] = json!(c.namespace);
    pvc["metadata"]["annotations"] = json!({DISK_UID_ANNOTATION: c.disk_uid});
    pvc["spec"] = json!({
        "storageClassName": c.storage_class,
        "accessModes": ["ReadWriteOnce"],
        "volumeMode": "Filesystem",
        "resources": {"requests": {"storage": c.size}},
    });
    if let Some(vs) = c.from_volume_snapshot {
        pvc["spec"]["dataSource"] =
            json!({"apiGroup": SNAPSHOT_GROUP, "kind": "VolumeSnapshot", "name": vs});
    }
    from_json("PersistentVolumeClaim", pvc)
}

/// What a static PV needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticVolume<'a> {
    /// Disk namespace.
    pub namespace: &'a str,
    /// Disk name.
    pub disk: &'a str,
    /// CSI driver.
    pub driver: &'a str,
    /// Volume handle.
    pub handle: &'a str,
    /// Capacity (quantity).
    pub size: &'a str,
    /// Node zone label value, for node affinity.
    pub zone: Option<&'a str>,
    /// `csi.fsType`.
    pub fs_type: Option<&'a str>,
    /// `csi.volumeAttributes` (the volume context the driver returned at creation).
    pub volume_attributes: Option<&'a BTreeMap<String, String>>,
}

/// The disk's static PV: `Retain`, [`STATIC_STORAGE_CLASS`], RWO, labelled back to the disk.
///
/// # Errors
///
/// [`Error::Serde`] only if the object cannot be represented (not expected).
pub fn static_pv(v: &StaticVolume<'_>) -> Result<PersistentVolume> {
    let mut csi = json!({"driver": v.driver, "volumeHandle": v.handle});
    if let Some(fs) = v.fs_type {
        csi["fsType"] = json!(fs);
    }
    if let Some(attrs) = v.volume_attributes.filter(|a| !a.is_empty()) {
        csi["volumeAttributes"] = json!(attrs);
    }
    let mut pv = managed_object(
        "v1",
        "PersistentVolume",
        &pv_name(v.namespace, v.disk),
        &[
            (DISK_LABEL, v.disk),
            (DISK_NAMESPACE_LABEL, v.namespace),
            (ROLE_LABEL, ROLE_STATIC),
        ],
    );
    pv["metadata"]["annotations"] = json!({HANDLE_ANNOTATION: v.handle});
    pv["spec"] = json!({
        "capacity": {"storage": v.size},
        "accessModes": ["ReadWriteOnce"],
        "persistentVolumeReclaimPolicy": "Retain",
        "storageClassName": STATIC_STORAGE_CLASS,
        "volumeMode": "Filesystem",
        "csi": csi,
    });
    if let Some(z) = v.zone {
        pv["spec"]["nodeAffinity"] = json!({"required": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": ZONE_LABEL, "operator": "In", "values": [z]}]}
        ]}});
    }
    from_json("PersistentVolume", pv)
}

/// The merge patch that hands a static PV back to its CSI provisioner for deletion:
/// `Delete` policy, `pv.kubernetes.io/provisioned-by: <driver>`, and a `claimRef` to a PVC
/// that never existed (`uid` = the disk's UID) so the PV controller marks it `Released` and
/// the external-provisioner calls `DeleteVolume` and removes the PV.
#[must_use]
pub fn delete_handover_patch(
    driver: &str,
    namespace: &str,
    disk: &str,
    disk_uid: &str,
) -> serde_json::Value {
    json!({
        "metadata": {
            "labels": {ROLE_LABEL: crate::labels::ROLE_DELETE},
            "annotations": {PROVISIONED_BY_ANNOTATION: driver},
        },
        "spec": {
            "persistentVolumeReclaimPolicy": "Delete",
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": namespace,
                "name": truncate_with_hash(&format!("k4x-deleted-{disk}"), 63),
                "uid": disk_uid,
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::ResourceExt;

    #[test]
    fn names_are_deterministic_and_bounded() {
        assert_eq!(pv_name("ns", "data"), "k4x-ns-data");
        let long = pv_name(&"n".repeat(63), &"d".repeat(253));
        assert!(long.len() <= 63, "{long}");
        assert_eq!(long, pv_name(&"n".repeat(63), &"d".repeat(253)));
        assert_ne!(pv_name("a-b", "c"), pv_name("a", "b-c-x"));
        assert!(provision_pvc_name(&"d".repeat(253)).len() <= 63);
        let p: BTreeMap<String, String> = [("skuName".to_string(), "P".to_string())].into();
        let a = storage_class_name("aks", "disk.csi.azure.com", &p, Some("japaneast-1"));
        assert!(a.starts_with("k4x-aks-"), "{a}");
        assert_eq!(
            a,
            storage_class_name("aks", "disk.csi.azure.com", &p, Some("japaneast-1"))
        );
        assert_ne!(
            a,
            storage_class_name("aks", "disk.csi.azure.com", &p, Some("japaneast-2"))
        );
        assert_ne!(
            a,
            storage_class_name(
                "aks",
                "disk.csi.azure.com",
                &BTreeMap::new(),
                Some("japaneast-1")
            )
        );
    }

    #[test]
    fn static_pv_matches_the_contract() -> Result<()> {
        let attrs: BTreeMap<String, String> = [("k".to_string(), "v".to_string())].into();
        let pv = static_pv(&StaticVolume {
            namespace: "ns",
            disk: "data",
            driver: "d.csi",
            handle: "vol-1",
            size: "10Gi",
            zone: Some("japaneast-1"),
            fs_type: Some("ext4"),
            volume_attributes: Some(&attrs),
        })?;
        let v = serde_json::to_value(&pv).map_err(|source| Error::Serde {
            what: "pv".into(),
            source,
        })?;
        assert_eq!(v["metadata"]["name"], "k4x-ns-data");
        assert_eq!(v["metadata"]["labels"][DISK_LABEL], "data");
        assert_eq!(v["metadata"]["labels"][DISK_NAMESPACE_LABEL], "ns");
        assert_eq!(v["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        assert_eq!(v["spec"]["storageClassName"], STATIC_STORAGE_CLASS);
        assert_eq!(v["spec"]["accessModes"][0], "ReadWriteOnce");
        assert_eq!(v["spec"]["capacity"]["storage"], "10Gi");
        assert_eq!(v["spec"]["csi"]["volumeHandle"], "vol-1");
        assert_eq!(v["spec"]["csi"]["fsType"], "ext4");
        assert_eq!(v["spec"]["csi"]["volumeAttributes"]["k"], "v");
        let req =
            &v["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0];
        assert_eq!(req["key"], ZONE_LABEL);
        assert_eq!(req["values"][0], "japaneast-1");
        let nozone = static_pv(&StaticVolume {
            zone: None,
            fs_type: None,
            volume_attributes: None,
            namespace: "ns",
            disk: "data",
            driver: "d",
            handle: "h",
            size: "1Gi",
        })?;
        assert!(nozone.spec.and_then(|s| s.node_affinity).is_none());
        Ok(())
    }

    #[test]
    fn provisioning_objects() -> Result<()> {
        let pvc = provision_pvc(&ProvisionClaim {
            namespace: "ns",
            disk: "data",
            disk_uid: "u1",
            storage_class: "k4x-csi-abc",
            size: "1Gi",
            from_volume_snapshot: Some("k4x-snap-s"),
        })?;
        let spec = pvc.spec.unwrap_or_default();
        assert_eq!(spec.storage_class_name.as_deref(), Some("k4x-csi-abc"));
        let ds = spec.data_source.unwrap_or_default();
        assert_eq!(
            (ds.kind.as_str(), ds.name.as_str()),
            ("VolumeSnapshot", "k4x-snap-s")
        );
        assert_eq!(ds.api_group.as_deref(), Some(SNAPSHOT_GROUP));
        let sc = storage_class("k4x-csi-abc", "d", &BTreeMap::new(), Some("z1"))?;
        assert_eq!(sc.reclaim_policy.as_deref(), Some("Retain"));
        assert_eq!(sc.volume_binding_mode.as_deref(), Some("Immediate"));
        assert_eq!(sc.allowed_topologies.map(|t| t.len()), Some(1));
        let st = static_storage_class()?;
        assert_eq!(st.metadata.name.as_deref(), Some(STATIC_STORAGE_CLASS));
        assert_eq!(st.provisioner, NO_PROVISIONER);
        assert_eq!(st.allow_volume_expansion, Some(true));
        assert_eq!(st.reclaim_policy.as_deref(), Some("Retain"));
        let resize = resize_pvc("ns", "data", "k4x-ns-data", STATIC_STORAGE_CLASS, "1Gi")?;
        assert_eq!(resize.metadata.name.as_deref(), Some("k4x-resize-data"));
        assert_eq!(
            resize.labels().get(ROLE_LABEL).map(String::as_str),
            Some(ROLE_RESIZE)
        );
        let spec = resize.spec.unwrap_or_default();
        assert_eq!(
            (
                spec.volume_name.as_deref(),
                spec.storage_class_name.as_deref()
            ),
            (Some("k4x-ns-data"), Some(STATIC_STORAGE_CLASS))
        );
        let patch = delete_handover_patch("d", "ns", "data", "u1");
        assert_eq!(patch["spec"]["persistentVolumeReclaimPolicy"], "Delete");
        assert_eq!(patch["spec"]["claimRef"]["uid"], "u1");
        assert_eq!(
            patch["metadata"]["annotations"][PROVISIONED_BY_ANNOTATION],
            "d"
        );
        Ok(())
    }
}

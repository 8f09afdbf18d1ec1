//! The objects a migration creates in the target, built from the source's (pure): each one
//! annotated with the migration's ID ([`super::record::CREATED_BY`]) so that a resume reuses
//! it and a rollback removes exactly what the migration made.

use kompox_core::api::{KompoxApp, KompoxDisk};
use kompox_core::naming;
use serde_json::{Map, Value, json};

use super::record::CREATED_BY;

/// Annotations never copied: kubectl's last applied configuration (of a Secret it holds the
/// data) and the migration's own record.
const DROPPED_ANNOTATIONS: [&str; 2] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    super::record::ANNOTATION,
];

/// Labels of a Kompox app namespace that say whose it is; copied to the target namespace.
const NAMESPACE_LABELS: [&str; 3] = [
    naming::MANAGED_BY_LABEL,
    naming::TENANT_LABEL,
    naming::APP_ID_LABEL,
];

fn created(id: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(CREATED_BY.into(), json!(id));
    m
}

/// The target namespace `name`, with the source namespace's Kompox labels (`labels`).
#[must_use]
pub fn namespace(
    name: &str,
    labels: &std::collections::BTreeMap<String, String>,
    id: &str,
) -> Value {
    let kept: Map<String, Value> = labels
        .iter()
        .filter(|(k, _)| NAMESPACE_LABELS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": kept, "annotations": created(id)},
    })
}

/// A copy of a ConfigMap or Secret (`obj`, as read) for namespace `ns`: name, labels,
/// annotations (but [`DROPPED_ANNOTATIONS`]), type, data and binaryData; nothing the server
/// set, no owner.
#[must_use]
pub fn copy_of(obj: &Value, ns: &str, id: &str) -> Value {
    let mut annotations = created(id);
    if let Some(a) = obj["metadata"]["annotations"].as_object() {
        for (k, v) in a {
            if !DROPPED_ANNOTATIONS.contains(&k.as_str()) {
                annotations.insert(k.clone(), v.clone());
            }
        }
    }
    let mut out = json!({
        "apiVersion": obj["apiVersion"], "kind": obj["kind"],
        "metadata": {
            "name": obj["metadata"]["name"], "namespace": ns,
            "annotations": annotations,
        },
    });
    if let Some(l) = obj["metadata"]["labels"].as_object() {
        out["metadata"]["labels"] = Value::Object(l.clone());
    }
    for key in ["type", "data", "binaryData", "immutable"] {
        if !obj[key].is_null() {
            out[key] = obj[key].clone();
        }
    }
    out
}

/// The KompoxSnapshot `name` in namespace `ns` of the target that imports provider snapshot
/// `handle`.
#[must_use]
pub fn imported_snapshot(name: &str, ns: &str, handle: &str, id: &str) -> Value {
    json!({
        "apiVersion": kompox_core::api::API_VERSION, "kind": "KompoxSnapshot",
        "metadata": {"name": name, "namespace": ns, "annotations": created(id)},
        "spec": {"handle": handle},
    })
}

/// The KompoxSnapshot `name` in the source namespace `ns` that snapshots disk `disk`.
#[must_use]
pub fn source_snapshot(name: &str, ns: &str, disk: &str, id: &str) -> Value {
    json!({
        "apiVersion": kompox_core::api::API_VERSION, "kind": "KompoxSnapshot",
        "metadata": {"name": name, "namespace": ns, "annotations": created(id)},
        "spec": {"diskRef": {"name": disk}},
    })
}

/// The target's KompoxDisk for source disk `src`: the same name, size, provider, options and
/// zone (`spec.zone`, else the zone its volume is in), in namespace `ns`; restored from
/// KompoxSnapshot `from_snapshot` (snapshot mode) or adopting volume `handle` (handoff, always
/// `Orphan`: the volume came from elsewhere).
#[must_use]
pub fn target_disk(src: &KompoxDisk, ns: &str, id: &str, source: DiskSource<'_>) -> Value {
    let status = src.status.clone().unwrap_or_default();
    let zone = src
        .spec
        .zone
        .clone()
        .filter(|z| !z.trim().is_empty())
        .or(status.zone);
    let mut spec = json!({
        "provider": src.spec.provider,
        "size": src.spec.size,
        "deletionPolicy": src.spec.deletion_policy,
    });
    if let Some(z) = zone {
        spec["zone"] = json!(z);
    }
    if !src.spec.options.is_empty() {
        spec["options"] = json!(src.spec.options);
    }
    match source {
        DiskSource::Snapshot(s) => spec["fromSnapshot"] = json!({"name": s}),
        DiskSource::Handle(h) => {
            spec["handle"] = json!(h);
            spec["deletionPolicy"] = json!("Orphan");
        }
    }
    json!({
        "apiVersion": kompox_core::api::API_VERSION, "kind": "KompoxDisk",
        "metadata": {"name": src.metadata.name, "namespace": ns, "annotations": created(id)},
        "spec": spec,
    })
}

/// Where a target disk's data comes from.
#[derive(Clone, Copy, Debug)]
pub enum DiskSource<'a> {
    /// Restored from this KompoxSnapshot (in the target namespace).
    Snapshot(&'a str),
    /// Adopting this volume handle.
    Handle(&'a str),
}

/// The target's KompoxApp: the source's spec (with `suspend` as `suspend`), its labels and
/// annotations (but the migration record), in namespace `ns`.
#[must_use]
pub fn target_app(src: &KompoxApp, ns: &str, id: &str, suspend: bool) -> Value {
    let mut spec = serde_json::to_value(&src.spec).unwrap_or_else(|_| json!({}));
    spec["suspend"] = json!(suspend);
    let mut annotations = created(id);
    for (k, v) in src.metadata.annotations.iter().flatten() {
        if !DROPPED_ANNOTATIONS.contains(&k.as_str()) {
            annotations.insert(k.clone(), json!(v));
        }
    }
    let mut app = json!({
        "apiVersion": kompox_core::api::API_VERSION, "kind": "KompoxApp",
        "metadata": {"name": src.metadata.name, "namespace": ns, "annotations": annotations},
        "spec": spec,
    });
    if let Some(l) = &src.metadata.labels {
        app["metadata"]["labels"] = json!(l);
    }
    app
}

/// Whether `obj` (as read from the target) was created by migration `id`.
#[must_use]
pub fn is_ours(annotations: Option<&std::collections::BTreeMap<String, String>>, id: &str) -> bool {
    annotations
        .and_then(|a| a.get(CREATED_BY))
        .is_some_and(|v| v == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(spec: Value, status: Value) -> KompoxDisk {
        serde_json::from_value(json!({
            "apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxDisk",
            "metadata": {"name": "data", "namespace": "src"},
            "spec": spec, "status": status,
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_secret_copy_keeps_data_and_type_but_nothing_the_server_or_kubectl_set() {
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {
                "name": "app-env", "namespace": "src", "uid": "u1", "resourceVersion": "9",
                "labels": {"a": "b"},
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{}}",
                    "keep": "me",
                },
                "ownerReferences": [{"kind": "KompoxApp"}],
                "managedFields": [{}],
            },
            "data": {"k": "djE="},
        });
        let c = copy_of(&secret, "dst", "0badcafe");
        assert_eq!(
            c,
            json!({
                "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {
                    "name": "app-env", "namespace": "dst", "labels": {"a": "b"},
                    "annotations": {"keep": "me", CREATED_BY: "0badcafe"},
                },
                "data": {"k": "djE="},
            })
        );
    }

    #[test]
    fn a_restored_disk_keeps_size_zone_and_policy_an_adopted_one_is_orphan() {
        let src = disk(
            json!({"size": "2Gi", "deletionPolicy": "Delete"}),
            json!({"zone": "japaneast-3", "handle": "12"}),
        );
        let restored = target_disk(&src, "dst", "id", DiskSource::Snapshot("data-migrate-id"));
        assert_eq!(restored["spec"]["zone"], "japaneast-3");
        assert_eq!(restored["spec"]["size"], "2Gi");
        assert_eq!(restored["spec"]["deletionPolicy"], "Delete");
        assert_eq!(restored["spec"]["fromSnapshot"]["name"], "data-migrate-id");
        let adopted = target_disk(&src, "dst", "id", DiskSource::Handle("12"));
        assert_eq!(adopted["spec"]["handle"], "12");
        assert_eq!(adopted["spec"]["deletionPolicy"], "Orphan");
        assert!(adopted["spec"]["fromSnapshot"].is_null());
        let by_spec = disk(
            json!({"size": "1Gi", "zone": "1"}),
            json!({"zone": "japaneast-1"}),
        );
        assert_eq!(
            target_disk(&by_spec, "dst", "id", DiskSource::Handle("h"))["spec"]["zone"],
            "1"
        );
    }

    #[test]
    fn the_target_app_drops_the_record_and_sets_suspend() {
        let app: KompoxApp = serde_json::from_value(json!({
            "apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxApp",
            "metadata": {"name": "web", "namespace": "src",
                "annotations": {super::super::record::ANNOTATION: "{}", "team": "a"}},
            "spec": {"compose": {"configMapRef": {"name": "web", "key": "compose.yml"}},
                "suspend": true},
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let t = target_app(&app, "dst", "0badcafe", false);
        assert_eq!(t["spec"]["suspend"], false);
        assert_eq!(
            t["metadata"]["annotations"],
            json!({"team": "a", CREATED_BY: "0badcafe"})
        );
        assert_eq!(t["metadata"]["namespace"], "dst");
    }
}

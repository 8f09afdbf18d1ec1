//! Applying an app's objects by server-side apply and pruning what an earlier render created.
//!
//! Every object gets the KompoxApp as its controller owner (`blockOwnerDeletion`), so deleting
//! the app garbage-collects it. Prune candidates come from `status.inventory` (written, as the
//! union of old and new, **before** anything new is applied, so a crash between apply and the
//! final status write cannot leak an object); a candidate is deleted only if it still carries
//! the app's `kompox.dev/app` label and its owner reference to this app's UID, and with that UID
//! as a precondition — an object someone else created later under the same name is left alone.

use std::collections::BTreeSet;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kompox_cluster::{is_conflict, is_not_found};
use kompox_core::api::{API_VERSION, InventoryEntry, KompoxApp};
use kompox_core::render::APP_LABEL;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, Preconditions,
};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use k8s_openapi::api::apps::v1::Deployment;

use super::FIELD_MANAGER;
use super::fingerprint::{self, tracked_version};
use super::run::{Replicas, Run};
use crate::{Error, Result};

/// The kinds the app controller applies, with their resource (plural) names.
const KINDS: [(&str, &str, &str); 11] = [
    ("v1", "Secret", "secrets"),
    ("v1", "ConfigMap", "configmaps"),
    ("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    ("v1", "Service", "services"),
    ("apps/v1", "Deployment", "deployments"),
    ("networking.k8s.io/v1", "Ingress", "ingresses"),
    ("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
    ("rbac.authorization.k8s.io/v1", "Role", "roles"),
    (
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        "rolebindings",
    ),
    ("v1", "ResourceQuota", "resourcequotas"),
    ("v1", "LimitRange", "limitranges"),
];

/// The API resource of a kind the controller applies; `None` for any other kind.
#[must_use]
pub fn api_resource(api_version: &str, kind: &str) -> Option<ApiResource> {
    let (_, _, plural) = KINDS
        .iter()
        .find(|(v, k, _)| *v == api_version && *k == kind)?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    Some(ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, kind),
        plural,
    ))
}

/// The inventory entry of an object (`None` without apiVersion, kind or name).
#[must_use]
pub fn entry_of(obj: &Value) -> Option<InventoryEntry> {
    Some(InventoryEntry {
        api_version: obj["apiVersion"].as_str()?.to_owned(),
        kind: obj["kind"].as_str()?.to_owned(),
        name: obj["metadata"]["name"].as_str()?.to_owned(),
    })
}

/// The sorted, de-duplicated inventory of `objects`.
#[must_use]
pub fn inventory(objects: &[Value]) -> Vec<InventoryEntry> {
    let set: BTreeSet<InventoryEntry> = objects.iter().filter_map(entry_of).collect();
    set.into_iter().collect()
}

/// `old ∪ new`, sorted.
#[must_use]
pub fn union(old: &[InventoryEntry], new: &[InventoryEntry]) -> Vec<InventoryEntry> {
    let set: BTreeSet<InventoryEntry> = old.iter().chain(new).cloned().collect();
    set.into_iter().collect()
}

/// Entries of `old` not in `new`.
#[must_use]
pub fn stale(old: &[InventoryEntry], new: &[InventoryEntry]) -> Vec<InventoryEntry> {
    let keep: BTreeSet<&InventoryEntry> = new.iter().collect();
    old.iter().filter(|e| !keep.contains(e)).cloned().collect()
}

/// The controller owner reference to `app` (`None` without name or UID).
#[must_use]
pub fn owner_reference(app: &KompoxApp) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: API_VERSION.to_owned(),
        kind: "KompoxApp".to_owned(),
        name: app.metadata.name.clone()?,
        uid: app.metadata.uid.clone()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// `obj` (typed) placed in `namespace` and owned by `owner`: the same as [`owned`] does to its
/// JSON form.
#[must_use]
pub fn owned_typed<K: Resource>(mut obj: K, namespace: &str, owner: &OwnerReference) -> K {
    let meta = obj.meta_mut();
    meta.namespace = Some(namespace.to_owned());
    meta.owner_references = Some(vec![owner.clone()]);
    obj
}

/// `obj` placed in `namespace` and owned by `owner`.
#[must_use]
pub fn owned(mut obj: Value, namespace: &str, owner: &OwnerReference) -> Value {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("namespace".into(), Value::String(namespace.to_owned()));
        meta.insert(
            "ownerReferences".into(),
            serde_json::to_value([owner]).unwrap_or(Value::Null),
        );
    }
    obj
}

/// Whether the live object with metadata `meta` may be applied as app `app_uid`'s (with
/// label value `app_label`): `None` if so, else why not.
///
/// It may when this app controls it, or when nobody controls it and it carries this app's
/// `kompox.dev/app` label (left by this app, e.g. before an owner reference was added). Any
/// other existing object — another KompoxApp's (two apps in one namespace rendering the same
/// Service name), a user's own — is not taken over: server-side apply with one field manager
/// for every app would otherwise move it from app to app on every reconcile.
#[must_use]
pub fn foreign(meta: &ObjectMeta, app_uid: &str, app_label: &str) -> Option<String> {
    let controller = meta
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true));
    match controller {
        Some(o) if o.uid == app_uid => None,
        Some(o) => Some(format!("it is controlled by {} {}", o.kind, o.name)),
        None => {
            let ours = meta
                .labels
                .as_ref()
                .and_then(|l| l.get(APP_LABEL))
                .is_some_and(|v| v == app_label);
            (!ours).then(|| "it exists and is not managed by this KompoxApp".to_owned())
        }
    }
}

/// Why one object could not be applied.
#[derive(Debug)]
pub enum ApplyError {
    /// The API server refused the object (400/403/422: invalid, immutable field, quota,
    /// forbidden): the app is Degraded `ApplyFailed` until its inputs change.
    Refused(String),
    /// Anything else (network, 5xx, conflict): retried.
    Failed(Error),
}

/// Applies `obj` (a complete object of a kind in the table) in `namespace` by server-side apply
/// with field manager `field_manager`, forcing ownership of the fields it sets.
///
/// # Errors
///
/// [`ApplyError::Refused`] with the API's message (which names fields, never Secret values);
/// [`ApplyError::Failed`] for anything retryable.
pub async fn apply(
    client: &Client,
    namespace: &str,
    field_manager: &str,
    obj: &Value,
) -> Result<DynamicObject, ApplyError> {
    let (Some(av), Some(kind), Some(name)) = (
        obj["apiVersion"].as_str(),
        obj["kind"].as_str(),
        obj["metadata"]["name"].as_str(),
    ) else {
        return Err(ApplyError::Refused(
            "rendered object without apiVersion, kind or metadata.name".into(),
        ));
    };
    let Some(ar) = api_resource(av, kind) else {
        return Err(ApplyError::Refused(format!(
            "{kind} {name}: kind {av}/{kind} is not one the app controller applies"
        )));
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
    api.patch(
        name,
        &PatchParams::apply(field_manager).force(),
        &Patch::Apply(obj),
    )
    .await
    .map_err(|e| apply_error(kind, namespace, name, e))
}

/// Applies the typed object `obj` (its namespace set) like [`apply`] and returns the live object
/// in its type.
///
/// # Errors
///
/// As [`apply`].
pub async fn apply_typed<K>(
    client: &Client,
    namespace: &str,
    field_manager: &str,
    obj: &K,
) -> Result<K, ApplyError>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let kind = K::kind(&());
    let name = obj.meta().name.as_deref().unwrap_or_default();
    if name.is_empty() {
        return Err(ApplyError::Refused(format!(
            "rendered {kind} without metadata.name"
        )));
    }
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.patch(
        name,
        &PatchParams::apply(field_manager).force(),
        &Patch::Apply(obj),
    )
    .await
    .map_err(|e| apply_error(&kind, namespace, name, e))
}

/// A failed apply of `kind` `namespace/name`: refused (400/403/422) or retryable.
fn apply_error(kind: &str, namespace: &str, name: &str, e: kube::Error) -> ApplyError {
    match e {
        kube::Error::Api(s) if matches!(s.code, 400 | 403 | 422) => {
            ApplyError::Refused(format!("{kind} {name}: {}", s.message))
        }
        e => ApplyError::Failed(Error::kube(
            format!("applying {kind} {namespace}/{name}"),
            e,
        )),
    }
}

/// Deletes the objects of `stale` that are still this app's (label `kompox.dev/app` =
/// `app_label` and an owner reference to `app_uid`), each with its UID as a precondition.
/// Returns what was deleted. Entries of kinds outside the table, and objects already gone, are
/// skipped.
///
/// # Errors
///
/// [`Error::Kube`] when a read or delete fails (other than 404/409).
pub async fn prune(
    client: &Client,
    namespace: &str,
    app_label: &str,
    app_uid: &str,
    stale: &[InventoryEntry],
) -> Result<Vec<InventoryEntry>> {
    let mut pruned = Vec::new();
    for e in stale {
        let Some(ar) = api_resource(&e.api_version, &e.kind) else {
            continue;
        };
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
        let what = format!("{} {namespace}/{}", e.kind, e.name);
        let Some(live) = api
            .get_metadata_opt(&e.name)
            .await
            .map_err(|e| Error::kube(format!("reading {what}"), e))?
        else {
            continue;
        };
        let ours = live
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(APP_LABEL))
            .is_some_and(|v| v == app_label)
            && live
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == app_uid);
        if !ours || live.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: live.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        match api.delete(&e.name, &dp).await {
            Ok(_) => pruned.push(e.clone()),
            Err(e) if is_not_found(&e) || is_conflict(&e) => {}
            Err(err) => return Err(Error::kube(format!("pruning {what}"), err)),
        }
    }
    Ok(pruned)
}

/// One object of an apply wave: see [`Run::apply_all`].
enum Todo<'o> {
    Object(&'o Value),
    Deployment(Box<Deployment>),
}

impl Todo<'_> {
    fn kind(&self) -> &str {
        match self {
            Todo::Object(o) => o["kind"].as_str().unwrap_or_default(),
            Todo::Deployment(_) => "Deployment",
        }
    }

    fn name(&self) -> Option<&str> {
        match self {
            Todo::Object(o) => o["metadata"]["name"].as_str(),
            Todo::Deployment(d) => d.metadata.name.as_deref(),
        }
    }

    /// Applies it: the live metadata, and the live Deployment when it is the Deployment.
    async fn apply(
        &self,
        client: &Client,
        ns: &str,
        field_manager: &str,
    ) -> std::result::Result<(ObjectMeta, Option<Deployment>), ApplyError> {
        match self {
            Todo::Object(o) => apply(client, ns, field_manager, o)
                .await
                .map(|live| (live.metadata, None)),
            Todo::Deployment(d) => apply_typed(client, ns, field_manager, d.as_ref())
                .await
                .map(|live| (live.metadata.clone(), Some(live))),
        }
    }
}

impl Run<'_> {
    /// Applies `objects` in order, the Deployment among them as the typed `deployment` with
    /// `replicas`, the PVC named `skip_claim` left out. `Ok(Err(message))` when the API server
    /// refused one. Returns the applied Deployment.
    pub(super) async fn apply_all(
        &mut self,
        objects: &[Value],
        deployment: &Deployment,
        replicas: Replicas,
        skip_claim: Option<&str>,
    ) -> Result<std::result::Result<Option<Deployment>, String>> {
        let mut todo: Vec<Todo<'_>> = Vec::new();
        for obj in objects {
            match obj["kind"].as_str().unwrap_or_default() {
                "PersistentVolumeClaim"
                    if skip_claim.is_some_and(|c| obj["metadata"]["name"] == c) => {}
                "Deployment" => {
                    let mut d = deployment.clone();
                    // A suspended app is held at zero whatever the pass would apply.
                    if replicas == Replicas::Zero || self.app.spec.suspend {
                        d.spec.get_or_insert_with(Default::default).replicas = Some(0);
                    }
                    todo.push(Todo::Deployment(Box::new(d)));
                }
                _ => todo.push(Todo::Object(obj)),
            }
        }
        // Two waves, each applied concurrently: first what the workload reads or is constrained
        // by (Secrets, ConfigMaps, PVCs, policies, quota), then the workload and its Services.
        let (first, second): (Vec<_>, Vec<_>) = todo
            .into_iter()
            .partition(|o| !matches!(o.kind(), "Service" | "Deployment" | "Ingress"));
        let mut applied_deployment = None;
        for wave in [first, second] {
            let results = futures::future::join_all(
                wave.iter()
                    .map(|o| o.apply(&self.client, &self.ns, FIELD_MANAGER)),
            )
            .await;
            let mut refused = None;
            for (obj, applied) in wave.iter().zip(results) {
                let kind = obj.kind();
                match applied {
                    Ok((meta, typed)) => {
                        if let (Some(name), Some(v)) = (obj.name(), tracked_version(kind, &meta)) {
                            self.versions.insert((kind.to_owned(), name.to_owned()), v);
                        }
                        if let Some(d) = typed {
                            applied_deployment = Some(d);
                        }
                    }
                    Err(ApplyError::Refused(msg)) => {
                        refused.get_or_insert(msg);
                    }
                    Err(ApplyError::Failed(e)) => return Err(e),
                }
            }
            if let Some(msg) = refused {
                return Ok(Err(msg));
            }
        }
        Ok(Ok(applied_deployment))
    }
}

/// Objects someone else controls are never taken over.
impl Run<'_> {
    /// The objects of `objects` that exist and are not this app's ([`foreign`]), as
    /// messages. Objects this app has applied before (in `status.inventory`) are checked in the
    /// watch caches; new ones with a metadata GET, so an object nobody labelled (a user's own)
    /// is found too.
    pub(super) async fn ownership_conflicts(&self, objects: &[Value]) -> Result<Vec<String>> {
        let entries: Vec<InventoryEntry> = objects.iter().filter_map(entry_of).collect();
        let lookups = entries.iter().map(|e| async move {
            if self.old.inventory.contains(e) {
                return Ok(self.cached_meta(e));
            }
            let Some(ar) = api_resource(&e.api_version, &e.kind) else {
                return Ok(None);
            };
            let api: Api<kube::api::DynamicObject> =
                Api::namespaced_with(self.client.clone(), &self.ns, &ar);
            api.get_metadata_opt(&e.name)
                .await
                .map(|m| m.map(|m| m.metadata))
                .map_err(|err| {
                    Error::kube(format!("reading {} {}/{}", e.kind, self.ns, e.name), err)
                })
        });
        let live = futures::future::try_join_all(lookups).await?;
        Ok(entries
            .iter()
            .zip(live)
            .filter_map(|(e, m)| {
                let why = foreign(m.as_ref()?, &self.uid, &self.label)?;
                Some(format!(
                    "{} {} cannot be applied: {why}; give it another name (e.g. rename the compose service) or run the apps in separate namespaces",
                    e.kind, e.name
                ))
            })
            .collect())
    }

    /// The cached metadata of an object of this app's inventory ([`fingerprint::cached_meta`]).
    pub(super) fn cached_meta(&self, e: &InventoryEntry) -> Option<ObjectMeta> {
        fingerprint::cached_meta(&self.actx.stores, &self.ns, &e.kind, &e.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kompox_core::api::KompoxAppSpec;
    use rstest::rstest;
    use serde_json::json;

    fn e(av: &str, kind: &str, name: &str) -> InventoryEntry {
        InventoryEntry {
            api_version: av.into(),
            kind: kind.into(),
            name: name.into(),
        }
    }

    #[test]
    fn every_rendered_kind_has_a_resource() {
        for (av, kind, plural) in KINDS {
            let ar = api_resource(av, kind);
            assert_eq!(ar.as_ref().map(|a| a.plural.as_str()), Some(plural));
        }
        assert_eq!(
            api_resource("apps/v1", "Deployment").map(|a| a.group),
            Some("apps".to_owned())
        );
        assert_eq!(
            api_resource("v1", "Secret").map(|a| a.group),
            Some(String::new())
        );
        assert!(api_resource("v1", "Pod").is_none());
        assert!(api_resource("apps/v1", "Secret").is_none());
    }

    #[test]
    fn inventory_union_and_stale() {
        let objs = [
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a-app"}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}}),
            json!({"kind": "Service", "metadata": {"name": "x"}}),
        ];
        let inv = inventory(&objs);
        assert_eq!(
            inv,
            [
                e("apps/v1", "Deployment", "a-app"),
                e("v1", "Service", "web")
            ]
        );
        let old = vec![e("v1", "Service", "db"), e("v1", "Service", "web")];
        assert_eq!(stale(&old, &inv), [e("v1", "Service", "db")]);
        assert_eq!(union(&old, &inv).len(), 3);
        assert!(stale(&inv, &inv).is_empty());
    }

    fn owner(uid: &str, controller: bool) -> OwnerReference {
        OwnerReference {
            api_version: API_VERSION.into(),
            kind: "KompoxApp".into(),
            name: format!("app-{uid}"),
            uid: uid.into(),
            controller: Some(controller),
            block_owner_deletion: None,
        }
    }

    fn meta(owners: Vec<OwnerReference>, label: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            owner_references: Some(owners),
            labels: label.map(|l| [(APP_LABEL.to_owned(), l.to_owned())].into()),
            ..ObjectMeta::default()
        }
    }

    /// Objects another app or a user controls are never taken over.
    #[rstest]
    #[case::mine(meta(vec![owner("u1", true)], Some("a")), None)]
    #[case::another_apps(
        meta(vec![owner("u2", true)], Some("b")),
        Some("it is controlled by KompoxApp app-u2")
    )]
    #[case::labelled_no_controller(meta(vec![owner("u2", false)], Some("a")), None)]
    #[case::a_users(
        meta(vec![], None),
        Some("it exists and is not managed by this KompoxApp")
    )]
    #[case::another_apps_label(
        meta(vec![], Some("b")),
        Some("it exists and is not managed by this KompoxApp")
    )]
    fn foreign_objects(#[case] m: ObjectMeta, #[case] want: Option<&str>) {
        assert_eq!(foreign(&m, "u1", "a").as_deref(), want);
    }

    #[test]
    fn ownership_is_added() {
        let mut app = KompoxApp::new("gitea", KompoxAppSpec::default());
        assert!(owner_reference(&app).is_none(), "no uid yet");
        app.metadata.uid = Some("u-1".into());
        let Some(o) = owner_reference(&app) else {
            panic!("owner reference");
        };
        let obj = owned(
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}}),
            "ns",
            &o,
        );
        assert_eq!(obj["metadata"]["namespace"], "ns");
        let refs = &obj["metadata"]["ownerReferences"];
        assert_eq!(refs[0]["uid"], "u-1");
        assert_eq!(refs[0]["controller"], true);
        assert_eq!(refs[0]["blockOwnerDeletion"], true);
        assert_eq!(refs[0]["kind"], "KompoxApp");

        // The typed form gets the same metadata.
        let mut svc = k8s_openapi::api::core::v1::Service::default();
        svc.metadata.name = Some("web".into());
        let typed = serde_json::to_value(owned_typed(svc.clone(), "ns", &o)).ok();
        let value = serde_json::to_value(&svc).ok().map(|v| owned(v, "ns", &o));
        assert_eq!(typed, value);
        assert!(typed.is_some());
    }
}

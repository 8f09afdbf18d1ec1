//! KompoxSnapshot controller: snapshots a disk's volume through a CSI VolumeSnapshot.
//!
//! 1. The disk must be Ready. A VolumeSnapshotClass for the disk PV's CSI driver must exist
//!    (the VolumeSnapshot API itself may be missing): otherwise `Degraded` reason
//!    `SnapshotUnsupported` (the cloud-API fallback is later work).
//! 2. Source PVC: the live PVC the disk's static PV is bound to (the app's) when it is in the
//!    snapshot's namespace; otherwise (detached disk) a temporary PVC bound to the static PV by
//!    `volumeName`, deleted once the snapshot is ready (the disk controller then makes the PV
//!    `Available` again).
//! 3. A VolumeSnapshot [`volume_snapshot_name`] (owned by the KompoxSnapshot); its
//!    `readyToUse`, the content's `snapshotHandle` and `restoreSize` are copied to the status.
//! 4. Deletion (finalizer `k8s.kompox.dev/snapshot`): delete the VolumeSnapshot (the class's
//!    `deletionPolicy` decides about the CSI snapshot) and the temporary PVC, and wait until
//!    the VolumeSnapshot is gone.
//!
//! **Adoption** (`spec.handle`): an existing provider snapshot (one another cluster of the same
//! cloud account took, say) is imported as CSI's static snapshot import does it: a
//! pre-provisioned VolumeSnapshotContent [`adopted_content_name`] (cluster-scoped, so labelled
//! rather than owned; `deletionPolicy: Retain`, `source.snapshotHandle`, the driver of
//! `spec.provider`) and the VolumeSnapshot bound to it by `source.volumeSnapshotContentName`.
//! csi-snapshotter checks the handle with the driver (`ListSnapshots`) and fills in
//! `readyToUse` and `restoreSize`; from there on it is observed as any snapshot (step 3).
//! Deletion removes the VolumeSnapshot and then the content; the provider's snapshot stays.
//!
//! A disk restored from a snapshot (`spec.fromSnapshot`) provisions with the VolumeSnapshot as
//! the PVC `dataSource`: see [`crate::disk`].

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kompox_core::api::condition::{self, reasons, types};
use kompox_core::api::{KompoxDisk, KompoxSnapshot, KompoxSnapshotStatus};
use kompox_core::naming::truncate_with_hash;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::Event as Finalizer;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use crate::disk::objects::{bind_claim_spec, managed_object, pv_capacity, pv_class};
use crate::events::{self, Note};
use crate::idempotent;
use crate::labels::{
    ROLE_LABEL, ROLE_SNAPSHOT_SOURCE, SNAPSHOT_FINALIZER, SNAPSHOT_LABEL, SNAPSHOT_NAMESPACE_LABEL,
};
use crate::status::{Phase, report};
use crate::{Context, Error, ReadyToken, Result};
use kompox_cluster::is_not_found;

/// Name of this controller in metrics and logs.
pub const CONTROLLER: &str = "snapshot";
/// Annotation marking the default VolumeSnapshotClass of a driver.
pub const DEFAULT_CLASS_ANNOTATION: &str = "snapshot.storage.kubernetes.io/is-default-class";
const WAIT: Duration = Duration::from_secs(3);

/// The VolumeSnapshot of a KompoxSnapshot (same namespace).
#[must_use]
pub fn volume_snapshot_name(snapshot: &str) -> String {
    truncate_with_hash(&format!("k4x-snap-{snapshot}"), 63)
}

/// The pre-provisioned VolumeSnapshotContent of KompoxSnapshot `ns/snapshot` when it adopts a
/// snapshot by handle (cluster-scoped: the namespace is part of the name).
#[must_use]
pub fn adopted_content_name(ns: &str, snapshot: &str) -> String {
    truncate_with_hash(&format!("k4x-snapc-{ns}-{snapshot}"), 253)
}

/// The temporary PVC a detached disk is snapshotted through.
#[must_use]
pub fn source_pvc_name(snapshot: &str) -> String {
    truncate_with_hash(&format!("k4x-snapsrc-{snapshot}"), 63)
}

fn snapshot_resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("snapshot.storage.k8s.io", "v1", kind),
        plural,
    )
}

/// `snapshot.storage.k8s.io/v1` VolumeSnapshot.
#[must_use]
pub fn volume_snapshot_resource() -> ApiResource {
    snapshot_resource("VolumeSnapshot", "volumesnapshots")
}

/// `snapshot.storage.k8s.io/v1` VolumeSnapshotClass.
#[must_use]
pub fn volume_snapshot_class_resource() -> ApiResource {
    snapshot_resource("VolumeSnapshotClass", "volumesnapshotclasses")
}

/// `snapshot.storage.k8s.io/v1` VolumeSnapshotContent.
#[must_use]
pub fn volume_snapshot_content_resource() -> ApiResource {
    snapshot_resource("VolumeSnapshotContent", "volumesnapshotcontents")
}

/// Picks the VolumeSnapshotClass for `driver` from `(name, driver, is_default)` entries: the
/// default one if marked, else the first by name (pure).
#[must_use]
pub fn pick_class(classes: &[(String, String, bool)], driver: &str) -> Option<String> {
    let mut matching: Vec<&(String, String, bool)> =
        classes.iter().filter(|c| c.1 == driver).collect();
    matching.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    matching.first().map(|c| c.0.clone())
}

/// Runs the KompoxSnapshot controller until shutdown.
///
/// # Errors
///
/// None: reconcile errors are retried by the error policy.
pub async fn run(ctx: Arc<Context>, ready: ReadyToken) -> Result<()> {
    let client = ctx.client.clone();
    let snaps = ctx.scope.api::<KompoxSnapshot>(client.clone());
    let controller = Controller::new(snaps, watcher::Config::default().any_semantic());
    let store = controller.store();
    let disk_store = store.clone();
    let mut controller = controller
        .watches(
            ctx.scope.api::<PersistentVolumeClaim>(client.clone()),
            watcher::Config::default()
                .labels(&format!("{ROLE_LABEL}={ROLE_SNAPSHOT_SOURCE}"))
                .any_semantic(),
            |pvc: PersistentVolumeClaim| {
                let ns = pvc.namespace()?;
                pvc.labels()
                    .get(SNAPSHOT_LABEL)
                    .map(|s| ObjectRef::new(s).within(&ns))
            },
        )
        .watches(
            ctx.scope.api::<KompoxDisk>(client.clone()),
            watcher::Config::default().any_semantic(),
            move |disk: KompoxDisk| snapshots_of(&disk_store, &disk),
        );
    let vs = volume_snapshot_resource();
    let has_api = client
        .list_api_group_resources("snapshot.storage.k8s.io/v1")
        .await
        .is_ok_and(|l| l.resources.iter().any(|r| r.name == "volumesnapshots"));
    if has_api {
        controller = controller.owns_with(
            ctx.scope.api_with(client.clone(), &vs),
            vs,
            watcher::Config::default().labels(SNAPSHOT_LABEL),
        );
    } else {
        tracing::warn!(
            "the VolumeSnapshot API (snapshot.storage.k8s.io/v1) is not installed: KompoxSnapshots will report SnapshotUnsupported"
        );
    }
    let controller = crate::runtime::reconcile_on_entry(controller, &ctx.scope)
        .graceful_shutdown_on(ctx.shutdown.clone().wait());
    crate::runtime::report_when_synced(store, ready);
    let shutdown = ctx.shutdown.clone();
    crate::runtime::drive(
        CONTROLLER,
        controller,
        reconcile,
        error_policy,
        ctx,
        shutdown,
    )
    .await;
    Ok(())
}

fn snapshots_of(
    store: &Store<KompoxSnapshot>,
    disk: &KompoxDisk,
) -> Vec<ObjectRef<KompoxSnapshot>> {
    let ns = disk.namespace();
    let name = disk.name_any();
    store
        .state()
        .iter()
        .filter(|s| s.namespace() == ns && s.spec.adopted().is_none())
        .filter(|s| s.spec.disk_ref.name == name)
        .filter(|s| !s.status.as_ref().is_some_and(|st| st.ready_to_use))
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

async fn reconcile(snap: Arc<KompoxSnapshot>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    ctx.finalized(snap, SNAPSHOT_FINALIZER, |event| async {
        match event {
            Finalizer::Apply(s) => apply(&s, &ctx).await,
            Finalizer::Cleanup(s) => cleanup(&s, &ctx).await,
        }
    })
    .await
}

fn error_policy(snap: Arc<KompoxSnapshot>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.error_action(CONTROLLER, &crate::object_key(snap.as_ref()), err)
}

/// Ends a reconcile in `phase`: writes `status` with the phase's conditions, publishes Events
/// on transitions, and says when to look again.
async fn finish(
    snap: &KompoxSnapshot,
    ctx: &Context,
    status: KompoxSnapshotStatus,
    phase: Phase,
) -> Result<Action> {
    let old = snap.status.clone().unwrap_or_default();
    if !report(ctx, snap, &old, status, &phase, "Snapshot").await? {
        return Ok(Action::await_change());
    }
    Ok(match phase {
        Phase::Ready(_) | Phase::Suspended(_) => Action::await_change(),
        Phase::Progressing(..) => Action::requeue(WAIT),
        Phase::Degraded(..) => Action::requeue(Duration::from_secs(60)),
    })
}

fn str_at<'a>(v: &'a serde_json::Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(|v| v.as_str())
}

/// The VolumeSnapshotClass for `driver`, `Ok(None)` when there is none or the API is missing.
async fn class_for(ctx: &Context, driver: &str) -> Result<Option<String>> {
    let api: Api<DynamicObject> =
        Api::all_with(ctx.client.clone(), &volume_snapshot_class_resource());
    let list = match api.list(&ListParams::default()).await {
        Ok(l) => l,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(Error::kube("listing VolumeSnapshotClasses", e)),
    };
    let classes: Vec<(String, String, bool)> = list
        .items
        .iter()
        .map(|c| {
            (
                c.name_any(),
                str_at(&c.data, &["driver"]).unwrap_or_default().to_string(),
                c.annotations()
                    .get(DEFAULT_CLASS_ANNOTATION)
                    .map(String::as_str)
                    == Some("true"),
            )
        })
        .collect();
    Ok(pick_class(&classes, driver))
}

async fn apply(snap: &KompoxSnapshot, ctx: &Context) -> Result<Action> {
    let mut status = snap.status.clone().unwrap_or_default();
    let phase = take(snap, ctx, &mut status).await?;
    finish(snap, ctx, status, phase).await
}

/// Takes the snapshot one step further (updating `status`); the phase it is in.
async fn take(
    snap: &KompoxSnapshot,
    ctx: &Context,
    status: &mut KompoxSnapshotStatus,
) -> Result<Phase> {
    let ns = snap.namespace().unwrap_or_default();
    let name = snap.name_any();
    if let Err(e) = snap.spec.validate() {
        return Ok(Phase::Degraded(reasons::INVALID_SPEC, e.to_string()));
    }
    let (vs_api, existing) = volume_snapshot(ctx, &ns, &name).await?;
    let vs_name = volume_snapshot_name(&name);
    if let Some(vs) = existing {
        return observe(snap, ctx, status, &vs).await;
    }
    if status.ready_to_use {
        // It was ready and its VolumeSnapshot is gone (deleted by hand): report, do not retake.
        status.ready_to_use = false;
        return Ok(Phase::Degraded(
            reasons::REFERENCE_NOT_FOUND,
            format!("VolumeSnapshot {vs_name} was deleted outside Kompox; the snapshot is lost"),
        ));
    }
    if let Some(handle) = snap.spec.adopted() {
        return adopt(snap, ctx, handle, &vs_api).await;
    }

    // The disk and its PV.
    let disk_name = &snap.spec.disk_ref.name;
    let Some(disk) = Api::<KompoxDisk>::namespaced(ctx.client.clone(), &ns)
        .get_opt(disk_name)
        .await
        .map_err(|e| Error::kube(format!("reading KompoxDisk {ns}/{disk_name}"), e))?
    else {
        return Ok(Phase::Degraded(
            reasons::REFERENCE_NOT_FOUND,
            format!("spec.diskRef.name: KompoxDisk {disk_name:?} not found"),
        ));
    };
    let ds = disk.status.clone().unwrap_or_default();
    let (true, Some(pv_name)) = (
        condition::is_true(&ds.conditions, types::READY),
        ds.pv_name.clone(),
    ) else {
        return Ok(Phase::Progressing(
            reasons::DISK_NOT_READY,
            format!("waiting for KompoxDisk {disk_name} to be Ready"),
        ));
    };
    let pvs: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let Some(pv) = pvs
        .get_opt(&pv_name)
        .await
        .map_err(|e| Error::kube(format!("reading PersistentVolume {pv_name}"), e))?
    else {
        return Ok(Phase::Progressing(
            reasons::DISK_NOT_READY,
            format!("waiting for PersistentVolume {pv_name} of KompoxDisk {disk_name}"),
        ));
    };
    let Some(driver) = pv
        .spec
        .as_ref()
        .and_then(|s| s.csi.as_ref())
        .map(|c| c.driver.clone())
    else {
        return Ok(Phase::Degraded(
            reasons::SNAPSHOT_UNSUPPORTED,
            format!("PersistentVolume {pv_name} is not a CSI volume"),
        ));
    };
    let Some(class) = class_for(ctx, &driver).await? else {
        return Ok(Phase::Degraded(
            reasons::SNAPSHOT_UNSUPPORTED,
            format!(
                "no VolumeSnapshotClass for CSI driver {driver} (disk {disk_name}): this cluster cannot snapshot the disk through CSI; install the driver's snapshot support (snapshot CRDs, snapshot-controller, csi-snapshotter) and a VolumeSnapshotClass"
            ),
        ));
    };

    // The source PVC.
    let temp = source_pvc_name(&name);
    let source = match source_pvc(ctx, snap, &disk, &pv, &temp).await? {
        Ok(source) => source,
        Err(phase) => return Ok(phase),
    };

    let note = format!(
        "taking VolumeSnapshot {vs_name} of PVC {source} (disk {disk_name}, class {class})"
    );
    create_volume_snapshot(
        ctx,
        snap,
        &vs_api,
        json!({"volumeSnapshotClassName": class, "source": {"persistentVolumeClaimName": source}}),
        note,
    )
    .await?;
    Ok(Phase::Progressing(
        reasons::SNAPSHOT_PENDING,
        format!("waiting for VolumeSnapshot {vs_name} to be ready to use"),
    ))
}

/// Creates the snapshot's VolumeSnapshot with `spec` unless it exists; the first time, an Event
/// `note` says what it is taken from.
async fn create_volume_snapshot(
    ctx: &Context,
    snap: &KompoxSnapshot,
    vs_api: &Api<DynamicObject>,
    spec: serde_json::Value,
    note: String,
) -> Result<()> {
    let (ns, name) = (snap.namespace().unwrap_or_default(), snap.name_any());
    let vs_name = volume_snapshot_name(&name);
    let vs: DynamicObject = owned(
        snap,
        "snapshot.storage.k8s.io/v1",
        "VolumeSnapshot",
        &vs_name,
        &[(SNAPSHOT_LABEL, &name)],
        spec,
    )?;
    if idempotent::create(vs_api, &vs, &format!("VolumeSnapshot {ns}/{vs_name}")).await? {
        events::publish(
            &ctx.recorder,
            snap,
            Note::normal(reasons::SNAPSHOT_PENDING, "Snapshot", note),
        )
        .await;
    }
    Ok(())
}

/// Imports the provider snapshot `handle`: the pre-provisioned VolumeSnapshotContent, then the
/// VolumeSnapshot bound to it (see the module docs).
async fn adopt(
    snap: &KompoxSnapshot,
    ctx: &Context,
    handle: &str,
    vs_api: &Api<DynamicObject>,
) -> Result<Phase> {
    let ns = snap.namespace().unwrap_or_default();
    let name = snap.name_any();
    let vs_name = volume_snapshot_name(&name);
    let facts = ctx.facts.facts(&ctx.client).await?;
    let provider = kompox_core::provider::resolve(snap.spec.provider.type_, &facts).provider;
    let driver = match crate::provider::csi_driver(
        provider,
        &std::collections::BTreeMap::new(),
        &facts.csi_drivers,
    ) {
        Ok(d) => d,
        Err(e) => {
            return Ok(Phase::Degraded(
                reasons::PROVIDER_UNSUPPORTED,
                format!("spec.provider.type: {e}"),
            ));
        }
    };
    let Some(class) = class_for(ctx, &driver).await? else {
        return Ok(Phase::Degraded(
            reasons::SNAPSHOT_UNSUPPORTED,
            format!(
                "no VolumeSnapshotClass for CSI driver {driver}: this cluster cannot import snapshot {handle}; install the driver's snapshot support and a VolumeSnapshotClass"
            ),
        ));
    };
    let content_name = adopted_content_name(&ns, &name);
    let contents: Api<DynamicObject> =
        Api::all_with(ctx.client.clone(), &volume_snapshot_content_resource());
    let existing = contents
        .get_opt(&content_name)
        .await
        .map_err(|e| Error::kube(format!("reading VolumeSnapshotContent {content_name}"), e))?;
    match existing {
        Some(c) => {
            let have = str_at(&c.data, &["spec", "source", "snapshotHandle"]).unwrap_or_default();
            let for_us = str_at(&c.data, &["spec", "volumeSnapshotRef", "namespace"])
                == Some(ns.as_str())
                && str_at(&c.data, &["spec", "volumeSnapshotRef", "name"]) == Some(&vs_name);
            if have != handle || !for_us {
                return Ok(Phase::Degraded(
                    reasons::INVALID_SPEC,
                    format!(
                        "spec.handle: VolumeSnapshotContent {content_name} already exists for snapshot {have:?}; delete it or this KompoxSnapshot"
                    ),
                ));
            }
        }
        None => {
            let mut content: DynamicObject = serde_json::from_value(managed_object(
                "snapshot.storage.k8s.io/v1",
                "VolumeSnapshotContent",
                &content_name,
                &[(SNAPSHOT_LABEL, &name), (SNAPSHOT_NAMESPACE_LABEL, &ns)],
            ))
            .map_err(|source| Error::Serde {
                what: "VolumeSnapshotContent".into(),
                source,
            })?;
            content.data["spec"] = json!({
                "deletionPolicy": "Retain",
                "driver": driver,
                "source": {"snapshotHandle": handle},
                "volumeSnapshotClassName": class,
                "volumeSnapshotRef": {"name": vs_name, "namespace": ns},
            });
            idempotent::create(
                &contents,
                &content,
                &format!("VolumeSnapshotContent {content_name}"),
            )
            .await?;
        }
    }
    let note = format!(
        "importing snapshot {handle} ({driver}) as VolumeSnapshotContent {content_name} and VolumeSnapshot {vs_name}"
    );
    create_volume_snapshot(
        ctx,
        snap,
        vs_api,
        json!({"volumeSnapshotClassName": class, "source": {"volumeSnapshotContentName": content_name}}),
        note,
    )
    .await?;
    Ok(Phase::Progressing(
        reasons::SNAPSHOT_PENDING,
        format!("waiting for VolumeSnapshot {vs_name} (snapshot {handle}) to be ready to use"),
    ))
}

/// The PVC to snapshot the disk's PV `pv` through: the live PVC it is bound to (the app's) when
/// that is in the snapshot's namespace, else (a detached disk) the temporary PVC `temp` bound
/// to it, created here; or the phase while there is none to use yet.
async fn source_pvc(
    ctx: &Context,
    snap: &KompoxSnapshot,
    disk: &KompoxDisk,
    pv: &PersistentVolume,
    temp: &str,
) -> Result<std::result::Result<String, Phase>> {
    let ns = snap.namespace().unwrap_or_default();
    let disk_name = disk.name_any();
    let pv_name = pv.name_any();
    let claim = pv.spec.as_ref().and_then(|s| s.claim_ref.clone());
    let phase = pv
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default();
    let waiting = |msg: String| Ok(Err(Phase::Progressing(reasons::SNAPSHOT_PENDING, msg)));
    let source = match (&claim, phase.as_str()) {
        (Some(c), "Bound") if c.namespace.as_deref() == Some(ns.as_str()) => {
            c.name.clone().unwrap_or_default()
        }
        (Some(c), "Bound") => {
            return Ok(Err(Phase::Degraded(
                reasons::SNAPSHOT_UNSUPPORTED,
                format!(
                    "KompoxDisk {disk_name}'s PersistentVolume {pv_name} is bound to PVC {}/{}; a VolumeSnapshot can only be taken in the PVC's namespace",
                    c.namespace.as_deref().unwrap_or(""),
                    c.name.as_deref().unwrap_or("")
                ),
            )));
        }
        (None, "Available") => {
            let size = pv_capacity(pv).map_or(disk.spec.size.0.as_str(), |q| q.0.as_str());
            let pvc = temp_claim(snap, &pv_name, pv_class(pv), temp, size)?;
            let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
            idempotent::create(&pvcs, &pvc, &format!("PersistentVolumeClaim {ns}/{temp}")).await?;
            return waiting(format!(
                "binding temporary PVC {temp} to PersistentVolume {pv_name}"
            ));
        }
        // Pending binding, or Released (the disk controller makes it Available again).
        _ => {
            return waiting(format!(
                "waiting for PersistentVolume {pv_name} ({phase}) to be bound or available"
            ));
        }
    };
    if source == temp
        && Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), &ns)
            .get_opt(temp)
            .await
            .map_err(|e| Error::kube(format!("reading PersistentVolumeClaim {ns}/{temp}"), e))?
            .and_then(|p| p.status.and_then(|s| s.phase))
            .as_deref()
            != Some("Bound")
    {
        return waiting(format!("waiting for temporary PVC {temp} to bind"));
    }
    Ok(Ok(source))
}

/// The temporary PVC `name` that binds `snap`'s detached disk (static PV `pv_name` of
/// StorageClass `class`, requesting `size`), owned by the snapshot.
fn temp_claim(
    snap: &KompoxSnapshot,
    pv_name: &str,
    class: &str,
    name: &str,
    size: &str,
) -> Result<PersistentVolumeClaim> {
    owned(
        snap,
        "v1",
        "PersistentVolumeClaim",
        name,
        &[
            (SNAPSHOT_LABEL, &snap.name_any()),
            (ROLE_LABEL, ROLE_SNAPSHOT_SOURCE),
        ],
        bind_claim_spec(pv_name, class, size),
    )
}

/// An object `kind` named `name` with `spec`, in `snap`'s namespace and controlled by it (so
/// it goes with the snapshot), labelled as Kompox's with `labels`.
fn owned<T: serde::de::DeserializeOwned>(
    snap: &KompoxSnapshot,
    api_version: &str,
    kind: &str,
    name: &str,
    labels: &[(&str, &str)],
    spec: serde_json::Value,
) -> Result<T> {
    let ns = snap.namespace().unwrap_or_default();
    let owner = snap.controller_owner_ref(&()).ok_or_else(|| {
        Error::MissingField(format!(
            "KompoxSnapshot {ns}/{} has no uid",
            snap.name_any()
        ))
    })?;
    let mut obj = managed_object(api_version, kind, name, labels);
    obj["metadata"]["namespace"] = json!(ns);
    obj["metadata"]["ownerReferences"] = json!([owner]);
    obj["spec"] = spec;
    serde_json::from_value(obj).map_err(|source| Error::Serde {
        what: kind.to_string(),
        source,
    })
}

/// Copies a VolumeSnapshot's state into `status`; the phase it is in.
async fn observe(
    snap: &KompoxSnapshot,
    ctx: &Context,
    status: &mut KompoxSnapshotStatus,
    vs: &DynamicObject,
) -> Result<Phase> {
    let ns = snap.namespace().unwrap_or_default();
    let vs_name = vs.name_any();
    let st = vs.data.get("status").cloned().unwrap_or_default();
    let ready = st
        .get("readyToUse")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    if !ready {
        return Ok(match str_at(&st, &["error", "message"]) {
            Some(msg) => Phase::Progressing(
                reasons::PROVIDER_ERROR,
                format!("VolumeSnapshot {vs_name}: {msg}"),
            ),
            None => Phase::Progressing(
                reasons::SNAPSHOT_PENDING,
                format!("waiting for VolumeSnapshot {vs_name} to be ready to use"),
            ),
        });
    }
    let content_name = str_at(&st, &["boundVolumeSnapshotContentName"])
        .unwrap_or_default()
        .to_string();
    let content = if content_name.is_empty() {
        None
    } else {
        Api::<DynamicObject>::all_with(ctx.client.clone(), &volume_snapshot_content_resource())
            .get_opt(&content_name)
            .await
            .map_err(|e| Error::kube(format!("reading VolumeSnapshotContent {content_name}"), e))?
    };
    let handle = content
        .as_ref()
        .and_then(|c| str_at(&c.data, &["status", "snapshotHandle"]))
        .map(str::to_string);
    let Some(handle) = handle else {
        return Ok(Phase::Progressing(
            reasons::SNAPSHOT_PENDING,
            format!(
                "waiting for VolumeSnapshotContent {content_name} to report its snapshot handle"
            ),
        ));
    };
    status.ready_to_use = true;
    status.snapshot_handle = Some(handle.clone());
    status.restore_size = st
        .get("restoreSize")
        .and_then(|v| {
            v.as_str()
                .map(str::to_string)
                .or_else(|| v.as_i64().map(|n| n.to_string()))
        })
        .map(Quantity);
    // The temporary source PVC is no longer needed.
    delete_temp_claim(ctx, &ns, &snap.name_any()).await?;
    Ok(Phase::Ready(format!(
        "VolumeSnapshot {vs_name} ready to use: snapshot handle {handle} (VolumeSnapshotContent {content_name})"
    )))
}

async fn delete_temp_claim(ctx: &Context, ns: &str, snapshot: &str) -> Result<()> {
    let temp = source_pvc_name(snapshot);
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
    idempotent::delete(&pvcs, &temp, &format!("PersistentVolumeClaim {ns}/{temp}")).await
}

/// The VolumeSnapshot API in `ns` and the VolumeSnapshot of KompoxSnapshot `snapshot`, if any
/// (none either when the VolumeSnapshot API is not installed).
async fn volume_snapshot(
    ctx: &Context,
    ns: &str,
    snapshot: &str,
) -> Result<(Api<DynamicObject>, Option<DynamicObject>)> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), ns, &volume_snapshot_resource());
    let name = volume_snapshot_name(snapshot);
    match api.get_opt(&name).await {
        Ok(vs) => Ok((api, vs)),
        Err(e) if is_not_found(&e) => Ok((api, None)),
        Err(e) => Err(Error::kube(
            format!("reading VolumeSnapshot {ns}/{name}"),
            e,
        )),
    }
}

async fn cleanup(snap: &KompoxSnapshot, ctx: &Context) -> Result<Action> {
    let ns = snap.namespace().unwrap_or_default();
    let name = snap.name_any();
    let vs_name = volume_snapshot_name(&name);
    delete_temp_claim(ctx, &ns, &name).await?;
    let (vs_api, vs) = volume_snapshot(ctx, &ns, &name).await?;
    let Some(vs) = vs else {
        // An adopted snapshot's content goes once its VolumeSnapshot is gone (Retain: the
        // provider's snapshot stays).
        if snap.spec.adopted().is_some() {
            let content = adopted_content_name(&ns, &name);
            let contents: Api<DynamicObject> =
                Api::all_with(ctx.client.clone(), &volume_snapshot_content_resource());
            idempotent::delete(
                &contents,
                &content,
                &format!("VolumeSnapshotContent {content}"),
            )
            .await?;
        }
        return Ok(Action::await_change());
    };
    if vs.metadata.deletion_timestamp.is_none() {
        idempotent::delete(&vs_api, &vs_name, &format!("VolumeSnapshot {ns}/{vs_name}")).await?;
        events::publish(
            &ctx.recorder,
            snap,
            Note::normal(
                reasons::DELETING,
                "Delete",
                format!("deleting VolumeSnapshot {vs_name}"),
            ),
        )
        .await;
    }
    Err(Error::Waiting {
        what: format!("VolumeSnapshot {ns}/{vs_name} to be deleted"),
        retry: Duration::from_secs(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_choice() {
        let c = |n: &str, d: &str, def: bool| (n.to_string(), d.to_string(), def);
        let classes = [
            c("b", "x", false),
            c("a", "x", false),
            c("z", "x", true),
            c("m", "y", true),
        ];
        assert_eq!(pick_class(&classes, "x").as_deref(), Some("z"));
        assert_eq!(pick_class(&classes[..2], "x").as_deref(), Some("a"));
        assert_eq!(pick_class(&classes, "y").as_deref(), Some("m"));
        assert_eq!(pick_class(&classes, "none"), None);
    }

    #[test]
    fn names() {
        assert_eq!(volume_snapshot_name("s1"), "k4x-snap-s1");
        assert!(volume_snapshot_name(&"s".repeat(253)).len() <= 63);
        assert_eq!(source_pvc_name("s1"), "k4x-snapsrc-s1");
        assert_eq!(adopted_content_name("ns", "s1"), "k4x-snapc-ns-s1");
        assert!(adopted_content_name(&"n".repeat(63), &"s".repeat(253)).len() <= 253);
        assert_eq!(volume_snapshot_resource().plural, "volumesnapshots");
        assert_eq!(
            volume_snapshot_resource().api_version,
            "snapshot.storage.k8s.io/v1"
        );
    }
}

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
//! A disk restored from a snapshot (`spec.fromSnapshot`) provisions with the VolumeSnapshot as
//! the PVC `dataSource`: see [`crate::disk`].

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kompox_core::api::condition::{self, Status, reasons, types};
use kompox_core::api::{API_VERSION, KompoxDisk, KompoxSnapshot, KompoxSnapshotStatus};
use kompox_core::naming::truncate_with_hash;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    PostParams,
};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use crate::error::{is_conflict, is_not_found};
use crate::labels::{
    MANAGED_BY, MANAGED_BY_LABEL, ROLE_LABEL, ROLE_SNAPSHOT_SOURCE, SNAPSHOT_FINALIZER,
    SNAPSHOT_LABEL,
};
use crate::runtime::publish;
use crate::{Context, Error, FIELD_MANAGER, ReadyToken, Result};

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
        controller.run(reconcile, error_policy, ctx).for_each(|r| {
            crate::runtime::log_controller_result(CONTROLLER, r);
            futures::future::ready(())
        }),
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
        .filter(|s| s.namespace() == ns && s.spec.disk_ref.name == name)
        .filter(|s| !s.status.as_ref().is_some_and(|st| st.ready_to_use))
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

async fn reconcile(snap: Arc<KompoxSnapshot>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let ns = snap
        .namespace()
        .ok_or_else(|| Error::MissingField("KompoxSnapshot without namespace".into()))?;
    if !ctx.scope.contains(&ns) {
        return Ok(Action::await_change());
    }
    let key = format!("{ns}/{}", snap.name_any());
    let api: Api<KompoxSnapshot> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, SNAPSHOT_FINALIZER, snap, |event| async {
        match event {
            Finalizer::Apply(s) => apply(&s, &ctx).await,
            Finalizer::Cleanup(s) => cleanup(&s, &ctx).await,
        }
    })
    .await;
    let result = match result {
        Err(e) if crate::error::finalizer_target_gone(&e) => Ok(Action::await_change()),
        r => r.map_err(|e| Error::Finalizer(Box::new(e))),
    };
    if result.is_ok() {
        ctx.reconciled(&key);
    }
    result
}

fn error_policy(snap: Arc<KompoxSnapshot>, err: &Error, ctx: Arc<Context>) -> Action {
    let key = format!(
        "{}/{}",
        snap.namespace().unwrap_or_default(),
        snap.name_any()
    );
    ctx.error_action(CONTROLLER, &key, err)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Ready(String),
    Progressing(&'static str, String),
    Degraded(&'static str, String),
}

fn conditions(phase: &Phase, generation: Option<i64>) -> [Condition; 3] {
    let at = Time(k8s_openapi::jiff::Timestamp::now());
    let c =
        |t: &str, s: Status, r: &str, m: &str| condition::new(t, s, r, m, generation, at.clone());
    match phase {
        Phase::Ready(m) => [
            c(types::READY, Status::True, reasons::RECONCILED, m),
            c(types::PROGRESSING, Status::False, reasons::RECONCILED, ""),
            c(types::DEGRADED, Status::False, reasons::RECONCILED, ""),
        ],
        Phase::Progressing(r, m) => [
            c(types::READY, Status::False, r, m),
            c(types::PROGRESSING, Status::True, r, m),
            c(types::DEGRADED, Status::False, reasons::RECONCILED, ""),
        ],
        Phase::Degraded(r, m) => [
            c(types::READY, Status::False, r, m),
            c(types::PROGRESSING, Status::False, r, ""),
            c(types::DEGRADED, Status::True, r, m),
        ],
    }
}

async fn finish(
    snap: &KompoxSnapshot,
    ctx: &Context,
    mut status: KompoxSnapshotStatus,
    phase: Phase,
) -> Result<Action> {
    let ns = snap.namespace().unwrap_or_default();
    let name = snap.name_any();
    let old = snap.status.clone().unwrap_or_default();
    status.conditions = condition::merge_all(
        &old.conditions,
        conditions(&phase, snap.metadata.generation),
    );
    status.observed_generation = snap.metadata.generation;
    if status != old {
        let patch = json!({"apiVersion": API_VERSION, "kind": "KompoxSnapshot", "status": status});
        match Api::<KompoxSnapshot>::namespaced(ctx.client.clone(), &ns)
            .patch_status(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
        {
            Ok(_) => {}
            // Gone meanwhile (a reconcile of a stale cache entry): nothing to report on.
            Err(e) if is_not_found(&e) => return Ok(Action::await_change()),
            Err(e) => {
                return Err(Error::kube(
                    format!("writing status of KompoxSnapshot {ns}/{name}"),
                    e,
                ));
            }
        }
    }
    let was =
        |t: &str| condition::find(&old.conditions, t).map(|c| (c.status.clone(), c.reason.clone()));
    let reference = snap.object_ref(&());
    match &phase {
        Phase::Ready(m) if was(types::READY).map(|w| w.0) != Some("True".into()) => {
            publish(
                &ctx.recorder,
                &reference,
                EventType::Normal,
                "Ready",
                "Snapshot",
                m.clone(),
            )
            .await;
        }
        Phase::Degraded(r, m)
            if was(types::DEGRADED) != Some(("True".into(), (*r).to_string())) =>
        {
            publish(
                &ctx.recorder,
                &reference,
                EventType::Warning,
                r,
                "Snapshot",
                m.clone(),
            )
            .await;
        }
        _ => {}
    }
    Ok(match phase {
        Phase::Ready(_) => Action::await_change(),
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
    let ns = snap.namespace().unwrap_or_default();
    let name = snap.name_any();
    let mut status = snap.status.clone().unwrap_or_default();
    if let Err(e) = snap.spec.validate() {
        return finish(
            snap,
            ctx,
            status,
            Phase::Degraded(reasons::INVALID_SPEC, e.to_string()),
        )
        .await;
    }
    let vs_api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &ns, &volume_snapshot_resource());
    let vs_name = volume_snapshot_name(&name);
    let existing = match vs_api.get_opt(&vs_name).await {
        Ok(v) => v,
        Err(e) if is_not_found(&e) => None, // the API itself is missing
        Err(e) => {
            return Err(Error::kube(
                format!("reading VolumeSnapshot {ns}/{vs_name}"),
                e,
            ));
        }
    };
    if let Some(vs) = existing {
        return observe(snap, ctx, status, &vs).await;
    }
    if status.ready_to_use {
        // It was ready and its VolumeSnapshot is gone (deleted by hand): report, do not retake.
        status.ready_to_use = false;
        let msg =
            format!("VolumeSnapshot {vs_name} was deleted outside Kompox; the snapshot is lost");
        return finish(
            snap,
            ctx,
            status,
            Phase::Degraded(reasons::REFERENCE_NOT_FOUND, msg),
        )
        .await;
    }

    // The disk and its PV.
    let disk_name = &snap.spec.disk_ref.name;
    let Some(disk) = Api::<KompoxDisk>::namespaced(ctx.client.clone(), &ns)
        .get_opt(disk_name)
        .await
        .map_err(|e| Error::kube(format!("reading KompoxDisk {ns}/{disk_name}"), e))?
    else {
        let msg = format!("spec.diskRef.name: KompoxDisk {disk_name:?} not found");
        return finish(
            snap,
            ctx,
            status,
            Phase::Degraded(reasons::REFERENCE_NOT_FOUND, msg),
        )
        .await;
    };
    let ds = disk.status.clone().unwrap_or_default();
    let (true, Some(pv_name)) = (
        condition::is_true(&ds.conditions, types::READY),
        ds.pv_name.clone(),
    ) else {
        let msg = format!("waiting for KompoxDisk {disk_name} to be Ready");
        return finish(
            snap,
            ctx,
            status,
            Phase::Progressing(reasons::DISK_NOT_READY, msg),
        )
        .await;
    };
    let pvs: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let Some(pv) = pvs
        .get_opt(&pv_name)
        .await
        .map_err(|e| Error::kube(format!("reading PersistentVolume {pv_name}"), e))?
    else {
        let msg = format!("waiting for PersistentVolume {pv_name} of KompoxDisk {disk_name}");
        return finish(
            snap,
            ctx,
            status,
            Phase::Progressing(reasons::DISK_NOT_READY, msg),
        )
        .await;
    };
    let Some(driver) = pv
        .spec
        .as_ref()
        .and_then(|s| s.csi.as_ref())
        .map(|c| c.driver.clone())
    else {
        let msg = format!("PersistentVolume {pv_name} is not a CSI volume");
        return finish(
            snap,
            ctx,
            status,
            Phase::Degraded(reasons::SNAPSHOT_UNSUPPORTED, msg),
        )
        .await;
    };
    let Some(class) = class_for(ctx, &driver).await? else {
        let msg = format!(
            "no VolumeSnapshotClass for CSI driver {driver} (disk {disk_name}): this cluster cannot snapshot the disk through CSI; install the driver's snapshot support (snapshot CRDs, snapshot-controller, csi-snapshotter) and a VolumeSnapshotClass"
        );
        return finish(
            snap,
            ctx,
            status,
            Phase::Degraded(reasons::SNAPSHOT_UNSUPPORTED, msg),
        )
        .await;
    };

    // The source PVC.
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let temp = source_pvc_name(&name);
    let claim = pv.spec.as_ref().and_then(|s| s.claim_ref.clone());
    let phase = pv
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default();
    let source = match (&claim, phase.as_str()) {
        (Some(c), "Bound") if c.namespace.as_deref() == Some(ns.as_str()) => {
            c.name.clone().unwrap_or_default()
        }
        (Some(c), "Bound") => {
            let msg = format!(
                "KompoxDisk {disk_name}'s PersistentVolume {pv_name} is bound to PVC {}/{}; a VolumeSnapshot can only be taken in the PVC's namespace",
                c.namespace.as_deref().unwrap_or(""),
                c.name.as_deref().unwrap_or("")
            );
            return finish(
                snap,
                ctx,
                status,
                Phase::Degraded(reasons::SNAPSHOT_UNSUPPORTED, msg),
            )
            .await;
        }
        (None, "Available") => {
            create_source_pvc(ctx, snap, &disk, &pv_name, &temp).await?;
            let msg = format!("binding temporary PVC {temp} to PersistentVolume {pv_name}");
            return finish(
                snap,
                ctx,
                status,
                Phase::Progressing(reasons::SNAPSHOT_PENDING, msg),
            )
            .await;
        }
        _ => {
            // Pending binding, or Released (the disk controller makes it Available again).
            let msg = format!(
                "waiting for PersistentVolume {pv_name} ({phase}) to be bound or available"
            );
            return finish(
                snap,
                ctx,
                status,
                Phase::Progressing(reasons::SNAPSHOT_PENDING, msg),
            )
            .await;
        }
    };
    if source == temp
        && pvcs
            .get_opt(&temp)
            .await
            .map_err(|e| Error::kube(format!("reading PersistentVolumeClaim {ns}/{temp}"), e))?
            .and_then(|p| p.status.and_then(|s| s.phase))
            .as_deref()
            != Some("Bound")
    {
        let msg = format!("waiting for temporary PVC {temp} to bind");
        return finish(
            snap,
            ctx,
            status,
            Phase::Progressing(reasons::SNAPSHOT_PENDING, msg),
        )
        .await;
    }

    // The VolumeSnapshot.
    let owner = snap
        .controller_owner_ref(&())
        .ok_or_else(|| Error::MissingField(format!("KompoxSnapshot {ns}/{name} has no uid")))?;
    let vs: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": {
            "name": vs_name,
            "namespace": ns,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY, SNAPSHOT_LABEL: name},
            "ownerReferences": [owner],
        },
        "spec": {"volumeSnapshotClassName": class, "source": {"persistentVolumeClaimName": source}},
    }))
    .map_err(|source| Error::Serde {
        what: "VolumeSnapshot".into(),
        source,
    })?;
    match vs_api.create(&PostParams::default(), &vs).await {
        Ok(_) => {
            let note = format!(
                "taking VolumeSnapshot {vs_name} of PVC {source} (disk {disk_name}, class {class})"
            );
            publish(
                &ctx.recorder,
                &snap.object_ref(&()),
                EventType::Normal,
                reasons::SNAPSHOT_PENDING,
                "Snapshot",
                note,
            )
            .await;
        }
        Err(e) if is_conflict(&e) => {}
        Err(e) => {
            return Err(Error::kube(
                format!("creating VolumeSnapshot {ns}/{vs_name}"),
                e,
            ));
        }
    }
    let msg = format!("waiting for VolumeSnapshot {vs_name} to be ready to use");
    finish(
        snap,
        ctx,
        status,
        Phase::Progressing(reasons::SNAPSHOT_PENDING, msg),
    )
    .await
}

async fn create_source_pvc(
    ctx: &Context,
    snap: &KompoxSnapshot,
    disk: &KompoxDisk,
    pv_name: &str,
    name: &str,
) -> Result<()> {
    let ns = snap.namespace().unwrap_or_default();
    let owner = snap.controller_owner_ref(&()).ok_or_else(|| {
        Error::MissingField(format!(
            "KompoxSnapshot {ns}/{} has no uid",
            snap.name_any()
        ))
    })?;
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY, SNAPSHOT_LABEL: snap.name_any(), ROLE_LABEL: ROLE_SNAPSHOT_SOURCE},
            "ownerReferences": [owner],
        },
        "spec": {
            "storageClassName": "",
            "volumeName": pv_name,
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": disk.spec.size.0}},
        },
    }))
    .map_err(|source| Error::Serde { what: "PersistentVolumeClaim".into(), source })?;
    match Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), &ns)
        .create(&PostParams::default(), &pvc)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_conflict(&e) => Ok(()),
        Err(e) => Err(Error::kube(
            format!("creating PersistentVolumeClaim {ns}/{name}"),
            e,
        )),
    }
}

/// Copies a VolumeSnapshot's state into the status.
async fn observe(
    snap: &KompoxSnapshot,
    ctx: &Context,
    mut status: KompoxSnapshotStatus,
    vs: &DynamicObject,
) -> Result<Action> {
    let ns = snap.namespace().unwrap_or_default();
    let vs_name = vs.name_any();
    let st = vs.data.get("status").cloned().unwrap_or_default();
    let ready = st
        .get("readyToUse")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    if !ready {
        if let Some(msg) = str_at(&st, &["error", "message"]) {
            let msg = format!("VolumeSnapshot {vs_name}: {msg}");
            return finish(
                snap,
                ctx,
                status,
                Phase::Progressing(reasons::PROVIDER_ERROR, msg),
            )
            .await;
        }
        let msg = format!("waiting for VolumeSnapshot {vs_name} to be ready to use");
        return finish(
            snap,
            ctx,
            status,
            Phase::Progressing(reasons::SNAPSHOT_PENDING, msg),
        )
        .await;
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
        let msg = format!(
            "waiting for VolumeSnapshotContent {content_name} to report its snapshot handle"
        );
        return finish(
            snap,
            ctx,
            status,
            Phase::Progressing(reasons::SNAPSHOT_PENDING, msg),
        )
        .await;
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
    let temp = source_pvc_name(&snap.name_any());
    match Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), &ns)
        .delete(&temp, &DeleteParams::background())
        .await
    {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {}
        Err(e) => {
            return Err(Error::kube(
                format!("deleting PersistentVolumeClaim {ns}/{temp}"),
                e,
            ));
        }
    }
    let msg = format!(
        "VolumeSnapshot {vs_name} ready to use: snapshot handle {handle} (VolumeSnapshotContent {content_name})"
    );
    finish(snap, ctx, status, Phase::Ready(msg)).await
}

async fn cleanup(snap: &KompoxSnapshot, ctx: &Context) -> Result<Action> {
    let ns = snap.namespace().unwrap_or_default();
    let name = snap.name_any();
    let vs_name = volume_snapshot_name(&name);
    let temp = source_pvc_name(&name);
    match Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), &ns)
        .delete(&temp, &DeleteParams::background())
        .await
    {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {}
        Err(e) => {
            return Err(Error::kube(
                format!("deleting PersistentVolumeClaim {ns}/{temp}"),
                e,
            ));
        }
    }
    let vs_api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &ns, &volume_snapshot_resource());
    let gone = match vs_api.get_opt(&vs_name).await {
        Ok(None) => true,
        Err(e) if is_not_found(&e) => true,
        Ok(Some(vs)) => {
            if vs.metadata.deletion_timestamp.is_none() {
                match vs_api.delete(&vs_name, &DeleteParams::background()).await {
                    Ok(_) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => {
                        return Err(Error::kube(
                            format!("deleting VolumeSnapshot {ns}/{vs_name}"),
                            e,
                        ));
                    }
                }
                let note = format!("deleting VolumeSnapshot {vs_name}");
                publish(
                    &ctx.recorder,
                    &snap.object_ref(&()),
                    EventType::Normal,
                    reasons::DELETING,
                    "Delete",
                    note,
                )
                .await;
            }
            false
        }
        Err(e) => {
            return Err(Error::kube(
                format!("reading VolumeSnapshot {ns}/{vs_name}"),
                e,
            ));
        }
    };
    if gone {
        Ok(Action::await_change())
    } else {
        Err(Error::Pending {
            what: format!("VolumeSnapshot {ns}/{vs_name} to be deleted"),
            retry: Duration::from_secs(1),
        })
    }
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
        assert_eq!(volume_snapshot_resource().plural, "volumesnapshots");
        assert_eq!(
            volume_snapshot_resource().api_version,
            "snapshot.storage.k8s.io/v1"
        );
    }
}

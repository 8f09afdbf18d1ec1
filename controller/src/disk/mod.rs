//! KompoxDisk controller: provisions a volume through CSI, binds it to a static PV, keeps the
//! PV reusable, and deletes or orphans the volume on deletion.
//!
//! # Steps (each re-derivable from the cluster, so a restart resumes anywhere)
//!
//! 1. Validate the spec; resolve provider (explicit, else the one in `status.provider`, else
//!    detected), CSI driver, StorageClass parameters and node zone. A problem → `Degraded`
//!    naming the field, nothing created.
//! 2. Handle: `status.handle`, else `spec.handle` (adoption), else provision: ensure the
//!    Kompox-owned StorageClass (`Retain`, `Immediate`, allowed topology = the zone), create the
//!    provisioning PVC (`dataSource` = the snapshot's VolumeSnapshot for `fromSnapshot`), wait
//!    until it is Bound, label its dynamic PV back to the disk, and **persist `status.handle`
//!    before anything is deleted**.
//! 3. Create the static PV ([`objects::static_pv`], StorageClass
//!    [`objects::STATIC_STORAGE_CLASS`]) if missing; verify an existing one.
//! 4. Remove the provisioning PVC and its dynamic PV (the volume survives: `Retain`).
//! 5. Housekeeping: clear a `Released` static PV's stale `claimRef` (its PVC is gone) and a
//!    stale `status.attachedTo` (its KompoxApp is gone).
//! 6. Size: grow the volume to `spec.size` through CSI expansion ([`resize`]); `status.size`
//!    is the PV's capacity, `status.storageClassName` its class.
//! 7. Status `Ready`, Events on transitions.
//!
//! Deletion (finalizer `k8s.kompox.dev/disk`): `Orphan` publishes the handle in an Event and
//! drops the PV objects it may drop (never one bound to a live PVC), keeping the volume;
//! `Delete` hands every PV of the disk back to the CSI provisioner
//! ([`objects::delete_handover_patch`]) and waits until the PVs are gone (the provisioner has
//! called `DeleteVolume`). A disk whose PV is bound to a live app PVC is not deleted with
//! `Delete` until that PVC goes.

pub mod objects;
pub mod resize;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kompox_cluster::{majority_region, node_zones};
use kompox_core::api::condition::{self, reasons, types};
use kompox_core::api::{
    DeletionPolicy, KompoxApp, KompoxDisk, KompoxDiskStatus, KompoxSnapshot, ProviderType, quantity,
};
use kompox_core::provider::{self as core_provider, ClusterFacts};
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::Event as Finalizer;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};

pub use objects::pv_name;

use crate::labels::{
    DISK_FINALIZER, DISK_LABEL, DISK_NAMESPACE_LABEL, DISK_UID_ANNOTATION, ROLE_DELETE, ROLE_LABEL,
    ROLE_PROVISION,
};
use crate::ops;
use crate::status::{Phase, normal_event, report};
use crate::{Context, Error, ReadyToken, Result};

/// Name of this controller in metrics and logs.
pub const CONTROLLER: &str = "disk";
/// Re-check of a Ready disk (stale claims, drift) when nothing else triggers it.
const RESYNC: Duration = Duration::from_secs(600);
/// Re-check while waiting on another component (provisioner, PV controller).
const WAIT: Duration = Duration::from_secs(5);

struct DiskCtx {
    ctx: Arc<Context>,
}

/// Runs the KompoxDisk controller until shutdown.
///
/// Watches KompoxDisks; PVs labelled `kompox.dev/disk` (static and provisioning PVs);
/// provisioning and resize PVCs; KompoxApps (a deleted app releases its disks' claims); and namespaces
/// entering a `--namespace-selector` scope ([`crate::Scope`]).
///
/// # Errors
///
/// None: reconcile errors are retried by the error policy.
pub async fn run(ctx: Arc<Context>, ready: ReadyToken) -> Result<()> {
    let client = ctx.client.clone();
    let disks = ctx.scope.api::<KompoxDisk>(client.clone());
    let controller = Controller::new(disks, watcher::Config::default().any_semantic());
    let store = controller.store();
    let app_store = store.clone();
    let controller = controller
        .watches(
            Api::<PersistentVolume>::all(client.clone()),
            ctx.scope
                .cluster_object_watch(DISK_LABEL, DISK_NAMESPACE_LABEL)
                .any_semantic(),
            |pv: PersistentVolume| disk_of_labels(pv.labels(), None),
        )
        .watches(
            ctx.scope.api::<PersistentVolumeClaim>(client.clone()),
            watcher::Config::default()
                .labels(&format!(
                    "{ROLE_LABEL} in ({ROLE_PROVISION},{})",
                    crate::labels::ROLE_RESIZE
                ))
                .any_semantic(),
            |pvc: PersistentVolumeClaim| disk_of_labels(pvc.labels(), pvc.namespace()),
        )
        .watches(
            ctx.scope.api::<KompoxApp>(client.clone()),
            watcher::Config::default().any_semantic(),
            move |app: KompoxApp| disks_claimed_by(&app_store, &app),
        )
        .graceful_shutdown_on(ctx.shutdown.clone().wait());
    let controller = crate::runtime::reconcile_on_entry(controller, &ctx.scope);
    crate::runtime::report_when_synced(store, ready);
    let shutdown = ctx.shutdown.clone();
    let dctx = Arc::new(DiskCtx { ctx });
    crate::runtime::drive(
        CONTROLLER,
        controller,
        reconcile,
        error_policy,
        dctx,
        shutdown,
    )
    .await;
    Ok(())
}

fn disk_of_labels(
    labels: &std::collections::BTreeMap<String, String>,
    namespace: Option<String>,
) -> Option<ObjectRef<KompoxDisk>> {
    let name = labels.get(DISK_LABEL)?;
    let ns = labels.get(DISK_NAMESPACE_LABEL).cloned().or(namespace)?;
    Some(ObjectRef::new(name).within(&ns))
}

fn disks_claimed_by(store: &Store<KompoxDisk>, app: &KompoxApp) -> Vec<ObjectRef<KompoxDisk>> {
    let ns = app.namespace();
    let name = app.name_any();
    store
        .state()
        .iter()
        .filter(|d| d.namespace() == ns)
        .filter(|d| {
            d.status
                .as_ref()
                .and_then(|s| s.attached_to.as_ref())
                .is_some_and(|a| a.app == name)
        })
        .map(|d| ObjectRef::from_obj(d.as_ref()))
        .collect()
}

async fn reconcile(disk: Arc<KompoxDisk>, dctx: Arc<DiskCtx>) -> Result<Action> {
    let ctx = &dctx.ctx;
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    ctx.finalized(disk, DISK_FINALIZER, |event| async {
        match event {
            Finalizer::Apply(d) => apply(&d, &dctx).await,
            Finalizer::Cleanup(d) => cleanup(&d, &dctx).await,
        }
    })
    .await
}

fn error_policy(disk: Arc<KompoxDisk>, err: &Error, dctx: Arc<DiskCtx>) -> Action {
    dctx.ctx
        .error_action(CONTROLLER, &crate::object_key(disk.as_ref()), err)
}

/// Resolved inputs of one disk.
struct Resolved {
    provider: ProviderType,
    driver: String,
    parameters: std::collections::BTreeMap<String, String>,
    zone: Option<String>,
}

/// Resolves provider, driver, parameters and zone, or says which field is wrong (pure).
fn resolve(disk: &KompoxDisk, facts: &ClusterFacts) -> std::result::Result<Resolved, Phase> {
    let spec = &disk.spec;
    if let Err(e) = spec.validate() {
        return Err(Phase::Degraded(reasons::INVALID_SPEC, e.to_string()));
    }
    if disk.name_any().len() > 63 {
        return Err(Phase::Degraded(
            reasons::INVALID_SPEC,
            "metadata.name: at most 63 characters (it is a label value on the disk's PV)".into(),
        ));
    }
    let status = disk.status.clone().unwrap_or_default();
    let provider = match (spec.provider.type_, status.provider) {
        (ProviderType::Auto, Some(p)) if p != ProviderType::Auto => p,
        (ProviderType::Auto, _) => core_provider::resolve(ProviderType::Auto, facts).provider,
        (p, _) => p,
    };
    let driver =
        crate::provider::csi_driver(provider, &spec.options, &facts.csi_drivers).map_err(|e| {
            Phase::Degraded(
                reasons::PROVIDER_UNSUPPORTED,
                format!("spec.provider.type: {e}"),
            )
        })?;
    let parameters = core_provider::storage_class_parameters(provider, &spec.options)
        .map_err(|e| Phase::Degraded(reasons::INVALID_SPEC, format!("spec.options: {e}")))?;
    let zone = match &spec.zone {
        None => None,
        Some(z) => {
            let region = majority_region(facts);
            let node_zone = core_provider::node_zone(provider, region.as_deref(), z)
                .map_err(|e| Phase::Degraded(reasons::INVALID_SPEC, format!("spec.zone: {e}")))?;
            let zones = node_zones(facts);
            if !zones.is_empty() && !zones.contains(&node_zone) {
                return Err(Phase::Degraded(
                    reasons::INVALID_SPEC,
                    format!(
                        "spec.zone: zone {z:?} ({node_zone}) is not a zone of this cluster's {provider} nodes (zones: {})",
                        zones.into_iter().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            Some(node_zone)
        }
    };
    if let (Some(had), Some(want)) = (&status.zone, &zone)
        && status.handle.is_some()
        && had != want
    {
        return Err(Phase::Degraded(
            reasons::INVALID_SPEC,
            format!("spec.zone: the disk's volume is in zone {had}; a disk cannot move to {want}"),
        ));
    }
    if let (Some(h), Some(s)) = (&status.handle, &spec.handle)
        && h != s
    {
        return Err(Phase::Degraded(
            reasons::INVALID_SPEC,
            format!("spec.handle: the disk is bound to volume {h:?}; it cannot change to {s:?}"),
        ));
    }
    Ok(Resolved {
        provider,
        driver,
        parameters,
        zone,
    })
}

/// Ends a reconcile in `phase`: writes `status` (without `attachedTo`, which the app
/// controller owns) with the phase's conditions, publishes Events on transitions, and says when
/// to look again.
async fn finish(
    disk: &KompoxDisk,
    dctx: &DiskCtx,
    mut status: KompoxDiskStatus,
    phase: Phase,
) -> Result<Action> {
    status.attached_to = None;
    let mut old = disk.status.clone().unwrap_or_default();
    old.attached_to = None;
    if !report(&dctx.ctx, disk, &old, status, &phase, "Reconcile").await? {
        return Ok(Action::await_change());
    }
    Ok(match phase {
        Phase::Ready(_) => Action::requeue(RESYNC),
        Phase::Progressing(..) => Action::requeue(WAIT),
        // A user must change something; a spec change triggers a reconcile anyway, cluster
        // changes (a new CSI driver, nodes) are picked up by this slow re-check.
        Phase::Degraded(..) => Action::requeue(Duration::from_secs(60)),
    })
}

async fn apply(disk: &KompoxDisk, dctx: &DiskCtx) -> Result<Action> {
    let ctx = &dctx.ctx;
    let ns = disk.namespace().unwrap_or_default();
    let name = disk.name_any();
    let mut status = disk.status.clone().unwrap_or_default();
    let facts = ctx.facts.facts(&ctx.client).await?;
    let r = match resolve(disk, &facts) {
        Ok(r) => r,
        Err(phase) => return finish(disk, dctx, status, phase).await,
    };
    status.provider = Some(r.provider);

    // 2. The handle.
    let (handle, zone) = match status.handle.clone().or_else(|| disk.spec.handle.clone()) {
        Some(h) => (h, r.zone.clone().or_else(|| status.zone.clone())),
        None => match provision(disk, dctx, &r).await? {
            // Without spec.zone the volume's zone is where the driver put it.
            Provisioned::Handle(h, volume_zone) => (h, r.zone.clone().or(volume_zone)),
            Provisioned::Waiting(phase) => return finish(disk, dctx, status, phase).await,
        },
    };
    if status.handle.as_deref() != Some(handle.as_str()) || status.zone != zone {
        // Persist the handle before creating or deleting anything else.
        status.handle = Some(handle.clone());
        status.zone = zone;
        let phase = Phase::Progressing(
            reasons::PROVISIONING,
            format!("volume {handle} created; creating the static PV"),
        );
        finish(disk, dctx, status.clone(), phase).await?;
        return Ok(Action::requeue(Duration::from_millis(1)));
    }

    // 3. The static PV.
    let pv_name = pv_name(&ns, &name);
    let pvs: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let zone = status.zone.clone();
    if let Some(problem) =
        ensure_static_pv(disk, dctx, &r, &handle, zone.as_deref(), &pv_name).await?
    {
        return finish(disk, dctx, status, problem).await;
    }
    status.pv_name = Some(pv_name.clone());

    // 4. Provisioning leftovers.
    let leftovers = remove_provisioning(disk, dctx, &handle).await?;

    // 5. Housekeeping.
    let Some(pv) = pvs
        .get_opt(&pv_name)
        .await
        .map_err(|e| Error::kube(format!("reading PersistentVolume {pv_name}"), e))?
    else {
        let phase = Phase::Progressing(
            reasons::PROVISIONING,
            format!("waiting for PersistentVolume {pv_name}"),
        );
        return finish(disk, dctx, status, phase).await;
    };
    clear_stale_claim_ref(disk, dctx, &pv).await?;
    clear_stale_attachment(disk, dctx).await?;
    status.size = objects::pv_capacity(&pv).cloned();
    status.storage_class_name = Some(objects::pv_class(&pv))
        .filter(|c| !c.is_empty())
        .map(str::to_owned);

    if leftovers {
        let phase = Phase::Progressing(
            reasons::PROVISIONING,
            "removing the provisioning PVC and its dynamic PV".into(),
        );
        return finish(disk, dctx, status, phase).await;
    }

    // 6. Size: grow the volume to spec.size.
    let claimant = claimant(dctx, &pv).await?;
    let holder = match (
        &claimant,
        pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()),
    ) {
        (Some(pvc), _) => resize::Holder::Claim(pvc),
        (None, Some(_)) => resize::Holder::Gone,
        (None, None) => resize::Holder::Nobody,
    };
    if let Some(phase) = resize::grow(disk, dctx, &pv, holder).await? {
        return finish(disk, dctx, status, phase).await;
    }
    let size = objects::pv_capacity(&pv).map_or("?", |q| q.0.as_str());
    let msg = format!(
        "volume {handle} ({}, {size}) bound to PersistentVolume {pv_name}",
        r.driver
    );
    finish(disk, dctx, status, Phase::Ready(msg)).await
}

enum Provisioned {
    /// The volume handle and the zone of the volume's accessible topology, if any.
    Handle(String, Option<String>),
    Waiting(Phase),
}

/// The provisioning StorageClass of `r`, created if missing.
async fn ensure_storage_class(dctx: &DiskCtx, r: &Resolved) -> Result<String> {
    let name = objects::storage_class_name(
        r.provider.as_str(),
        &r.driver,
        &r.parameters,
        r.zone.as_deref(),
    );
    ensure_class(dctx, &name, || {
        objects::storage_class(&name, &r.driver, &r.parameters, r.zone.as_deref())
    })
    .await?;
    Ok(name)
}

/// Creates StorageClass `name` (built by `build`) unless it exists.
async fn ensure_class(
    dctx: &DiskCtx,
    name: &str,
    build: impl FnOnce() -> Result<StorageClass>,
) -> Result<()> {
    let api: Api<StorageClass> = Api::all(dctx.ctx.client.clone());
    if api
        .get_opt(name)
        .await
        .map_err(|e| Error::kube(format!("reading StorageClass {name}"), e))?
        .is_none()
        && ops::create(&api, &build()?, &format!("StorageClass {name}")).await?
    {
        tracing::info!(storage_class = %name, "created StorageClass");
    }
    Ok(())
}

/// The VolumeSnapshot to restore from and the size the restored disk needs, or why not yet.
async fn restore_source(
    disk: &KompoxDisk,
    dctx: &DiskCtx,
) -> Result<std::result::Result<(Option<String>, String), Phase>> {
    let size = disk.spec.size.0.clone();
    let Some(from) = &disk.spec.from_snapshot else {
        return Ok(Ok((None, size)));
    };
    let ns = disk.namespace().unwrap_or_default();
    let snaps: Api<KompoxSnapshot> = Api::namespaced(dctx.ctx.client.clone(), &ns);
    let Some(snap) = snaps
        .get_opt(&from.name)
        .await
        .map_err(|e| Error::kube(format!("reading KompoxSnapshot {ns}/{}", from.name), e))?
    else {
        return Ok(Err(Phase::Degraded(
            reasons::REFERENCE_NOT_FOUND,
            format!(
                "spec.fromSnapshot.name: KompoxSnapshot {:?} not found",
                from.name
            ),
        )));
    };
    let st = snap.status.clone().unwrap_or_default();
    if !st.ready_to_use {
        return Ok(Err(Phase::Progressing(
            reasons::SNAPSHOT_PENDING,
            format!(
                "waiting for KompoxSnapshot {} to be ready to use",
                from.name
            ),
        )));
    }
    // The restored volume is at least the snapshot's restore size.
    let want = quantity::parse_bytes(&size).unwrap_or(0);
    let restore = st
        .restore_size
        .as_ref()
        .and_then(|q| quantity::parse_bytes(&q.0).ok())
        .unwrap_or(0);
    let size = match &st.restore_size {
        Some(q) if restore > want => q.0.clone(),
        _ => size,
    };
    Ok(Ok((
        Some(crate::snapshot::volume_snapshot_name(&from.name)),
        size,
    )))
}

async fn provision(disk: &KompoxDisk, dctx: &DiskCtx, r: &Resolved) -> Result<Provisioned> {
    let ctx = &dctx.ctx;
    let ns = disk.namespace().unwrap_or_default();
    let name = disk.name_any();
    let uid = disk.uid().unwrap_or_default();
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let pvc_name = objects::provision_pvc_name(&name);
    let existing = pvcs
        .get_opt(&pvc_name)
        .await
        .map_err(|e| Error::kube(format!("reading PersistentVolumeClaim {ns}/{pvc_name}"), e))?;
    let Some(pvc) = existing else {
        let (source, size) = match restore_source(disk, dctx).await? {
            Ok(s) => s,
            Err(phase) => return Ok(Provisioned::Waiting(phase)),
        };
        let class = ensure_storage_class(dctx, r).await?;
        let pvc = objects::provision_pvc(&objects::ProvisionClaim {
            namespace: &ns,
            disk: &name,
            disk_uid: &uid,
            storage_class: &class,
            size: &size,
            from_volume_snapshot: source.as_deref(),
        })?;
        if ops::create(
            &pvcs,
            &pvc,
            &format!("PersistentVolumeClaim {ns}/{pvc_name}"),
        )
        .await?
        {
            let note = match &source {
                Some(vs) => format!(
                    "provisioning a {size} volume with {} from VolumeSnapshot {vs} (PVC {pvc_name}, StorageClass {class})",
                    r.driver
                ),
                None => format!(
                    "provisioning a {size} volume with {} (PVC {pvc_name}, StorageClass {class})",
                    r.driver
                ),
            };
            normal_event(
                &ctx.recorder,
                disk,
                reasons::PROVISIONING,
                "Provision",
                note,
            )
            .await;
        }
        return Ok(Provisioned::Waiting(Phase::Progressing(
            reasons::PROVISIONING,
            format!(
                "waiting for the CSI provisioner ({}) to bind PVC {pvc_name}",
                r.driver
            ),
        )));
    };
    if pvc.annotations().get(DISK_UID_ANNOTATION) != Some(&uid) {
        // A leftover of an earlier disk of the same name: not ours to adopt.
        delete_pvc(&pvcs, &pvc_name).await?;
        return Ok(Provisioned::Waiting(Phase::Progressing(
            reasons::PROVISIONING,
            format!("removing PVC {pvc_name} left by an earlier disk of the same name"),
        )));
    }
    let bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    let volume = pvc
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .filter(|v| !v.is_empty());
    let (true, Some(volume)) = (bound, volume) else {
        return Ok(Provisioned::Waiting(Phase::Progressing(
            reasons::PROVISIONING,
            format!(
                "waiting for the CSI provisioner ({}) to bind PVC {pvc_name}",
                r.driver
            ),
        )));
    };
    let pvs: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let Some(pv) = pvs
        .get_opt(&volume)
        .await
        .map_err(|e| Error::kube(format!("reading PersistentVolume {volume}"), e))?
    else {
        return Ok(Provisioned::Waiting(Phase::Progressing(
            reasons::PROVISIONING,
            format!("waiting for PersistentVolume {volume}"),
        )));
    };
    let Some(handle) = pv
        .spec
        .as_ref()
        .and_then(|s| s.csi.as_ref())
        .map(|c| c.volume_handle.clone())
    else {
        return Ok(Provisioned::Waiting(Phase::Degraded(
            reasons::PROVIDER_ERROR,
            format!("PersistentVolume {volume} of PVC {pvc_name} is not a CSI volume"),
        )));
    };
    // Label the dynamic PV back to the disk so cleanup finds it after the PVC is gone.
    if pv.labels().get(ROLE_LABEL).map(String::as_str) != Some(ROLE_PROVISION) {
        let patch = serde_json::json!({"metadata": {"labels": {
            DISK_LABEL: name, DISK_NAMESPACE_LABEL: ns, ROLE_LABEL: ROLE_PROVISION,
        }}});
        pvs.patch(&volume, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| Error::kube(format!("labelling PersistentVolume {volume}"), e))?;
    }
    Ok(Provisioned::Handle(handle, pv_zone(&pv)))
}

/// Creates the static PV if missing; `Some(phase)` when an existing PV contradicts the disk.
async fn ensure_static_pv(
    disk: &KompoxDisk,
    dctx: &DiskCtx,
    r: &Resolved,
    handle: &str,
    zone: Option<&str>,
    pv_name: &str,
) -> Result<Option<Phase>> {
    let ns = disk.namespace().unwrap_or_default();
    let name = disk.name_any();
    let pvs: Api<PersistentVolume> = Api::all(dctx.ctx.client.clone());
    if let Some(pv) = pvs
        .get_opt(pv_name)
        .await
        .map_err(|e| Error::kube(format!("reading PersistentVolume {pv_name}"), e))?
    {
        let pv_handle = pv
            .spec
            .as_ref()
            .and_then(|s| s.csi.as_ref())
            .map(|c| c.volume_handle.as_str());
        let labels = pv.labels();
        let ours =
            labels.get(DISK_LABEL) == Some(&name) && labels.get(DISK_NAMESPACE_LABEL) == Some(&ns);
        if pv.metadata.deletion_timestamp.is_some() {
            return Ok(Some(Phase::Progressing(
                reasons::PROVISIONING,
                format!("PersistentVolume {pv_name} is being deleted; it is recreated once gone"),
            )));
        }
        if !ours || pv_handle != Some(handle) {
            return Ok(Some(Phase::Degraded(
                reasons::PROVIDER_ERROR,
                format!(
                    "PersistentVolume {pv_name} exists for volume {:?} of disk {}/{}, not for volume {handle:?}",
                    pv_handle.unwrap_or(""),
                    labels.get(DISK_NAMESPACE_LABEL).map_or("?", String::as_str),
                    labels.get(DISK_LABEL).map_or("?", String::as_str),
                ),
            )));
        }
        let unclaimed = pv.spec.as_ref().is_none_or(|s| s.claim_ref.is_none());
        if objects::pv_class(&pv).is_empty() && unclaimed {
            // A PV from before static PVs had a class: give it the class while nothing binds
            // it (the precondition loses to a concurrent bind), so the disk can grow.
            ensure_static_class(dctx).await?;
            let patch = serde_json::json!({
                "metadata": {"resourceVersion": pv.resource_version()},
                "spec": {"storageClassName": objects::STATIC_STORAGE_CLASS},
            });
            pvs.patch(pv_name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| {
                    Error::kube(
                        format!("setting the StorageClass of PersistentVolume {pv_name}"),
                        e,
                    )
                })?;
        }
        return Ok(None);
    }
    ensure_static_class(dctx).await?;
    // The provisioned volume's size (the provisioner's, which may be more than spec.size: a
    // restore from a larger snapshot, a driver rounding up), context (volumeAttributes) and
    // fsType, from its dynamic PV.
    let dynamic = pvs
        .list(&ListParams::default().labels(&format!(
            "{DISK_LABEL}={name},{DISK_NAMESPACE_LABEL}={ns},{ROLE_LABEL}={ROLE_PROVISION}"
        )))
        .await
        .map_err(|e| Error::kube("listing provisioning PersistentVolumes", e))?
        .items
        .into_iter()
        .find(|pv| pv_handle(pv).as_deref() == Some(handle));
    let size = dynamic
        .as_ref()
        .and_then(objects::pv_capacity)
        .map_or(disk.spec.size.0.as_str(), |q| q.0.as_str());
    let csi = dynamic
        .as_ref()
        .and_then(|pv| pv.spec.as_ref()?.csi.as_ref());
    let fs_type = csi
        .and_then(|c| c.fs_type.clone())
        .or_else(|| r.parameters.get(objects::FSTYPE_PARAMETER).cloned());
    let attrs = csi.and_then(|c| c.volume_attributes.clone());
    let pv = objects::static_pv(&objects::StaticVolume {
        namespace: &ns,
        disk: &name,
        driver: &r.driver,
        handle,
        size,
        zone,
        fs_type: fs_type.as_deref(),
        volume_attributes: attrs.as_ref(),
    })?;
    if ops::create(&pvs, &pv, &format!("PersistentVolume {pv_name}")).await? {
        tracing::info!(pv = %pv_name, handle, "created static PersistentVolume");
    }
    Ok(None)
}

async fn delete_pvc(api: &Api<PersistentVolumeClaim>, name: &str) -> Result<()> {
    ops::delete(api, name, &format!("PersistentVolumeClaim {name}")).await
}

async fn delete_pv(api: &Api<PersistentVolume>, name: &str) -> Result<()> {
    ops::delete(api, name, &format!("PersistentVolume {name}")).await
}

/// PVs carrying the disk's labels with `role`.
async fn labelled_pvs(
    dctx: &DiskCtx,
    ns: &str,
    name: &str,
    role: &str,
) -> Result<Vec<PersistentVolume>> {
    Api::<PersistentVolume>::all(dctx.ctx.client.clone())
        .list(&ListParams::default().labels(&format!(
            "{DISK_LABEL}={name},{DISK_NAMESPACE_LABEL}={ns},{ROLE_LABEL}={role}"
        )))
        .await
        .map(|l| l.items)
        .map_err(|e| Error::kube("listing PersistentVolumes", e))
}

/// Deletes the provisioning PVC and the dynamic PVs of `handle`; returns whether any was left.
async fn remove_provisioning(disk: &KompoxDisk, dctx: &DiskCtx, handle: &str) -> Result<bool> {
    let ns = disk.namespace().unwrap_or_default();
    let name = disk.name_any();
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(dctx.ctx.client.clone(), &ns);
    let pvc_name = objects::provision_pvc_name(&name);
    let mut left = false;
    if pvcs
        .get_opt(&pvc_name)
        .await
        .map_err(|e| Error::kube(format!("reading PersistentVolumeClaim {ns}/{pvc_name}"), e))?
        .is_some()
    {
        delete_pvc(&pvcs, &pvc_name).await?;
        left = true;
    }
    let pvs: Api<PersistentVolume> = Api::all(dctx.ctx.client.clone());
    for pv in labelled_pvs(dctx, &ns, &name, ROLE_PROVISION).await? {
        let pv_handle = pv
            .spec
            .as_ref()
            .and_then(|s| s.csi.as_ref())
            .map(|c| c.volume_handle.as_str());
        let retain = pv
            .spec
            .as_ref()
            .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
            == Some("Retain");
        if pv_handle == Some(handle) && retain {
            // Retain: deleting the object leaves the volume to the static PV.
            delete_pv(&pvs, &pv.name_any()).await?;
            left = true;
        }
    }
    Ok(left)
}

/// Makes a `Released` static PV whose PVC is gone `Available` again.
async fn clear_stale_claim_ref(
    disk: &KompoxDisk,
    dctx: &DiskCtx,
    pv: &PersistentVolume,
) -> Result<()> {
    let released = pv.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released");
    let Some(claim) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return Ok(());
    };
    if !released {
        return Ok(());
    }
    let (Some(cns), Some(cname)) = (claim.namespace.as_deref(), claim.name.as_deref()) else {
        return Ok(());
    };
    let live = Api::<PersistentVolumeClaim>::namespaced(dctx.ctx.client.clone(), cns)
        .get_opt(cname)
        .await
        .map_err(|e| Error::kube(format!("reading PersistentVolumeClaim {cns}/{cname}"), e))?;
    if live.is_some_and(|p| p.uid() == claim.uid) {
        return Ok(()); // the PVC still exists (perhaps terminating): never steal its PV
    }
    let pv_name = pv.name_any();
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": pv.resource_version()},
        "spec": {"claimRef": null},
    });
    match Api::<PersistentVolume>::all(dctx.ctx.client.clone())
        .patch(&pv_name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            let note = format!(
                "PersistentVolume {pv_name} released by PVC {cns}/{cname} (deleted) is available again"
            );
            normal_event(&dctx.ctx.recorder, disk, "ClaimReleased", "Rebind", note).await;
            Ok(())
        }
        Err(e) => Err(Error::kube(
            format!("clearing claimRef of PersistentVolume {pv_name}"),
            e,
        )),
    }
}

/// Clears `status.attachedTo` when the claiming KompoxApp no longer exists.
async fn clear_stale_attachment(disk: &KompoxDisk, dctx: &DiskCtx) -> Result<()> {
    let Some(att) = disk.status.as_ref().and_then(|s| s.attached_to.as_ref()) else {
        return Ok(());
    };
    let ns = disk.namespace().unwrap_or_default();
    let apps: Api<KompoxApp> = Api::namespaced(dctx.ctx.client.clone(), &ns);
    if apps
        .get_opt(&att.app)
        .await
        .map_err(|e| Error::kube(format!("reading KompoxApp {ns}/{}", att.app), e))?
        .is_some()
    {
        return Ok(());
    }
    let api: Api<KompoxDisk> = Api::namespaced(dctx.ctx.client.clone(), &ns);
    crate::claim::clear_attached(&api, disk).await?;
    let note = format!(
        "released the claim of app {} volume {} (the app no longer exists)",
        att.app, att.volume
    );
    normal_event(&dctx.ctx.recorder, disk, "ClaimReleased", "Release", note).await;
    Ok(())
}

/// The single zone a PV's node affinity requires (`topology.kubernetes.io/zone In [z]`).
fn pv_zone(pv: &PersistentVolume) -> Option<String> {
    let terms = &pv
        .spec
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required
        .as_ref()?
        .node_selector_terms;
    let mut zones = terms
        .iter()
        .flat_map(|t| t.match_expressions.iter().flatten())
        .filter(|e| e.key == core_provider::ZONE_LABEL && e.operator == "In")
        .flat_map(|e| e.values.iter().flatten());
    let first = zones.next()?.clone();
    zones.all(|z| *z == first).then_some(first)
}

fn pv_handle(pv: &PersistentVolume) -> Option<String> {
    pv.spec
        .as_ref()
        .and_then(|s| s.csi.as_ref())
        .map(|c| c.volume_handle.clone())
}

/// The PVC a PV is bound to (its `claimRef`), if that PVC still exists.
async fn claimant(dctx: &DiskCtx, pv: &PersistentVolume) -> Result<Option<PersistentVolumeClaim>> {
    let Some(c) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return Ok(None);
    };
    let (Some(ns), Some(name)) = (c.namespace.as_deref(), c.name.as_deref()) else {
        return Ok(None);
    };
    let live = Api::<PersistentVolumeClaim>::namespaced(dctx.ctx.client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| Error::kube(format!("reading PersistentVolumeClaim {ns}/{name}"), e))?;
    Ok(live.filter(|p| c.uid.is_none() || p.uid() == c.uid))
}

/// `namespace/name` of the PVC a PV is bound to, if that PVC still exists.
async fn live_claim(dctx: &DiskCtx, pv: &PersistentVolume) -> Result<Option<String>> {
    Ok(claimant(dctx, pv)
        .await?
        .map(|p| format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any())))
}

/// [`objects::STATIC_STORAGE_CLASS`], created if missing.
async fn ensure_static_class(dctx: &DiskCtx) -> Result<()> {
    ensure_class(
        dctx,
        objects::STATIC_STORAGE_CLASS,
        objects::static_storage_class,
    )
    .await
}

async fn cleanup(disk: &KompoxDisk, dctx: &DiskCtx) -> Result<Action> {
    let ctx = &dctx.ctx;
    let _ = ctx; // keep the borrow explicit for readers
    let ns = disk.namespace().unwrap_or_default();
    let name = disk.name_any();
    let pvs: Api<PersistentVolume> = Api::all(dctx.ctx.client.clone());
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(dctx.ctx.client.clone(), &ns);
    let provision_pvc = objects::provision_pvc_name(&name);
    let provision_pvc_ref = format!("{ns}/{provision_pvc}");
    // A growth in flight stops here: the resize PVC goes first, its PV is then released.
    let resize_pvc = objects::resize_pvc_name(&name);
    let resize_pvc_ref = format!("{ns}/{resize_pvc}");
    delete_pvc(&pvcs, &resize_pvc).await?;

    // Every PV of the disk: static, provisioning, being deleted, plus the provisioning PVC's
    // PV if it was not labelled yet.
    let mut all: Vec<PersistentVolume> = Vec::new();
    for role in [crate::labels::ROLE_STATIC, ROLE_PROVISION, ROLE_DELETE] {
        all.extend(labelled_pvs(dctx, &ns, &name, role).await?);
    }
    let pvc = pvcs.get_opt(&provision_pvc).await.map_err(|e| {
        Error::kube(
            format!("reading PersistentVolumeClaim {provision_pvc_ref}"),
            e,
        )
    })?;
    if let Some(v) = pvc
        .as_ref()
        .and_then(|p| p.spec.as_ref())
        .and_then(|s| s.volume_name.clone())
        && !all.iter().any(|pv| pv.name_any() == v)
        && let Some(pv) = pvs
            .get_opt(&v)
            .await
            .map_err(|e| Error::kube(format!("reading PersistentVolume {v}"), e))?
    {
        all.push(pv);
    }
    let mut handles: Vec<String> = all.iter().filter_map(pv_handle).collect();
    if let Some(h) = disk.status.as_ref().and_then(|s| s.handle.clone()) {
        handles.push(h);
    }
    handles.sort();
    handles.dedup();
    let driver = all
        .iter()
        .find_map(|pv| {
            pv.spec
                .as_ref()
                .and_then(|s| s.csi.as_ref())
                .map(|c| c.driver.clone())
        })
        .unwrap_or_default();

    match disk.spec.deletion_policy {
        DeletionPolicy::Orphan => {
            let mut kept_bound = Vec::new();
            for pv in &all {
                match live_claim(dctx, pv).await? {
                    Some(claim) if claim != provision_pvc_ref && claim != resize_pvc_ref => {
                        kept_bound.push(format!("{} (bound to PVC {claim})", pv.name_any()))
                    }
                    _ => {
                        if pv
                            .spec
                            .as_ref()
                            .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
                            == Some("Retain")
                        {
                            delete_pv(&pvs, &pv.name_any()).await?;
                        }
                    }
                }
            }
            delete_pvc(&pvcs, &provision_pvc).await?;
            if !handles.is_empty() {
                let mut note = format!(
                    "deletionPolicy Orphan: kept volume {} ({driver}); adopt it again with spec.handle",
                    handles.join(", ")
                );
                if !kept_bound.is_empty() {
                    note.push_str(&format!(
                        "; PersistentVolume {} kept",
                        kept_bound.join(", ")
                    ));
                }
                normal_event(&ctx.recorder, disk, "Orphaned", "Delete", note).await;
            }
            Ok(Action::await_change())
        }
        DeletionPolicy::Delete => {
            let mut waiting = Vec::new();
            for pv in &all {
                let pv_name = pv.name_any();
                let role = pv.labels().get(ROLE_LABEL).cloned().unwrap_or_default();
                if pv.metadata.deletion_timestamp.is_some() || role == ROLE_DELETE {
                    waiting.push(pv_name);
                    continue;
                }
                match live_claim(dctx, pv).await? {
                    Some(claim) if claim == provision_pvc_ref => {
                        // Dynamic PV still bound to the provisioning PVC: Delete policy, then
                        // drop the PVC; the provisioner deletes volume and PV.
                        let patch = serde_json::json!({
                            "metadata": {"labels": {ROLE_LABEL: ROLE_DELETE, DISK_LABEL: name, DISK_NAMESPACE_LABEL: ns}},
                            "spec": {"persistentVolumeReclaimPolicy": "Delete"},
                        });
                        hand_back(&pvs, &pv_name, &patch).await?;
                        waiting.push(pv_name);
                    }
                    Some(claim) if claim == resize_pvc_ref => waiting.push(pv_name),
                    Some(claim) => {
                        let msg = format!(
                            "deletionPolicy Delete: PersistentVolume {pv_name} is still bound to PVC {claim}; delete that PVC (the app volume) first"
                        );
                        return still_deleting(disk, dctx, msg, Duration::from_secs(10)).await;
                    }
                    None => {
                        let d = pv
                            .spec
                            .as_ref()
                            .and_then(|s| s.csi.as_ref())
                            .map(|c| c.driver.clone())
                            .unwrap_or_default();
                        let patch = objects::delete_handover_patch(
                            &d,
                            &ns,
                            &name,
                            &disk.uid().unwrap_or_default(),
                        );
                        hand_back(&pvs, &pv_name, &patch).await?;
                        waiting.push(pv_name);
                    }
                }
            }
            delete_pvc(&pvcs, &provision_pvc).await?;
            if !waiting.is_empty() {
                let msg = format!(
                    "deletionPolicy Delete: waiting for the CSI provisioner to delete volume {} (PersistentVolume {})",
                    handles.join(", "),
                    waiting.join(", ")
                );
                let was_deleting = disk
                    .status
                    .as_ref()
                    .and_then(|s| condition::find(&s.conditions, types::PROGRESSING))
                    .is_some_and(|c| c.reason == reasons::DELETING);
                if !was_deleting {
                    normal_event(
                        &ctx.recorder,
                        disk,
                        reasons::DELETING,
                        "Delete",
                        msg.clone(),
                    )
                    .await;
                }
                return still_deleting(disk, dctx, msg, Duration::from_secs(2)).await;
            }
            if !handles.is_empty() {
                let note = format!(
                    "deletionPolicy Delete: volume {} deleted through {driver}",
                    handles.join(", ")
                );
                normal_event(&ctx.recorder, disk, "Deleted", "Delete", note).await;
            }
            Ok(Action::await_change())
        }
    }
}

/// Patches PV `name` with `patch` that hands it back to the CSI provisioner for deletion.
async fn hand_back(
    pvs: &Api<PersistentVolume>,
    name: &str,
    patch: &serde_json::Value,
) -> Result<()> {
    pvs.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(|e| Error::kube(format!("handing PersistentVolume {name} back"), e))?;
    Ok(())
}

/// Reports the deletion as `Progressing` reason `Deleting` with `msg` and keeps the finalizer
/// ([`Error::Waiting`]): the next look is after `retry`.
async fn still_deleting(
    disk: &KompoxDisk,
    dctx: &DiskCtx,
    msg: String,
    retry: Duration,
) -> Result<Action> {
    let status = disk.status.clone().unwrap_or_default();
    let phase = Phase::Progressing(reasons::DELETING, msg.clone());
    finish(disk, dctx, status, phase).await?;
    Err(Error::Waiting { what: msg, retry })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kompox_core::api::API_VERSION;
    use kompox_core::provider::{REGION_LABEL, ZONE_LABEL};

    fn disk(spec: serde_json::Value) -> KompoxDisk {
        let mut d: KompoxDisk = match serde_json::from_value(serde_json::json!({
            "apiVersion": API_VERSION, "kind": "KompoxDisk",
            "metadata": {"name": "data", "namespace": "ns", "generation": 1},
            "spec": spec,
        })) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        d.status = None;
        d
    }

    fn local() -> ClusterFacts {
        let node = |z: &str| -> std::collections::BTreeMap<String, String> {
            [
                (ZONE_LABEL.to_string(), z.to_string()),
                (REGION_LABEL.to_string(), "japaneast".to_string()),
            ]
            .into()
        };
        ClusterFacts {
            csi_drivers: vec!["mock.csi.kompox.dev".into()],
            storage_class_provisioners: vec!["mock.csi.kompox.dev".into()],
            node_labels: vec![
                node("japaneast-1"),
                node("japaneast-2"),
                node("japaneast-3"),
            ],
            node_provider_ids: vec![],
        }
    }

    fn degraded(r: std::result::Result<Resolved, Phase>) -> (String, String) {
        match r {
            Err(Phase::Degraded(reason, msg)) => (reason.to_string(), msg),
            Err(p) => panic!("not degraded: {p:?}"),
            Ok(_) => panic!("resolved"),
        }
    }

    #[test]
    fn resolves_the_local_cluster() {
        let r = match resolve(
            &disk(serde_json::json!({"size": "1Gi", "zone": "2"})),
            &local(),
        ) {
            Ok(r) => r,
            Err(p) => panic!("{p:?}"),
        };
        assert_eq!(r.provider, ProviderType::Csi);
        assert_eq!(r.driver, "mock.csi.kompox.dev");
        assert_eq!(r.zone.as_deref(), Some("japaneast-2"));
    }

    #[test]
    fn bad_specs_name_the_field() {
        let info = local();
        for (spec, reason, field) in [
            (
                serde_json::json!({"size": "0"}),
                reasons::INVALID_SPEC,
                "spec.size",
            ),
            (
                serde_json::json!({"size": "1Gi", "zone": "9"}),
                reasons::INVALID_SPEC,
                "spec.zone",
            ),
            (
                serde_json::json!({"size": "1Gi", "zone": "eu-west-1a"}),
                reasons::INVALID_SPEC,
                "spec.zone",
            ),
            (
                serde_json::json!({"size": "1Gi", "zone": "1", "provider": {"type": "oke"}}),
                reasons::INVALID_SPEC,
                "spec.zone",
            ),
            (
                serde_json::json!({"size": "1Gi", "provider": {"type": "aks"}, "options": {"sku": "A", "skuName": "B"}}),
                reasons::INVALID_SPEC,
                "spec.options",
            ),
            (
                serde_json::json!({"size": "1Gi", "provider": {"type": "k3s"}, "options": {}}),
                reasons::RECONCILED,
                "",
            ),
        ] {
            let d = disk(spec.clone());
            if reason == reasons::RECONCILED {
                assert!(resolve(&d, &info).is_ok(), "{spec}");
                continue;
            }
            let (r, msg) = degraded(resolve(&d, &info));
            assert_eq!(r, reason, "{spec}");
            assert!(msg.starts_with(field), "{spec}: {msg}");
        }
        let no_csi = ClusterFacts::default();
        let (r, msg) = degraded(resolve(&disk(serde_json::json!({"size": "1Gi"})), &no_csi));
        assert_eq!(r, reasons::PROVIDER_UNSUPPORTED);
        assert!(msg.starts_with("spec.provider.type"), "{msg}");
    }

    #[test]
    fn a_bound_disk_cannot_move_or_change_handle() {
        let mut d = disk(serde_json::json!({"size": "1Gi", "zone": "2", "handle": "h2"}));
        d.status = Some(KompoxDiskStatus {
            handle: Some("h1".into()),
            zone: Some("japaneast-1".into()),
            ..Default::default()
        });
        let (_, msg) = degraded(resolve(&d, &local()));
        assert!(
            msg.starts_with("spec.zone: the disk's volume is in zone japaneast-1"),
            "{msg}"
        );
        d.spec.zone = Some("1".into());
        let (_, msg) = degraded(resolve(&d, &local()));
        assert!(msg.starts_with("spec.handle"), "{msg}");
    }

    #[test]
    fn provider_is_sticky_once_recorded() {
        let mut d = disk(
            serde_json::json!({"size": "1Gi", "options": {"csiDriver": "mock.csi.kompox.dev"}}),
        );
        d.status = Some(KompoxDiskStatus {
            provider: Some(ProviderType::Aks),
            ..Default::default()
        });
        let r = resolve(&d, &local()).ok().map(|r| r.provider);
        assert_eq!(r, Some(ProviderType::Aks));
    }

    #[test]
    fn zone_from_a_dynamic_pv() {
        let pv = |affinity: serde_json::Value| -> PersistentVolume {
            match serde_json::from_value(
                serde_json::json!({"metadata": {"name": "p"}, "spec": {"nodeAffinity": affinity}}),
            ) {
                Ok(p) => p,
                Err(e) => panic!("{e}"),
            }
        };
        let term = |values: serde_json::Value| {
            serde_json::json!({"required": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": ZONE_LABEL, "operator": "In", "values": values}]}]}})
        };
        assert_eq!(
            pv_zone(&pv(term(serde_json::json!(["japaneast-1"])))).as_deref(),
            Some("japaneast-1")
        );
        assert_eq!(pv_zone(&pv(term(serde_json::json!(["a", "b"])))), None);
        assert_eq!(pv_zone(&pv(serde_json::json!(null))), None);
    }
}

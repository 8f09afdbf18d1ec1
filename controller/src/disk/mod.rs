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

mod delete;
mod housekeeping;
pub mod objects;
mod provision;
pub mod resize;
mod static_pv;

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

use crate::events::{self, Note};
use crate::idempotent;
use crate::labels::{
    DISK_FINALIZER, DISK_LABEL, DISK_NAMESPACE_LABEL, DISK_UID_ANNOTATION, ROLE_DELETE, ROLE_LABEL,
    ROLE_PROVISION,
};
use crate::status::{Phase, report};
use crate::{Context, Error, ReadyToken, Result};

use delete::*;
use housekeeping::*;
use provision::*;
use static_pv::*;

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
        Phase::Ready(_) | Phase::Suspended(_) => Action::requeue(RESYNC),
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

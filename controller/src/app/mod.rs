//! KompoxApp controller (issue 7): a KompoxApp plus its compose ConfigMap becomes a running app
//! and stays right as its inputs change.
//!
//! # Reconcile
//!
//! Inside kube-runtime's `finalizer()` (finalizer [`APP_FINALIZER`]):
//!
//! 1. **Gather** the compose ConfigMap, the Secrets/ConfigMaps of `spec.files.mounts` and the
//!    KompoxDisks of `spec.volumes` with `kompox_cluster::gather_inputs`, and the cluster facts
//!    (provider, region; `Context::facts`, shared with the disk controller). A referenced disk without a PV yet →
//!    `Progressing` `DiskNotReady`.
//! 2. **Render** with `kompox_core::render`. Any render error → `Degraded` with the renderer's
//!    reason (`InvalidCompose`, `ZoneMismatch`, `ReferenceNotFound`, `InvalidSpec`) and every
//!    `path: message` in the condition message; **nothing is applied, changed or pruned** — the
//!    live objects keep running the last good render.
//! 3. **Namespace hygiene** ([`hygiene`]) in namespaces labelled
//!    `app.kubernetes.io/managed-by=kompox`: NetworkPolicy, operator Role/RoleBinding, optional
//!    ResourceQuota/LimitRange from App annotations.
//! 4. **Ownership**: an object that exists and is controlled by someone else (another
//!    KompoxApp rendering the same Service name in the same namespace, a user's own object) is
//!    never taken over → `Degraded` `ApplyFailed` naming it, nothing applied (`apply::foreign`;
//!    new objects are checked with a metadata GET, inventoried ones in the watch caches).
//! 5. **Claim** each volume's disk ([`crate::claim`]) before anything binds it; a disk held by
//!    another app volume → `Degraded` `DiskInUse` naming the holder, nothing applied.
//! 6. **RWO switch** when a volume's live PVC is bound to another disk's PV ([`switch`]):
//!    ScaleDown → Rebind → ScaleUp, the phase persisted in `status.volumeSwitch` first.
//! 7. **Apply** every object by server-side apply (field manager [`FIELD_MANAGER`], forced),
//!    controller owner reference to the KompoxApp, in two concurrent waves (Secrets, ConfigMaps,
//!    PVCs, policies, quota; then Services, Deployment, Ingress); **prune** what
//!    `status.inventory` lists and this render does not (`apply`). The inventory is written
//!    as old ∪ new before applying.
//! 8. **Release** claims of disks no volume names any more, once no PVC binds their PV.
//! 9. **Status** by server-side apply on the status subresource: conditions Ready /
//!    Progressing / Degraded merged purely ([`conditions`]), `ready`, `observedGeneration`,
//!    `renderedHash`, `ingressHosts`, `inventory`, `volumeSwitch`. Events only on transitions
//!    (Ready, a new Degraded reason, a new rendered hash, switch phases, claims, prunes).
//!
//! **Ready** = the Deployment rolled out its current generation and is available, and the
//! Ingress (if any) is admitted: its ingress controller reported an address in its status
//! (Traefik, as `kubectl kompox install` runs it, writes its Service's load-balancer address
//! there). `--ingress-admitted-by=existence` counts an Ingress as admitted once it exists, for a
//! cluster whose ingress controller reports nothing (`install --local` on the kwok test cluster).
//!
//! ## The cheap path
//!
//! Deployment, Pod and status events re-trigger an app many times per rollout. Each full
//! reconcile records a fingerprint of everything it read that the watch caches can see (app
//! spec and annotations, cluster facts, resource versions of the compose ConfigMap, the mounted
//! Secrets/ConfigMaps and the disks' binding fields) and of the objects it applied (their
//! resource versions from the apply responses, a Deployment's generation). When a later
//! reconcile computes the same fingerprint from the caches (no switch running, last full pass
//! less than 5 minutes old), it only recomputes the status — no GET, no apply. The watch
//! events of the controller's own writes therefore cost nothing; a changed Secret changes its
//! resource version, so the next reconcile renders again; an object deleted or edited by
//! someone else is re-applied. Re-applying identical content is a server-side no-op anyway (the
//! Deployment's generation does not move). Deployment events that do not change what readiness
//! reads (`watch::deployment_predicate`) are dropped before they trigger anything.
//!
//! # Deletion
//!
//! The finalizer deletes the app's Deployment, waits until no Pod uses its PVCs, deletes the
//! PVCs and waits until they are gone, then releases the disk claims — so a disk is never
//! claimable while a Pod of the deleted app still mounts it. Everything else goes by garbage
//! collection (owner references). KompoxDisks are not owned by the app: Orphan disks (and
//! Delete ones) stay until deleted themselves.
//!
//! # Watches
//!
//! See [`watch`]: disks, ConfigMaps and Secrets (metadata only) map back to the apps that
//! reference them, owned objects to their owner, Pods to their app only while it switches or is
//! being deleted. A change re-renders within the debounce (200 ms) plus one reconcile.

mod apply;
mod claims;
mod cleanup;
pub mod conditions;
mod fingerprint;
pub mod hygiene;
mod reconcile;
mod run;
pub mod switch;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

use kompox_core::api::KompoxApp;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::Event as Finalizer;

pub use kompox_core::well_known::APP_FINALIZER;
pub use run::AppCtx;

use crate::{Context, Error, ReadyToken};

/// Name of this controller in metrics and logs.
pub const CONTROLLER: &str = "app";
/// Field manager of the app controller's server-side applies (objects and status).
pub const FIELD_MANAGER: &str = "kompox";

/// Runs the KompoxApp controller until `ctx.shutdown` fires.
///
/// # Errors
///
/// None: reconcile errors are retried by the error policy.
pub async fn run(ctx: Arc<Context>, ready: ReadyToken) -> crate::Result<()> {
    let (controller, stores) = watch::controller(&ctx);
    watch::report_when_synced(stores.clone(), ready);
    let shutdown = ctx.shutdown.clone();
    let actx = Arc::new(AppCtx::new(ctx, stores));
    crate::runtime::drive(
        CONTROLLER,
        controller,
        reconcile,
        error_policy,
        actx,
        shutdown,
    )
    .await;
    Ok(())
}

#[tracing::instrument(skip_all, fields(app = %format!("{}/{}", app.namespace().unwrap_or_default(), app.name_any())))]
async fn reconcile(app: Arc<KompoxApp>, actx: Arc<AppCtx>) -> Result<Action, Error> {
    let ctx = &actx.ctx;
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let Some(ns) = app.namespace() else {
        return Ok(Action::await_change());
    };
    if !ctx.scope.contains(&ns) {
        return Ok(Action::await_change());
    }
    if !actx.stores.is_synced() {
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    ctx.finalized(app, APP_FINALIZER, |event| async {
        match event {
            Finalizer::Apply(a) => reconcile::apply(&a, &actx).await,
            Finalizer::Cleanup(a) => cleanup::cleanup(&a, &actx).await,
        }
    })
    .await
}

fn error_policy(app: Arc<KompoxApp>, err: &Error, actx: Arc<AppCtx>) -> Action {
    actx.ctx
        .error_action(CONTROLLER, &crate::object_key(app.as_ref()), err)
}

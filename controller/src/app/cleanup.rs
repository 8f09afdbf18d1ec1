//! The Cleanup side of the app finalizer: stop the app's Pods, delete its PVCs, release its
//! disk claims.

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kompox_core::api::condition::reasons;
use kompox_core::api::{InventoryEntry, KompoxApp, KompoxDisk};
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::apply;
use super::conditions::Outcome;
use super::run::{AppCtx, Run, SWITCH_POLL, WAIT};
use crate::claim;
use crate::events::Note;
use crate::{Error, Result};

/// The Cleanup side of the finalizer: stop the app's Pods, remove its PVCs and release its
/// disk claims, so no other app can mount a disk while this app's Pods still run. Everything
/// else is garbage-collected through owner references once the finalizer is gone; Orphan disks
/// (and every KompoxDisk: they are not owned by the app) stay.
///
/// # Errors
///
/// [`Error::Waiting`] while Pods or PVCs are still there (keeps the finalizer); API failures.
pub async fn cleanup(app: &KompoxApp, actx: &AppCtx) -> Result<Action> {
    let mut run = Run::new(app, actx)?;
    actx.remember(&run.key, None);
    let result = cleanup_run(&mut run).await;
    if result.is_ok() {
        actx.wrote(&run.key, None);
    }
    result
}

async fn cleanup_run(run: &mut Run<'_>) -> Result<Action> {
    let app = run.app;
    let inventory = run.old.inventory.clone();
    let of_kind = |k: &str| -> Vec<InventoryEntry> {
        inventory.iter().filter(|e| e.kind == k).cloned().collect()
    };
    let pvcs = of_kind("PersistentVolumeClaim");
    let disk_api: Api<KompoxDisk> = Api::namespaced(run.client.clone(), &run.ns);
    let held: Vec<KompoxDisk> = if pvcs.is_empty() && app.spec.volumes.is_empty() {
        Vec::new()
    } else {
        disk_api
            .list(&ListParams::default())
            .await
            .map_err(|e| Error::kube(format!("listing KompoxDisks in {}", run.ns), e))?
            .items
            .into_iter()
            .filter(|d| {
                d.status
                    .as_ref()
                    .and_then(|s| s.attached_to.as_ref())
                    .is_some_and(|a| a.app == run.name)
            })
            .collect()
    };
    if pvcs.is_empty() && held.is_empty() {
        return Ok(Action::await_change());
    }
    let msg = "app deleted: stopping its Pods and releasing its disks".to_owned();
    run.finish(
        Outcome::Progressing(reasons::DELETING, msg.clone()),
        SWITCH_POLL,
    )
    .await?;
    if run
        .old
        .conditions
        .iter()
        .all(|c| c.reason != reasons::DELETING)
    {
        run.publish(Note::normal(reasons::DELETING, "Delete", msg))
            .await;
    }
    apply::prune(
        &run.client,
        &run.ns,
        &run.label,
        &run.uid,
        &of_kind("Deployment"),
    )
    .await?;
    for p in &pvcs {
        let users = run.pods_using(&p.name).await?;
        if !users.is_empty() {
            return Err(Error::waiting(
                format!("Pods {} still use PVC {}", users.join(", "), p.name),
                WAIT,
            ));
        }
    }
    apply::prune(&run.client, &run.ns, &run.label, &run.uid, &pvcs).await?;
    let pvc_api: Api<PersistentVolumeClaim> = Api::namespaced(run.client.clone(), &run.ns);
    for p in &pvcs {
        if pvc_api
            .get_metadata_opt(&p.name)
            .await
            .map_err(|e| Error::kube(format!("reading PVC {}/{}", run.ns, p.name), e))?
            .is_some_and(|m| m.owner_references().iter().any(|o| o.uid == run.uid))
        {
            return Err(Error::waiting(
                format!("PVC {} is being deleted", p.name),
                WAIT,
            ));
        }
    }
    for d in &held {
        let Some(att) = d.status.as_ref().and_then(|s| s.attached_to.as_ref()) else {
            continue;
        };
        let dname = d.name_any();
        if claim::release(&disk_api, &dname, &run.name, &att.volume).await? {
            run.publish(Note::normal(
                "DiskReleased",
                "Delete",
                format!("released disk {dname} (volume {})", att.volume),
            ))
            .await;
        }
    }
    Ok(Action::await_change())
}

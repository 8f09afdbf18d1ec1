//! Deleting a disk (the finalizer): Orphan keeps the volume, Delete hands the PV back to the
//! CSI provisioner and waits until the volume is gone.

use super::*;

pub(super) async fn cleanup(disk: &KompoxDisk, dctx: &DiskCtx) -> Result<Action> {
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
                events::publish(
                    &ctx.recorder,
                    disk,
                    Note::normal("Orphaned", "Delete", note),
                )
                .await;
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
                    events::publish(
                        &ctx.recorder,
                        disk,
                        Note::normal(reasons::DELETING, "Delete", msg.clone()),
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
                events::publish(&ctx.recorder, disk, Note::normal("Deleted", "Delete", note)).await;
            }
            Ok(Action::await_change())
        }
    }
}

/// Patches PV `name` with `patch` that hands it back to the CSI provisioner for deletion.
pub(super) async fn hand_back(
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
pub(super) async fn still_deleting(
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

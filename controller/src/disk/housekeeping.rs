//! Housekeeping of a Ready disk: the provisioning objects once the static PV exists, a stale
//! `claimRef` on the static PV, a claim whose KompoxApp is gone.

use super::*;

/// Deletes the provisioning PVC and the dynamic PVs of `handle`; returns whether any was left.
pub(super) async fn remove_provisioning(
    disk: &KompoxDisk,
    dctx: &DiskCtx,
    handle: &str,
) -> Result<bool> {
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
pub(super) async fn clear_stale_claim_ref(
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
            events::publish(
                &dctx.ctx.recorder,
                disk,
                Note::normal("ClaimReleased", "Rebind", note),
            )
            .await;
            Ok(())
        }
        Err(e) => Err(Error::kube(
            format!("clearing claimRef of PersistentVolume {pv_name}"),
            e,
        )),
    }
}

/// Clears `status.attachedTo` when the claiming KompoxApp no longer exists.
pub(super) async fn clear_stale_attachment(disk: &KompoxDisk, dctx: &DiskCtx) -> Result<()> {
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
    events::publish(
        &dctx.ctx.recorder,
        disk,
        Note::normal("ClaimReleased", "Release", note),
    )
    .await;
    Ok(())
}

/// The PVC a PV is bound to (its `claimRef`), if that PVC still exists.
pub(super) async fn claimant(
    dctx: &DiskCtx,
    pv: &PersistentVolume,
) -> Result<Option<PersistentVolumeClaim>> {
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
pub(super) async fn live_claim(dctx: &DiskCtx, pv: &PersistentVolume) -> Result<Option<String>> {
    Ok(claimant(dctx, pv)
        .await?
        .map(|p| format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any())))
}

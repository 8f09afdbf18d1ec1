//! Provisioning a disk's volume: the provisioning StorageClass, the short-lived PVC the CSI
//! provisioner serves (from a snapshot for a restore), and the handle it yields.

use super::*;

pub(super) enum Provisioned {
    /// The volume handle and the zone of the volume's accessible topology, if any.
    Handle(String, Option<String>),
    Waiting(Phase),
}

/// The provisioning StorageClass of `r`, created if missing.
pub(super) async fn ensure_storage_class(dctx: &DiskCtx, r: &Resolved) -> Result<String> {
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
pub(super) async fn ensure_class(
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
        && idempotent::create(&api, &build()?, &format!("StorageClass {name}")).await?
    {
        tracing::info!(storage_class = %name, "created StorageClass");
    }
    Ok(())
}

/// The VolumeSnapshot to restore from and the size the restored disk needs, or why not yet.
pub(super) async fn restore_source(
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

pub(super) async fn provision(
    disk: &KompoxDisk,
    dctx: &DiskCtx,
    r: &Resolved,
) -> Result<Provisioned> {
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
        if idempotent::create(
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
            events::publish(
                &ctx.recorder,
                disk,
                Note::normal(reasons::PROVISIONING, "Provision", note),
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

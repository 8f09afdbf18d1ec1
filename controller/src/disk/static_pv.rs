//! The disk's static PersistentVolume (`status.pvName`) that app PVCs bind to, its StorageClass,
//! and the PV/PVC helpers the other steps share.

use super::*;

/// Creates the static PV if missing; `Some(phase)` when an existing PV contradicts the disk.
pub(super) async fn ensure_static_pv(
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
    if idempotent::create(&pvs, &pv, &format!("PersistentVolume {pv_name}")).await? {
        tracing::info!(pv = %pv_name, handle, "created static PersistentVolume");
    }
    Ok(None)
}

pub(super) async fn delete_pvc(api: &Api<PersistentVolumeClaim>, name: &str) -> Result<()> {
    idempotent::delete(api, name, &format!("PersistentVolumeClaim {name}")).await
}

pub(super) async fn delete_pv(api: &Api<PersistentVolume>, name: &str) -> Result<()> {
    idempotent::delete(api, name, &format!("PersistentVolume {name}")).await
}

/// PVs carrying the disk's labels with `role`.
pub(super) async fn labelled_pvs(
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

/// The single zone a PV's node affinity requires (`topology.kubernetes.io/zone In [z]`).
pub(super) fn pv_zone(pv: &PersistentVolume) -> Option<String> {
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

pub(super) fn pv_handle(pv: &PersistentVolume) -> Option<String> {
    pv.spec
        .as_ref()
        .and_then(|s| s.csi.as_ref())
        .map(|c| c.volume_handle.clone())
}

/// [`objects::STATIC_STORAGE_CLASS`], created if missing.
pub(super) async fn ensure_static_class(dctx: &DiskCtx) -> Result<()> {
    ensure_class(
        dctx,
        objects::STATIC_STORAGE_CLASS,
        objects::static_storage_class,
    )
    .await
}

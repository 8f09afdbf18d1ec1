//! App volumes: one PVC per `spec.volumes[i]`, bound to its KompoxDisk's static PV, and the
//! zone the Pod must run in.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::ctx::{AppMeta, Ctx, Names};
use super::{ClusterInfo, ErrorReason};
use crate::api::{KompoxApp, KompoxDisk};
use crate::naming::DISK_LABEL;
use crate::provider::node_zone;

/// One app volume, once its disk is known.
pub(crate) struct AppVolume {
    /// `spec.volumes[i].name`, as the compose file names the volume.
    pub name: String,
    /// The pod volume name ([`Names::volume`]).
    pub pod_name: String,
    /// The PVC name.
    pub claim: String,
    /// `spec.volumes[i]`.
    pub field: String,
}

/// The app's volumes (in spec order), their PVCs, and the node zone label value the Pod
/// needs, if any.
#[derive(Default)]
pub(crate) struct Storage {
    pub volumes: Vec<AppVolume>,
    pub pvcs: Vec<PersistentVolumeClaim>,
    pub zone: Option<String>,
}

impl Storage {
    pub fn volume(&self, name: &str) -> Option<&AppVolume> {
        self.volumes.iter().find(|v| v.name == name)
    }
}

struct DiskZone {
    field: String,
    disk: String,
    /// As written (status.zone or spec.zone).
    raw: String,
    /// As a node label value.
    label: String,
}

pub(crate) fn plan(
    cx: &mut Ctx,
    meta: &AppMeta,
    names: &Names,
    app: &KompoxApp,
    disks: &BTreeMap<String, KompoxDisk>,
    cluster: &ClusterInfo,
) -> Storage {
    let mut out = Storage::default();
    let mut zones: Vec<DiskZone> = Vec::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let map_zone = |z: &str| node_zone(cluster.provider, cluster.region.as_deref(), z);

    for (i, v) in app.spec.volumes.iter().enumerate() {
        let field = format!("spec.volumes[{i}]");
        let ref_field = format!("{field}.diskRef");
        let disk_name = v.disk_ref.name.as_str();
        if let Some(j) = seen.insert(disk_name, i) {
            cx.error(
                ErrorReason::InvalidSpec,
                ref_field,
                format!("KompoxDisk {disk_name:?} is already used by spec.volumes[{j}]; a disk backs one volume"),
            );
            continue;
        }
        let Some(disk) = disks.get(disk_name) else {
            cx.error(
                ErrorReason::MissingReference,
                ref_field,
                format!("KompoxDisk {disk_name:?} not found"),
            );
            continue;
        };
        if let Err(e) = disk.spec.validate() {
            cx.error(
                ErrorReason::InvalidSpec,
                ref_field,
                format!("KompoxDisk {disk_name:?} is invalid: {e}"),
            );
            continue;
        }
        let status = disk.status.as_ref();
        let Some(pv) = status
            .and_then(|s| s.pv_name.as_deref())
            .filter(|p| !p.is_empty())
        else {
            cx.error(
                ErrorReason::MissingReference,
                ref_field,
                format!("KompoxDisk {disk_name:?} is not Ready (no status.pvName)"),
            );
            continue;
        };
        // spec.zone, else status.zone, both mapped (a full zone name maps to itself): the
        // same choice as the admission webhook makes for the Pod.
        let non_empty = |z: Option<&str>| z.filter(|z| !z.trim().is_empty()).map(str::to_owned);
        let zone = non_empty(disk.spec.zone.as_deref())
            .map(|z| (z, "spec"))
            .or_else(|| non_empty(status.and_then(|s| s.zone.as_deref())).map(|z| (z, "status")));
        if let Some((z, from)) = zone {
            match map_zone(&z) {
                Ok(label) => zones.push(DiskZone {
                    field: field.clone(),
                    disk: disk_name.to_owned(),
                    raw: z,
                    label,
                }),
                Err(e) => cx.error(
                    ErrorReason::InvalidSpec,
                    ref_field.clone(),
                    format!("KompoxDisk {disk_name:?} {from}.{e}"),
                ),
            }
        }

        let pod_name = names.volume(&v.name).to_owned();
        let claim = meta.object_name(&pod_name);
        let mut m = meta.meta(&claim, &field);
        if let Some(l) = m.labels.as_mut() {
            l.insert(DISK_LABEL.to_owned(), super::ctx::label_value(disk_name));
        }
        out.pvcs.push(PersistentVolumeClaim {
            metadata: m,
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([(
                        "storage".to_owned(),
                        Quantity(disk.spec.size.0.clone()),
                    )])),
                    limits: None,
                }),
                // The class of the disk's PV (binding needs the same), which lets Kubernetes
                // expand the volume when the disk grows; "" for a PV without one.
                storage_class_name: Some(
                    status
                        .and_then(|s| s.storage_class_name.clone())
                        .unwrap_or_default(),
                ),
                volume_name: Some(pv.to_owned()),
                volume_mode: Some("Filesystem".to_owned()),
                ..PersistentVolumeClaimSpec::default()
            }),
            status: None,
        });
        out.volumes.push(AppVolume {
            name: v.name.clone(),
            pod_name,
            claim,
            field,
        });
    }

    let wanted = app
        .spec
        .deployment
        .as_ref()
        .and_then(|d| d.zone.as_deref())
        .filter(|z| !z.trim().is_empty());
    match wanted {
        Some(z) => match map_zone(z) {
            Ok(label) => {
                for d in &zones {
                    if d.label != label {
                        cx.error(
                            ErrorReason::ZoneMismatch,
                            "spec.deployment.zone",
                            format!(
                                "zone {} does not match zone {} of KompoxDisk {:?} ({}); the Pod can only run where its disks are",
                                show_zone(z, &label),
                                show_zone(&d.raw, &d.label),
                                d.disk,
                                d.field
                            ),
                        );
                    }
                }
                out.zone = Some(label);
            }
            Err(e) => cx.error(
                ErrorReason::InvalidSpec,
                "spec.deployment.zone",
                e.to_string(),
            ),
        },
        None => {
            let labels: BTreeSet<&str> = zones.iter().map(|d| d.label.as_str()).collect();
            if labels.len() > 1 {
                if let Some(first) = zones.first() {
                    for d in zones.iter().filter(|d| d.label != first.label) {
                        cx.error(
                            ErrorReason::ZoneMismatch,
                            format!("{}.diskRef", d.field),
                            format!(
                                "KompoxDisk {:?} is in zone {} but KompoxDisk {:?} ({}) is in zone {}; one Pod cannot use disks in two zones",
                                d.disk,
                                show_zone(&d.raw, &d.label),
                                first.disk,
                                first.field,
                                show_zone(&first.raw, &first.label)
                            ),
                        );
                    }
                }
            } else {
                out.zone = zones.first().map(|d| d.label.clone());
            }
        }
    }
    out
}

fn show_zone(raw: &str, label: &str) -> String {
    if raw == label {
        format!("{raw:?}")
    } else {
        format!("{raw:?} ({label})")
    }
}

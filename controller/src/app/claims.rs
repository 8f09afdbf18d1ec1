//! A KompoxApp's disk claims: every volume's disk is claimed (`status.attachedTo`) before
//! anything binds it, and a claim no volume names any more is released once no PVC binds the
//! disk's PV ([`crate::claim`] holds the read-modify-write of one claim).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kompox_core::api::KompoxDisk;
use kompox_core::api::condition::reasons;
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use super::run::{Run, Step};
use crate::claim::{self, Claim};
use crate::events::Note;
use crate::{Error, Result};

impl Run<'_> {
    /// Claims each volume's disk. `Some(step)` when a disk is held by another app volume.
    pub(super) async fn claim_disks(
        &mut self,
        disks: &BTreeMap<String, KompoxDisk>,
    ) -> Result<Option<Step>> {
        let disk_api: Api<KompoxDisk> = Api::namespaced(self.client.clone(), &self.ns);
        for v in &self.app.spec.volumes {
            let dname = &v.disk_ref.name;
            let Some(disk) = disks.get(dname) else {
                continue; // the render already reported it
            };
            let decision = match claim::claim_decision(disk, &self.name, &v.name) {
                Claim::Granted => claim::claim(&disk_api, dname, &self.name, &v.name).await?,
                other => other,
            };
            match decision {
                Claim::AlreadyHeld => {}
                Claim::Granted => {
                    self.publish(Note::normal(
                        "DiskClaimed",
                        "Claim",
                        format!("claimed disk {dname} for volume {}", v.name),
                    ))
                    .await;
                }
                held @ Claim::HeldBy { .. } => {
                    let msg = held
                        .in_use_message(dname)
                        .unwrap_or_else(|| format!("disk {dname} is in use"));
                    return Ok(Some(Step::degraded(
                        reasons::DISK_IN_USE,
                        format!("spec.volumes[{}].diskRef: {msg}; nothing is bound", v.name),
                    )));
                }
            }
        }
        Ok(None)
    }

    /// Releases disks this app holds for a volume that no longer names them, once no PVC in
    /// the namespace is bound to their PV.
    pub(super) async fn release_stale_claims(&self) -> Result<()> {
        let wanted: Vec<(&str, &str)> = self
            .app
            .spec
            .volumes
            .iter()
            .map(|v| (v.name.as_str(), v.disk_ref.name.as_str()))
            .collect();
        let stale: Vec<Arc<KompoxDisk>> = self
            .actx
            .stores
            .disks
            .state()
            .into_iter()
            .filter(|d| d.metadata.namespace.as_deref() == Some(self.ns.as_str()))
            .filter(|d| {
                d.status
                    .as_ref()
                    .and_then(|s| s.attached_to.as_ref())
                    .is_some_and(|a| {
                        a.app == self.name
                            && !wanted.contains(&(a.volume.as_str(), d.name_any().as_str()))
                    })
            })
            .collect();
        if stale.is_empty() {
            return Ok(());
        }
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &self.ns);
        let bound: Vec<String> = pvcs
            .list(&ListParams::default())
            .await
            .map_err(|e| Error::kube(format!("listing PVCs in {}", self.ns), e))?
            .items
            .into_iter()
            .filter_map(|p| p.spec.and_then(|s| s.volume_name))
            .collect();
        let disk_api: Api<KompoxDisk> = Api::namespaced(self.client.clone(), &self.ns);
        for d in stale {
            let pv = d.status.as_ref().and_then(|s| s.pv_name.clone());
            if pv.is_some_and(|pv| bound.contains(&pv)) {
                continue; // a PVC (perhaps terminating) still binds it
            }
            let Some(att) = d.status.as_ref().and_then(|s| s.attached_to.clone()) else {
                continue;
            };
            let dname = d.name_any();
            if claim::release(&disk_api, &dname, &self.name, &att.volume).await? {
                self.publish(Note::normal(
                    "DiskReleased",
                    "Release",
                    format!(
                        "released disk {dname}: volume {} no longer uses it",
                        att.volume
                    ),
                ))
                .await;
            }
        }
        Ok(())
    }
}

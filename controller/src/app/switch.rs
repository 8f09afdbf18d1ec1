//! The RWO volume switch: decided purely ([`plan`]: which volume to switch, and when to abandon
//! a recorded switch), then run phase by phase against the cluster (`Run::run_switch`, called by
//! the reconcile):
//!
//! 1. **ScaleDown** — the Deployment is applied with `replicas: 0` (the rest of the rendered set
//!    as usual, except the switching PVC); the phase ends when the Deployment controller has
//!    observed that, counts no replica, and no Pod (of any owner) that still runs references the
//!    PVC.
//! 2. **Rebind** — a PVC's `spec.volumeName` is immutable, so the PVC is deleted (with its UID as
//!    a precondition) and, once it is gone (the `kubernetes.io/pvc-protection` finalizer is
//!    removed by kube-controller-manager only when no Pod uses it), created again under the same
//!    name bound to the new disk's PV; the phase ends when it is `Bound`.
//! 3. **ScaleUp** — the rendered set is applied as is (`replicas: 1`), then the old disk's claim
//!    is released (`status.attachedTo` cleared) and `status.volumeSwitch` removed.
//!
//! The phase is persisted in `status.volumeSwitch` **before** acting on it, so a controller
//! restarted at any point re-reads it and resumes; every step is idempotent. The new disk is
//! claimed before the switch starts, so at no moment can two Pods mount one RWO disk: the old
//! disk's only PVC is gone before a Pod may use the new one, and the new one cannot be claimed
//! by anyone else.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kompox_cluster::{is_conflict, is_not_found};
use kompox_core::api::condition::reasons;
use kompox_core::api::{KompoxDisk, VolumeSwitch, VolumeSwitchPhase};
use kompox_core::naming::DISK_LABEL;
use kompox_core::render::VolumeClaim;
use kube::api::{DeleteParams, ListParams, Preconditions};
use kube::{Api, ResourceExt};
use serde_json::Value;

use super::FIELD_MANAGER;
use super::apply::{self, ApplyError};
use super::conditions::Outcome;
use super::run::{REFUSED, Replicas, Run, SWITCH_POLL, Step, WAIT};
use crate::claim;
use crate::events::Note;
use crate::{Error, Result};

/// A live PVC of an app volume, as far as the switch cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LivePvc {
    /// `spec.volumeName`.
    pub volume_name: Option<String>,
    /// The KompoxDisk whose PV that is (by `status.pvName`), else the PVC's `kompox.dev/disk`
    /// label, else `None`.
    pub disk: Option<String>,
    /// Has a deletionTimestamp.
    pub terminating: bool,
}

/// One app volume: what the spec wants and what is live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeView {
    /// `spec.volumes[i].name`.
    pub volume: String,
    /// The PVC name.
    pub claim: String,
    /// `spec.volumes[i].diskRef.name`.
    pub want_disk: String,
    /// That disk's `status.pvName`.
    pub want_pv: String,
    /// The live PVC, if one exists.
    pub live: Option<LivePvc>,
}

impl VolumeView {
    /// Whether the live PVC must be replaced before the Pod can use the wanted disk: it is
    /// bound to another PV, or it is being deleted (a PVC cannot be applied while terminating).
    /// No live PVC needs no switch: it is simply created.
    #[must_use]
    pub fn needs_switch(&self) -> bool {
        self.live.as_ref().is_some_and(|l| {
            l.terminating || l.volume_name.as_deref() != Some(self.want_pv.as_str())
        })
    }
}

/// What to do about switches in this reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing to switch: apply normally.
    None,
    /// Run (or keep running) this switch; the status must hold exactly this.
    Switch(VolumeSwitch),
    /// Drop the recorded switch: its volume left the spec, or the spec went back to the old
    /// disk before anything was rebound.
    Abort,
}

/// Decides the switch from the recorded one (`status.volumeSwitch`) and the volumes.
///
/// - Nothing recorded: the first volume (in spec order) whose live PVC needs replacing
///   starts a switch in `ScaleDown`, `fromDisk` = the disk of the live PVC (empty if unknown).
/// - Recorded, volume gone from the spec: `Abort`.
/// - Recorded, the spec now names another disk: in `ScaleDown` with a live PVC that already
///   fits, `Abort`; otherwise the switch continues in its phase towards the new disk
///   (`toDisk` updated).
/// - Recorded, same target: continue.
#[must_use]
pub fn plan(current: Option<&VolumeSwitch>, views: &[VolumeView]) -> Plan {
    let Some(sw) = current else {
        return views
            .iter()
            .find(|v| v.needs_switch())
            .map_or(Plan::None, |v| {
                Plan::Switch(VolumeSwitch {
                    volume: v.volume.clone(),
                    from_disk: v
                        .live
                        .as_ref()
                        .and_then(|l| l.disk.clone())
                        .unwrap_or_default(),
                    to_disk: v.want_disk.clone(),
                    phase: VolumeSwitchPhase::ScaleDown,
                })
            });
    };
    let Some(v) = views.iter().find(|v| v.volume == sw.volume) else {
        return Plan::Abort;
    };
    if sw.phase == VolumeSwitchPhase::ScaleDown && !v.needs_switch() {
        return Plan::Abort;
    }
    let mut next = sw.clone();
    next.to_disk.clone_from(&v.want_disk);
    Plan::Switch(next)
}

/// The message of the `Progressing` condition while `sw` runs, with `detail` on what it
/// waits for.
#[must_use]
pub fn progress_message(sw: &VolumeSwitch, detail: &str) -> String {
    let from = if sw.from_disk.is_empty() {
        "(unknown disk)"
    } else {
        sw.from_disk.as_str()
    };
    format!(
        "switching volume {} from disk {from} to disk {}: {:?}: {detail}",
        sw.volume, sw.to_disk, sw.phase
    )
}

// Execution: the phases of a switch against the cluster (the plan above says which).

/// How an RWO switch left this reconcile.
pub(super) enum SwitchStep {
    /// The switch waits; the reconcile ends with this step.
    Waiting(Step),
    /// The switch finished; the rendered set is applied (the applied Deployment).
    Done(Option<Box<Deployment>>),
}

impl Run<'_> {
    /// `None` when the Deployment `name` runs no replica any more and no Pod uses `claim`;
    /// otherwise what is still running.
    pub(super) async fn still_running(
        &self,
        name: Option<&str>,
        claim: &str,
    ) -> Result<Option<String>> {
        if let Some(name) = name {
            let deps: Api<Deployment> = Api::namespaced(self.client.clone(), &self.ns);
            if let Some(d) = deps
                .get_opt(name)
                .await
                .map_err(|e| Error::kube(format!("reading Deployment {}/{name}", self.ns), e))?
            {
                let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                let st = d.status.clone().unwrap_or_default();
                let observed =
                    st.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
                if want != 0 || !observed || st.replicas.unwrap_or(0) != 0 {
                    return Ok(Some(format!(
                        "Deployment {name} still has {} replicas",
                        st.replicas.unwrap_or(0)
                    )));
                }
            }
        }
        let users = self.pods_using(claim).await?;
        Ok((!users.is_empty()).then(|| format!("Pods {} still use PVC {claim}", users.join(", "))))
    }

    /// Persists a phase change and announces it.
    pub(super) async fn enter(
        &mut self,
        sw: &mut VolumeSwitch,
        phase: VolumeSwitchPhase,
    ) -> Result<()> {
        sw.phase = phase;
        self.status.volume_switch = Some(sw.clone());
        self.write().await?;
        self.publish(Note::normal(
            "VolumeSwitch",
            "VolumeSwitch",
            progress_message(sw, "entered"),
        ))
        .await;
        Ok(())
    }

    /// Runs the switch `sw` as far as it can go now (see [`super::switch`]).
    pub(super) async fn run_switch(
        &mut self,
        mut sw: VolumeSwitch,
        objects: &[Value],
        deployment: &Deployment,
        views: &[VolumeView],
    ) -> Result<SwitchStep> {
        let Some(view) = views.iter().find(|v| v.volume == sw.volume).cloned() else {
            return Err(Error::waiting(
                format!("volume {} vanished", sw.volume),
                WAIT,
            ));
        };
        let claim = view.claim.as_str();
        let dep_name = deployment.metadata.name.clone();
        let wait = |sw: &VolumeSwitch, detail: String| {
            SwitchStep::Waiting(Step::waiting(
                reasons::VOLUME_SWITCHING,
                progress_message(sw, &detail),
                SWITCH_POLL,
            ))
        };
        let refused = |msg: String| {
            SwitchStep::Waiting(Step {
                outcome: Outcome::Degraded(reasons::APPLY_FAILED, msg),
                requeue: REFUSED,
                cache: None,
            })
        };
        if sw.phase != VolumeSwitchPhase::ScaleUp
            && let Err(msg) = self
                .apply_all(objects, deployment, Replicas::Zero, Some(claim))
                .await?
        {
            return Ok(refused(msg));
        }
        if sw.phase == VolumeSwitchPhase::ScaleDown {
            if let Some(running) = self.still_running(dep_name.as_deref(), claim).await? {
                return Ok(wait(&sw, running));
            }
            self.enter(&mut sw, VolumeSwitchPhase::Rebind).await?;
        }
        if sw.phase == VolumeSwitchPhase::Rebind {
            let pvc_api: Api<PersistentVolumeClaim> =
                Api::namespaced(self.client.clone(), &self.ns);
            let live = pvc_api
                .get_opt(claim)
                .await
                .map_err(|e| Error::kube(format!("reading PVC {}/{claim}", self.ns), e))?;
            match live {
                Some(p) if p.metadata.deletion_timestamp.is_some() => {
                    let f = p.finalizers().join(", ");
                    return Ok(wait(
                        &sw,
                        format!("waiting for PVC {claim} to be deleted (finalizers: {f})"),
                    ));
                }
                Some(p)
                    if p.spec.as_ref().and_then(|s| s.volume_name.as_deref())
                        == Some(view.want_pv.as_str()) =>
                {
                    let phase = p.status.as_ref().and_then(|s| s.phase.clone());
                    if phase.as_deref() != Some("Bound") {
                        return Ok(wait(
                            &sw,
                            format!(
                                "waiting for PVC {claim} to bind to PersistentVolume {}",
                                view.want_pv
                            ),
                        ));
                    }
                    self.enter(&mut sw, VolumeSwitchPhase::ScaleUp).await?;
                }
                Some(p) => {
                    let users = self.pods_using(claim).await?;
                    if !users.is_empty() {
                        self.enter(&mut sw, VolumeSwitchPhase::ScaleDown).await?;
                        return Ok(wait(
                            &sw,
                            format!("Pods {} use PVC {claim} again", users.join(", ")),
                        ));
                    }
                    let dp = DeleteParams {
                        preconditions: Some(Preconditions {
                            uid: p.metadata.uid.clone(),
                            resource_version: None,
                        }),
                        ..DeleteParams::background()
                    };
                    match pvc_api.delete(claim, &dp).await {
                        Ok(_) => {}
                        Err(e) if is_not_found(&e) || is_conflict(&e) => {}
                        Err(e) => {
                            return Err(Error::kube(
                                format!("deleting PVC {}/{claim}", self.ns),
                                e,
                            ));
                        }
                    }
                    return Ok(wait(&sw, format!("deleting PVC {claim} to rebind it")));
                }
                None => {
                    let Some(pvc) = objects.iter().find(|o| {
                        o["kind"] == "PersistentVolumeClaim" && o["metadata"]["name"] == claim
                    }) else {
                        return Err(Error::waiting(format!("PVC {claim} is not rendered"), WAIT));
                    };
                    match apply::apply(&self.client, &self.ns, FIELD_MANAGER, pvc).await {
                        Ok(_) => {}
                        Err(ApplyError::Refused(msg)) => return Ok(refused(msg)),
                        Err(ApplyError::Failed(e)) => return Err(e),
                    }
                    return Ok(wait(
                        &sw,
                        format!(
                            "created PVC {claim} bound to PersistentVolume {}",
                            view.want_pv
                        ),
                    ));
                }
            }
        }
        // ScaleUp.
        let deployment = match self
            .apply_all(objects, deployment, Replicas::Rendered, None)
            .await?
        {
            Ok(d) => d,
            Err(msg) => return Ok(refused(msg)),
        };
        if !sw.from_disk.is_empty() && sw.from_disk != sw.to_disk {
            let disk_api: Api<KompoxDisk> = Api::namespaced(self.client.clone(), &self.ns);
            if claim::release(&disk_api, &sw.from_disk, &self.name, &sw.volume).await? {
                self.publish(Note::normal(
                    "DiskReleased",
                    "VolumeSwitch",
                    format!("released disk {} (volume {})", sw.from_disk, sw.volume),
                ))
                .await;
            }
        }
        self.status.volume_switch = None;
        self.write().await?;
        self.publish(Note::normal(
            "VolumeSwitched",
            "VolumeSwitch",
            progress_message(&sw, "done"),
        ))
        .await;
        Ok(SwitchStep::Done(deployment.map(Box::new)))
    }
}

/// What the switch reads from the cluster: the volumes' live PVCs and the Pods using one.
impl Run<'_> {
    /// The app's volumes with their live PVCs (GETs: the switch must not decide from a cache).
    pub(super) async fn volume_views(
        &self,
        claims: &[VolumeClaim],
        disks: &BTreeMap<String, KompoxDisk>,
    ) -> Result<Vec<VolumeView>> {
        let pvc_api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &self.ns);
        let mut out = Vec::new();
        for v in &self.app.spec.volumes {
            let Some(claim) = claims
                .iter()
                .find(|c| c.volume == v.name)
                .map(|c| c.claim.clone())
            else {
                continue;
            };
            let want_pv = disks
                .get(&v.disk_ref.name)
                .and_then(|d| d.status.as_ref())
                .and_then(|s| s.pv_name.clone())
                .unwrap_or_default();
            let live = pvc_api
                .get_opt(&claim)
                .await
                .map_err(|e| Error::kube(format!("reading PVC {}/{claim}", self.ns), e))?
                .map(|p| self.live_pvc(&p));
            out.push(VolumeView {
                volume: v.name.clone(),
                claim,
                want_disk: v.disk_ref.name.clone(),
                want_pv,
                live,
            });
        }
        Ok(out)
    }

    pub(super) fn live_pvc(&self, p: &PersistentVolumeClaim) -> LivePvc {
        let volume_name = p.spec.as_ref().and_then(|s| s.volume_name.clone());
        let disk = volume_name
            .as_deref()
            .and_then(|pv| {
                self.actx
                    .stores
                    .disks
                    .state()
                    .iter()
                    .find(|d| {
                        d.metadata.namespace.as_deref() == Some(self.ns.as_str())
                            && d.status.as_ref().and_then(|s| s.pv_name.as_deref()) == Some(pv)
                    })
                    .map(|d| d.name_any())
            })
            .or_else(|| p.labels().get(DISK_LABEL).cloned());
        LivePvc {
            volume_name,
            disk,
            terminating: p.metadata.deletion_timestamp.is_some(),
        }
    }

    /// Names of the running Pods (not Succeeded/Failed) in the namespace whose volumes use
    /// PVC `claim`. Any owner counts.
    pub(super) async fn pods_using(&self, claim: &str) -> Result<Vec<String>> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.ns);
        let list = pods
            .list(&ListParams::default())
            .await
            .map_err(|e| Error::kube(format!("listing Pods in {}", self.ns), e))?;
        Ok(list
            .items
            .into_iter()
            .filter(|p| {
                let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
                !matches!(phase, Some("Succeeded" | "Failed"))
            })
            .filter(|p| {
                p.spec
                    .iter()
                    .flat_map(|s| s.volumes.iter().flatten())
                    .any(|v| {
                        v.persistent_volume_claim
                            .as_ref()
                            .is_some_and(|c| c.claim_name == claim)
                    })
            })
            .map(|p| p.name_any())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use VolumeSwitchPhase::{Rebind, ScaleDown, ScaleUp};
    use rstest::rstest;

    fn view(vol: &str, want: &str, live: Option<(&str, bool)>) -> VolumeView {
        VolumeView {
            volume: vol.into(),
            claim: format!("app-{vol}"),
            want_disk: want.into(),
            want_pv: format!("pv-{want}"),
            live: live.map(|(disk, terminating)| LivePvc {
                volume_name: Some(format!("pv-{disk}")),
                disk: Some(disk.into()),
                terminating,
            }),
        }
    }

    fn sw(vol: &str, from: &str, to: &str, phase: VolumeSwitchPhase) -> VolumeSwitch {
        VolumeSwitch {
            volume: vol.into(),
            from_disk: from.into(),
            to_disk: to.into(),
            phase,
        }
    }

    #[rstest]
    #[case::fresh_app_nothing_live(None, vec![view("data", "a", None)], Plan::None)]
    #[case::bound_as_wanted(None, vec![view("data", "a", Some(("a", false)))], Plan::None)]
    #[case::disk_ref_changed_start_with_the_first_such_volume(
        None,
        vec![
            view("cache", "c", Some(("c", false))),
            view("data", "b", Some(("a", false))),
            view("logs", "y", Some(("x", false))),
        ],
        Plan::Switch(sw("data", "a", "b", ScaleDown))
    )]
    #[case::pvc_deleted_by_someone_while_in_use_replace_it(
        None,
        vec![view("data", "a", Some(("a", true)))],
        Plan::Switch(sw("data", "a", "a", ScaleDown))
    )]
    #[case::recorded_switch_continues(
        Some(sw("data", "a", "b", Rebind)),
        vec![view("data", "b", None)],
        Plan::Switch(sw("data", "a", "b", Rebind))
    )]
    #[case::volume_removed_from_the_spec(
        Some(sw("data", "a", "b", ScaleDown)),
        vec![view("other", "b", None)],
        Plan::Abort
    )]
    #[case::spec_went_back_before_the_rebind(
        Some(sw("data", "a", "b", ScaleDown)),
        vec![view("data", "a", Some(("a", false)))],
        Plan::Abort
    )]
    #[case::spec_changed_again_during_the_rebind_new_target(
        Some(sw("data", "a", "b", Rebind)),
        vec![view("data", "c", None)],
        Plan::Switch(sw("data", "a", "c", Rebind))
    )]
    #[case::spec_went_back_after_the_old_pvc_was_deleted_rebind_to_the_old_disk(
        Some(sw("data", "a", "b", Rebind)),
        vec![view("data", "a", None)],
        Plan::Switch(sw("data", "a", "a", Rebind))
    )]
    #[case::scale_up_with_the_pvc_already_bound(
        Some(sw("data", "a", "b", ScaleUp)),
        vec![view("data", "b", Some(("b", false)))],
        Plan::Switch(sw("data", "a", "b", ScaleUp))
    )]
    fn plan_cases(
        #[case] current: Option<VolumeSwitch>,
        #[case] views: Vec<VolumeView>,
        #[case] want: Plan,
    ) {
        assert_eq!(plan(current.as_ref(), &views), want);
    }

    #[test]
    fn unknown_source_disk_and_unbound_pvc() {
        let mut v = view("data", "b", None);
        v.live = Some(LivePvc {
            volume_name: None,
            disk: None,
            terminating: false,
        });
        assert!(v.needs_switch());
        let Plan::Switch(s) = plan(None, &[v]) else {
            panic!("expected a switch");
        };
        assert_eq!(s.from_disk, "");
        assert!(progress_message(&s, "x").contains("(unknown disk)"));
    }
}

//! Growing a disk: a user raises `spec.size`, the volume is expanded through standard CSI
//! expansion.
//!
//! The external-resizer expands a volume when a **bound** PVC's request exceeds its capacity;
//! the PersistentVolumeClaimResize admission plugin lets the request grow only when the PVC's
//! StorageClass allows expansion. Static PVs and the PVCs that bind them therefore carry
//! [`objects::STATIC_STORAGE_CLASS`] (`allowVolumeExpansion: true`). Then, while `spec.size`
//! exceeds the static PV's capacity ([`plan`]):
//!
//! - **Attached** (the PV is bound to a live PVC, an app's): raise that PVC's request to
//!   `spec.size`. The app renderer requests `spec.size` too, so the app controller applies the
//!   same value and never fights it.
//! - **Detached** (the PV is `Available`): bind a temporary PVC ([`objects::resize_pvc`],
//!   requesting the current capacity), raise its request once bound, and delete it when the
//!   PV has grown; the disk controller then makes the PV `Available` again.
//! - The disk is `Progressing` reason [`RESIZING`] meanwhile; a resize the driver refuses for
//!   good (`ControllerResizeInfeasible`) or a PVC without an expandable class makes it
//!   `Degraded` naming `spec.size`.
//! - Retreat: after a failed growth the user may lower `spec.size` again, to a size above the
//!   volume's (the CRD's rule, mirroring Kubernetes' recovery from a failed expansion, which
//!   lets a claim's request drop to above its capacity). The claim's request is lowered to the
//!   new `spec.size` ([`Plan::Lower`]) and the resizer tries that size instead; a refusal
//!   recorded for the earlier, larger request no longer counts.
//! - Nothing ever shrinks: a `spec.size` below the volume's size (the CRD's transition rule
//!   refuses lowering it; a restore from a larger snapshot or a driver rounding up makes the
//!   volume larger than asked) leaves the volume, the PV and every PVC request as they are.
//!
//! `status.size` is the PV's capacity.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kompox_core::api::condition::reasons::{RESIZE_FAILED, RESIZING};
use kompox_core::api::{KompoxDisk, quantity};
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};

use super::{DiskCtx, objects};
use crate::events::{self, Note};
use crate::status::Phase;
use crate::{Error, Result, idempotent};

/// Who holds the static PV.
#[derive(Debug, Clone, Copy)]
pub enum Holder<'a> {
    /// Nobody: the PV is `Available`.
    Nobody,
    /// A PVC that no longer exists (the PV is `Released` until its claim is cleared).
    Gone,
    /// This live PVC.
    Claim(&'a PersistentVolumeClaim),
}

/// The next growth step of a disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The volume has the size asked for and nothing is left over.
    Done,
    /// Bind a resize PVC to the `Available` PV.
    BindResizeClaim,
    /// Raise the holding PVC's request to `spec.size`.
    Raise,
    /// Lower the holding PVC's request to `spec.size`: retreating from a growth that failed.
    Lower,
    /// Grown: delete the resize PVC.
    RemoveResizeClaim,
    /// Under way (or waiting for the PV): what is awaited.
    Wait(String),
    /// It cannot grow: why, naming `spec.size`.
    Refused(String),
}

/// What to do for a disk whose `spec.size` is `want` (`want_bytes`) and whose PV `pv_name` has
/// `have` (`have_bytes`), held by `holder`; `resize_claim` is the resize PVC's name when it
/// exists (pure).
#[must_use]
pub fn plan(
    (want, want_bytes): (&str, u128),
    (have, have_bytes): (&str, u128),
    pv_name: &str,
    holder: Holder<'_>,
    resize_claim: Option<&str>,
) -> Plan {
    if want_bytes <= have_bytes {
        return match resize_claim {
            Some(_) => Plan::RemoveResizeClaim,
            None => Plan::Done,
        };
    }
    let pvc = match holder {
        Holder::Nobody => {
            return match resize_claim {
                Some(c) => Plan::Wait(format!(
                    "growing to {want}: waiting for PVC {c} to bind PersistentVolume {pv_name}"
                )),
                None => Plan::BindResizeClaim,
            };
        }
        Holder::Gone => {
            return Plan::Wait(format!(
                "growing to {want}: waiting for PersistentVolume {pv_name} to be released by its deleted PVC"
            ));
        }
        Holder::Claim(pvc) => pvc,
    };
    let key = format!("{}/{}", pvc.namespace().unwrap_or_default(), pvc.name_any());
    let spec = pvc.spec.as_ref();
    if spec
        .and_then(|s| s.storage_class_name.as_deref())
        .is_none_or(str::is_empty)
    {
        return Plan::Refused(format!(
            "spec.size: PVC {key} binds PersistentVolume {pv_name} without a StorageClass, and Kubernetes expands only PVCs whose class allows it; recreate the PVC with storageClassName {}",
            objects::STATIC_STORAGE_CLASS
        ));
    }
    let requested = claim_storage(spec.and_then(|s| s.resources.as_ref()?.requests.as_ref()));
    let bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    let problem = resize_problem(pvc);
    if requested > want_bytes && problem.is_some() {
        return Plan::Lower;
    }
    // Raising is always allowed, whatever an earlier attempt left on the claim.
    if bound && requested < want_bytes {
        return Plan::Raise;
    }
    if let Some((infeasible, msg)) = problem {
        // A refusal of another request (the resizer tried `allocatedResources`) says nothing
        // about the current one, which the resizer is about to try.
        let tried = claim_storage(
            pvc.status
                .as_ref()
                .and_then(|s| s.allocated_resources.as_ref()),
        );
        if infeasible && tried != 0 && tried != requested {
            return Plan::Wait(format!(
                "growing from {have} to {want} through PVC {key}: the driver refused another size before; trying {want}"
            ));
        }
        if infeasible {
            return Plan::Refused(format!(
                "spec.size: the CSI driver cannot expand the volume to {want}: {msg}"
            ));
        }
        return Plan::Wait(format!(
            "growing from {have} to {want} through PVC {key}: {msg}"
        ));
    }
    if !bound {
        return Plan::Wait(format!(
            "growing to {want}: waiting for PVC {key} to bind PersistentVolume {pv_name}"
        ));
    }
    Plan::Wait(format!(
        "growing from {have} to {want} through PVC {key} (CSI expansion under way)"
    ))
}

/// The `storage` entry of a claim's resource map in bytes (0 when absent or unparsable).
fn claim_storage(map: Option<&BTreeMap<String, Quantity>>) -> u128 {
    map.and_then(|m| m.get("storage"))
        .and_then(|q| quantity::parse_bytes(&q.0).ok())
        .unwrap_or(0)
}

/// A resize problem the PVC reports: `(infeasible, message)`. Infeasible when the resizer
/// marked the request `ControllerResizeInfeasible` or `NodeResizeInfeasible`; otherwise the
/// message of a `ControllerResizeError` / `NodeResizeError` condition (it is retried).
#[must_use]
pub fn resize_problem(pvc: &PersistentVolumeClaim) -> Option<(bool, String)> {
    let status = pvc.status.as_ref()?;
    let message = status
        .conditions
        .iter()
        .flatten()
        .find(|c| {
            c.status == "True"
                && matches!(
                    c.type_.as_str(),
                    "ControllerResizeError" | "NodeResizeError"
                )
        })
        .map(|c| c.message.clone().unwrap_or_else(|| c.type_.clone()));
    let infeasible = status
        .allocated_resource_statuses
        .as_ref()
        .and_then(|s| s.get("storage"))
        .is_some_and(|s| s.ends_with("Infeasible"));
    match (infeasible, message) {
        (true, m) => Some((
            true,
            m.unwrap_or_else(|| "the driver refused the size".into()),
        )),
        (false, Some(m)) => Some((false, m)),
        (false, None) => None,
    }
}

/// Takes the disk's growth one step further; `Some(phase)` while it is not done.
pub(super) async fn grow(
    disk: &KompoxDisk,
    dctx: &DiskCtx,
    pv: &PersistentVolume,
    holder: Holder<'_>,
) -> Result<Option<Phase>> {
    let ns = disk.namespace().unwrap_or_default();
    let name = disk.name_any();
    let pv_name = pv.name_any();
    let want = disk.spec.size.0.as_str();
    let have = objects::pv_capacity(pv).map_or("0", |q| q.0.as_str());
    let bytes = |q: &str, field: &str| {
        quantity::parse_bytes(q).map_err(|e| Error::MissingField(format!("{field}: {e}")))
    };
    let want_bytes = bytes(want, "spec.size")?;
    let have_bytes = bytes(have, &format!("PersistentVolume {pv_name} capacity"))?;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(dctx.ctx.client.clone(), &ns);
    let claim_name = objects::resize_pvc_name(&name);
    let resize_claim = pvcs
        .get_opt(&claim_name)
        .await
        .map_err(|e| {
            Error::kube(
                format!("reading PersistentVolumeClaim {ns}/{claim_name}"),
                e,
            )
        })?
        .map(|_| claim_name.as_str());
    let step = plan(
        (want, want_bytes),
        (have, have_bytes),
        &pv_name,
        holder,
        resize_claim,
    );
    let class = objects::pv_class(pv);
    let progressing = |msg: String| Ok(Some(Phase::Progressing(RESIZING, msg)));
    match step {
        Plan::Done => Ok(None),
        Plan::Refused(msg) => Ok(Some(Phase::Degraded(RESIZE_FAILED, msg))),
        Plan::Wait(msg) => progressing(msg),
        Plan::RemoveResizeClaim => {
            idempotent::delete(
                &pvcs,
                &claim_name,
                &format!("PersistentVolumeClaim {ns}/{claim_name}"),
            )
            .await?;
            progressing(format!("volume grown to {have}; removing PVC {claim_name}"))
        }
        Plan::BindResizeClaim => {
            if class.is_empty() {
                return Ok(Some(Phase::Degraded(
                    RESIZE_FAILED,
                    format!(
                        "spec.size: PersistentVolume {pv_name} has no StorageClass, so Kubernetes cannot expand it"
                    ),
                )));
            }
            let pvc = objects::resize_pvc(&ns, &name, &pv_name, class, have)?;
            let msg = format!(
                "growing volume {} from {have} to {want}: binding PVC {claim_name} to PersistentVolume {pv_name}",
                super::pv_handle(pv).unwrap_or_default()
            );
            let what = format!("PersistentVolumeClaim {ns}/{claim_name}");
            if idempotent::create(&pvcs, &pvc, &what).await? {
                events::publish(
                    &dctx.ctx.recorder,
                    disk,
                    Note::normal(RESIZING, "Resize", msg.clone()),
                )
                .await;
            }
            progressing(msg)
        }
        Plan::Raise | Plan::Lower => {
            let Holder::Claim(pvc) = holder else {
                return progressing(format!("growing from {have} to {want}"));
            };
            let (pns, pname) = (pvc.namespace().unwrap_or_default(), pvc.name_any());
            let patch = serde_json::json!({
                "metadata": {"resourceVersion": pvc.resource_version()},
                "spec": {"resources": {"requests": {"storage": want}}},
            });
            let (verb, why) = if step == Plan::Lower {
                (
                    "lowering",
                    ", whose request for the larger size that failed is lowered",
                )
            } else {
                ("raising", "")
            };
            Api::<PersistentVolumeClaim>::namespaced(dctx.ctx.client.clone(), &pns)
                .patch(&pname, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| {
                    Error::kube(
                        format!("{verb} the request of PersistentVolumeClaim {pns}/{pname}"),
                        e,
                    )
                })?;
            let msg = format!(
                "growing volume {} from {have} to {want} through PVC {pns}/{pname}{why}",
                super::pv_handle(pv).unwrap_or_default()
            );
            events::publish(
                &dctx.ctx.recorder,
                disk,
                Note::normal(RESIZING, "Resize", msg.clone()),
            )
            .await;
            progressing(msg)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pvc(
        class: &str,
        phase: &str,
        request: &str,
        status: serde_json::Value,
    ) -> PersistentVolumeClaim {
        let mut v = json!({
            "metadata": {"name": "c", "namespace": "ns"},
            "spec": {"storageClassName": class, "volumeName": "pv",
                     "resources": {"requests": {"storage": request}}},
            "status": status,
        });
        v["status"]["phase"] = json!(phase);
        match serde_json::from_value(v) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    const GI: u128 = 1 << 30;

    fn step(want: u128, have: u128, holder: Holder<'_>, resize: Option<&str>) -> Plan {
        plan(("W", want), ("H", have), "pv", holder, resize)
    }

    #[test]
    fn nothing_to_do_and_nothing_shrinks() {
        assert_eq!(step(GI, GI, Holder::Nobody, None), Plan::Done);
        assert_eq!(
            step(GI, GI, Holder::Nobody, Some("r")),
            Plan::RemoveResizeClaim
        );
        // A volume larger than spec.size stays as it is, bound or not.
        let bound = pvc("k4x-static", "Bound", "2Gi", json!({}));
        assert_eq!(step(GI, 2 * GI, Holder::Nobody, None), Plan::Done);
        assert_eq!(step(GI, 2 * GI, Holder::Claim(&bound), None), Plan::Done);
    }

    #[test]
    fn detached_binds_a_resize_claim_then_waits() {
        assert_eq!(
            step(2 * GI, GI, Holder::Nobody, None),
            Plan::BindResizeClaim
        );
        assert!(matches!(
            step(2 * GI, GI, Holder::Nobody, Some("r")),
            Plan::Wait(_)
        ));
        assert!(matches!(
            step(2 * GI, GI, Holder::Gone, None),
            Plan::Wait(_)
        ));
    }

    #[test]
    fn a_bound_claim_is_raised_once_and_failures_name_the_field() {
        let bound = pvc("k4x-static", "Bound", "1Gi", json!({}));
        assert_eq!(step(2 * GI, GI, Holder::Claim(&bound), None), Plan::Raise);
        let raised = pvc("k4x-static", "Bound", "2Gi", json!({}));
        assert!(matches!(
            step(2 * GI, GI, Holder::Claim(&raised), None),
            Plan::Wait(_)
        ));
        let pending = pvc("k4x-static", "Pending", "1Gi", json!({}));
        assert!(matches!(
            step(2 * GI, GI, Holder::Claim(&pending), None),
            Plan::Wait(_)
        ));
        let classless = pvc("", "Bound", "1Gi", json!({}));
        let Plan::Refused(m) = step(2 * GI, GI, Holder::Claim(&classless), None) else {
            panic!("a class-less PVC cannot grow");
        };
        assert!(m.starts_with("spec.size: PVC ns/c binds"), "{m}");
        let error = json!({"conditions": [{"type": "ControllerResizeError", "status": "True", "message": "quota"}]});
        let retried = pvc("k4x-static", "Bound", "2Gi", error.clone());
        let Plan::Wait(m) = step(2 * GI, GI, Holder::Claim(&retried), None) else {
            panic!("a transient error is waited on");
        };
        assert!(m.ends_with(": quota"), "{m}");
        // spec.size raised again meanwhile: the request follows at once.
        assert_eq!(step(3 * GI, GI, Holder::Claim(&retried), None), Plan::Raise);
        let mut infeasible = error;
        infeasible["allocatedResourceStatuses"] = json!({"storage": "ControllerResizeInfeasible"});
        let failed = pvc("k4x-static", "Bound", "2Gi", infeasible);
        let Plan::Refused(m) = step(2 * GI, GI, Holder::Claim(&failed), None) else {
            panic!("an infeasible resize is refused");
        };
        assert_eq!(
            m,
            "spec.size: the CSI driver cannot expand the volume to W: quota"
        );
    }

    #[test]
    fn retreat_lowers_the_failed_request_and_forgets_the_old_refusal() {
        let refused = json!({
            "conditions": [{"type": "ControllerResizeError", "status": "True", "message": "too big"}],
            "allocatedResources": {"storage": "2Ti"},
            "allocatedResourceStatuses": {"storage": "ControllerResizeInfeasible"},
        });
        // spec.size lowered from 2Ti to 2Gi: the claim still asks 2Ti and failed.
        let failed = pvc("k4x-static", "Bound", "2Ti", refused.clone());
        assert_eq!(step(2 * GI, GI, Holder::Claim(&failed), None), Plan::Lower);
        // Lowered: the refusal was for 2Ti, the resizer now tries 2Gi.
        let lowered = pvc("k4x-static", "Bound", "2Gi", refused);
        let Plan::Wait(m) = step(2 * GI, GI, Holder::Claim(&lowered), None) else {
            panic!("the old refusal must not count");
        };
        assert!(m.contains("refused another size before"), "{m}");
        // A larger request in progress without any problem (the user's own) is left alone.
        let bigger = pvc("k4x-static", "Bound", "3Gi", json!({}));
        assert!(matches!(
            step(2 * GI, GI, Holder::Claim(&bigger), None),
            Plan::Wait(_)
        ));
    }
}

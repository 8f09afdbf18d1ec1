//! What every controller reports the same way: where a reconcile ended ([`Phase`]), the
//! Ready/Progressing/Degraded conditions it maps to, the Event a transition deserves, and the
//! server-side apply of a status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kompox_core::api::condition::{self, Status, reasons, types};
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;

use kompox_core::api::{KompoxDiskStatus, KompoxSnapshotStatus};

use crate::events::{self, Note};
use crate::{Context, Error, FIELD_MANAGER, Result};
use kompox_cluster::is_not_found;

/// Where a reconcile ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Done: the message says what is in place.
    Ready(String),
    /// Waiting on something that resolves by itself (a CSI sidecar, a rollout, a disk being
    /// provisioned): reason and message.
    Progressing(&'static str, String),
    /// A user must change something (a spec field, a reference, a disk claimed by another
    /// app): reason and message naming the field.
    Degraded(&'static str, String),
    /// Held idle on the user's request (a KompoxApp's `spec.suspend`): nothing runs and
    /// nothing is waited for; not Ready, not Progressing, not Degraded.
    Suspended(String),
}

impl Phase {
    /// Whether this is [`Phase::Ready`].
    #[must_use]
    pub fn is_ready(&self) -> bool {
        matches!(self, Phase::Ready(_))
    }

    /// The Ready/Progressing/Degraded triple for this phase (pure).
    #[must_use]
    pub fn conditions(&self, generation: Option<i64>, at: &Time) -> [Condition; 3] {
        let c = |t: &str, s: Status, r: &str, m: &str| {
            condition::new(t, s, r, m, generation, at.clone())
        };
        match self {
            Phase::Ready(m) => [
                c(types::READY, Status::True, reasons::RECONCILED, m),
                c(types::PROGRESSING, Status::False, reasons::RECONCILED, ""),
                c(types::DEGRADED, Status::False, reasons::RECONCILED, ""),
            ],
            Phase::Progressing(r, m) => [
                c(types::READY, Status::False, r, m),
                c(types::PROGRESSING, Status::True, r, m),
                c(types::DEGRADED, Status::False, reasons::RECONCILED, ""),
            ],
            Phase::Degraded(r, m) => [
                c(types::READY, Status::False, r, m),
                c(types::PROGRESSING, Status::False, r, ""),
                c(types::DEGRADED, Status::True, r, m),
            ],
            Phase::Suspended(m) => [
                c(types::READY, Status::False, reasons::SUSPENDED, m),
                c(types::PROGRESSING, Status::False, reasons::SUSPENDED, ""),
                c(types::DEGRADED, Status::False, reasons::RECONCILED, ""),
            ],
        }
    }

    /// The Event moving from conditions `old` to this phase calls for (pure): `Ready` when
    /// the object becomes ready, a Warning with the reason when it becomes Degraded or its
    /// Degraded reason changes; nothing otherwise.
    #[must_use]
    pub fn transition(&self, old: &[Condition], action: &'static str) -> Option<Note> {
        let was = |t: &str| condition::find(old, t).map(|c| (c.status.as_str(), c.reason.as_str()));
        match self {
            Phase::Ready(m) if was(types::READY).map(|w| w.0) != Some("True") => Some(Note {
                type_: EventType::Normal,
                reason: "Ready".into(),
                action,
                note: m.clone(),
            }),
            Phase::Degraded(r, m) if was(types::DEGRADED) != Some(("True", r)) => Some(Note {
                type_: EventType::Warning,
                reason: (*r).to_owned(),
                action,
                note: m.clone(),
            }),
            Phase::Suspended(m) if was(types::READY) != Some(("False", reasons::SUSPENDED)) => {
                Some(Note {
                    type_: EventType::Normal,
                    reason: reasons::SUSPENDED.into(),
                    action,
                    note: m.clone(),
                })
            }
            _ => None,
        }
    }
}

/// A namespaced API object with a static type: what the controllers reconcile.
pub trait Namespaced:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
{
}

impl<K> Namespaced for K where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
{
}

/// A status with the standard conditions and `observedGeneration`.
pub trait Conditioned {
    /// The conditions.
    fn conditions(&self) -> &[Condition];
    /// Sets the conditions and the generation they describe.
    fn set_conditions(&mut self, conditions: Vec<Condition>, generation: Option<i64>);
}

macro_rules! conditioned {
    ($($t:ty),*) => {$(
        impl Conditioned for $t {
            fn conditions(&self) -> &[Condition] {
                &self.conditions
            }
            fn set_conditions(&mut self, conditions: Vec<Condition>, generation: Option<i64>) {
                self.conditions = conditions;
                self.observed_generation = generation;
            }
        }
    )*};
}
conditioned!(KompoxDiskStatus, KompoxSnapshotStatus);

/// Ends a reconcile of `obj` in `phase`: `status` gets the phase's conditions merged into
/// `old`'s (a transition time moves only on a flip) and `observedGeneration`; it is written
/// ([`apply_status`]) when it differs from `old`, and the transition's Event (action `action`)
/// is published. `Ok(false)` when the object is gone.
///
/// # Errors
///
/// [`Error::Kube`] when the status write fails.
pub async fn report<K, S>(
    ctx: &Context,
    obj: &K,
    old: &S,
    mut status: S,
    phase: &Phase,
    action: &'static str,
) -> Result<bool>
where
    K: Namespaced,
    S: Conditioned + PartialEq + Serialize,
{
    let generation = obj.meta().generation;
    status.set_conditions(
        condition::merge_all(old.conditions(), phase.conditions(generation, &now())),
        generation,
    );
    if status != *old && !apply_status(&ctx.client, obj, &status).await? {
        return Ok(false);
    }
    if let Some(note) = phase.transition(old.conditions(), action) {
        events::publish(&ctx.recorder, obj, note).await;
    }
    Ok(true)
}

/// The current time as a condition timestamp.
#[must_use]
pub fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// Writes `status` to `obj`'s status subresource by server-side apply (field manager
/// [`FIELD_MANAGER`], forced). `Ok(false)` when the object is gone meanwhile (a reconcile of a
/// stale cache entry): nothing left to report on.
///
/// # Errors
///
/// [`Error::Kube`] when the API refuses the write.
pub async fn apply_status<K>(
    client: &kube::Client,
    obj: &K,
    status: &impl Serialize,
) -> Result<bool>
where
    K: Namespaced,
{
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let kind = K::kind(&());
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": kind,
        "status": status,
    });
    match Api::<K>::namespaced(client.clone(), &ns)
        .patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(Error::kube(
            format!("writing status of {kind} {ns}/{name}"),
            e,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_map_to_conditions() {
        let t = now();
        let [ready, progressing, degraded] =
            Phase::Degraded(reasons::INVALID_SPEC, "x".into()).conditions(Some(3), &t);
        assert_eq!(
            (
                ready.status.as_str(),
                progressing.status.as_str(),
                degraded.status.as_str()
            ),
            ("False", "False", "True")
        );
        assert_eq!(degraded.reason, reasons::INVALID_SPEC);
        assert_eq!(degraded.observed_generation, Some(3));
        let [ready, ..] = Phase::Ready("ok".into()).conditions(None, &t);
        assert_eq!(ready.status, "True");
        let [ready, progressing, _] =
            Phase::Progressing(reasons::PROVISIONING, "w".into()).conditions(None, &t);
        assert_eq!(
            (ready.status.as_str(), progressing.status.as_str()),
            ("False", "True")
        );
    }

    #[test]
    fn events_on_transitions_only() {
        let t = now();
        let degraded = Phase::Degraded(reasons::INVALID_SPEC, "spec.size: x".into());
        let note = degraded.transition(&[], "Snapshot");
        assert_eq!(
            note.map(|n| (n.type_, n.reason, n.action)),
            Some((EventType::Warning, "InvalidSpec".into(), "Snapshot"))
        );
        let now_degraded = degraded.conditions(Some(1), &t);
        assert_eq!(degraded.transition(&now_degraded, "Snapshot"), None);
        let other = Phase::Degraded(reasons::DISK_IN_USE, "d".into());
        assert!(other.transition(&now_degraded, "Reconcile").is_some());
        let ready = Phase::Ready("ok".into());
        assert_eq!(
            ready
                .transition(&now_degraded, "Reconcile")
                .map(|n| n.reason),
            Some("Ready".into())
        );
        assert_eq!(
            ready.transition(&ready.conditions(None, &t), "Reconcile"),
            None
        );
        let waiting = Phase::Progressing(reasons::PROVISIONING, "w".into());
        assert_eq!(waiting.transition(&now_degraded, "Reconcile"), None);
        assert!(ready.is_ready() && !waiting.is_ready());
    }

    #[test]
    fn suspended_is_neither_ready_progressing_nor_degraded_and_announced_once() {
        let t = now();
        let held = Phase::Suspended("no Pod runs".into());
        let [ready, progressing, degraded] = held.conditions(Some(4), &t);
        assert_eq!(
            [&ready, &progressing, &degraded].map(|c| (c.status.as_str(), c.reason.as_str())),
            [
                ("False", reasons::SUSPENDED),
                ("False", reasons::SUSPENDED),
                ("False", reasons::RECONCILED)
            ]
        );
        assert!(!held.is_ready());
        let ready_before = Phase::Ready("ok".into()).conditions(Some(3), &t);
        assert_eq!(
            held.transition(&ready_before, "Reconcile")
                .map(|n| (n.type_, n.reason)),
            Some((EventType::Normal, "Suspended".into()))
        );
        assert_eq!(
            held.transition(&held.conditions(Some(4), &t), "Reconcile"),
            None
        );
    }
}

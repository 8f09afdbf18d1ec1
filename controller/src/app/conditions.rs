//! Conditions, readiness and Events of a KompoxApp: pure functions of where a reconcile ended.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kompox_core::api::KompoxAppStatus;
use kompox_core::api::condition;

/// Where an app reconcile ended: [`Outcome::Ready`] when applied and the Deployment is
/// available (and the Ingress admitted); [`Outcome::Progressing`] while applied or waiting on
/// something that resolves by itself (rollout, disk provisioning, an RWO switch);
/// [`Outcome::Degraded`] when a user must change something (compose, spec, a disk claimed by
/// another app) — nothing was applied in that reconcile. The storage controllers' vocabulary.
pub use crate::events::Note;
pub use crate::status::Phase as Outcome;

/// `status` with the outcome's conditions merged in (transition times move only on a flip),
/// `ready` and `observedGeneration` set.
#[must_use]
pub fn with_outcome(
    mut status: KompoxAppStatus,
    outcome: &Outcome,
    generation: Option<i64>,
    at: &Time,
) -> KompoxAppStatus {
    status.conditions =
        condition::merge_all(&status.conditions, outcome.conditions(generation, at));
    status.ready = outcome.is_ready();
    status.observed_generation = generation;
    status
}

/// Where a suspended app (`spec.suspend: true`) stands, from the Pods of the app that still
/// run (`running`, names): the outcome of the reconcile becomes [`Outcome::Suspended`] once
/// none runs, `Progressing` `Suspending` before. A Degraded outcome stays: the user must still
/// fix what it names (the Deployment is held at zero all the same).
#[must_use]
pub fn suspension_outcome(outcome: Outcome, running: &[String]) -> Outcome {
    match outcome {
        // Nothing runs that a missing disk or Secret could break (a migration's handoff
        // releases the source's disks this way): held, and resuming is what needs it.
        Outcome::Degraded(reason, message)
            if running.is_empty() && reason == condition::reasons::REFERENCE_NOT_FOUND =>
        {
            Outcome::Suspended(format!(
                "suspended (spec.suspend): scaled to zero, no Pod of the app runs; resuming needs: {message}"
            ))
        }
        Outcome::Degraded(..) => outcome,
        _ if running.is_empty() => Outcome::Suspended(
            "suspended (spec.suspend): scaled to zero, no Pod of the app runs".to_owned(),
        ),
        _ => Outcome::Progressing(condition::reasons::SUSPENDING, still_running(running)),
    }
}

fn still_running(running: &[String]) -> String {
    format!(
        "suspending (spec.suspend): scaling to zero, Pod {} still runs",
        running.join(", ")
    )
}

/// `status` with the `Suspended` condition set: `running` is `Some(pods still running)` when
/// `spec.suspend` is true — True once that is empty, False `Suspending` before — and `None`
/// when it is false: an app that was suspended gets False `Resumed`, one that never was keeps
/// no such condition.
#[must_use]
pub fn with_suspension(
    mut status: KompoxAppStatus,
    running: Option<&[String]>,
    generation: Option<i64>,
    at: &Time,
) -> KompoxAppStatus {
    use condition::{Status, reasons, types};
    let (s, reason, message) = match running {
        Some([]) => (
            Status::True,
            reasons::SUSPENDED,
            "scaled to zero: no Pod of the app runs".to_owned(),
        ),
        Some(pods) => (Status::False, reasons::SUSPENDING, still_running(pods)),
        None if condition::find(&status.conditions, types::SUSPENDED).is_some() => (
            Status::False,
            reasons::RESUMED,
            "spec.suspend is false: the app runs".to_owned(),
        ),
        None => return status,
    };
    let c = condition::new(
        types::SUSPENDED,
        s,
        reason,
        &message,
        generation,
        at.clone(),
    );
    status.conditions = condition::merge_all(&status.conditions, [c]);
    status
}

/// When an app's Ingress counts as admitted (`kompox-controller --ingress-admitted-by`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum IngressAdmission {
    /// Its ingress controller reported it: an address in `status.loadBalancer.ingress` (Traefik,
    /// as `kubectl kompox install` runs it, copies its Service's load-balancer address there).
    #[default]
    Controller,
    /// Once it exists: for a cluster whose ingress controller reports no status (`install
    /// --local` on the local test cluster, whose Traefik is a kwok Pod that never runs).
    Existence,
}

impl IngressAdmission {
    /// Whether `ingress` (as cached, `None` when absent) counts as admitted.
    #[must_use]
    pub fn admitted(self, ingress: Option<&k8s_openapi::api::networking::v1::Ingress>) -> bool {
        match (self, ingress) {
            (_, None) => false,
            (Self::Existence, Some(_)) => true,
            (Self::Controller, Some(i)) => i
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|l| l.ingress.as_ref())
                .is_some_and(|a| {
                    a.iter().any(|x| {
                        x.ip.as_deref()
                            .or(x.hostname.as_deref())
                            .is_some_and(|v| !v.is_empty())
                    })
                }),
        }
    }
}

/// Whether a Deployment has rolled out (shared with `kubectl kompox apply --wait`).
pub use kompox_cluster::deployment_ready;

/// The Events a change of outcome calls for: `Ready` when the app becomes ready, a Warning
/// with the reason when it becomes Degraded or its Degraded reason changes. Nothing when the
/// outcome did not change.
#[must_use]
pub fn transition_events(old: &[Condition], outcome: &Outcome) -> Vec<Note> {
    outcome.transition(old, "Reconcile").into_iter().collect()
}

/// Ready when the Deployment is available and the Ingress (if any) is admitted
/// ([`IngressAdmission`]: `ingress_admitted` is `Some(admitted)` when the app has one). `applied`: the Deployment's generation as last applied; a
/// (cached) Deployment older than that is not ready, whatever its status says.
pub(super) fn readiness(
    deployment: Option<&Deployment>,
    applied: Option<i64>,
    dep_name: Option<&str>,
    ingress: Option<&str>,
    ingress_admitted: Option<bool>,
) -> Outcome {
    let (dep_ready, dep_msg) = match deployment {
        Some(d) if d.metadata.generation < applied => (
            false,
            format!(
                "Deployment {}: generation {} not seen yet",
                d.metadata.name.as_deref().unwrap_or_default(),
                applied.unwrap_or_default()
            ),
        ),
        Some(d) => deployment_ready(d),
        None => (
            dep_name.is_none(),
            dep_name.map_or_else(
                || "no Deployment rendered".to_owned(),
                |n| format!("Deployment {n} not found"),
            ),
        ),
    };
    let ing_msg = match (ingress, ingress_admitted) {
        (Some(i), Some(true)) => Some(Ok(format!("Ingress {i} admitted"))),
        (Some(i), _) => Some(Err(format!(
            "Ingress {i} not admitted yet (its ingress controller has not reported an address)"
        ))),
        _ => None,
    };
    match (dep_ready, ing_msg) {
        (true, None) => Outcome::Ready(dep_msg),
        (true, Some(Ok(i))) => Outcome::Ready(format!("{dep_msg}; {i}")),
        (true, Some(Err(i))) => Outcome::Progressing(condition::reasons::APPLYING, i),
        (false, _) => Outcome::Progressing(condition::reasons::APPLYING, dep_msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};
    use k8s_openapi::jiff::Timestamp;
    use kompox_core::api::condition::{reasons, types};
    use kube::runtime::events::EventType;
    use rstest::rstest;

    fn t(s: i64) -> Time {
        Time(Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH))
    }

    #[test]
    fn same_outcome_keeps_status_equal_and_emits_nothing() {
        let ready = Outcome::Ready("Deployment web-app available".into());
        let s1 = with_outcome(KompoxAppStatus::default(), &ready, Some(3), &t(10));
        assert!(s1.ready);
        assert_eq!(s1.observed_generation, Some(3));
        let s2 = with_outcome(s1.clone(), &ready, Some(3), &t(20));
        assert_eq!(s1, s2, "a repeated outcome must not change the status");
        assert!(transition_events(&s1.conditions, &ready).is_empty());
    }

    #[test]
    fn events_on_transitions_only() {
        let degraded = Outcome::Degraded(reasons::INVALID_COMPOSE, "services.web.image: x".into());
        let fresh = transition_events(&[], &degraded);
        assert_eq!(fresh.len(), 1);
        assert_eq!(fresh[0].reason, "InvalidCompose");
        assert_eq!(fresh[0].type_, EventType::Warning);
        let s = with_outcome(KompoxAppStatus::default(), &degraded, Some(1), &t(1));
        assert!(!s.ready);
        assert!(condition::is_true(&s.conditions, types::DEGRADED));
        assert!(transition_events(&s.conditions, &degraded).is_empty());
        let other = Outcome::Degraded(reasons::DISK_IN_USE, "disk d is in use".into());
        assert_eq!(transition_events(&s.conditions, &other).len(), 1);
        let ready = Outcome::Ready("ok".into());
        let evs = transition_events(&s.conditions, &ready);
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].reason, "Ready");
        let rolling = Outcome::Progressing(condition::reasons::APPLYING, "rolling".into());
        assert!(transition_events(&s.conditions, &rolling).is_empty());
        let s = with_outcome(s, &rolling, Some(2), &t(2));
        assert!(condition::is_true(&s.conditions, types::PROGRESSING));
        assert!(!condition::is_true(&s.conditions, types::DEGRADED));
    }

    fn dep_ready(ready: bool) -> Deployment {
        let mut d = Deployment::default();
        d.metadata.name = Some("a-app".into());
        d.metadata.generation = Some(1);
        d.spec = Some(DeploymentSpec {
            replicas: Some(1),
            ..DeploymentSpec::default()
        });
        d.status = Some(DeploymentStatus {
            observed_generation: Some(1),
            replicas: Some(1),
            updated_replicas: Some(1),
            available_replicas: Some(i32::from(ready)),
            ..DeploymentStatus::default()
        });
        d
    }

    /// `deployment`: `Some(available)`, or `None` when it is not found.
    #[rstest]
    #[case::ready_no_ingress(Some(true), None, None, true)]
    #[case::ready_ingress_exists(Some(true), Some("a-app"), Some(true), true)]
    #[case::ready_ingress_missing(Some(true), Some("a-app"), Some(false), false)]
    #[case::rolling(Some(false), Some("a-app"), Some(true), false)]
    #[case::deployment_missing(None, None, None, false)]
    fn readiness_cases(
        #[case] deployment: Option<bool>,
        #[case] ing: Option<&str>,
        #[case] exists: Option<bool>,
        #[case] want: bool,
    ) {
        let d = deployment.map(dep_ready);
        let out = readiness(d.as_ref(), Some(1), Some("a-app"), ing, exists);
        assert_eq!(out.is_ready(), want, "{out:?}");
    }

    /// An Ingress whose status lists these load-balancer entries (`None`: no status at all).
    fn ingress(lb: Option<serde_json::Value>) -> k8s_openapi::api::networking::v1::Ingress {
        let mut i = serde_json::json!({"metadata": {"name": "a-app"}});
        if let Some(lb) = lb {
            i["status"] = serde_json::json!({"loadBalancer": {"ingress": lb}});
        }
        serde_json::from_value(i).unwrap_or_default()
    }

    #[rstest]
    #[case::absent_controller(IngressAdmission::Controller, None, false)]
    #[case::absent_existence(IngressAdmission::Existence, None, false)]
    #[case::no_status_existence(IngressAdmission::Existence, Some(None), true)]
    #[case::no_status_controller(IngressAdmission::Controller, Some(None), false)]
    #[case::empty_list(IngressAdmission::Controller, Some(Some(serde_json::json!([]))), false)]
    #[case::empty_ip(IngressAdmission::Controller, Some(Some(serde_json::json!([{"ip": ""}]))), false)]
    #[case::ip(IngressAdmission::Controller, Some(Some(serde_json::json!([{"ip": "10.85.0.1"}]))), true)]
    #[case::hostname(IngressAdmission::Controller, Some(Some(serde_json::json!([{"hostname": "lb.example"}]))), true)]
    fn ingress_admission_cases(
        #[case] mode: IngressAdmission,
        #[case] cached: Option<Option<serde_json::Value>>,
        #[case] want: bool,
    ) {
        let i = cached.map(ingress);
        assert_eq!(mode.admitted(i.as_ref()), want);
    }

    fn pods(names: &[&str]) -> Vec<String> {
        names.iter().map(|&n| n.to_owned()).collect()
    }

    #[rstest]
    #[case::ready_and_nothing_runs(Outcome::Ready("ok".into()), &[], "Suspended")]
    #[case::rolling_and_nothing_runs(Outcome::Progressing(reasons::APPLYING, "x".into()), &[], "Suspended")]
    #[case::a_pod_still_runs(Outcome::Ready("ok".into()), &["web-1"], "Suspending")]
    #[case::degraded_stays_degraded(Outcome::Degraded(reasons::INVALID_COMPOSE, "x".into()), &[], "InvalidCompose")]
    #[case::missing_reference_is_held(Outcome::Degraded(reasons::REFERENCE_NOT_FOUND, "KompoxDisk d not found".into()), &[], "Suspended")]
    fn suspension_outcome_cases(
        #[case] outcome: Outcome,
        #[case] running: &[&str],
        #[case] reason: &str,
    ) {
        let out = suspension_outcome(outcome, &pods(running));
        let [ready, ..] = out.conditions(None, &t(1));
        assert_eq!(ready.status, "False", "{out:?}");
        assert_eq!(ready.reason, reason, "{out:?}");
        if let [pod] = running {
            assert!(ready.message.contains(pod), "{}", ready.message);
        }
    }

    #[test]
    fn a_missing_reference_is_held_only_once_nothing_runs() {
        let missing = || Outcome::Degraded(reasons::REFERENCE_NOT_FOUND, "KompoxDisk d".into());
        let held = suspension_outcome(missing(), &[]);
        let [ready, ..] = held.conditions(None, &t(1));
        assert!(
            ready.message.contains("resuming needs: KompoxDisk d"),
            "{}",
            ready.message
        );
        let running = suspension_outcome(missing(), &pods(&["web-1"]));
        assert!(
            matches!(running, Outcome::Degraded(r, _) if r == reasons::REFERENCE_NOT_FOUND),
            "{running:?}"
        );
    }

    fn suspended_condition(s: &KompoxAppStatus) -> Option<(String, String)> {
        condition::find(&s.conditions, types::SUSPENDED)
            .map(|c| (c.status.clone(), c.reason.clone()))
    }

    #[test]
    fn suspended_condition_follows_the_pods_and_the_spec() {
        let pair = |s: &str, r: &str| Some((s.to_owned(), r.to_owned()));
        let never = with_suspension(KompoxAppStatus::default(), None, Some(1), &t(1));
        assert_eq!(
            suspended_condition(&never),
            None,
            "never suspended: no condition"
        );
        let running = pods(&["web-1"]);
        let suspending = with_suspension(never, Some(&running), Some(2), &t(2));
        assert_eq!(
            suspended_condition(&suspending),
            pair("False", "Suspending")
        );
        let held = with_suspension(suspending, Some(&[]), Some(2), &t(3));
        assert_eq!(suspended_condition(&held), pair("True", "Suspended"));
        let again = with_suspension(held.clone(), Some(&[]), Some(2), &t(4));
        assert_eq!(held, again, "a repeated observation changes nothing");
        let resumed = with_suspension(again, None, Some(3), &t(5));
        assert_eq!(suspended_condition(&resumed), pair("False", "Resumed"));
    }

    #[test]
    fn readiness_of_nothing_and_of_an_unseen_generation() {
        let ready = dep_ready(true);
        assert!(
            readiness(None, None, None, None, None).is_ready(),
            "nothing to run"
        );
        // The cache still holds the rolled-out generation 1 after generation 2 was applied.
        let out = readiness(Some(&ready), Some(2), Some("a-app"), None, None);
        assert!(!out.is_ready(), "{out:?}");
        assert!(
            format!("{out:?}").contains("Deployment a-app: generation 2 not seen yet"),
            "{out:?}"
        );
    }
}

//! Whether a Deployment has rolled out: the one definition the controller (a KompoxApp's
//! Ready condition) and `kubectl kompox apply --wait` share.

use k8s_openapi::api::apps::v1::Deployment;

/// Whether a Deployment has rolled out its current spec and is available, with a message
/// naming what is missing (as `kubectl rollout status` decides it).
///
/// Ready means: the Deployment controller observed the current generation, every desired
/// replica runs the current template (`updatedReplicas`), no old replica is left
/// (`replicas == updatedReplicas`), and all are available. A rollout past its progress
/// deadline is reported as not ready with that reason.
#[must_use]
pub fn deployment_ready(d: &Deployment) -> (bool, String) {
    let name = d.metadata.name.as_deref().unwrap_or_default();
    let generation = d.metadata.generation.unwrap_or(0);
    let Some(st) = d.status.as_ref() else {
        return (
            false,
            format!("Deployment {name}: waiting for the Deployment controller"),
        );
    };
    if st.observed_generation.unwrap_or(0) < generation {
        return (
            false,
            format!("Deployment {name}: generation {generation} not observed yet"),
        );
    }
    if let Some(c) = st.conditions.iter().flatten().find(|c| {
        c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    }) {
        return (
            false,
            format!(
                "Deployment {name}: progress deadline exceeded: {}",
                c.message.as_deref().unwrap_or_default()
            ),
        );
    }
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let updated = st.updated_replicas.unwrap_or(0);
    let total = st.replicas.unwrap_or(0);
    let available = st.available_replicas.unwrap_or(0);
    if want == 0 {
        return (false, format!("Deployment {name}: scaled to zero"));
    }
    if updated < want {
        return (
            false,
            format!("Deployment {name}: {updated} of {want} replicas updated"),
        );
    }
    if total > updated {
        return (
            false,
            format!(
                "Deployment {name}: {} old replicas pending termination",
                total - updated
            ),
        );
    }
    if available < want {
        return (
            false,
            format!("Deployment {name}: {available} of {want} replicas available"),
        );
    }
    (true, format!("Deployment {name} available"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentSpec, DeploymentStatus};
    use rstest::rstest;

    fn dep(generation: i64, want: i32, st: Option<(i64, i32, i32, i32)>) -> Deployment {
        let mut d = Deployment::default();
        d.metadata.name = Some("web-app".into());
        d.metadata.generation = Some(generation);
        d.spec = Some(DeploymentSpec {
            replicas: Some(want),
            ..DeploymentSpec::default()
        });
        d.status = st.map(|(obs, total, updated, available)| DeploymentStatus {
            observed_generation: Some(obs),
            replicas: Some(total),
            updated_replicas: Some(updated),
            available_replicas: Some(available),
            ..DeploymentStatus::default()
        });
        d
    }

    #[rstest]
    #[case::no_status(dep(1, 1, None), false, "waiting")]
    #[case::old_generation(dep(2, 1, Some((1, 1, 1, 1))), false, "not observed")]
    #[case::not_updated(dep(2, 1, Some((2, 1, 0, 1))), false, "0 of 1 replicas updated")]
    #[case::old_left(dep(2, 1, Some((2, 2, 1, 1))), false, "pending termination")]
    #[case::unavailable(dep(2, 1, Some((2, 1, 1, 0))), false, "0 of 1 replicas available")]
    #[case::scaled_down(dep(2, 0, Some((2, 0, 0, 0))), false, "scaled to zero")]
    #[case::ready(dep(2, 1, Some((2, 1, 1, 1))), true, "available")]
    fn deployment_readiness(#[case] d: Deployment, #[case] want: bool, #[case] msg: &str) {
        let (ready, m) = deployment_ready(&d);
        assert_eq!(ready, want, "{m}");
        assert!(m.contains(msg), "{m}");
    }

    #[test]
    fn a_stuck_rollout_says_so() {
        let mut stuck = dep(2, 1, Some((2, 1, 1, 0)));
        if let Some(s) = stuck.status.as_mut() {
            s.conditions = Some(vec![DeploymentCondition {
                type_: "Progressing".into(),
                status: "False".into(),
                reason: Some("ProgressDeadlineExceeded".into()),
                message: Some("too slow".into()),
                ..DeploymentCondition::default()
            }]);
        }
        let (ready, m) = deployment_ready(&stuck);
        assert!(!ready);
        assert!(m.contains("progress deadline exceeded: too slow"), "{m}");
    }
}

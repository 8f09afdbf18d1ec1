//! `kubectl kompox suspend APP` / `resume APP`: KompoxApp `spec.suspend`. Suspending scales
//! the app to zero and holds it there (its disks are then free to snapshot, detach or move);
//! the command waits until the controller reports `Suspended` (no Pod of the app runs).
//! Resuming waits until the app is Ready again.

use std::io::Write;

use clap::Args;
use kompox_core::api::KompoxApp;
use kompox_core::api::condition::{self, types};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::CliError;
use crate::kubectx::{self, FIELD_MANAGER};
use crate::output::line;
use crate::target::{AppRef, WaitArgs, connect};

/// Arguments of `suspend` and `resume`.
#[derive(Debug, Args)]
pub struct SuspendArgs {
    #[command(flatten)]
    pub app: AppRef,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// Whether the controller has acted on generation `generation` of `a` as `suspend` asks:
/// `Ok` when done, else the state to show.
fn settled(a: &KompoxApp, generation: i64, suspend: bool) -> Result<(), String> {
    let st = a.status.clone().unwrap_or_default();
    if st.observed_generation.unwrap_or_default() < generation {
        return Err(format!(
            "the controller has not seen generation {generation} yet"
        ));
    }
    let done = if suspend {
        condition::is_true(&st.conditions, types::SUSPENDED)
    } else {
        st.ready
    };
    if done {
        Ok(())
    } else {
        Err(kubectx::no_controller_yet(&st.conditions))
    }
}

/// Runs `suspend` (`suspend` true) or `resume`.
///
/// # Errors
///
/// [`CliError`] naming the app, the API server's reason, or a timeout with the last
/// conditions.
pub async fn run(args: &SuspendArgs, suspend: bool, out: &mut dyn Write) -> Result<(), CliError> {
    let (client, ns) = connect(&args.app).await?;
    let name = &args.app.app;
    let api: Api<KompoxApp> = Api::namespaced(client, &ns);
    let verb = if suspend { "suspend" } else { "resume" };
    let pp = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    let a = api
        .patch(
            name,
            &pp,
            &Patch::Merge(json!({"spec": {"suspend": suspend}})),
        )
        .await
        .map_err(|e| match e {
            e if kompox_cluster::is_not_found(&e) => {
                CliError::NotFound(format!("KompoxApp {ns}/{name}: not found"))
            }
            e => kubectx::kube_error(&format!("{verb} KompoxApp {ns}/{name}"), &e),
        })?;
    line(
        out,
        &format!("kompoxapp {ns}/{name} spec.suspend set to {suspend}"),
    )?;
    if !args.wait.wait {
        return Ok(());
    }
    let generation = a.metadata.generation.unwrap_or_default();
    let awaited = if suspend {
        format!("KompoxApp {ns}/{name} Suspended (no Pod running)")
    } else {
        format!("KompoxApp {ns}/{name} Ready")
    };
    kubectx::wait_for(
        api,
        name,
        &awaited,
        args.wait.timeout,
        Some(&mut *out),
        |a| {
            let Some(a) = a else {
                return Err(CliError::NotFound(format!(
                    "KompoxApp {ns}/{name} was deleted while waiting"
                )));
            };
            Ok(settled(a, generation, suspend))
        },
    )
    .await?;
    line(
        out,
        &if suspend {
            format!("kompoxapp {ns}/{name} is suspended: no Pod runs; its disks are free")
        } else {
            format!("kompoxapp {ns}/{name} is Ready")
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
    use rstest::rstest;

    fn app(observed: i64, ready: bool, suspended: Option<&str>) -> KompoxApp {
        let mut a = crate::project::default_app("web");
        a.status = Some(kompox_core::api::KompoxAppStatus {
            observed_generation: Some(observed),
            ready,
            conditions: suspended
                .map(|s| Condition {
                    type_: types::SUSPENDED.into(),
                    status: s.into(),
                    reason: "R".into(),
                    message: "m".into(),
                    last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                        k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
                    ),
                    observed_generation: None,
                })
                .into_iter()
                .collect(),
            ..Default::default()
        });
        a
    }

    #[rstest]
    #[case::suspended(app(2, false, Some("True")), true, true)]
    #[case::still_running(app(2, false, Some("False")), true, false)]
    #[case::old_generation(app(1, false, Some("True")), true, false)]
    #[case::resumed(app(2, true, None), false, true)]
    #[case::not_ready_yet(app(2, false, None), false, false)]
    fn settles(#[case] a: KompoxApp, #[case] suspend: bool, #[case] done: bool) {
        assert_eq!(settled(&a, 2, suspend).is_ok(), done);
    }
}

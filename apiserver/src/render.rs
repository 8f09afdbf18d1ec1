//! The one call into [`kompox_core::render`]: the controller renders the same inputs the same
//! way, so `rendered` shows exactly what it would apply.

use kompox_cluster::{ClusterInfo, OwnedInputs};
use kompox_core::hash::HashKey;
use kompox_core::render::{RenderError, render as core_render};

use crate::api_error::{ApiError, Cause};
use crate::service::RenderOutput;
use crate::state::State;

/// [`render`] off the async workers: on the blocking pool, at most
/// [`crate::state::RenderLimits::concurrency`] at once, answered 504 when it (waiting for a
/// slot included) takes longer than [`crate::state::RenderLimits::timeout`]. The parser's own
/// budgets bound the CPU one render can take; this bounds how long a request and the other
/// requests wait for it.
///
/// # Errors
///
/// As [`render`]; 504 past the budget; 500 if the render task failed.
pub async fn render_bounded(
    state: &State,
    inputs: OwnedInputs,
    cluster: ClusterInfo,
    app_name: &str,
) -> Result<RenderOutput, ApiError> {
    let limits = &state.render;
    let key = limits.key.clone();
    let name = app_name.to_owned();
    let slots = state.render_slots.clone();
    let work = async move {
        let permit = slots
            .acquire_owned()
            .await
            .map_err(|_| ApiError::unavailable("shutting down"))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            render(&inputs, &cluster, &key, &name)
        })
        .await
        .map_err(|e| ApiError::internal(format!("rendering failed: {e}")))?
    };
    match tokio::time::timeout(limits.timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(ApiError::timeout(format!(
            "rendering kompoxapp {app_name:?} took longer than {:?}",
            limits.timeout
        ))),
    }
}

/// Renders `inputs` for `cluster`, digests under the install's `key`.
///
/// # Errors
///
/// 422 Invalid with one cause per diagnostic, each naming its path, when the app cannot be
/// rendered (the message starts with the renderer's reason: `InvalidCompose`,
/// `ZoneMismatch`, `MissingReference`, `InvalidSpec`).
pub fn render(
    inputs: &OwnedInputs,
    cluster: &ClusterInfo,
    key: &HashKey,
    app_name: &str,
) -> Result<RenderOutput, ApiError> {
    match core_render(&inputs.input(cluster, key)) {
        Ok(r) => Ok(RenderOutput {
            objects: r.objects,
            warnings: r.warnings.iter().map(ToString::to_string).collect(),
            env_hash: r.env_hash,
            hash: r.hash,
        }),
        Err(e) => Err(render_error(app_name, &e)),
    }
}

/// The Status for a render failure.
#[must_use]
pub fn render_error(app_name: &str, e: &RenderError) -> ApiError {
    let causes = e
        .errors
        .iter()
        .map(|d| Cause {
            field: d.path.clone(),
            message: d.message.clone(),
        })
        .collect();
    let mut err = ApiError::invalid("kompoxapps", app_name, causes);
    err.message = format!("{} ({})", err.message, e.reason);
    err
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use kompox_core::api::{ComposeSource, KompoxApp, KompoxAppSpec, LocalKeyRef, ProviderType};
    use std::collections::BTreeMap;

    fn inputs(compose: &str) -> OwnedInputs {
        let spec = KompoxAppSpec {
            compose: ComposeSource {
                config_map_ref: LocalKeyRef {
                    name: "c".into(),
                    key: "compose.yml".into(),
                },
                env_from: Vec::new(),
            },
            ..KompoxAppSpec::default()
        };
        let mut app = KompoxApp::new("hello", spec);
        app.metadata.namespace = Some("ns".into());
        OwnedInputs {
            app,
            compose: compose.into(),
            disks: BTreeMap::new(),
            sources: Default::default(),
            interpolation: BTreeMap::new(),
        }
    }

    #[test]
    fn renders_and_names_the_field_of_an_invalid_compose() {
        let cluster = ClusterInfo {
            provider: ProviderType::Csi,
            region: None,
        };
        let ok = render(
            &inputs("services:\n  web:\n    image: nginx\n    ports: [\"8080:80\"]\n"),
            &cluster,
            &HashKey::new(&[5; 32]).unwrap(),
            "hello",
        )
        .unwrap();
        assert!(!ok.objects.is_empty());
        assert!(ok.hash.starts_with("hmac-sha256:"));
        let e = render(
            &inputs("services:\n  web:\n    image: nginx\n    ports: [x]\n"),
            &cluster,
            &HashKey::new(&[5; 32]).unwrap(),
            "hello",
        )
        .unwrap_err();
        assert_eq!(e.code.as_u16(), 422);
        assert_eq!(e.causes[0].field, "services.web.ports[0]");
        assert!(e.message.contains("services.web.ports[0]"), "{e}");
        assert!(e.message.ends_with("(InvalidCompose)"), "{e}");
    }
}

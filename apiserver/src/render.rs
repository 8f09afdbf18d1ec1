//! The one call into [`kompox_core::render`]: the controller renders the same inputs the same
//! way, so `rendered` shows exactly what it would apply.

use kompox_cluster::{ClusterInfo, OwnedInputs};
use kompox_core::render::{RenderError, render as core_render};

use crate::service::RenderOutput;
use crate::status::{ApiError, Cause};

/// Renders `inputs` for `cluster`.
///
/// # Errors
///
/// 422 Invalid with one cause per diagnostic, each naming its path, when the app cannot be
/// rendered (the message starts with the renderer's reason: `InvalidCompose`,
/// `ZoneMismatch`, `MissingReference`, `InvalidSpec`).
pub fn render(
    inputs: &OwnedInputs,
    cluster: &ClusterInfo,
    app_name: &str,
) -> Result<RenderOutput, ApiError> {
    match core_render(&inputs.input(cluster)) {
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
            "hello",
        )
        .unwrap();
        assert!(!ok.objects.is_empty());
        assert!(ok.hash.starts_with("sha256:"));
        let e = render(
            &inputs("services:\n  web:\n    image: nginx\n    ports: [x]\n"),
            &cluster,
            "hello",
        )
        .unwrap_err();
        assert_eq!(e.code.as_u16(), 422);
        assert_eq!(e.causes[0].field, "services.web.ports[0]");
        assert!(e.message.contains("services.web.ports[0]"), "{e}");
        assert!(e.message.ends_with("(InvalidCompose)"), "{e}");
    }
}

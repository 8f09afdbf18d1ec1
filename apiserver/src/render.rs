//! The one call into `kompox_core::render`: the controller renders the same inputs the same
//! way, so `rendered` shows exactly what it would apply.

use kompox_cluster::{ClusterInfo, OwnedInputs};

use crate::service::RenderOutput;
use crate::status::{ApiError, Cause};

/// Renders `inputs` for `cluster`.
///
/// # Errors
///
/// 422 Invalid with one cause per diagnostic (each naming its path) when the app cannot be
/// rendered; 503 while this build has no renderer.
pub fn render(
    inputs: &OwnedInputs,
    cluster: &ClusterInfo,
    app_name: &str,
) -> Result<RenderOutput, ApiError> {
    let _ = (inputs, cluster);
    let _: fn(&str, &str, Vec<Cause>) -> ApiError = ApiError::invalid;
    Err(ApiError::unavailable(format!(
        "kompoxapps {app_name:?}: the renderer (kompox_core::render) is not part of this build yet"
    )))
}

//! KompoxApp controller (issue 7). Placeholder: the app-controller work replaces this module.

use std::sync::Arc;

use crate::{Context, ReadyToken, Result};

/// Runs the KompoxApp controller until `ctx.shutdown` fires. The stub has nothing to watch, so
/// it reports ready at once and waits for shutdown.
///
/// # Errors
///
/// None yet.
pub async fn run(ctx: Arc<Context>, mut ready: ReadyToken) -> Result<()> {
    ready.ready();
    ctx.shutdown.clone().wait().await;
    Ok(())
}

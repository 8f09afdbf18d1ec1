//! KompoxSnapshot controller.

use std::sync::Arc;

use futures::StreamExt;
use kompox_core::api::KompoxSnapshot;
use kube::ResourceExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;

use crate::{Context, Error, ReadyToken, Result};

/// Name of this controller in metrics and logs.
pub const CONTROLLER: &str = "snapshot";

/// Runs the KompoxSnapshot controller until shutdown.
///
/// # Errors
///
/// None: reconcile errors are retried by the error policy.
pub async fn run(ctx: Arc<Context>, ready: ReadyToken) -> Result<()> {
    let disks = ctx.scope.api::<KompoxSnapshot>(ctx.client.clone());
    let controller = Controller::new(disks, watcher::Config::default().any_semantic())
        .graceful_shutdown_on(ctx.shutdown.clone().wait());
    let store = controller.store();
    crate::runtime::report_when_synced(store, ready);
    let shutdown = ctx.shutdown.clone();
    crate::runtime::drive(
        controller.run(reconcile, error_policy, ctx).for_each(|r| {
            crate::runtime::log_controller_result(CONTROLLER, r);
            futures::future::ready(())
        }),
        shutdown,
    )
    .await;
    Ok(())
}

async fn reconcile(snap: Arc<KompoxSnapshot>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let ns = snap.namespace().unwrap_or_default();
    if !ctx.scope.contains(&ns) {
        return Ok(Action::await_change());
    }
    Ok(Action::await_change())
}

fn error_policy(snap: Arc<KompoxSnapshot>, err: &Error, ctx: Arc<Context>) -> Action {
    let key = format!(
        "{}/{}",
        snap.namespace().unwrap_or_default(),
        snap.name_any()
    );
    ctx.error_action(CONTROLLER, &key, err)
}

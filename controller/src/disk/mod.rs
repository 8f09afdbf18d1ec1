//! KompoxDisk controller.

use std::sync::Arc;

use futures::StreamExt;
use kompox_core::api::KompoxDisk;
use kube::ResourceExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;

use crate::{Context, Error, ReadyToken, Result};

/// Name of this controller in metrics and logs.
pub const CONTROLLER: &str = "disk";

/// The static PV name of a disk: `k4x-<namespace>-<disk>`, shortened with a hash when longer
/// than 63 characters.
#[must_use]
pub fn pv_name(namespace: &str, disk: &str) -> String {
    kompox_core::naming::truncate_with_hash(&format!("k4x-{namespace}-{disk}"), 63)
}

/// Runs the KompoxDisk controller until shutdown.
///
/// # Errors
///
/// None: reconcile errors are retried by the error policy.
pub async fn run(ctx: Arc<Context>, ready: ReadyToken) -> Result<()> {
    let disks = ctx.scope.api::<KompoxDisk>(ctx.client.clone());
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

async fn reconcile(disk: Arc<KompoxDisk>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let ns = disk.namespace().unwrap_or_default();
    if !ctx.scope.contains(&ns) {
        return Ok(Action::await_change());
    }
    Ok(Action::await_change())
}

fn error_policy(disk: Arc<KompoxDisk>, err: &Error, ctx: Arc<Context>) -> Action {
    let key = format!(
        "{}/{}",
        disk.namespace().unwrap_or_default(),
        disk.name_any()
    );
    ctx.error_action(CONTROLLER, &key, err)
}

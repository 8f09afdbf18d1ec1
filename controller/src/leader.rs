//! Leader election on a `coordination.k8s.io/v1` Lease, through `kube-lease-manager`
//! (server-side apply on the Lease, expiry with a renew grace period, release on drop).
//!
//! One replica holds the Lease and runs the controllers; the others wait. A holder that
//! loses the Lease (it could not renew in time) stops its controllers and exits, so two
//! replicas never reconcile at once for longer than the grace period.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseCreateMode, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Result;
use crate::error::Error;

/// Lease settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Lease name (`kompox-controller`).
    pub name: String,
    /// Lease namespace (`k4x-system`); it must exist.
    pub namespace: String,
    /// This replica's identity (pod name or hostname plus a random suffix).
    pub identity: String,
    /// How long a lease stays valid after its last renewal, in seconds.
    pub duration_secs: u64,
    /// How long before expiry the holder renews, in seconds (also the tolerated clock skew).
    pub grace_secs: u64,
}

/// A held Lease. Dropping it releases the Lease (the background task clears the holder).
pub struct Leadership {
    state: watch::Receiver<bool>,
    task: JoinHandle<std::result::Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
    name: String,
}

/// Waits until this replica holds the Lease.
///
/// # Errors
///
/// [`Error::Lease`] when the Lease cannot be read or created (e.g. the namespace is missing
/// or RBAC forbids it).
pub async fn acquire(client: Client, cfg: &LeaseConfig) -> Result<Leadership> {
    let manager = LeaseManagerBuilder::new(client, cfg.name.clone())
        .with_namespace(cfg.namespace.clone())
        .with_identity(cfg.identity.clone())
        .with_duration(cfg.duration_secs)
        .with_grace(cfg.grace_secs)
        .with_create_mode(LeaseCreateMode::AutoCreate)
        .build()
        .await?;
    let (mut state, task) = manager.watch().await;
    tracing::info!(lease = %cfg.name, namespace = %cfg.namespace, identity = %cfg.identity, "waiting for the lease");
    if state.wait_for(|held| *held).await.is_err() {
        // The manager task ended (it only does on an error it could not retry).
        return match task.await {
            Ok(Err(e)) => Err(Error::Lease(e)),
            _ => Err(Error::LeaseLost(cfg.name.clone())),
        };
    }
    tracing::info!(lease = %cfg.name, identity = %cfg.identity, "acquired the lease");
    Ok(Leadership {
        state,
        task,
        name: cfg.name.clone(),
    })
}

impl Leadership {
    /// Completes when the Lease is lost (not renewed in time, or the manager task ended).
    pub async fn lost(&mut self) -> Error {
        let _ = self.state.wait_for(|held| !*held).await;
        Error::LeaseLost(self.name.clone())
    }

    /// Releases the Lease (clears the holder so a standby takes over at once), waiting at most
    /// `timeout`.
    pub async fn release(self, timeout: Duration) {
        let Leadership { state, task, name } = self;
        drop(state); // closing the channel makes the manager task release and return
        match tokio::time::timeout(timeout, task).await {
            Ok(Ok(Ok(_))) => tracing::info!(lease = %name, "released the lease"),
            Ok(Ok(Err(e))) => {
                tracing::warn!(lease = %name, error = %e, "releasing the lease failed")
            }
            Ok(Err(e)) => tracing::warn!(lease = %name, error = %e, "lease task failed"),
            Err(_) => tracing::warn!(lease = %name, "releasing the lease timed out"),
        }
    }
}

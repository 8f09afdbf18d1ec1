//! The Kompox controller: KompoxDisk and KompoxSnapshot lifecycle through CSI (issue 6) and
//! KompoxApp reconcile (issue 7, [`app`]), in one process.
//!
//! # Layout
//!
//! - [`run`] wires everything: Kubernetes client, `/healthz` `/readyz` `/metrics` ([`http`]),
//!   leader election ([`leader`]), the namespace scope, then every controller until shutdown.
//! - [`Context`] (`context.rs`) is what every reconcile gets: client, metrics, Event recorder,
//!   config, scope, shutdown signal, per-object retry backoff and the cluster facts; with the
//!   shared error policy and finalizer wrapper.
//! - [`events`]: the one way an Event is published; [`status`]: phases, conditions, status
//!   writes.
//! - [`disk`] and [`snapshot`]: the storage controllers; [`claim`]: the multi-attach guard the
//!   app controller uses; [`app`]: the KompoxApp controller.
//!
//! # Contracts between the storage and the app controller
//!
//! - **`KompoxDisk.status.attachedTo` is claimed and released by the app controller**, through
//!   [`claim::claim`] / [`claim::release`] (a status merge patch with the disk's
//!   `resourceVersion` as a precondition; a conflict re-reads and decides again with the pure
//!   [`claim::claim_decision`]). A refused claim ([`claim::Claim::HeldBy`]) makes the app
//!   `Degraded` reason `DiskInUse` naming the holder ([`claim::Claim::in_use_message`]), and
//!   nothing is bound. The disk controller never sets `attachedTo`; it only clears a claim whose
//!   KompoxApp no longer exists (same precondition).
//! - **The static PV** of a disk is `status.pvName` ([`disk::pv_name`]: `k4x-<ns>-<disk>`,
//!   shortened with a hash when long). It carries labels [`kompox_core::naming::DISK_LABEL`]
//!   `=<disk>` and [`kompox_core::naming::DISK_NAMESPACE_LABEL`] `=<ns>`, `storageClassName`
//!   [`disk::objects::STATIC_STORAGE_CLASS`] (recorded in `status.storageClassName`), `Retain`,
//!   RWO, the disk's capacity and, when the disk has a zone, node affinity on
//!   `topology.kubernetes.io/zone`. App PVCs bind to it by `spec.volumeName` with
//!   `storageClassName` = the disk's `status.storageClassName` (`""` when it has none: a PV
//!   from before), the same access mode and a request ≤ the disk size.
//! - **Growth**: `spec.size` may only grow (CRD transition rule). A PVC bound to the static PV
//!   may have its request raised to `spec.size` (the app controller renders exactly that; the
//!   disk controller raises it too) and CSI expansion grows the volume; a detached disk grows
//!   through a temporary PVC ([`disk::resize`]).
//! - **Release of a PV**: when an app PVC bound to the static PV is deleted, the PV goes
//!   `Released`; the disk controller clears the stale `claimRef` (only when that PVC is really
//!   gone) so the PV is `Available` for the next PVC. Rebinding during an RWO switch therefore
//!   works by deleting the old PVC and creating one with the new `volumeName`.
//! - A disk is usable by an app when its `Ready` condition is `True` and `status.pvName` is set.
//! - Status is written with server-side apply (field manager [`FIELD_MANAGER`]); conditions are
//!   merged with [`kompox_core::api::condition::merge`]; Events are published only on
//!   transitions ([`events::publish`]).
//!
//! # Scope
//!
//! `--namespace` restricts every namespaced watch to one namespace (tests run their own
//! controller in their own namespace); `--namespace-selector` watches cluster-wide and skips
//! objects whose namespace does not match ([`Scope::contains`]). A namespace that starts
//! matching later has its objects reconciled at once ([`runtime::reconcile_on_entry`]); one
//! that stops matching gets no further writes (see [`Scope`]).

#![warn(missing_docs)]

pub mod app;
pub mod claim;
mod context;
pub mod disk;
mod error;
pub mod events;
pub mod http;
pub mod idempotent;
pub mod labels;
pub mod leader;
pub mod metrics;
pub mod provider;
pub mod runtime;
pub mod snapshot;
pub mod status;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kompox_cluster::FactsCache;
use kompox_serve::Health;
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

pub use app::conditions::IngressAdmission;
pub use context::{Context, object_key};
pub use error::{Error, Result};
pub use kompox_core::well_known::REPORTING_CONTROLLER;
pub use leader::LeaseConfig;
pub use metrics::ControllerMetrics;
pub use runtime::{Backoff, NamespaceScope, Readiness, ReadyToken, Scope, Shutdown};

/// Field manager of every server-side apply the controller makes.
pub const FIELD_MANAGER: &str = "kompox-controller";

/// Everything [`run`] needs, parsed before any port is bound.
#[derive(Debug, Clone)]
pub struct Config {
    /// Kubeconfig file; `None` infers (in-cluster, then `$KUBECONFIG`/`~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
    /// Address of the HTTPS `/healthz` `/readyz` `/metrics` endpoint.
    pub metrics_listen: SocketAddr,
    /// The endpoint's serving certificate: files (re-read when they change), or PEM in
    /// memory ([`http::self_signed`] when no files are given).
    pub metrics_tls: kompox_serve::TlsSource,
    /// Which namespaces to watch.
    pub namespaces: NamespaceScope,
    /// Leader election; `None` runs the controllers at once (tests, single replica).
    pub leader_election: Option<LeaseConfig>,
    /// This replica's name for Events (`reportingInstance`).
    pub instance: String,
    /// The install's key for env hashes and rendered hashes (the webhook and the aggregated
    /// API server use the same).
    pub hash_key: kompox_core::hash::HashKey,
    /// Longest one render may take; an app whose render takes longer is Degraded.
    pub render_timeout: std::time::Duration,
    /// When an app's Ingress counts as admitted.
    pub ingress_admission: app::conditions::IngressAdmission,
    /// Connection limits and timeouts of the `/healthz` `/readyz` `/metrics` endpoint.
    pub serve: kompox_serve::ServeOptions,
}

/// Builds the Kubernetes client from `config.kubeconfig` (or inference), with
/// [`kompox_cluster::client`].
///
/// # Errors
///
/// [`Error::Kubeconfig`] when the file cannot be read or the client cannot be built.
pub async fn client(config: &Config) -> Result<Client> {
    kompox_cluster::client(config.kubeconfig.as_deref())
        .await
        .map_err(|e| match e {
            kompox_cluster::Error::Kubeconfig(msg) => Error::Kubeconfig(msg),
            other => Error::from(other),
        })
}

/// Runs the controller process until `shutdown` completes (clean exit) or the Lease is lost
/// (error, so the process exits and restarts as a standby).
///
/// # Errors
///
/// The metrics address cannot be bound, the client cannot be built, leader election fails or
/// is lost, or a controller fails to start.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let client = client(&config).await?;
    let metrics = ControllerMetrics::new();
    let health = Health::new();
    let tls = config
        .metrics_tls
        .load()
        .map_err(|e| Error::Config(format!("the metrics endpoint's certificate: {e}")))?;
    let listener = tokio::net::TcpListener::bind(config.metrics_listen)
        .await
        .map_err(|source| Error::Io {
            what: format!("binding {}", config.metrics_listen),
            source,
        })?;
    let (trigger, stop) = Shutdown::new();
    let trigger = Arc::new(trigger);
    {
        let trigger = trigger.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down");
            trigger.trigger();
        });
    }
    if let Some(reloader) = config.metrics_tls.reloader(&tls) {
        tokio::spawn(reloader.run(http::TLS_FILE_POLL_INTERVAL, stop.clone().wait()));
    }
    let http = tokio::spawn(http::serve(
        listener,
        tls,
        config.serve.clone(),
        health.clone(),
        metrics.registry().clone(),
        Arc::new(kompox_cluster::access::Reviewer::new(
            client.clone(),
            kompox_cluster::access::Ttls::default(),
        )),
        stop.clone().wait(),
    ));

    let readiness = Readiness::new(health.clone());
    let mut leadership = None;
    if let Some(lease) = &config.leader_election {
        // A standby is healthy and ready: it takes over when the holder goes.
        readiness.force(true);
        tokio::select! {
            l = leader::acquire(client.clone(), lease) => leadership = Some(l?),
            () = stop.clone().wait() => {
                let _ = http.await;
                return Ok(());
            }
        }
    }

    // The controllers run from here on: this replica leads (or elects no leader).
    metrics.leader(true);
    let scope = Scope::watch(&client, &config.namespaces, &metrics).await?;
    let ctx = Arc::new(Context {
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: REPORTING_CONTROLLER.into(),
                instance: Some(config.instance.clone()),
            },
        ),
        client,
        metrics,
        config: Arc::new(config),
        scope,
        shutdown: stop.clone(),
        backoff: Backoff::default(),
        facts: FactsCache::default(),
    });

    // Register every part before any can report, so /readyz waits for all caches.
    let disk_ready = readiness.register("disk");
    let snapshot_ready = readiness.register("snapshot");
    let app_ready = readiness.register("app");
    let controllers = async {
        let (d, s, a) = tokio::join!(
            disk::run(ctx.clone(), disk_ready),
            snapshot::run(ctx.clone(), snapshot_ready),
            app::run(ctx.clone(), app_ready),
        );
        d.and(s).and(a)
    };
    tokio::pin!(controllers);
    let result = match leadership.as_mut() {
        None => controllers.await,
        Some(l) => tokio::select! {
            r = &mut controllers => r,
            lost = l.lost() => {
                tracing::error!(error = %lost, "stopping the controllers");
                trigger.trigger();
                let _ = tokio::time::timeout(Duration::from_secs(10), &mut controllers).await;
                Err(lost)
            }
        },
    };
    trigger.trigger();
    readiness.force(false);
    ctx.metrics.leader(false);
    if let Some(l) = leadership {
        l.release(Duration::from_secs(5)).await;
    }
    let _ = http.await;
    result
}

//! The Kompox controller: KompoxDisk and KompoxSnapshot lifecycle through CSI (issue 6) and
//! KompoxApp reconcile (issue 7, [`app`]), in one process.
//!
//! # Layout
//!
//! - [`run`] wires everything: Kubernetes client, `/healthz` `/readyz` `/metrics` ([`http`]),
//!   leader election ([`leader`]), the namespace scope, then every controller until shutdown.
//! - [`Context`] is what every reconcile gets: client, metrics, Event recorder, config, scope,
//!   shutdown signal, per-object retry backoff and the cluster facts.
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
//!   transitions ([`runtime::publish`]).
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
pub mod disk;
mod error;
pub mod http;
pub mod labels;
pub mod leader;
pub mod metrics;
pub mod ops;
pub mod provider;
pub mod runtime;
pub mod snapshot;
pub mod status;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kompox_cluster::FactsCache;
use kompox_serve::Health;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::{Api, Client};

pub use error::{Error, Result};
pub use leader::LeaseConfig;
pub use metrics::ControllerMetrics;
pub use runtime::{Backoff, NamespaceScope, Readiness, ReadyToken, Scope, Shutdown};

/// Field manager of every server-side apply the controller makes.
pub const FIELD_MANAGER: &str = "kompox-controller";
/// `reportingController` of the controller's Events.
pub const REPORTING_CONTROLLER: &str = "kompox.dev/controller";
/// How long cluster facts are reused: a new CSI driver or node zone is seen within this time.
pub const FACTS_TTL: Duration = Duration::from_secs(30);

/// Everything [`run`] needs, parsed before any port is bound.
#[derive(Debug, Clone)]
pub struct Config {
    /// Kubeconfig file; `None` infers (in-cluster, then `$KUBECONFIG`/`~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
    /// Address of the plain-HTTP `/healthz` `/readyz` `/metrics` endpoint.
    pub metrics_listen: SocketAddr,
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
}

/// What every reconcile gets.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Reconcile metrics (and the `/metrics` registry).
    pub metrics: ControllerMetrics,
    /// Event recorder (reporting controller [`REPORTING_CONTROLLER`]).
    pub recorder: Recorder,
    /// The process configuration.
    pub config: Arc<Config>,
    /// The namespace scope.
    pub scope: Scope,
    /// Fires when the process stops; pass `ctx.shutdown.clone().wait()` to
    /// `Controller::graceful_shutdown_on`.
    pub shutdown: Shutdown,
    /// Per-object retry backoff for `error_policy`.
    pub backoff: Backoff,
    /// The cluster facts (provider detection, region, zones), read at most every
    /// [`FACTS_TTL`] for every controller.
    pub facts: FactsCache,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("config", &self.config)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// The `error_policy` of every controller: counts the error under `controller` and its
    /// category, logs it, and requeues `key` with exponential backoff (1 s … 5 min). Conflicts
    /// (someone else wrote first) retry at once after a short pause; [`Error::Waiting`] (a
    /// finalizer waiting on another component) requeues after its own delay, uncounted.
    pub fn error_action(&self, controller: &'static str, key: &str, err: &Error) -> Action {
        if let Some(retry) = err.waiting_retry() {
            tracing::debug!(controller, object = key, "{err}");
            return Action::requeue(retry);
        }
        self.metrics.error(controller, err.category());
        let delay = if err.is_conflict() {
            Duration::from_millis(200)
        } else {
            self.backoff.next(key)
        };
        tracing::warn!(controller, object = key, error = %err, retry_in = ?delay, "reconcile failed");
        Action::requeue(delay)
    }

    /// Forgets `key`'s failures after a successful reconcile.
    pub fn reconciled(&self, key: &str) {
        self.backoff.reset(key);
    }

    /// The reconcile of an object that carries `finalizer_name`: returns at once for an object
    /// outside the scope; runs `reconcile` inside kube-runtime's `finalizer()` (which adds the
    /// finalizer first, and removes it once the `Cleanup` reconcile returns `Ok`); an object
    /// gone while its finalizer was being removed is done; a success forgets the object's
    /// failures.
    ///
    /// # Errors
    ///
    /// [`Error::MissingField`] for an object without a namespace; [`Error::Finalizer`] with
    /// the reconcile's or the finalizer patch's error.
    pub async fn finalized<K, Fut>(
        &self,
        obj: Arc<K>,
        finalizer_name: &str,
        reconcile: impl FnOnce(kube::runtime::finalizer::Event<K>) -> Fut,
    ) -> Result<Action>
    where
        K: status::Namespaced + serde::Serialize,
        Fut: Future<Output = Result<Action>>,
    {
        let Some(ns) = obj.meta().namespace.clone() else {
            return Err(Error::MissingField(format!(
                "{} without namespace",
                K::kind(&())
            )));
        };
        if !self.scope.contains(&ns) {
            return Ok(Action::await_change());
        }
        let key = object_key(obj.as_ref());
        let api: Api<K> = Api::namespaced(self.client.clone(), &ns);
        let result = match kube::runtime::finalizer(&api, finalizer_name, obj, reconcile).await {
            Err(e) if error::finalizer_target_gone(&e) => Ok(Action::await_change()),
            r => r.map_err(|e| Error::Finalizer(Box::new(e))),
        };
        if result.is_ok() {
            self.reconciled(&key);
        }
        result
    }
}

/// `namespace/name` of an object: its key in logs and in the retry backoff.
pub fn object_key<K: kube::Resource>(obj: &K) -> String {
    let meta = obj.meta();
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

/// Builds the Kubernetes client from `config.kubeconfig` (or inference).
///
/// # Errors
///
/// [`Error::Kubeconfig`] when the file cannot be read or the client cannot be built.
pub async fn client(config: &Config) -> Result<Client> {
    let kc = match &config.kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| Error::Kubeconfig(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| Error::Kubeconfig(format!("{}: {e}", path.display())))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| Error::Kubeconfig(e.to_string()))?,
    };
    Client::try_from(kc).map_err(|e| Error::Kubeconfig(e.to_string()))
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
    let http = tokio::spawn(http::serve(
        listener,
        health.clone(),
        metrics.registry().clone(),
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
        facts: FactsCache::new(FACTS_TTL),
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
    if let Some(l) = leadership {
        l.release(Duration::from_secs(5)).await;
    }
    let _ = http.await;
    result
}

//! Kompox's mutating admission webhook.
//!
//! - Pods (CREATE) get a required node affinity to the zone of the KompoxDisks behind their
//!   PVCs, and the `kompox.dev/env-hash` annotation; Pods whose disks disagree are denied.
//! - Deployments and StatefulSets (CREATE, UPDATE) get the env hash on their pod template,
//!   so a changed Secret or ConfigMap rolls their Pods.
//!
//! Layout: [`mutate`] is the pure decision, [`handler`] the HTTP layer, [`review`] the
//! AdmissionReview wire format, [`state`] the reflector caches the decision reads, [`tls`]
//! the serving certificate kept in a Secret. [`run`] wires them to the shared HTTPS server
//! (`kompox_serve`); `main.rs` only parses flags.

#![warn(missing_docs)]

/// The `kind`, `group`, `version` and `plural` methods of a `kube::Resource` or reflector
/// `Lookup` impl (both `DynamicType = ()`) for a type that stands for the resource `$k`: a slim
/// view of a Pod or workload, a digested Secret or ConfigMap.
macro_rules! type_info_of {
    ($k:ty) => {
        fn kind(_: &()) -> std::borrow::Cow<'_, str> {
            <$k as kube::Resource>::kind(&())
        }
        fn group(_: &()) -> std::borrow::Cow<'_, str> {
            <$k as kube::Resource>::group(&())
        }
        fn version(_: &()) -> std::borrow::Cow<'_, str> {
            <$k as kube::Resource>::version(&())
        }
        fn plural(_: &()) -> std::borrow::Cow<'_, str> {
            <$k as kube::Resource>::plural(&())
        }
    };
}
pub(crate) use type_info_of;

pub mod handler;
pub mod mutate;
pub mod review;
pub mod state;
pub mod tls;

#[cfg(test)]
mod testing;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kompox_serve::{FileReloader, Health, Metrics, ReloadableTls, Server, Stop, TlsFiles};
use kube::Client;

pub use handler::Handler;
pub use state::ClusterState;

/// Prefix of the webhook's Prometheus metrics.
pub const METRICS_PREFIX: &str = "kompox_webhook";

/// How often certificate files are polled for changes.
const FILE_POLL_INTERVAL: Duration = Duration::from_secs(10);

/// Errors starting or running the webhook.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The serving certificate or key is unusable, or the listen address could not be bound
    /// (`listening on ADDR: …`).
    #[error(transparent)]
    Serve(#[from] kompox_serve::Error),
    /// The TLS Secret could not be read, created or updated.
    #[error(transparent)]
    TlsSecret(#[from] tls::Error),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where the serving certificate comes from.
#[derive(Debug, Clone)]
pub enum TlsSource {
    /// PEM files (`--tls-cert-file`, `--tls-private-key-file`), polled for changes.
    Files {
        /// Certificate chain, leaf first.
        cert: std::path::PathBuf,
        /// Private key.
        key: std::path::PathBuf,
    },
    /// A Secret (`--tls-secret`), watched for changes; optionally managed by the webhook.
    Secret(tls::SecretTls),
    /// PEM in memory (tests, benchmarks); never reloaded.
    Pem {
        /// Certificate chain, leaf first.
        cert: String,
        /// Private key.
        key: String,
    },
}

/// Everything the webhook needs, parsed before anything is bound.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to serve HTTPS on (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// The serving certificate.
    pub tls: TlsSource,
    /// Region to map zone numbers with when no Node has a `topology.kubernetes.io/region`
    /// label.
    pub region: Option<String>,
}

/// A bound, not yet serving webhook: [`Webhook::local_addr`] is known, so tests can register
/// it before [`Webhook::run`].
pub struct Webhook {
    server: Server,
    tls: ReloadableTls,
    config: Config,
    client: Client,
    health: Health,
    metrics: Metrics,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("listen", &self.server.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// Loads the serving certificate (creating it first when a managed Secret has none) and
    /// binds the listener.
    ///
    /// # Errors
    ///
    /// [`Error::Serve`] for an unusable certificate or an address that cannot be bound,
    /// [`Error::TlsSecret`] when the Secret cannot be read or written.
    pub async fn bind(config: Config, client: Client) -> Result<Webhook> {
        let tls = match &config.tls {
            TlsSource::Files { cert, key } => ReloadableTls::from_files(&TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: None,
            })?,
            TlsSource::Pem { cert, key } => {
                ReloadableTls::new(cert.as_bytes(), key.as_bytes(), None)?
            }
            TlsSource::Secret(s) => {
                let pair = tls::initial(&client, s).await?;
                ReloadableTls::new(pair.cert_pem.as_bytes(), pair.key_pem.as_bytes(), None)?
            }
        };
        let server = Server::bind(config.listen, tls.clone()).await?;
        Ok(Webhook {
            server,
            tls,
            config,
            client,
            health: Health::new(),
            metrics: Metrics::new(METRICS_PREFIX),
        })
    }

    /// The bound address.
    ///
    /// # Errors
    ///
    /// When the socket's address cannot be read (not expected for a bound listener).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.server.local_addr()
    }

    /// The health flags (`/readyz` turns ready once the caches are synced).
    #[must_use]
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// The serving TLS config (to observe rotation).
    #[must_use]
    pub fn tls(&self) -> ReloadableTls {
        self.tls.clone()
    }

    /// Starts the caches and the certificate reloader, serves until `shutdown` completes,
    /// then stops everything (in-flight requests get the serve loop's grace period).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let Webhook {
            server,
            tls,
            config,
            client,
            health,
            metrics,
        } = self;
        let stop = Stop::new();
        let (state, cache_task) =
            ClusterState::start(&client, config.region.clone(), stop.stopped());
        let ready = {
            let (state, health) = (state.clone(), health.clone());
            tokio::spawn(async move {
                match state.wait_synced().await {
                    Ok(()) => {
                        health.set_ready(true);
                        tracing::info!(?state, "caches synced; ready");
                    }
                    Err(e) => tracing::error!(error = %e, "a cache stopped before syncing"),
                }
            })
        };
        let reload = match &config.tls {
            TlsSource::Files { cert, key } => {
                let reloader = FileReloader::new(
                    tls.clone(),
                    TlsFiles {
                        cert: cert.clone(),
                        key: key.clone(),
                        client_ca: None,
                    },
                );
                Some(tokio::spawn(
                    reloader.run(FILE_POLL_INTERVAL, stop.stopped()),
                ))
            }
            TlsSource::Secret(s) => Some(tokio::spawn(tls::run(
                client.clone(),
                s.clone(),
                tls.clone(),
                stop.stopped(),
            ))),
            TlsSource::Pem { .. } => None,
        };

        let handler = Handler::new(Arc::new(state), health.clone(), metrics);
        server
            .serve(
                move |req, _conn| {
                    let handler = handler.clone();
                    async move { handler.handle(req).await }
                },
                stop.on_shutdown(shutdown, health),
            )
            .await;
        stop.fire();
        ready.abort();
        let _ = cache_task.await;
        if let Some(r) = reload {
            let _ = r.await;
        }
        tracing::info!("webhook stopped");
    }
}

/// Binds and runs the webhook until `shutdown` completes.
///
/// # Errors
///
/// As [`Webhook::bind`].
pub async fn run(
    config: Config,
    client: Client,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    Webhook::bind(config, client).await?.run(shutdown).await;
    Ok(())
}

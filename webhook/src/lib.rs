//! Kompox's mutating admission webhook.
//!
//! - Pods (CREATE) get a required node affinity to the zone of the KompoxDisks behind their
//!   PVCs, and the `kompox.dev/env-hash` annotation; Pods whose disks disagree are denied.
//! - Deployments and StatefulSets (CREATE, UPDATE) get the env hash on their pod template,
//!   so a changed Secret or ConfigMap rolls their Pods.
//!
//! Layout: [`mutate`] is the pure decision, [`handler`] the HTTP layer, [`review`] the
//! AdmissionReview wire format, [`state`] the reflector caches the decision reads, [`tls_secret`]
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
pub use kompox_cluster::tls_secret;

#[cfg(test)]
mod testing;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kompox_cluster::access::{Reviewer, Ttls};
use kompox_serve::{FileReloader, Health, Metrics, ReloadableTls, Server, Stop, TlsFiles};
use kube::Client;

pub use handler::Handler;
pub use state::ClusterState;

/// Route of the metrics (guarded by a TokenReview and a SubjectAccessReview).
pub const METRICS_PATH: &str = "/metrics";

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
    TlsSecret(#[from] tls_secret::Error),
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
    Secret(tls_secret::SecretTls),
    /// PEM in memory (tests, benchmarks); never reloaded.
    Pem {
        /// Certificate chain, leaf first.
        cert: String,
        /// Private key.
        key: String,
    },
}

/// Who may call `/mutate`: clients with a certificate from `ca_file` (and, when
/// `allowed_names` is not empty, one of those subject CNs). kube-apiserver presents one when its
/// AdmissionConfiguration names a `kubeConfigFile` with a client certificate for this webhook
/// (docs/security.md). Health endpoints stay open for probes; `/metrics` always needs a bearer
/// token whose user may `get /metrics` ([`Reviewer::metrics_access`]).
#[derive(Debug, Clone)]
pub struct ClientAuth {
    /// PEM bundle of the CA(s) the client certificate must chain to (polled with the serving
    /// files; read once for the other sources).
    pub ca_file: std::path::PathBuf,
    /// Accepted subject common names; empty accepts any certificate from the CA.
    pub allowed_names: Vec<String>,
}

impl ClientAuth {
    /// `None` when `conn` may call `path`, else the refusal.
    fn refuse(
        &self,
        path: &str,
        conn: &kompox_serve::ConnInfo,
    ) -> Option<http::Response<http_body_util::Full<bytes::Bytes>>> {
        if path != handler::MUTATE_PATH {
            return None;
        }
        if conn.peer_certificates.as_ref().is_none_or(Vec::is_empty) {
            return Some(kompox_serve::text(
                http::StatusCode::UNAUTHORIZED,
                "a client certificate is required\n",
            ));
        }
        if self.allowed_names.is_empty() {
            return None;
        }
        let cn = kompox_serve::peer_common_name(conn).unwrap_or_default();
        if self.allowed_names.contains(&cn) {
            None
        } else {
            Some(kompox_serve::text(
                http::StatusCode::FORBIDDEN,
                "this client certificate may not call the webhook\n",
            ))
        }
    }
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
    /// The install's key for env hashes (the controller and the renderer use the same).
    pub hash_key: kompox_core::hash::HashKey,
    /// Client-certificate authentication of the callers; `None` answers anyone who reaches
    /// the port (then only keyed, namespace-bound digests can be learnt).
    pub client_auth: Option<ClientAuth>,
    /// Connection limits and timeouts ([`kompox_serve::ServeOptions`]).
    pub serve: kompox_serve::ServeOptions,
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
        let client_ca_file = config.client_auth.as_ref().map(|a| a.ca_file.clone());
        let client_ca = match &client_ca_file {
            Some(path) => Some(
                std::fs::read(path).map_err(|source| kompox_serve::Error::Io {
                    path: path.clone(),
                    source,
                })?,
            ),
            None => None,
        };
        let tls = match &config.tls {
            TlsSource::Files { cert, key } => ReloadableTls::from_files(&TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: client_ca_file,
            })?,
            TlsSource::Pem { cert, key } => {
                ReloadableTls::new(cert.as_bytes(), key.as_bytes(), client_ca.as_deref())?
            }
            TlsSource::Secret(s) => {
                let pair = tls_secret::initial(&client, s).await?;
                ReloadableTls::new(
                    pair.cert_pem.as_bytes(),
                    pair.key_pem.as_bytes(),
                    client_ca.as_deref(),
                )?
            }
        };
        let metrics = Metrics::new(METRICS_PREFIX);
        metrics.watch_certificates(&tls);
        let server = Server::bind(config.listen, tls.clone())
            .await?
            .with_options(config.serve.clone());
        Ok(Webhook {
            server,
            tls,
            config,
            client,
            health: Health::new(),
            metrics,
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
                        client_ca: config.client_auth.as_ref().map(|a| a.ca_file.clone()),
                    },
                );
                Some(tokio::spawn(
                    reloader.run(FILE_POLL_INTERVAL, stop.stopped()),
                ))
            }
            TlsSource::Secret(s) => Some(tokio::spawn(tls_secret::run(
                client.clone(),
                s.clone(),
                tls.clone(),
                stop.stopped(),
            ))),
            TlsSource::Pem { .. } => None,
        };

        let handler = Handler::new(
            Arc::new(state),
            config.hash_key.clone(),
            health.clone(),
            metrics,
        );
        let auth = config.client_auth.clone().map(Arc::new);
        let reviewer = Arc::new(Reviewer::new(client.clone(), Ttls::default()));
        server
            .serve(
                move |req: http::Request<kompox_serve::RequestBody>, conn| {
                    let handler = handler.clone();
                    let auth = auth.clone();
                    let reviewer = reviewer.clone();
                    async move {
                        if let Some(refusal) = auth
                            .as_ref()
                            .and_then(|a| a.refuse(req.uri().path(), &conn))
                        {
                            return refusal;
                        }
                        if req.uri().path() == METRICS_PATH
                            && let Err(refusal) = reviewer.metrics_access(req.headers()).await
                        {
                            return kompox_serve::text(refusal.status(), &format!("{refusal}\n"));
                        }
                        handler.handle(req).await
                    }
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

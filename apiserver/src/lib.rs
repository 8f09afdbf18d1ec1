//! Kompox's aggregated API server: `subresources.k8s.kompox.dev/v1alpha1`, registered with
//! kube-apiserver by an APIService and reached only through it, with the caller's identity.
//!
//! | path (under `/apis/subresources.k8s.kompox.dev/v1alpha1/namespaces/NS/`) | verb | answers |
//! |---|---|---|
//! | `kompoxapps/NAME/rendered[?validate=true]` | GET | `v1 List` of the objects the controller would apply, Secrets redacted |
//! | `kompoxdisks/NAME/attach` body `{"app","volume"}` | POST | the updated KompoxApp |
//! | `kompoxdisks/NAME/detach` body `{"app","volume"}` | POST | the updated KompoxApp |
//!
//! Discovery (`/apis`, `/apis/<group>`, `/apis/<group>/<version>`), `/healthz`, `/livez` and
//! `/readyz` need no authentication; `/metrics` needs a bearer token (TokenReview) whose user
//! may `get /metrics` (SubjectAccessReview); everything else needs kube-apiserver's
//! front-proxy client certificate ([`auth`]) and passes a SubjectAccessReview. Errors are
//! `metav1.Status` objects ([`api_error`]).
//!
//! Layout: [`handlers`] (HTTP), [`service`] (decisions without I/O), [`auth`], [`state`],
//! [`discovery`], [`render`] (the single call into the core renderer).

#![warn(missing_docs)]

pub mod api_error;
pub mod auth;
pub mod discovery;
pub mod handlers;
pub mod ratelimit;
pub mod render;
pub mod service;
pub mod state;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub use kompox_serve::TlsSource;
use kompox_serve::{Health, Metrics, ReloadableTls, Stop};

use crate::auth::SarAuthorizer;
use crate::state::{RenderLimits, State};
use kompox_cluster::access::{Reviewer, Ttls};
use kompox_core::hash::HashKey;

/// Server configuration, fully parsed before anything is bound.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Serving certificate.
    pub tls: TlsSource,
    /// How often certificate files are checked for changes.
    pub cert_reload_interval: Duration,
    /// How long an allowed SubjectAccessReview verdict is reused.
    pub authz_allow_ttl: Duration,
    /// How long a denied SubjectAccessReview verdict is reused.
    pub authz_deny_ttl: Duration,
    /// Longest a request may take (then 504).
    pub request_timeout: Duration,
    /// Longest one render may take (then 504): rendering runs on the blocking pool, at most
    /// [`Config::render_concurrency`] at a time.
    pub render_timeout: Duration,
    /// Renders running at once; more wait for a slot within their time budget.
    pub render_concurrency: usize,
    /// The install's key for the env hash, the rendered hash and redacted values.
    pub hash_key: HashKey,
    /// Connection limits and timeouts ([`kompox_serve::ServeOptions`]).
    pub serve: kompox_serve::ServeOptions,
}

impl Config {
    /// Defaults for everything but the address, certificate and key: reload every 10 s,
    /// cache verdicts 10 s, 30 s per request, 5 s and 4 at a time for rendering.
    #[must_use]
    pub fn new(listen: SocketAddr, tls: TlsSource, hash_key: HashKey) -> Self {
        Self {
            listen,
            tls,
            cert_reload_interval: Duration::from_secs(10),
            authz_allow_ttl: Duration::from_secs(10),
            authz_deny_ttl: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            render_timeout: Duration::from_secs(5),
            render_concurrency: 4,
            hash_key,
            serve: kompox_serve::ServeOptions::default(),
        }
    }
}

/// Errors starting the server: the serving certificate could not be loaded
/// (`serving certificate: …`, `private key (/path): …`) or the address not bound
/// (`listening on ADDR: …`).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Error(#[from] kompox_serve::Error);

/// A bound, not yet serving, server.
pub struct Server {
    config: Config,
    server: kompox_serve::Server,
    tls: ReloadableTls,
}

impl Server {
    /// Loads the certificate and binds the address.
    ///
    /// # Errors
    ///
    /// [`Error`] naming the certificate input or the address.
    pub async fn bind(config: Config) -> Result<Self, Error> {
        let tls = config.tls.load()?;
        // The front-proxy CA comes from a ConfigMap after the socket is open: until then
        // kube-apiserver's certificate is refused rather than a connection without it pooled.
        tls.expect_client_ca()?;
        let server = kompox_serve::Server::bind(config.listen, tls.clone())
            .await?
            .with_options(config.serve.clone());
        Ok(Self {
            config,
            server,
            tls,
        })
    }

    /// The serving TLS config (a [`kompox_cluster::tls_secret::run`] swaps pairs into it).
    #[must_use]
    pub fn tls(&self) -> ReloadableTls {
        self.tls.clone()
    }

    /// The bound address.
    ///
    /// # Errors
    ///
    /// When the socket has no local address (not expected once bound).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.server.local_addr()
    }

    /// Serves until `shutdown` completes, reading the cluster with `client` (the server's own
    /// identity). Becomes ready once the front-proxy CA is loaded from
    /// `kube-system/extension-apiserver-authentication`.
    pub async fn run(self, client: kube::Client, shutdown: impl std::future::Future<Output = ()>) {
        let Self {
            config,
            server,
            tls,
        } = self;
        let health = Health::new();
        let metrics = Metrics::new("kompox_apiserver");
        metrics.watch_certificates(&tls);
        let request_header = Arc::new(RwLock::new(None));
        let authorizer = Arc::new(SarAuthorizer::new(Arc::new(Reviewer::new(
            client.clone(),
            Ttls {
                allow: config.authz_allow_ttl,
                deny: config.authz_deny_ttl,
                token: config.authz_allow_ttl,
            },
        ))));
        let state = Arc::new(State::new(
            client.clone(),
            authorizer,
            request_header.clone(),
            health.clone(),
            metrics,
            config.request_timeout,
            RenderLimits {
                key: config.hash_key.clone(),
                timeout: config.render_timeout,
                concurrency: config.render_concurrency,
            },
        ));

        let stop = Stop::new();
        let watch = tokio::spawn(auth::watch_request_header_config(
            client,
            tls.clone(),
            request_header,
            health.clone(),
            stop.stopped(),
        ));
        let reload = config
            .tls
            .reloader(&tls)
            .map(|r| tokio::spawn(r.run(config.cert_reload_interval, stop.stopped())));

        let handler = move |req, conn| handlers::handle(state.clone(), req, conn);
        server
            .serve(handler, stop.on_shutdown(shutdown, health))
            .await;
        let _ = watch.await;
        if let Some(r) = reload {
            let _ = r.await;
        }
    }
}

//! Shared serving for Kompox servers (the aggregated API server, the admission webhook and
//! the controller's probe/metrics endpoint): one rustls setup, certificate reload, accept
//! loop and graceful shutdown.
//!
//! - [`tls`]: PEM → rustls [`rustls::ServerConfig`], [`ReloadableTls`], [`FileReloader`],
//!   [`TlsSource`].
//! - [`server`]: [`Server`] (bind, then [`Server::serve`] over a [`Transport`]: TLS or plain
//!   HTTP), [`ConnInfo`] with the verified client chain, [`peer_common_name`]; [`Stop`], the
//!   signal that ends a server's background tasks at shutdown; [`shutdown_signal`].
//! - [`respond`]: [`read_body_limited`], [`json`], [`text`].
//! - [`health`] and [`metrics`]: `/healthz` `/livez` `/readyz`, `/metrics`.
//! - [`certs`]: CA and leaf certificate generation (rcgen).
//! - [`init_logging`]: the tracing setup of every binary (`RUST_LOG`, text or JSON lines) and
//!   [`otlp`]: OpenTelemetry traces when `OTEL_EXPORTER_OTLP_ENDPOINT` is set ([`Telemetry`]).
//!
//! A minimal server:
//!
//! ```no_run
//! # async fn run() -> kompox_serve::Result<()> {
//! use kompox_serve::{Health, ReloadableTls, Server, TlsFiles, text};
//! use http::StatusCode;
//!
//! let files = TlsFiles { cert: "tls.crt".into(), key: "tls.key".into(), client_ca: None };
//! let tls = ReloadableTls::from_files(&files)?;
//! let health = Health::new();
//! let server = Server::bind("0.0.0.0:8443".parse().expect("an address"), tls).await?;
//! health.set_ready(true);
//! let h = health.clone();
//! server.serve(move |req, _conn| {
//!     let h = h.clone();
//!     async move { h.respond(&req).unwrap_or_else(|| text(StatusCode::NOT_FOUND, "not found")) }
//! }, async { let _ = tokio::signal::ctrl_c().await; }).await;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod certs;
mod error;
pub mod health;
mod logging;
pub mod metrics;
pub mod otlp;
pub mod respond;
pub mod server;
mod stop;
pub mod tls;

pub use certs::{CertKeyPem, CertifiedCa, generate_ca, issue_client_cert, issue_serving_cert};
pub use error::{Error, Result};
pub use health::Health;
pub use logging::{Telemetry, init_logging, init_logging_to};
pub use metrics::Metrics;
pub use respond::{BodyError, BodyReadTimeout, BoxError, json, read_body_limited, text};
pub use server::{
    ConnInfo, RequestBody, ServeFlags, ServeOptions, Server, Transport, peer_common_name,
    peer_organizations,
};
pub use stop::{Stop, shutdown_signal};
pub use tls::{
    CertificateExpiry, FileReloader, ReloadableTls, TlsFiles, TlsSource, cert_fingerprint_sha256,
    server_config,
};

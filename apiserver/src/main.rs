//! `kompox-apiserver`: wiring only — flags, logging, the Kubernetes client, signals.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Parser;
use kompox_apiserver::{Config, Server, TlsSource};
use kompox_serve::TlsFiles;

/// Kompox's aggregated API server (subresources.k8s.kompox.dev/v1alpha1).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to serve HTTPS on.
    #[arg(long, env = "KOMPOX_APISERVER_LISTEN", default_value = "0.0.0.0:8443")]
    listen: SocketAddr,
    /// Serving certificate chain (PEM), re-read when it changes.
    #[arg(long, env = "KOMPOX_APISERVER_TLS_CERT_FILE")]
    tls_cert_file: PathBuf,
    /// Serving private key (PEM).
    #[arg(long, env = "KOMPOX_APISERVER_TLS_PRIVATE_KEY_FILE")]
    tls_private_key_file: PathBuf,
    /// Seconds between checks of the certificate files for a rotation.
    #[arg(long, default_value_t = 10)]
    tls_reload_interval_seconds: u64,
    /// Kubeconfig to use instead of the in-cluster service account.
    #[arg(long, env = "KOMPOX_APISERVER_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Seconds an allowed authorization verdict is cached.
    #[arg(long, default_value_t = 10)]
    authorization_allow_ttl_seconds: u64,
    /// Seconds a denied authorization verdict is cached.
    #[arg(long, default_value_t = 10)]
    authorization_deny_ttl_seconds: u64,
    /// The install's hash key (the file of the kompox-hash-key Secret): every digest in
    /// `rendered` is keyed with it, the same key as the controller's and the webhook's.
    #[arg(long, env = "KOMPOX_HASH_KEY_FILE", value_name = "FILE")]
    hash_key_file: PathBuf,
    /// Longest one render may take, in seconds (then 504).
    #[arg(long, default_value_t = 5)]
    render_timeout_seconds: u64,
    /// Renders running at once (on the blocking pool).
    #[arg(long, default_value_t = 4)]
    render_concurrency: usize,
    /// Exit when standard input reaches end of file (for tests: a dead parent leaves nothing).
    #[arg(long)]
    exit_on_stdin_close: bool,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
    #[command(flatten)]
    serve: kompox_serve::ServeFlags,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let telemetry = kompox_serve::init_logging("kompox-apiserver", "info", args.log_json);
    let _ = rustls::crypto::ring::default_provider().install_default();

    let path = &args.hash_key_file;
    let material = std::fs::read(path)
        .with_context(|| format!("reading --hash-key-file {}", path.display()))?;
    let hash_key = kompox_core::hash::HashKey::from_file_contents(&material)
        .with_context(|| format!("--hash-key-file {}", path.display()))?;
    let mut config = Config::new(
        args.listen,
        TlsSource::Files(TlsFiles {
            cert: args.tls_cert_file.clone(),
            key: args.tls_private_key_file.clone(),
            client_ca: None,
        }),
        hash_key,
    );
    config.render_timeout = Duration::from_secs(args.render_timeout_seconds.max(1));
    config.render_concurrency = args.render_concurrency.max(1);
    config.serve = args.serve.options();
    config.cert_reload_interval = Duration::from_secs(args.tls_reload_interval_seconds.max(1));
    config.authz_allow_ttl = Duration::from_secs(args.authorization_allow_ttl_seconds);
    config.authz_deny_ttl = Duration::from_secs(args.authorization_deny_ttl_seconds);

    let client = kompox_cluster::client(args.kubeconfig.as_deref()).await?;
    let server = Server::bind(config).await?;
    tracing::info!(addr = ?server.local_addr().ok(), "kompox-apiserver starting");
    server
        .run(
            client,
            kompox_serve::shutdown_signal(args.exit_on_stdin_close),
        )
        .await;
    telemetry.shutdown().await;
    Ok(())
}

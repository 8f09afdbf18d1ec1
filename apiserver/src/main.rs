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
    /// Exit when standard input reaches end of file (for tests: a dead parent leaves nothing).
    #[arg(long)]
    exit_on_stdin_close: bool,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
}

async fn client(kubeconfig: Option<&PathBuf>) -> Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("using {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("no in-cluster configuration or kubeconfig")?,
    };
    kube::Client::try_from(config).context("building the Kubernetes client")
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if args.log_json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let _ = rustls::crypto::ring::default_provider().install_default();

    let mut config = Config::new(
        args.listen,
        TlsSource::Files(TlsFiles {
            cert: args.tls_cert_file.clone(),
            key: args.tls_private_key_file.clone(),
            client_ca: None,
        }),
    );
    config.cert_reload_interval = Duration::from_secs(args.tls_reload_interval_seconds.max(1));
    config.authz_allow_ttl = Duration::from_secs(args.authorization_allow_ttl_seconds);
    config.authz_deny_ttl = Duration::from_secs(args.authorization_deny_ttl_seconds);

    let client = client(args.kubeconfig.as_ref()).await?;
    let server = Server::bind(config).await?;
    tracing::info!(addr = ?server.local_addr().ok(), "kompox-apiserver starting");
    server
        .run(
            client,
            kompox_serve::shutdown_signal(args.exit_on_stdin_close),
        )
        .await;
    Ok(())
}

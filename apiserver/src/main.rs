//! `kompox-apiserver`: wiring only — flags, logging, the Kubernetes client, signals.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use kompox_apiserver::{Config, Server, TlsSource};
use kompox_cluster::hash_key::Source as HashKeySource;
use kompox_cluster::tls_secret::{self, CaBundleTarget, Managed, SecretTls};
use kompox_serve::TlsFiles;

/// Kompox's aggregated API server (subresources.k8s.kompox.dev/v1alpha1).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to serve HTTPS on.
    #[arg(long, env = "KOMPOX_APISERVER_LISTEN", default_value = "0.0.0.0:8443")]
    listen: SocketAddr,
    /// Serving certificate chain (PEM), re-read when it changes. Needs
    /// --tls-private-key-file; or give --tls-secret.
    #[arg(
        long,
        env = "KOMPOX_APISERVER_TLS_CERT_FILE",
        requires = "tls_private_key_file",
        conflicts_with = "tls_secret"
    )]
    tls_cert_file: Option<PathBuf>,
    /// Serving private key (PEM).
    #[arg(
        long,
        env = "KOMPOX_APISERVER_TLS_PRIVATE_KEY_FILE",
        requires = "tls_cert_file"
    )]
    tls_private_key_file: Option<PathBuf>,
    /// Secret holding tls.crt/tls.key (and ca.crt/ca.key when managed), as NAMESPACE/NAME;
    /// watched, a new pair is served without a restart.
    #[arg(long, value_name = "NAMESPACE/NAME", value_parser = kompox_cluster::hash_key::parse_namespaced_name)]
    tls_secret: Option<(String, String)>,
    /// Create, renew and rotate the certificates in --tls-secret (the CA key stays in that
    /// Secret, read through the API: no Pod mounts it).
    #[arg(long, requires = "tls_secret")]
    tls_manage: bool,
    /// DNS names of a managed serving certificate (repeatable).
    #[arg(long = "tls-dns-name", requires = "tls_manage", default_values_t = [
        "kompox-apiserver.k4x-system.svc".to_owned(),
        "kompox-apiserver.k4x-system.svc.cluster.local".to_owned(),
    ])]
    tls_dns_names: Vec<String>,
    /// APIService whose caBundle is kept equal to the managed CA bundle.
    #[arg(long, requires = "tls_manage", value_name = "NAME")]
    apiservice: Option<String>,
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
    hash_key_file: Option<PathBuf>,
    /// The install's hash key as a Secret (NAMESPACE/NAME, key `key`), read through the API and
    /// created with fresh material when it does not exist yet (instead of --hash-key-file).
    #[arg(long, value_name = "NAMESPACE/NAME", conflicts_with = "hash_key_file")]
    hash_key_secret: Option<String>,
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

    let key_source = HashKeySource::from_flags(
        args.hash_key_file.as_deref(),
        args.hash_key_secret.as_deref(),
    )
    .map_err(anyhow::Error::msg)?;
    let client = kompox_cluster::client(args.kubeconfig.as_deref()).await?;
    let hash_key = key_source.load(&client).await?;
    let secret_tls = args.tls_secret.clone().map(|(namespace, name)| SecretTls {
        namespace,
        name,
        manage: args.tls_manage.then(|| Managed {
            dns_names: args.tls_dns_names.clone(),
            ca_bundle_target: args.apiservice.clone().map(CaBundleTarget::ApiService),
        }),
    });
    let tls = match (&args.tls_cert_file, &args.tls_private_key_file, &secret_tls) {
        (Some(cert), Some(key), None) => TlsSource::Files(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: None,
        }),
        (None, None, Some(s)) => {
            let pair = tls_secret::initial(&client, s).await?;
            TlsSource::Pem {
                cert: pair.cert_pem,
                key: pair.key_pem,
            }
        }
        _ => anyhow::bail!("give --tls-cert-file and --tls-private-key-file, or --tls-secret"),
    };
    let mut config = Config::new(args.listen, tls, hash_key);
    config.render_timeout = Duration::from_secs(args.render_timeout_seconds.max(1));
    config.render_concurrency = args.render_concurrency.max(1);
    config.serve = args.serve.options();
    config.cert_reload_interval = Duration::from_secs(args.tls_reload_interval_seconds.max(1));
    config.authz_allow_ttl = Duration::from_secs(args.authorization_allow_ttl_seconds);
    config.authz_deny_ttl = Duration::from_secs(args.authorization_deny_ttl_seconds);

    let server = Server::bind(config).await?;
    tracing::info!(addr = ?server.local_addr().ok(), "kompox-apiserver starting");
    // The Secret's pair is swapped in as it changes (and, managed, renewed before expiry and
    // its CA kept in the APIService's caBundle) for as long as the process runs.
    if let Some(s) = secret_tls {
        tokio::spawn(tls_secret::run(
            client.clone(),
            s,
            server.tls(),
            std::future::pending::<()>(),
        ));
    }
    server
        .run(
            client,
            kompox_serve::shutdown_signal(args.exit_on_stdin_close),
        )
        .await;
    telemetry.shutdown().await;
    Ok(())
}

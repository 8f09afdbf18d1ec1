//! `kompox-controller`: wiring only (flags → config → tracing → run). See the library docs.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Parser;
use kompox_controller::{Config, LeaseConfig, NamespaceScope};

/// Kompox controller: KompoxDisk/KompoxSnapshot lifecycle through CSI and KompoxApp reconcile.
#[derive(Debug, Parser)]
#[command(name = "kompox-controller", version)]
struct Args {
    /// Kubeconfig file (default: in-cluster config, then $KUBECONFIG or ~/.kube/config).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Address of the HTTPS /healthz /readyz /metrics endpoint.
    #[arg(long, default_value = "127.0.0.1:8080")]
    metrics_listen: SocketAddr,
    /// Serving certificate of the endpoint (PEM, leaf first); re-read when it changes. Without
    /// it the controller makes a certificate at start for
    /// kompox-controller-metrics.k4x-system.svc, localhost and 127.0.0.1, signed by a CA it
    /// does not keep.
    #[arg(long, requires = "tls_private_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// Private key of --tls-cert-file (PEM).
    #[arg(long, requires = "tls_cert_file")]
    tls_private_key_file: Option<PathBuf>,
    /// Watch only this namespace.
    #[arg(long, conflicts_with = "namespace_selector")]
    namespace: Option<String>,
    /// Watch only namespaces matching this label selector (e.g. `kompox.dev/tenant`); a
    /// namespace that starts matching is reconciled at once, one that stops gets no more writes.
    #[arg(long)]
    namespace_selector: Option<String>,
    /// Run the controllers only while holding the Lease.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    leader_elect: bool,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "kompox-controller")]
    lease_name: String,
    /// Namespace of the leader-election Lease (must exist).
    #[arg(long, default_value = "k4x-system")]
    lease_namespace: String,
    /// Seconds a Lease stays valid after its last renewal.
    #[arg(long, default_value_t = 15)]
    lease_duration_secs: u64,
    /// Seconds before expiry the holder renews.
    #[arg(long, default_value_t = 5)]
    lease_grace_secs: u64,
    /// The install's hash key (the file of the kompox-hash-key Secret): env hashes and rendered
    /// hashes are keyed with it, the same key as the webhook's and the aggregated API server's.
    #[arg(long, env = "KOMPOX_HASH_KEY_FILE", value_name = "FILE")]
    hash_key_file: Option<PathBuf>,
    /// The install's hash key as a Secret (NAMESPACE/NAME, key `key`), read through the API and
    /// created with fresh material when it does not exist yet (instead of --hash-key-file).
    #[arg(long, value_name = "NAMESPACE/NAME", conflicts_with = "hash_key_file")]
    hash_key_secret: Option<String>,
    /// Longest one render may take, in seconds (the app is then Degraded).
    #[arg(long, default_value_t = 10)]
    render_timeout_seconds: u64,
    /// When an app's Ingress counts as admitted: `controller` (its ingress controller wrote an
    /// address into its status) or `existence` (a cluster whose ingress controller reports no
    /// status).
    #[arg(long, value_enum, default_value_t = kompox_controller::IngressAdmission::Controller)]
    ingress_admitted_by: kompox_controller::IngressAdmission,
    /// Exit when standard input reaches end-of-file (a parent that dies takes us with it).
    #[arg(long)]
    exit_on_stdin_close: bool,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
    #[command(flatten)]
    serve: kompox_serve::ServeFlags,
}

fn instance_name() -> String {
    let base = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "kompox-controller".into());
    format!("{base}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}

fn config(args: &Args, hash_key: kompox_core::hash::HashKey) -> anyhow::Result<Config> {
    let namespaces = match (&args.namespace, &args.namespace_selector) {
        (Some(ns), _) => {
            kompox_core::naming::validate_dns1123_label(ns).context("--namespace")?;
            NamespaceScope::One(ns.clone())
        }
        (None, Some(sel)) if sel.trim().is_empty() => bail!("--namespace-selector: empty"),
        (None, Some(sel)) => NamespaceScope::Selector(sel.clone()),
        (None, None) => NamespaceScope::All,
    };
    if args.lease_grace_secs == 0 || args.lease_grace_secs >= args.lease_duration_secs {
        bail!("--lease-grace-secs must be > 0 and < --lease-duration-secs");
    }
    let metrics_tls = match (&args.tls_cert_file, &args.tls_private_key_file) {
        (Some(cert), Some(key)) => kompox_serve::TlsSource::Files(kompox_serve::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: None,
        }),
        _ => kompox_controller::http::self_signed()
            .context("making the metrics endpoint's certificate")?,
    };
    let instance = instance_name();
    Ok(Config {
        hash_key,
        render_timeout: std::time::Duration::from_secs(args.render_timeout_seconds.max(1)),
        ingress_admission: args.ingress_admitted_by,
        kubeconfig: args
            .kubeconfig
            .clone()
            .filter(|p| !p.as_os_str().is_empty()),
        metrics_listen: args.metrics_listen,
        metrics_tls,
        serve: args.serve.options(),
        namespaces,
        leader_election: args.leader_elect.then(|| LeaseConfig {
            name: args.lease_name.clone(),
            namespace: args.lease_namespace.clone(),
            identity: instance.clone(),
            duration_secs: args.lease_duration_secs,
            grace_secs: args.lease_grace_secs,
        }),
        instance,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let key_source = kompox_cluster::hash_key::Source::from_flags(
        args.hash_key_file.as_deref(),
        args.hash_key_secret.as_deref(),
    )
    .map_err(anyhow::Error::msg)?;
    let telemetry = kompox_serve::init_logging(
        "kompox-controller",
        "info,kube_lease_manager=warn",
        args.log_json,
    );
    let kubeconfig = args
        .kubeconfig
        .as_deref()
        .filter(|p| !p.as_os_str().is_empty());
    let hash_key = key_source
        .load(&kompox_cluster::client(kubeconfig).await?)
        .await?;
    let config = config(&args, hash_key)?;
    tracing::info!(scope = ?config.namespaces, leader_elect = config.leader_election.is_some(), instance = %config.instance, "starting kompox-controller");
    let result = kompox_controller::run(
        config,
        kompox_serve::shutdown_signal(args.exit_on_stdin_close),
    )
    .await;
    telemetry.shutdown().await;
    Ok(result?)
}

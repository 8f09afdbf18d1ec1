//! `kompox-webhook`: flags → [`kompox_webhook::Config`] → [`kompox_webhook::run`].

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use kompox_cluster::hash_key::Source as HashKeySource;
use kompox_webhook::tls_secret::{CaBundleTarget, Managed, SecretTls};
use kompox_webhook::{Config, TlsSource};

/// Kompox's mutating admission webhook: Pods follow their disks' zone; an env-hash annotation
/// rolls workloads when the Secrets/ConfigMaps they use change.
#[derive(Debug, Parser)]
#[command(name = "kompox-webhook", version)]
struct Args {
    /// Address to serve HTTPS on.
    #[arg(long, default_value = "0.0.0.0:8443", env = "KOMPOX_WEBHOOK_LISTEN")]
    listen: SocketAddr,

    /// Serving certificate (PEM, leaf first); polled for changes. Needs --tls-private-key-file.
    #[arg(long, requires = "tls_private_key_file", conflicts_with = "tls_secret")]
    tls_cert_file: Option<PathBuf>,

    /// Private key of --tls-cert-file (PEM).
    #[arg(long, requires = "tls_cert_file")]
    tls_private_key_file: Option<PathBuf>,

    /// Secret holding tls.crt/tls.key (and ca.crt/ca.key when managed), as NAMESPACE/NAME;
    /// watched for changes.
    #[arg(long, value_name = "NAMESPACE/NAME", value_parser = kompox_cluster::hash_key::parse_namespaced_name)]
    tls_secret: Option<(String, String)>,

    /// Create, renew and rotate the certificates in --tls-secret.
    #[arg(long, requires = "tls_secret")]
    tls_manage: bool,

    /// DNS names of a managed serving certificate (repeatable).
    #[arg(long = "tls-dns-name", requires = "tls_manage", default_values_t = [
        "kompox-webhook.k4x-system.svc".to_owned(),
        "kompox-webhook.k4x-system.svc.cluster.local".to_owned(),
    ])]
    tls_dns_names: Vec<String>,

    /// MutatingWebhookConfiguration whose caBundle is kept equal to the managed CA bundle.
    #[arg(long, requires = "tls_manage")]
    webhook_configuration: Option<String>,

    /// Kubeconfig file; default: in-cluster config or $KUBECONFIG.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,

    /// The install's hash key (the file of the kompox-hash-key Secret): env hashes are keyed
    /// with it, the same key as the controller's and the aggregated API server's.
    #[arg(long, env = "KOMPOX_HASH_KEY_FILE", value_name = "FILE")]
    hash_key_file: Option<PathBuf>,

    /// The install's hash key as a Secret (NAMESPACE/NAME, key `key`), read through the API and
    /// created with fresh material when it does not exist yet (instead of --hash-key-file).
    #[arg(long, value_name = "NAMESPACE/NAME", conflicts_with = "hash_key_file")]
    hash_key_secret: Option<String>,

    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,

    /// CA bundle (PEM) of the client certificate kube-apiserver presents (its AdmissionConfiguration
    /// `kubeConfigFile`): `/mutate` then answers only such clients (401/403 otherwise).
    #[arg(long, env = "KOMPOX_WEBHOOK_CLIENT_CA_FILE", value_name = "FILE")]
    client_ca_file: Option<PathBuf>,

    /// Subject CN the client certificate must have (repeatable; default: any from the CA).
    #[arg(
        long = "client-allowed-name",
        requires = "client_ca_file",
        value_name = "CN"
    )]
    client_allowed_names: Vec<String>,

    /// Region for mapping zone numbers when no Node has a topology.kubernetes.io/region label.
    #[arg(long)]
    region: Option<String>,

    /// Exit when stdin reaches EOF (tests: a killed parent leaves no server behind).
    #[arg(long)]
    exit_on_stdin_close: bool,
    #[command(flatten)]
    serve: kompox_serve::ServeFlags,
}

impl Args {
    fn config(&self, hash_key: kompox_core::hash::HashKey) -> Result<Config, clap::Error> {
        let tls = match (
            &self.tls_cert_file,
            &self.tls_private_key_file,
            &self.tls_secret,
        ) {
            (Some(cert), Some(key), None) => TlsSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            (None, None, Some((namespace, name))) => TlsSource::Secret(SecretTls {
                namespace: namespace.clone(),
                name: name.clone(),
                manage: self.tls_manage.then(|| Managed {
                    dns_names: self.tls_dns_names.clone(),
                    ca_bundle_target: self
                        .webhook_configuration
                        .clone()
                        .map(CaBundleTarget::MutatingWebhookConfiguration),
                }),
            }),
            _ => {
                return Err(clap::Error::raw(
                    clap::error::ErrorKind::MissingRequiredArgument,
                    "give --tls-cert-file and --tls-private-key-file, or --tls-secret\n",
                ));
            }
        };
        Ok(Config {
            listen: self.listen,
            tls,
            region: self.region.clone().filter(|r| !r.is_empty()),
            hash_key,
            serve: self.serve.options(),
            client_auth: self
                .client_ca_file
                .clone()
                .filter(|p| !p.as_os_str().is_empty())
                .map(|ca_file| kompox_webhook::ClientAuth {
                    ca_file,
                    allowed_names: self.client_allowed_names.clone(),
                }),
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Parse everything before binding anything; a bad combination is a usage error.
    let key_source = HashKeySource::from_flags(
        args.hash_key_file.as_deref(),
        args.hash_key_secret.as_deref(),
    )
    .unwrap_or_else(|e| {
        clap::Error::raw(clap::error::ErrorKind::MissingRequiredArgument, e + "\n").exit()
    });
    let telemetry = kompox_serve::init_logging("kompox-webhook", "info", args.log_json);
    let client = kompox_cluster::client(args.kubeconfig.as_deref()).await?;
    let config = args
        .config(key_source.load(&client).await?)
        .unwrap_or_else(|e| e.exit());
    let shutdown = kompox_serve::shutdown_signal(args.exit_on_stdin_close);
    let result = kompox_webhook::run(config, client, shutdown).await;
    telemetry.shutdown().await;
    Ok(result?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Result<Config, String> {
        let args = Args::try_parse_from(
            ["kompox-webhook", "--hash-key-file=unused"]
                .into_iter()
                .chain(args.iter().copied()),
        )
        .map_err(|e| e.to_string())?;
        let key = kompox_core::hash::HashKey::new(&[1; 32]).map_err(|e| e.to_string())?;
        args.config(key).map_err(|e| e.to_string())
    }

    #[test]
    fn tls_from_files() {
        let c = config(&[
            "--tls-cert-file=c.pem",
            "--tls-private-key-file=k.pem",
            "--region=japaneast",
        ])
        .unwrap();
        assert!(
            matches!(c.tls, TlsSource::Files { ref cert, .. } if cert == &PathBuf::from("c.pem"))
        );
        assert_eq!(c.region.as_deref(), Some("japaneast"));
        assert_eq!(c.listen, "0.0.0.0:8443".parse::<SocketAddr>().unwrap());
    }

    #[test]
    fn tls_from_a_managed_secret() {
        let c = config(&[
            "--tls-secret=k4x-system/kompox-webhook-tls",
            "--tls-manage",
            "--webhook-configuration=kompox-webhook",
            "--listen=127.0.0.1:9443",
        ])
        .unwrap();
        let TlsSource::Secret(s) = c.tls else {
            panic!("not a Secret source")
        };
        assert_eq!(
            (s.namespace.as_str(), s.name.as_str()),
            ("k4x-system", "kompox-webhook-tls")
        );
        let m = s.manage.unwrap();
        assert_eq!(m.dns_names[0], "kompox-webhook.k4x-system.svc");
        assert_eq!(
            m.ca_bundle_target,
            Some(CaBundleTarget::MutatingWebhookConfiguration(
                "kompox-webhook".into()
            ))
        );
        let unmanaged = config(&["--tls-secret=ns/name"]).unwrap();
        assert!(matches!(
            unmanaged.tls,
            TlsSource::Secret(SecretTls { manage: None, .. })
        ));
    }

    #[test]
    fn usage_errors() {
        for (args, needle) in [
            (
                &[][..],
                "--tls-cert-file and --tls-private-key-file, or --tls-secret",
            ),
            (&["--tls-cert-file=c.pem"][..], "--tls-private-key-file"),
            (&["--tls-secret=noslash"][..], "want NAMESPACE/NAME"),
            (&["--tls-secret=a/b/c"][..], "want NAMESPACE/NAME"),
            (&["--tls-manage"][..], "--tls-secret"),
            (
                &[
                    "--tls-secret=a/b",
                    "--tls-cert-file=c",
                    "--tls-private-key-file=k",
                ][..],
                "cannot be used with",
            ),
            (
                &["--listen=nope", "--tls-secret=a/b"][..],
                "invalid socket address",
            ),
        ] {
            let err = config(args).err().unwrap_or_default();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }
}

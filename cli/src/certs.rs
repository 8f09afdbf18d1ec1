//! The CA and serving certificate `install` puts in the cluster (and `--local` on disk).

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;

use crate::CliError;

/// The CA and serving certificates in [`crate::install::CERTS_SECRET`].
#[derive(Debug, Clone)]
pub struct Certs {
    pub ca_crt: String,
    pub ca_key: String,
    pub tls_crt: String,
    pub tls_key: String,
}

/// DNS names on the serving certificate (the apiserver's Service name is what the aggregator
/// verifies; the webhook's for the in-cluster Service; `localhost` for `--local`).
pub const DNS_NAMES: [&str; 5] = [
    "kompox-apiserver.k4x-system.svc",
    "kompox-apiserver.k4x-system.svc.cluster.local",
    "kompox-webhook.k4x-system.svc",
    "kompox-webhook.k4x-system.svc.cluster.local",
    "localhost",
];

impl Certs {
    /// A fresh CA and serving certificate.
    ///
    /// # Errors
    ///
    /// [`CliError::Io`] when generation fails.
    pub fn generate() -> Result<Self, CliError> {
        let ca = kompox_serve::certs::generate_ca("kompox-ca")
            .map_err(|e| CliError::Io(format!("generating the CA: {e}")))?;
        let ip = [std::net::IpAddr::from([127, 0, 0, 1])];
        let leaf = kompox_serve::certs::issue_serving_cert(&ca, &DNS_NAMES, &ip, 825)
            .map_err(|e| CliError::Io(format!("issuing the serving certificate: {e}")))?;
        Ok(Certs {
            ca_crt: ca.cert_pem().to_owned(),
            ca_key: ca.key_pem().to_owned(),
            tls_crt: leaf.cert_pem,
            tls_key: leaf.key_pem,
        })
    }

    /// The certificates a Secret written by [`crate::install`] holds (`None` when a key is
    /// missing or empty).
    #[must_use]
    pub fn from_secret(s: &Secret) -> Option<Self> {
        let data = s.data.as_ref()?;
        let get = |k: &str| {
            data.get(k)
                .and_then(|b| String::from_utf8(b.0.clone()).ok())
                .filter(|v| !v.is_empty())
        };
        Some(Certs {
            ca_crt: get("ca.crt")?,
            ca_key: get("ca.key")?,
            tls_crt: get("tls.crt")?,
            tls_key: get("tls.key")?,
        })
    }

    /// The CA certificate, base64 (a `caBundle`).
    #[must_use]
    pub fn ca_bundle(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.ca_crt)
    }
}

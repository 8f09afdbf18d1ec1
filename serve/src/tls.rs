//! TLS material: PEM loading, the rustls [`ServerConfig`], and reload without restart.
//!
//! - [`server_config`] builds a config from PEM bytes (serving chain, private key, optional
//!   client-CA bundle).
//! - [`ReloadableTls`] holds the current config; [`ReloadableTls::update`] swaps in a new
//!   one atomically. Each new connection uses the config current at accept time; connections
//!   already established keep theirs.
//! - [`FileReloader`] polls `--tls-cert-file`-style files and feeds changes to
//!   [`ReloadableTls::update`]. Callers that watch a Secret or ConfigMap instead call
//!   `update` themselves with the new PEM.
//!
//! Client certificates are optional at the TLS layer: with a client-CA bundle, a client that
//! presents no certificate is accepted (its [`ConnInfo::peer_certificates`] is `None`), and a
//! client that presents one must chain to the bundle or the handshake fails.
//!
//! A server that learns its client CA only after it starts listening (the aggregated API
//! server reads it from a ConfigMap) calls [`ReloadableTls::expect_client_ca`] first. Until
//! the bundle arrives it still asks for client certificates and refuses every one it is
//! shown, so a client holding a certificate (kube-apiserver's front-proxy identity) never gets
//! a connection without it that it would keep in its pool and reuse after the CA is loaded;
//! clients without one (health probes) are served as before.
//!
//! [`ConnInfo::peer_certificates`]: crate::ConnInfo::peer_certificates

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use sha2::{Digest as _, Sha256};
use tokio_rustls::TlsAcceptor;

use crate::error::{Error, Result};

/// ALPN protocols offered by the server, in preference order.
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

const SERVING_CERT: &str = "serving certificate";
const PRIVATE_KEY: &str = "private key";
const CLIENT_CA: &str = "client CA bundle";

/// The crypto provider used for every config built here: ring, passed explicitly (no
/// process-global default is installed, so building twice can never fail).
#[must_use]
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Names for the three inputs, so errors can say which one (and which file) was bad.
struct Labels {
    cert: String,
    key: String,
    client_ca: String,
}

impl Labels {
    fn in_memory() -> Self {
        Self {
            cert: SERVING_CERT.to_owned(),
            key: PRIVATE_KEY.to_owned(),
            client_ca: CLIENT_CA.to_owned(),
        }
    }
}

/// Builds a rustls server config from PEM bytes.
///
/// - `cert_pem`: the serving certificate chain, leaf first (`CERTIFICATE` blocks).
/// - `key_pem`: its private key (`PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`).
/// - `client_ca_pem`: optional bundle of CA certificates that client certificates must chain
///   to. Client certificates stay optional (see the module docs). `None` means client
///   certificates are not requested.
///
/// ALPN offers `h2` and `http/1.1`; the ring provider is used.
///
/// # Errors
///
/// [`Error::Pem`] naming `serving certificate`, `private key` or `client CA bundle` when that
/// input does not parse or is empty; [`Error::Tls`] when the key does not match the leaf
/// certificate or a CA certificate is unusable; [`Error::ClientVerifier`] when the client
/// verifier cannot be built.
pub fn server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: Option<&[u8]>,
) -> Result<Arc<ServerConfig>> {
    let client_ca = ClientCa::from_pem(client_ca_pem);
    build(cert_pem, key_pem, &client_ca, &Labels::in_memory()).map(|b| b.config)
}

/// A config together with what is worth logging about it.
struct Built {
    config: Arc<ServerConfig>,
    leaf_fingerprint: String,
    leaf_not_after: Option<String>,
}

fn pem_reason(err: &pem::Error) -> String {
    // Our own wording: the upstream Display of some variants echoes input lines.
    match err {
        pem::Error::MissingSectionEnd { .. } => "malformed PEM: a section has no END line".into(),
        pem::Error::IllegalSectionStart { .. } => "malformed PEM: bad BEGIN line".into(),
        pem::Error::Base64Decode(_) => "malformed PEM: invalid base64".into(),
        pem::Error::Io(e) => format!("reading PEM: {e}"),
        pem::Error::NoItemsFound => "no PEM items found".into(),
        pem::Error::SectionTooLarge => "malformed PEM: section too large".into(),
        _ => "malformed PEM".into(),
    }
}

/// Parses every `CERTIFICATE` block; errors if there is none.
pub(crate) fn parse_certs(pem_bytes: &[u8], input: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem_bytes)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Pem {
            input: input.to_owned(),
            reason: pem_reason(&e),
        })?;
    if certs.is_empty() {
        return Err(Error::Pem {
            input: input.to_owned(),
            reason: "no CERTIFICATE block found".into(),
        });
    }
    Ok(certs)
}

fn parse_key(pem_bytes: &[u8], input: &str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem_bytes).map_err(|e| Error::Pem {
        input: input.to_owned(),
        reason: match e {
            pem::Error::NoItemsFound => {
                "no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block found".into()
            }
            other => pem_reason(&other),
        },
    })
}

fn build(cert_pem: &[u8], key_pem: &[u8], client_ca: &ClientCa, labels: &Labels) -> Result<Built> {
    let chain = parse_certs(cert_pem, &labels.cert)?;
    let key = parse_key(key_pem, &labels.key)?;

    let leaf = &chain[0];
    let leaf_not_after = match x509_parser::parse_x509_certificate(leaf) {
        Ok((_, x509)) => Some(x509.validity().not_after.to_string()),
        Err(_) => {
            return Err(Error::Pem {
                input: labels.cert.clone(),
                reason: "first CERTIFICATE block is not a valid X.509 certificate".into(),
            });
        }
    };
    let leaf_fingerprint = cert_fingerprint_sha256(leaf);

    let provider = crypto_provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|source| Error::Tls {
            input: "protocol versions".into(),
            source,
        })?;

    let builder = match client_ca {
        ClientCa::None => builder.with_no_client_auth(),
        ClientCa::Pending => builder.with_client_cert_verifier(Arc::new(PendingClientCa {
            algorithms: provider.signature_verification_algorithms,
        })),
        ClientCa::Bundle(ca_pem) => {
            let mut roots = RootCertStore::empty();
            for (i, ca) in parse_certs(ca_pem, &labels.client_ca)?
                .into_iter()
                .enumerate()
            {
                roots.add(ca).map_err(|source| Error::Tls {
                    input: format!("{} certificate[{i}]", labels.client_ca),
                    source,
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()?;
            builder.with_client_cert_verifier(verifier)
        }
    };

    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|source| match source {
            rustls::Error::InconsistentKeys(_) => Error::Pem {
                input: labels.key.clone(),
                reason: format!("does not match the public key of the {}", labels.cert),
            },
            rustls::Error::InvalidCertificate(_) => Error::Tls {
                input: labels.cert.clone(),
                source,
            },
            source => Error::Tls {
                input: labels.key.clone(),
                source,
            },
        })?;
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();

    Ok(Built {
        config: Arc::new(config),
        leaf_fingerprint,
        leaf_not_after,
    })
}

/// Client-certificate policy while a server waits for its client-CA bundle: certificates are
/// asked for (not required) and every one presented fails as from an unknown issuer, so the
/// client's handshake fails and it connects again later, when the bundle is there.
#[derive(Debug)]
struct PendingClientCa {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for PendingClientCa {
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        tracing::debug!("client certificate refused: the client CA is not loaded yet");
        Err(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Hex SHA-256 fingerprint of a DER certificate (lowercase, no separators), as shown by
/// `openssl x509 -fingerprint -sha256` without the colons.
#[must_use]
pub fn cert_fingerprint_sha256(cert: &CertificateDer<'_>) -> String {
    hex::encode(Sha256::digest(cert.as_ref()))
}

/// The PEM inputs a config was built from. Kept so one part (serving pair or client CA)
/// can be replaced while the other stays. `Debug` is not derived: it holds the key.
#[derive(Clone, PartialEq, Eq)]
struct Inputs {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: ClientCa,
}

/// Whether client certificates are asked for, and what they must chain to.
#[derive(Clone, PartialEq, Eq)]
enum ClientCa {
    /// Not asked for.
    None,
    /// Asked for, none accepted yet: the bundle is still to come.
    Pending,
    /// Asked for; must chain to this PEM bundle.
    Bundle(Vec<u8>),
}

impl ClientCa {
    fn from_pem(pem: Option<&[u8]>) -> Self {
        pem.map_or(Self::None, |b| Self::Bundle(b.to_vec()))
    }

    fn name(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Pending => "pending",
            Self::Bundle(_) => "bundle",
        }
    }
}

impl Inputs {
    fn build(&self, labels: &Labels) -> Result<Built> {
        build(&self.cert, &self.key, &self.client_ca, labels)
    }
}

struct State {
    config: Arc<ServerConfig>,
    inputs: Inputs,
}

/// The serving TLS config, swappable at run time. Cheap to clone; clones share the config.
///
/// The accept loop calls [`ReloadableTls::current`] once per connection, so a swap affects
/// new connections only. The serving pair and the client-CA bundle can be updated together
/// ([`ReloadableTls::update`]) or separately ([`ReloadableTls::update_serving`],
/// [`ReloadableTls::update_client_ca`]), e.g. certificate files polled by a
/// [`FileReloader`] and the client CA fed from kube-system's
/// `extension-apiserver-authentication` ConfigMap.
#[derive(Clone)]
pub struct ReloadableTls {
    state: Arc<RwLock<State>>,
    /// Serializes updates so a partial update never loses a concurrent one.
    update_lock: Arc<Mutex<()>>,
}

impl fmt::Debug for ReloadableTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadableTls").finish_non_exhaustive()
    }
}

impl ReloadableTls {
    /// Builds the initial config from PEM bytes; see [`server_config`] for the inputs.
    ///
    /// # Errors
    ///
    /// As [`server_config`].
    pub fn new(cert_pem: &[u8], key_pem: &[u8], client_ca_pem: Option<&[u8]>) -> Result<Self> {
        let inputs = Inputs {
            cert: cert_pem.to_vec(),
            key: key_pem.to_vec(),
            client_ca: ClientCa::from_pem(client_ca_pem),
        };
        Self::from_inputs(inputs, &Labels::in_memory())
    }

    fn from_inputs(inputs: Inputs, labels: &Labels) -> Result<Self> {
        let built = inputs.build(labels)?;
        log_loaded(&built, &inputs.client_ca, "TLS serving certificate loaded");
        Ok(Self {
            state: Arc::new(RwLock::new(State {
                config: built.config,
                inputs,
            })),
            update_lock: Arc::new(Mutex::new(())),
        })
    }

    /// Reads the files once and builds the initial config.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the file that could not be read; otherwise as [`server_config`],
    /// with the input named after its file.
    pub fn from_files(files: &TlsFiles) -> Result<Self> {
        Self::from_inputs(files.read()?, &files.labels())
    }

    /// The config to use for a connection accepted now.
    #[must_use]
    pub fn current(&self) -> Arc<ServerConfig> {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .config
            .clone()
    }

    /// A TLS acceptor over [`ReloadableTls::current`].
    #[must_use]
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current())
    }

    /// Replaces all inputs: builds a new config from PEM bytes and swaps it in atomically.
    /// Connections accepted afterwards use it; established connections are unaffected.
    /// Input identical to the current one is a no-op.
    ///
    /// # Errors
    ///
    /// As [`server_config`]. On error the current config stays in place.
    pub fn update(
        &self,
        cert_pem: &[u8],
        key_pem: &[u8],
        client_ca_pem: Option<&[u8]>,
    ) -> Result<()> {
        self.modify(&Labels::in_memory(), |i| {
            i.cert = cert_pem.to_vec();
            i.key = key_pem.to_vec();
            i.client_ca = ClientCa::from_pem(client_ca_pem);
        })
        .map(|_| ())
    }

    /// Replaces the serving certificate chain and key, keeping the client-CA bundle.
    ///
    /// # Errors
    ///
    /// As [`server_config`]. On error the current config stays in place.
    pub fn update_serving(&self, cert_pem: &[u8], key_pem: &[u8]) -> Result<()> {
        self.modify(&Labels::in_memory(), |i| {
            i.cert = cert_pem.to_vec();
            i.key = key_pem.to_vec();
        })
        .map(|_| ())
    }

    /// Replaces the client-CA bundle (`None`: stop requesting client certificates), keeping
    /// the serving pair.
    ///
    /// # Errors
    ///
    /// As [`server_config`] (a bad bundle is reported as `client CA bundle: …`). On error
    /// the current config stays in place.
    pub fn update_client_ca(&self, client_ca_pem: Option<&[u8]>) -> Result<()> {
        self.modify(&Labels::in_memory(), |i| {
            i.client_ca = ClientCa::from_pem(client_ca_pem);
        })
        .map(|_| ())
    }

    /// Declares that a client-CA bundle will be fed with [`ReloadableTls::update_client_ca`]:
    /// until then client certificates are asked for and refused (see the module docs). Call
    /// it before serving. No-op when a bundle is already in place.
    ///
    /// # Errors
    ///
    /// As [`server_config`]. On error the current config stays in place.
    pub fn expect_client_ca(&self) -> Result<()> {
        self.modify(&Labels::in_memory(), |i| {
            if i.client_ca == ClientCa::None {
                i.client_ca = ClientCa::Pending;
            }
        })
        .map(|_| ())
    }

    /// When the certificates in use expire (Unix seconds): the serving leaf, and the earliest
    /// of the client-CA bundle. Read at scrape time for
    /// `<prefix>_certificate_expiry_timestamp_seconds` ([`crate::Metrics::watch_certificates`]).
    #[must_use]
    pub fn expiry(&self) -> CertificateExpiry {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let not_after = |pem: &[u8]| -> Vec<i64> {
            CertificateDer::pem_slice_iter(pem)
                .filter_map(std::result::Result::ok)
                .filter_map(|der| {
                    x509_parser::parse_x509_certificate(&der)
                        .ok()
                        .map(|(_, x509)| x509.validity().not_after.timestamp())
                })
                .collect()
        };
        CertificateExpiry {
            serving: not_after(&state.inputs.cert).first().copied(),
            client_ca: match &state.inputs.client_ca {
                ClientCa::Bundle(pem) => not_after(pem).into_iter().min(),
                ClientCa::None | ClientCa::Pending => None,
            },
        }
    }

    /// Applies `change` to a copy of the current inputs and swaps in the rebuilt config.
    /// Returns whether anything changed.
    fn modify(&self, labels: &Labels, change: impl FnOnce(&mut Inputs)) -> Result<bool> {
        let _serial = self
            .update_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut inputs = self
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .inputs
            .clone();
        let before = inputs.clone();
        change(&mut inputs);
        if inputs == before {
            tracing::trace!("TLS material unchanged");
            return Ok(false);
        }
        let built = inputs.build(labels)?;
        log_loaded(
            &built,
            &inputs.client_ca,
            "TLS serving certificate reloaded",
        );
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.config = built.config;
        state.inputs = inputs;
        Ok(true)
    }
}

/// Expiry times of the certificates a [`ReloadableTls`] serves with, in seconds since the
/// Unix epoch; `None` where there is no such certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertificateExpiry {
    /// `notAfter` of the serving (leaf) certificate.
    pub serving: Option<i64>,
    /// The earliest `notAfter` in the client-CA bundle (none while it is not loaded).
    pub client_ca: Option<i64>,
}

fn log_loaded(built: &Built, client_ca: &ClientCa, msg: &'static str) {
    tracing::info!(
        fingerprint = %built.leaf_fingerprint,
        not_after = built.leaf_not_after.as_deref().unwrap_or("?"),
        client_ca = client_ca.name(),
        "{msg}"
    );
}

/// Paths of PEM files, as given by `--tls-cert-file`, `--tls-private-key-file` and
/// `--client-ca-file`-style flags. With `client_ca: None`, a [`FileReloader`] leaves the
/// client-CA bundle alone (it may come from elsewhere via
/// [`ReloadableTls::update_client_ca`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Serving certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key of the leaf.
    pub key: PathBuf,
    /// Optional client-CA bundle.
    pub client_ca: Option<PathBuf>,
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

impl TlsFiles {
    fn read(&self) -> Result<Inputs> {
        Ok(Inputs {
            cert: read_file(&self.cert)?,
            key: read_file(&self.key)?,
            client_ca: match &self.client_ca {
                Some(path) => ClientCa::Bundle(read_file(path)?),
                None => ClientCa::None,
            },
        })
    }

    fn labels(&self) -> Labels {
        Labels {
            cert: format!("{SERVING_CERT} ({})", self.cert.display()),
            key: format!("{PRIVATE_KEY} ({})", self.key.display()),
            client_ca: match &self.client_ca {
                Some(p) => format!("{CLIENT_CA} ({})", p.display()),
                None => CLIENT_CA.to_owned(),
            },
        }
    }
}

/// Where a serving certificate comes from, in the two forms every server takes.
#[derive(Debug, Clone)]
pub enum TlsSource {
    /// PEM files, re-read by a [`FileReloader`] (rotation without restart).
    Files(TlsFiles),
    /// PEM text held in memory (tests, benchmarks); never reloaded.
    Pem {
        /// Certificate chain, leaf first.
        cert: String,
        /// Private key.
        key: String,
    },
}

impl TlsSource {
    /// Builds the initial config.
    ///
    /// # Errors
    ///
    /// As [`ReloadableTls::from_files`] or [`ReloadableTls::new`].
    pub fn load(&self) -> Result<ReloadableTls> {
        match self {
            Self::Files(files) => ReloadableTls::from_files(files),
            Self::Pem { cert, key } => ReloadableTls::new(cert.as_bytes(), key.as_bytes(), None),
        }
    }

    /// The reloader that keeps `tls` current with the files; `None` for PEM in memory.
    #[must_use]
    pub fn reloader(&self, tls: &ReloadableTls) -> Option<FileReloader> {
        match self {
            Self::Files(files) => Some(FileReloader::new(tls.clone(), files.clone())),
            Self::Pem { .. } => None,
        }
    }
}

/// Polls [`TlsFiles`] and feeds content changes to a [`ReloadableTls`].
///
/// A failed reload (unreadable file, half-written rotation, key not matching the new
/// certificate) keeps the old config; [`FileReloader::run`] logs it at `warn` once per
/// distinct error and tries again on the next tick. Works with Kubernetes Secret volumes
/// (atomic symlink swaps) because whole files are re-read each time.
#[derive(Debug)]
pub struct FileReloader {
    tls: ReloadableTls,
    files: TlsFiles,
}

impl FileReloader {
    /// A reloader updating `tls` from `files`.
    #[must_use]
    pub fn new(tls: ReloadableTls, files: TlsFiles) -> Self {
        Self { tls, files }
    }

    /// Reads the files once and updates the config if their content changed (unchanged
    /// content costs a file read and a hash). Returns `Ok(true)` when a new config was
    /// swapped in.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when a file cannot be read, otherwise as [`server_config`]. The old
    /// config stays in place.
    pub fn check(&self) -> Result<bool> {
        let read = self.files.read()?;
        let from_files_ca = self.files.client_ca.is_some();
        self.tls.modify(&self.files.labels(), |i| {
            i.cert = read.cert;
            i.key = read.key;
            if from_files_ca {
                i.client_ca = read.client_ca;
            }
        })
    }

    /// Calls [`FileReloader::check`] every `interval` until `shutdown` completes. Errors are
    /// logged (at `warn` when they first appear or change, then at `debug`), never fatal.
    pub async fn run(self, interval: Duration, shutdown: impl Future<Output = ()>) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        let mut last_error: Option<String> = None;
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = ticker.tick() => {}
            }
            match self.check() {
                Ok(_) => last_error = None,
                Err(e) => {
                    let msg = e.to_string();
                    if last_error.as_deref() == Some(msg.as_str()) {
                        tracing::debug!(error = %msg, "TLS file reload still failing");
                    } else {
                        tracing::warn!(error = %msg, "TLS file reload failed; keeping the current certificate");
                        last_error = Some(msg);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::certs::{generate_ca, issue_serving_cert};

    #[test]
    fn builds_with_alpn_and_reports_bad_inputs_by_name() {
        let ca = generate_ca("ca").unwrap();
        let leaf = issue_serving_cert(&ca, &["localhost"], &[], 1).unwrap();
        let (c, k) = (leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes());
        let ca_pem = ca.cert_pem().as_bytes();

        // Twice in one process: no global provider state.
        for client_ca in [None, Some(ca_pem)] {
            let config = server_config(c, k, client_ca).unwrap();
            assert_eq!(
                config.alpn_protocols,
                [b"h2".to_vec(), b"http/1.1".to_vec()]
            );
        }

        let err = |c: &[u8], k: &[u8], ca: Option<&[u8]>| {
            server_config(c, k, ca).unwrap_err().to_string()
        };
        let e = err(b"", k, None);
        assert_eq!(e, "serving certificate: no CERTIFICATE block found");
        let e = err(c, b"", None);
        assert!(e.starts_with("private key: no PRIVATE KEY"), "{e}");
        let e = err(k, k, None);
        assert!(e.starts_with("serving certificate: no CERTIFICATE"), "{e}");
        let e = err(c, k, Some(b"junk"));
        assert_eq!(e, "client CA bundle: no CERTIFICATE block found");
        let e = err(
            b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
            k,
            None,
        );
        assert!(e.starts_with("serving certificate: malformed PEM"), "{e}");
        let e = err(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            k,
            None,
        );
        assert!(
            e.starts_with("serving certificate: first CERTIFICATE block is not"),
            "{e}"
        );
        let other = issue_serving_cert(&ca, &["localhost"], &[], 1).unwrap();
        let e = err(c, other.key_pem.as_bytes(), None);
        assert_eq!(
            e,
            "private key: does not match the public key of the serving certificate"
        );
        let e = err(
            c,
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            None,
        );
        assert!(e.starts_with("private key:"), "{e}");
        assert!(!e.contains("AAAA"), "{e}");
    }

    #[test]
    fn expiry_names_the_leaf_and_the_earliest_client_ca() {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let near =
            |t: Option<i64>, want: i64| t.is_some_and(|t| (want - 60..=want + 60).contains(&t));
        let ca = generate_ca("ca").unwrap();
        let leaf = issue_serving_cert(&ca, &["localhost"], &[], 3).unwrap();
        let chain = format!("{}{}", leaf.cert_pem, ca.cert_pem());
        let tls = ReloadableTls::new(chain.as_bytes(), leaf.key_pem.as_bytes(), None).unwrap();
        let e = tls.expiry();
        assert!(
            near(e.serving, now + 3 * 86_400),
            "{e:?}: the leaf, not the CA"
        );
        assert_eq!(e.client_ca, None);

        tls.expect_client_ca().unwrap();
        assert_eq!(tls.expiry().client_ca, None, "pending: no bundle yet");
        let older = generate_ca("older").unwrap();
        let short = issue_serving_cert(&older, &["x"], &[], 1).unwrap();
        // A bundle of a CA (10 years) and a certificate valid a day: the earliest counts.
        let bundle = format!("{}{}", ca.cert_pem(), short.cert_pem);
        tls.update_client_ca(Some(bundle.as_bytes())).unwrap();
        let e = tls.expiry();
        assert!(near(e.client_ca, now + 86_400), "{e:?}");
        tls.update_client_ca(Some(ca.cert_pem().as_bytes()))
            .unwrap();
        let ca_days = i64::from(crate::certs::CA_VALIDITY_DAYS);
        assert!(near(tls.expiry().client_ca, now + ca_days * 86_400));
    }

    #[test]
    fn update_swaps_only_on_valid_changed_input() {
        let ca = generate_ca("ca").unwrap();
        let a = issue_serving_cert(&ca, &["localhost"], &[], 1).unwrap();
        let b = issue_serving_cert(&ca, &["localhost"], &[], 1).unwrap();
        let tls = ReloadableTls::new(a.cert_pem.as_bytes(), a.key_pem.as_bytes(), None).unwrap();
        let first = tls.current();
        tls.update(a.cert_pem.as_bytes(), a.key_pem.as_bytes(), None)
            .unwrap();
        assert!(
            Arc::ptr_eq(&first, &tls.current()),
            "identical input must not rebuild"
        );
        assert!(
            tls.update(b.cert_pem.as_bytes(), a.key_pem.as_bytes(), None)
                .is_err()
        );
        assert!(
            Arc::ptr_eq(&first, &tls.current()),
            "bad input must keep the old config"
        );
        let clone = tls.clone();
        clone
            .update(b.cert_pem.as_bytes(), b.key_pem.as_bytes(), None)
            .unwrap();
        assert!(
            !Arc::ptr_eq(&first, &tls.current()),
            "clones share the config"
        );
    }
}

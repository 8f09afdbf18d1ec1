//! The crate's error type.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Errors from building TLS material, generating certificates, binding a listener and
/// encoding metrics.
///
/// Messages name the input that was bad (`serving certificate`, `private key`,
/// `client CA bundle`, a file path, a certificate field). They never contain key
/// material or the PEM text itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A PEM input could not be parsed, or held no item of the expected kind.
    #[error("{input}: {reason}")]
    Pem {
        /// Which input was bad, e.g. `serving certificate` or `private key (/tls/tls.key)`.
        input: String,
        /// What was wrong with it (never the PEM content).
        reason: String,
    },
    /// rustls rejected the material (e.g. the key does not match the certificate).
    #[error("{input}: {source}")]
    Tls {
        /// Which input rustls rejected.
        input: String,
        /// The rustls error.
        #[source]
        source: rustls::Error,
    },
    /// The client CA bundle could not be turned into a client-certificate verifier.
    #[error("client CA bundle: {0}")]
    ClientVerifier(#[from] rustls::server::VerifierBuilderError),
    /// A file could not be read.
    #[error("reading {path}: {source}", path = path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The listen address could not be bound.
    #[error("listening on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A certificate generation parameter was invalid.
    #[error("{field}: {reason}")]
    InvalidParam {
        /// The parameter, e.g. `dns_names[0]` or `validity_days`.
        field: String,
        /// Why it was rejected.
        reason: String,
    },
    /// rcgen failed to generate, sign or parse a certificate or key.
    #[error("{what}: {source}")]
    CertGen {
        /// What was being done, e.g. `signing serving certificate`.
        what: String,
        /// The rcgen error.
        #[source]
        source: rcgen::Error,
    },
    /// The metrics registry could not be encoded.
    #[error("encoding metrics: {0}")]
    MetricsEncode(#[from] std::fmt::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

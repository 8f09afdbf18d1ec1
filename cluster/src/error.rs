//! The crate's error type.

/// Errors reading a Kompox app's inputs or the cluster's facts.
///
/// Messages name the object and the field of the KompoxApp that referred to it; they never
/// contain Secret data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The compose ConfigMap named by `spec.compose.configMapRef.name` does not exist.
    #[error("spec.compose.configMapRef.name: ConfigMap {namespace}/{name} not found")]
    ComposeConfigMapNotFound {
        /// Namespace of the app.
        namespace: String,
        /// The ConfigMap's name.
        name: String,
    },
    /// The compose ConfigMap exists but has no such key in `data`.
    #[error("spec.compose.configMapRef.key: ConfigMap {namespace}/{name} has no key {key:?}")]
    ComposeKeyNotFound {
        /// Namespace of the app.
        namespace: String,
        /// The ConfigMap's name.
        name: String,
        /// The key asked for.
        key: String,
    },
    /// The KompoxApp has no namespace (it was not read from the API).
    #[error("metadata.namespace: the KompoxApp has no namespace")]
    NoNamespace,
    /// No usable client configuration: the kubeconfig cannot be read or used, or there is
    /// neither an in-cluster configuration nor a kubeconfig.
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    /// Too many reviews of unauthenticated callers are in flight; the caller should retry
    /// (429).
    #[error("{0}")]
    Busy(&'static str),
    /// A request to the Kubernetes API failed.
    #[error("{what}: {source}")]
    Kube {
        /// What was being read, e.g. `getting Secret app1/env`.
        what: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The install's hash key Secret exists but holds no usable key.
    #[error("{secret}: {reason}")]
    HashKey {
        /// `Secret namespace/name`.
        secret: String,
        /// What is wrong with it (never the value).
        reason: String,
    },
}

impl Error {
    pub(crate) fn kube(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let what = what.into();
        move |source| Error::Kube { what, source }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The HTTP status code of an error response from the API server (`None` for any other
/// client error: transport, TLS, decoding).
#[must_use]
pub fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// Whether the API server answered 404 Not Found.
#[must_use]
pub fn is_not_found(e: &kube::Error) -> bool {
    api_code(e) == Some(404)
}

/// Whether the API server answered 409: a conflict (stale `resourceVersion`, a failed UID
/// precondition) or an object that already exists.
#[must_use]
pub fn is_conflict(e: &kube::Error) -> bool {
    api_code(e) == Some(409)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(
            kube::core::Status::failure("x", "AlreadyExists").with_code(code),
        ))
    }

    #[test]
    fn predicates() {
        assert!(is_not_found(&api(404)) && !is_conflict(&api(404)));
        assert!(is_conflict(&api(409)) && !is_not_found(&api(409)));
        assert!(!is_not_found(&api(500)) && !is_conflict(&api(500)));
        assert_eq!(api_code(&api(422)), Some(422));
        let transport = kube::Error::LinesCodecMaxLineLengthExceeded;
        assert_eq!(api_code(&transport), None);
        assert!(!is_not_found(&transport) && !is_conflict(&transport));
    }
}

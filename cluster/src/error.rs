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
    /// A request to the Kubernetes API failed.
    #[error("{what}: {source}")]
    Kube {
        /// What was being read, e.g. `getting Secret app1/env`.
        what: String,
        /// The client error.
        #[source]
        source: kube::Error,
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

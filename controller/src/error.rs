//! The crate's error type.

use kompox_core::provider;

/// Errors of the controller. Messages name the object or input involved and never carry Secret
/// data (the controller never reads Secret values into an error).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("{what}: {source}")]
    Kube {
        /// What was being done, e.g. `creating PersistentVolume k4x-ns-data`.
        what: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The kube-runtime finalizer helper failed (adding/removing the finalizer or the
    /// reconcile inside it).
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// The provider table rejected the input (zone, options, driver).
    #[error("{field}: {source}")]
    Provider {
        /// The spec field the problem is about, e.g. `spec.zone`.
        field: &'static str,
        /// The provider error.
        #[source]
        source: provider::Error,
    },
    /// Reading cluster facts failed.
    #[error(transparent)]
    Cluster(#[from] kompox_cluster::Error),
    /// An object lacks a field the controller needs (name, namespace, uid).
    #[error("{0}")]
    MissingField(String),
    /// A (de)serialisation of an API object failed.
    #[error("{what}: {source}")]
    Serde {
        /// What was being converted.
        what: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// Building the Kubernetes client configuration failed.
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    /// Leader election failed.
    #[error("leader election: {0}")]
    Lease(#[from] kube_lease_manager::LeaseManagerError),
    /// Leadership was lost while controllers ran; the process must stop.
    #[error("leader election: lost the lease {0}")]
    LeaseLost(String),
    /// Binding or serving the HTTP endpoint failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An object kept changing under a read-modify-write for every attempt.
    #[error("{0}: the object kept changing; will retry")]
    Contended(String),
    /// A finalizer is waiting for another component (the CSI provisioner deleting a volume,
    /// snapshot-controller deleting a VolumeSnapshot, a PVC to go). Not a failure: it is an
    /// error only because kube-runtime's `finalizer()` removes the finalizer on any `Ok`.
    #[error("waiting: {what}")]
    Pending {
        /// What is awaited.
        what: String,
        /// When to look again.
        retry: std::time::Duration,
    },
    /// The configuration is invalid (bad namespace selector, ...).
    #[error("config: {0}")]
    Config(String),
}

impl Error {
    /// A `kube::Error` with a description of what was being done.
    pub fn kube(what: impl Into<String>, source: kube::Error) -> Self {
        Error::Kube {
            what: what.into(),
            source,
        }
    }

    /// The error category, used as a metric label and Event reason (CamelCase, bounded).
    #[must_use]
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube { source, .. } => kube_category(source),
            Error::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(inner)
                | kube::runtime::finalizer::Error::CleanupFailed(inner) => inner.category(),
                _ => "FinalizerError",
            },
            Error::Provider { .. } => "ProviderError",
            Error::MissingField(_) => "MissingField",
            Error::Cluster(_) => "ApiError",
            Error::Serde { .. } => "SerdeError",
            Error::Kubeconfig(_) => "Kubeconfig",
            Error::Lease(_) | Error::LeaseLost(_) => "LeaderElection",
            Error::Io { .. } => "Io",
            Error::Config(_) => "Config",
            Error::Contended(_) => "Conflict",
            Error::Pending { .. } => "Pending",
        }
    }

    /// The retry delay of an [`Error::Pending`] (also inside a finalizer error).
    #[must_use]
    pub fn pending_retry(&self) -> Option<std::time::Duration> {
        match self {
            Error::Pending { retry, .. } => Some(*retry),
            Error::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::CleanupFailed(inner)
                | kube::runtime::finalizer::Error::ApplyFailed(inner) => inner.pending_retry(),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether the error is an API conflict (stale resourceVersion or a create race); the
    /// caller re-reads and retries.
    #[must_use]
    pub fn is_conflict(&self) -> bool {
        self.category() == "Conflict"
    }
}

/// Whether a finalizer error only says the object was already gone when the finalizer was
/// being removed (a reconcile of a stale cache entry): nothing left to do.
#[must_use]
pub fn finalizer_target_gone(e: &kube::runtime::finalizer::Error<Error>) -> bool {
    matches!(e, kube::runtime::finalizer::Error::RemoveFinalizer(k) if is_not_found(k))
}

/// The category of a client error: the API status (`Conflict`, `NotFound`, `Forbidden`,
/// `Invalid`) or `ApiError`.
#[must_use]
pub(crate) fn kube_category(e: &kube::Error) -> &'static str {
    match e {
        kube::Error::Api(s) if s.code == 409 => "Conflict",
        kube::Error::Api(s) if s.code == 404 => "NotFound",
        kube::Error::Api(s) if s.code == 403 => "Forbidden",
        kube::Error::Api(s) if s.code == 422 || s.code == 400 => "Invalid",
        _ => "ApiError",
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether a `kube::Error` is an API 404.
#[must_use]
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Whether a `kube::Error` is an API 409 (conflict or already exists).
#[must_use]
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

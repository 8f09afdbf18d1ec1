//! The crate's error type.

use kompox_cluster::{api_code, is_conflict, is_not_found};
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
    /// Reading an app's inputs or the cluster's facts failed other than by an API error (those
    /// become [`Error::Kube`]).
    #[error(transparent)]
    Cluster(kompox_cluster::Error),
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
    /// A reconcile is waiting for something another component does (the CSI provisioner
    /// deleting a volume, snapshot-controller deleting a VolumeSnapshot, Pods or a PVC of a
    /// deleted app to go). Not a failure: it is an error only because kube-runtime's
    /// `finalizer()` removes the finalizer on any `Ok`. Counted in no error metric.
    #[error("waiting: {what}")]
    Waiting {
        /// What is awaited.
        what: String,
        /// When to look again.
        retry: std::time::Duration,
    },
    /// The configuration is invalid (bad namespace selector, ...).
    #[error("config: {0}")]
    Config(String),
}

/// API failures while reading inputs or facts are [`Error::Kube`], whoever read them.
impl From<kompox_cluster::Error> for Error {
    fn from(e: kompox_cluster::Error) -> Self {
        match e {
            kompox_cluster::Error::Kube { what, source } => Error::Kube { what, source },
            other => Error::Cluster(other),
        }
    }
}

impl Error {
    /// A `kube::Error` with a description of what was being done.
    pub fn kube(what: impl Into<String>, source: kube::Error) -> Self {
        Error::Kube {
            what: what.into(),
            source,
        }
    }

    /// [`Error::Waiting`] for `what`, looked at again after `retry`.
    pub fn waiting(what: impl Into<String>, retry: std::time::Duration) -> Self {
        Error::Waiting {
            what: what.into(),
            retry,
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
                kube::runtime::finalizer::Error::AddFinalizer(k)
                | kube::runtime::finalizer::Error::RemoveFinalizer(k) => kube_category(k),
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
            Error::Waiting { .. } => "Waiting",
        }
    }

    /// The retry delay of an [`Error::Waiting`] (also inside a finalizer error).
    #[must_use]
    pub fn waiting_retry(&self) -> Option<std::time::Duration> {
        match self {
            Error::Waiting { retry, .. } => Some(*retry),
            Error::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::CleanupFailed(inner)
                | kube::runtime::finalizer::Error::ApplyFailed(inner) => inner.waiting_retry(),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether this is a reconcile waiting ([`Error::Waiting`]), not a failure.
    #[must_use]
    pub fn is_waiting(&self) -> bool {
        self.waiting_retry().is_some()
    }

    /// Whether the error is an API conflict (stale resourceVersion or a create race) or an
    /// object that kept changing; the caller re-reads and retries.
    #[must_use]
    pub fn is_conflict(&self) -> bool {
        match self {
            Error::Kube { source, .. } => is_conflict(source),
            Error::Contended(_) => true,
            Error::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(inner)
                | kube::runtime::finalizer::Error::CleanupFailed(inner) => inner.is_conflict(),
                kube::runtime::finalizer::Error::AddFinalizer(k)
                | kube::runtime::finalizer::Error::RemoveFinalizer(k) => is_conflict(k),
                _ => false,
            },
            _ => false,
        }
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
    match api_code(e) {
        Some(409) => "Conflict",
        Some(404) => "NotFound",
        Some(403) => "Forbidden",
        Some(400 | 422) => "Invalid",
        _ => "ApiError",
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(
            kube::core::Status::failure("x", "y").with_code(code),
        ))
    }

    fn in_finalizer(e: Error) -> Error {
        Error::Finalizer(Box::new(kube::runtime::finalizer::Error::CleanupFailed(e)))
    }

    #[test]
    fn categories() {
        for (code, want) in [
            (409, "Conflict"),
            (404, "NotFound"),
            (403, "Forbidden"),
            (422, "Invalid"),
            (400, "Invalid"),
            (500, "ApiError"),
        ] {
            assert_eq!(Error::kube("x", api(code)).category(), want, "{code}");
            assert_eq!(
                in_finalizer(Error::kube("x", api(code))).category(),
                want,
                "{code} in a finalizer"
            );
            let add = Error::Finalizer(Box::new(kube::runtime::finalizer::Error::AddFinalizer(
                api(code),
            )));
            assert_eq!(add.category(), want, "{code} adding the finalizer");
            assert_eq!(
                add.is_conflict(),
                code == 409,
                "{code} adding the finalizer"
            );
        }
        let read = kompox_cluster::Error::Kube {
            what: "listing Nodes".into(),
            source: api(403),
        };
        assert_eq!(Error::from(read).category(), "Forbidden");
        assert_eq!(
            Error::from(kompox_cluster::Error::NoNamespace).category(),
            "ApiError"
        );
    }

    #[test]
    fn waiting_and_conflicts() {
        let w = Error::waiting("pods", Duration::from_secs(2));
        assert!(w.is_waiting());
        assert_eq!(w.to_string(), "waiting: pods");
        let f = in_finalizer(Error::waiting("p", Duration::from_secs(7)));
        assert!(f.is_waiting());
        assert_eq!(f.waiting_retry(), Some(Duration::from_secs(7)));
        assert!(!Error::kube("x", api(500)).is_waiting());
        assert!(!Error::kube("x", api(409)).is_waiting());

        assert!(Error::kube("x", api(409)).is_conflict());
        assert!(in_finalizer(Error::kube("x", api(409))).is_conflict());
        assert!(Error::Contended("claim".into()).is_conflict());
        assert!(!Error::kube("x", api(404)).is_conflict());
        assert!(!w.is_conflict());
    }
}

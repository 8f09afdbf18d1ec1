//! The app controller's error type.

/// Why an app reconcile did not finish. Problems a user must fix (invalid compose, a disk in
/// use, …) are not errors: they end the reconcile normally with `Degraded`. Messages never
/// carry Secret data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A Kubernetes API call failed ([`crate::Error::Kube`]: what was being done, e.g.
    /// `applying Deployment ns/gitea-app`, and the client error).
    #[error(transparent)]
    Kube(crate::Error),
    /// A claim or release of a KompoxDisk failed (see [`crate::claim`]).
    #[error(transparent)]
    Claim(crate::Error),
    /// Cleanup is waiting for something to go (Pods, PVCs). Not a failure: it keeps the
    /// finalizer and is retried soon; counted in no error metric.
    #[error("waiting: {0}")]
    Waiting(String),
    /// An object could not be converted (an API answer that does not match its type).
    #[error("{what}: {source}")]
    Serde {
        /// What was being converted.
        what: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// kube-runtime's finalizer helper failed (adding/removing the finalizer or the reconcile
    /// inside it).
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// A `kube::Error` with a description of what was being done.
    pub(crate) fn kube(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let what = what.into();
        move |source| Error::Kube(crate::Error::kube(what, source))
    }

    /// The error category: metric label and log field (CamelCase, bounded).
    #[must_use]
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(e) => e.category(),
            Error::Claim(e) => e.category(),
            Error::Waiting(_) => "Waiting",
            Error::Serde { .. } => "SerdeError",
            Error::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(inner)
                | kube::runtime::finalizer::Error::CleanupFailed(inner) => inner.category(),
                kube::runtime::finalizer::Error::AddFinalizer(k)
                | kube::runtime::finalizer::Error::RemoveFinalizer(k) => {
                    crate::error::kube_category(k)
                }
                _ => "FinalizerError",
            },
        }
    }

    /// Whether this is the cleanup waiting (not a failure).
    #[must_use]
    pub fn is_waiting(&self) -> bool {
        self.category() == "Waiting"
    }
}

/// Converts `kompox-cluster`'s read errors: API failures are errors (retried); the others are
/// problems of the app's spec and never reach here (see `reconcile::gather`).
impl From<kompox_cluster::Error> for Error {
    fn from(e: kompox_cluster::Error) -> Self {
        match e {
            kompox_cluster::Error::Kube { what, source } => Error::kube(what)(source),
            other => Error::Waiting(other.to_string()),
        }
    }
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(
            kube::core::Status::failure("x", "y").with_code(code),
        ))
    }

    #[test]
    fn categories() {
        for (code, want) in [
            (409, "Conflict"),
            (404, "NotFound"),
            (403, "Forbidden"),
            (422, "Invalid"),
            (500, "ApiError"),
        ] {
            assert_eq!(Error::kube("x")(api(code)).category(), want, "{code}");
        }
        let w = Error::Waiting("pods".into());
        assert!(w.is_waiting());
        let f = Error::Finalizer(Box::new(kube::runtime::finalizer::Error::CleanupFailed(
            Error::Waiting("p".into()),
        )));
        assert!(f.is_waiting());
        assert!(!Error::kube("x")(api(500)).is_waiting());
    }
}

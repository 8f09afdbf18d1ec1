//! `/healthz`, `/livez`, `/readyz`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;

use crate::respond::text;

/// Health endpoints. Cheap to clone; clones share the readiness flag.
///
/// - `/healthz` and `/livez`: `200 ok` whenever the server answers at all.
/// - `/readyz`: `200 ok` after [`Health::set_ready`]`(true)`, `503` before (and after
///   `set_ready(false)`, e.g. at the start of shutdown).
#[derive(Debug, Clone, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
}

impl Health {
    /// Not ready yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks the server ready (or not) for `/readyz`.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Whether `/readyz` currently answers 200.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The response for a health path (`/healthz`, `/livez`, `/readyz`, each also with a
    /// trailing `/ping` as Kubernetes components accept), or `None` for any other path so
    /// the caller routes it.
    #[must_use]
    pub fn respond<B>(&self, req: &Request<B>) -> Option<Response<Full<Bytes>>> {
        self.respond_path(req.uri().path())
    }

    /// As [`Health::respond`], by path.
    #[must_use]
    pub fn respond_path(&self, path: &str) -> Option<Response<Full<Bytes>>> {
        match path.strip_suffix("/ping").unwrap_or(path) {
            "/healthz" | "/livez" => Some(text(StatusCode::OK, "ok")),
            "/readyz" => Some(if self.is_ready() {
                text(StatusCode::OK, "ok")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready")
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_paths() {
        let h = Health::new();
        let status = |p: &str| h.respond_path(p).map(|r| r.status());
        assert_eq!(status("/healthz"), Some(StatusCode::OK));
        assert_eq!(status("/livez"), Some(StatusCode::OK));
        assert_eq!(status("/healthz/ping"), Some(StatusCode::OK));
        assert_eq!(status("/readyz"), Some(StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(status("/apis"), None);
        assert_eq!(status("/ping"), None);

        let clone = h.clone();
        clone.set_ready(true);
        assert!(h.is_ready());
        assert_eq!(status("/readyz"), Some(StatusCode::OK));
        let req = Request::get("/readyz?verbose").body(()).ok();
        assert_eq!(
            req.and_then(|r| h.respond(&r)).map(|r| r.status()),
            Some(StatusCode::OK)
        );
        h.set_ready(false);
        assert_eq!(status("/readyz"), Some(StatusCode::SERVICE_UNAVAILABLE));
    }
}

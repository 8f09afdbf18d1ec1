//! Plain-HTTP `/healthz`, `/livez`, `/readyz` and `/metrics`, answered by the shared
//! [`kompox_serve::Health`] and [`kompox_serve::Metrics`] helpers and served by the shared
//! accept loop ([`kompox_serve::Server`] with [`Transport::Plain`]). The controller has no
//! client-facing API, so the endpoint is plain HTTP on a loopback (or pod) address.

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use kompox_serve::{Health, Metrics, RequestBody, ServeOptions, Server, Transport, text};
use tokio::net::TcpListener;

/// The response for one request (no I/O; tested without sockets).
#[must_use]
pub fn respond(
    health: &Health,
    metrics: &Metrics,
    method: &Method,
    path: &str,
) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    if let Some(r) = health.respond_path(path) {
        return r;
    }
    match path {
        "/metrics" => metrics.response(),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn route(path: &str) -> &'static str {
    match path.strip_suffix("/ping").unwrap_or(path) {
        "/healthz" => "/healthz",
        "/livez" => "/livez",
        "/readyz" => "/readyz",
        "/metrics" => "/metrics",
        _ => "other",
    }
}

/// Serves the endpoints on `listener` with [`kompox_serve::Server`] over plain HTTP until
/// `shutdown` completes; open connections get a second to finish.
pub async fn serve(
    listener: TcpListener,
    options: ServeOptions,
    health: Health,
    metrics: Metrics,
    shutdown: impl Future<Output = ()>,
) {
    Server::new(listener, Transport::Plain)
        .with_options(options.shutdown_grace(Duration::from_secs(1)))
        .serve(
            move |req: Request<RequestBody>, _conn| {
                let start = Instant::now();
                let path = req.uri().path();
                let resp = respond(&health, &metrics, req.method(), path);
                metrics.observe(route(path), req.method(), resp.status(), start.elapsed());
                std::future::ready(resp)
            },
            shutdown,
        )
        .await;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// One HTTP/1.1 GET over a fresh connection; the raw response.
    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_probes_and_metrics_over_plain_http_until_shutdown() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (health, metrics) = (Health::new(), Metrics::new("t"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(
            listener,
            ServeOptions::default(),
            health.clone(),
            metrics,
            async {
                let _ = rx.await;
            },
        ));
        let limit = Duration::from_secs(10);
        let readyz = tokio::time::timeout(limit, get(addr, "/readyz"))
            .await
            .unwrap();
        assert!(readyz.starts_with("HTTP/1.1 503"), "{readyz}");
        health.set_ready(true);
        let readyz = tokio::time::timeout(limit, get(addr, "/readyz"))
            .await
            .unwrap();
        assert!(readyz.starts_with("HTTP/1.1 200"), "{readyz}");
        let m = tokio::time::timeout(limit, get(addr, "/metrics"))
            .await
            .unwrap();
        assert!(
            m.contains(r#"t_http_requests_total{route="/readyz",method="GET",code="503"} 1"#),
            "{m}"
        );
        tx.send(()).unwrap();
        tokio::time::timeout(limit, task).await.unwrap().unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }

    #[test]
    fn routes() {
        let h = Health::new();
        let m = Metrics::new("t");
        assert_eq!(
            respond(&h, &m, &Method::GET, "/healthz").status(),
            StatusCode::OK
        );
        assert_eq!(
            respond(&h, &m, &Method::GET, "/readyz").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        h.set_ready(true);
        assert_eq!(
            respond(&h, &m, &Method::GET, "/readyz").status(),
            StatusCode::OK
        );
        assert_eq!(
            respond(&h, &m, &Method::GET, "/metrics").status(),
            StatusCode::OK
        );
        assert_eq!(
            respond(&h, &m, &Method::GET, "/x").status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            respond(&h, &m, &Method::POST, "/metrics").status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(route("/secret/path"), "other");
    }
}

//! Plain-HTTP `/healthz`, `/livez`, `/readyz` and `/metrics`, answered by the shared
//! [`kompox_serve::Health`] and [`kompox_serve::Metrics`] helpers. The controller has no
//! client-facing API, so the endpoint is plain HTTP on a loopback (or pod) address.

use std::convert::Infallible;
use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use kompox_serve::{Health, Metrics, text};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

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

/// Serves the endpoints on `listener` until `shutdown` completes; open connections get a
/// second to finish.
pub async fn serve(
    listener: TcpListener,
    health: Health,
    metrics: Metrics,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    let local = listener.local_addr().ok();
    tracing::info!(addr = ?local, "serving /healthz /readyz /metrics over HTTP");
    let graceful = GracefulShutdown::new();
    let mut conns: JoinSet<()> = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let health = health.clone();
                    let metrics = metrics.clone();
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let start = Instant::now();
                        let resp = respond(&health, &metrics, req.method(), req.uri().path());
                        metrics.observe(route(req.uri().path()), req.method(), resp.status(), start.elapsed());
                        async move { Ok::<_, Infallible>(resp) }
                    });
                    let conn = http.serve_connection(TokioIo::new(stream), service).into_owned();
                    let conn = graceful.watch(conn);
                    conns.spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, "metrics connection ended with error");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            },
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(1), graceful.shutdown()).await;
    conns.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

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

//! Plain-HTTP `/healthz`, `/livez`, `/readyz` and `/metrics`, answered by the shared
//! [`kompox_serve::Health`] and [`kompox_serve::Metrics`] helpers and served by the shared
//! accept loop ([`kompox_serve::Server`] with [`Transport::Plain`]). The controller has no
//! client-facing API, so the endpoint is plain HTTP on a loopback (or pod) address. The
//! probes are open; `/metrics` needs a bearer token whose user may `get /metrics`
//! ([`Reviewer::metrics_access`]: TokenReview + SubjectAccessReview).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::Full;
use kompox_cluster::access::Reviewer;
use kompox_serve::{Health, Metrics, RequestBody, ServeOptions, Server, Transport, text};
use tokio::net::TcpListener;

/// The response for one request: the probes from `health`, `/metrics` from `metrics` once
/// `reviewer` allows the request's bearer token.
pub async fn respond(
    health: &Health,
    metrics: &Metrics,
    reviewer: &Reviewer,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    if let Some(r) = health.respond_path(path) {
        return r;
    }
    match path {
        "/metrics" => match reviewer.metrics_access(headers).await {
            Ok(_) => metrics.response(),
            Err(refusal) => text(refusal.status(), &format!("{refusal}\n")),
        },
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
    reviewer: Arc<Reviewer>,
    shutdown: impl Future<Output = ()>,
) {
    Server::new(listener, Transport::Plain)
        .with_options(options.shutdown_grace(Duration::from_secs(1)))
        .serve(
            move |req: Request<RequestBody>, _conn| {
                let (health, metrics, reviewer) =
                    (health.clone(), metrics.clone(), reviewer.clone());
                async move {
                    let start = Instant::now();
                    let path = req.uri().path();
                    let resp = respond(
                        &health,
                        &metrics,
                        &reviewer,
                        req.method(),
                        path,
                        req.headers(),
                    )
                    .await;
                    metrics.observe(route(path), req.method(), resp.status(), start.elapsed());
                    resp
                }
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

    /// A reviewer whose reviews all fail (nothing listens on port 9).
    fn offline() -> Arc<Reviewer> {
        let client =
            kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap()))
                .unwrap();
        Arc::new(Reviewer::new(
            client,
            kompox_cluster::access::Ttls::default(),
        ))
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
            metrics.clone(),
            offline(),
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
        assert!(m.starts_with("HTTP/1.1 401"), "{m}");
        let m = metrics.encode().unwrap();
        assert!(
            m.contains(r#"t_http_requests_total{route="/readyz",method="GET",code="503"} 1"#),
            "{m}"
        );
        assert!(
            m.contains(r#"t_http_requests_total{route="/metrics",method="GET",code="401"} 1"#),
            "{m}"
        );
        tx.send(()).unwrap();
        tokio::time::timeout(limit, task).await.unwrap().unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }

    #[rstest::rstest]
    #[case::healthz(Method::GET, "/healthz", None, StatusCode::OK)]
    #[case::readyz_before_ready(Method::GET, "/readyz", None, StatusCode::SERVICE_UNAVAILABLE)]
    #[case::unknown_path(Method::GET, "/x", None, StatusCode::NOT_FOUND)]
    #[case::post(Method::POST, "/metrics", None, StatusCode::METHOD_NOT_ALLOWED)]
    #[case::metrics_anonymous(Method::GET, "/metrics", None, StatusCode::UNAUTHORIZED)]
    #[case::metrics_basic_auth(
        Method::GET,
        "/metrics",
        Some("Basic eDp5"),
        StatusCode::UNAUTHORIZED
    )]
    // The token is sent for review, which cannot be made here.
    #[case::metrics_token_unreviewable(
        Method::GET,
        "/metrics",
        Some("Bearer t"),
        StatusCode::SERVICE_UNAVAILABLE
    )]
    #[tokio::test]
    async fn routes(
        #[case] method: Method,
        #[case] path: &str,
        #[case] auth: Option<&str>,
        #[case] want: StatusCode,
    ) {
        let (h, m, r) = (Health::new(), Metrics::new("t"), offline());
        let mut headers = HeaderMap::new();
        if let Some(a) = auth {
            headers.insert(http::header::AUTHORIZATION, a.parse().unwrap());
        }
        let resp = respond(&h, &m, &r, &method, path, &headers).await;
        assert_eq!(resp.status(), want);
        assert_eq!(route("/secret/path"), "other");
    }
}

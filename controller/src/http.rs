//! `/healthz`, `/livez`, `/readyz` and `/metrics` over HTTPS, answered by the shared
//! [`kompox_serve::Health`] and [`kompox_serve::Metrics`] helpers and served by the shared
//! accept loop ([`kompox_serve::Server`] with [`Transport::Tls`]). The probes are open;
//! `/metrics` needs a bearer token whose user may `get /metrics`
//! ([`Reviewer::metrics_access`]: TokenReview + SubjectAccessReview), and that token must not
//! cross the Pod network in clear text, so the endpoint speaks TLS only: with the certificate
//! files given (`--tls-cert-file`, re-read when they change), else with a certificate made
//! at start ([`self_signed`]), as controller-runtime's metrics server does (kubelet probes
//! and a scraper with `insecure_skip_verify` accept it; pin one with the files).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::Full;
use kompox_cluster::access::Reviewer;
use kompox_serve::{
    Health, Metrics, ReloadableTls, RequestBody, ServeOptions, Server, TlsSource, Transport, text,
};
use tokio::net::TcpListener;

/// How often certificate files are checked for a change.
pub const TLS_FILE_POLL_INTERVAL: Duration = Duration::from_secs(10);

/// The DNS names of the certificate [`self_signed`] makes: the install's metrics Service
/// and `localhost` (and the IP 127.0.0.1).
pub const SELF_SIGNED_NAMES: [&str; 2] = ["kompox-controller-metrics.k4x-system.svc", "localhost"];

/// A serving certificate for the endpoint signed by a CA made for it and then forgotten
/// (valid a year; a new one at every start), for when no certificate files are given.
///
/// # Errors
///
/// When key generation or signing fails.
pub fn self_signed() -> kompox_serve::Result<TlsSource> {
    let ca = kompox_serve::generate_ca("kompox-controller-metrics-ca")?;
    let leaf = kompox_serve::issue_serving_cert(
        &ca,
        &SELF_SIGNED_NAMES,
        &[std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)],
        365,
    )?;
    Ok(TlsSource::Pem {
        cert: format!("{}{}", leaf.cert_pem, ca.cert_pem()),
        key: leaf.key_pem,
    })
}

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

/// Serves the endpoints on `listener` with [`kompox_serve::Server`] over TLS with `tls` until
/// `shutdown` completes; open connections get a second to finish.
pub async fn serve(
    listener: TcpListener,
    tls: ReloadableTls,
    options: ServeOptions,
    health: Health,
    metrics: Metrics,
    reviewer: Arc<Reviewer>,
    shutdown: impl Future<Output = ()>,
) {
    metrics.watch_certificates(&tls);
    Server::new(listener, Transport::Tls(tls))
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

    /// One HTTP/1.1 GET over a fresh TLS connection to `name`, trusting only `ca_pem`; the
    /// raw response.
    async fn get(addr: std::net::SocketAddr, ca_pem: &str, name: &str, path: &str) -> String {
        use rustls_pki_types::pem::PemObject as _;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let config =
            rustls::ClientConfig::builder_with_provider(kompox_serve::tls::crypto_provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let server_name = rustls_pki_types::ServerName::try_from(name.to_owned()).unwrap();
        let mut s = connector.connect(server_name, tcp).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        // A server closing without close_notify is an error to rustls; the bytes are there.
        let _ = s.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The CA of a [`self_signed`] source: the chain's last certificate.
    fn ca_of(source: &TlsSource) -> String {
        let TlsSource::Pem { cert, .. } = source else {
            panic!("not PEM")
        };
        let end = "-----END CERTIFICATE-----\n";
        let first = cert.find(end).unwrap() + end.len();
        cert[first..].to_owned()
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
    async fn serves_probes_and_metrics_over_tls_until_shutdown() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (health, metrics) = (Health::new(), Metrics::new("t"));
        let source = self_signed().unwrap();
        let ca = ca_of(&source);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(
            listener,
            source.load().unwrap(),
            ServeOptions::default(),
            health.clone(),
            metrics.clone(),
            offline(),
            async {
                let _ = rx.await;
            },
        ));
        let limit = Duration::from_secs(10);
        let readyz = tokio::time::timeout(limit, get(addr, &ca, "localhost", "/readyz"))
            .await
            .unwrap();
        assert!(readyz.starts_with("HTTP/1.1 503"), "{readyz}");
        health.set_ready(true);
        let readyz = tokio::time::timeout(limit, get(addr, &ca, SELF_SIGNED_NAMES[0], "/readyz"))
            .await
            .unwrap();
        assert!(readyz.starts_with("HTTP/1.1 200"), "{readyz}");
        let m = tokio::time::timeout(limit, get(addr, &ca, "127.0.0.1", "/metrics"))
            .await
            .unwrap();
        assert!(m.starts_with("HTTP/1.1 401"), "{m}");
        // Plain HTTP gets no answer: the token of a scraper never travels in clear text.
        let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
        plain
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(limit, plain.read_to_end(&mut out))
            .await
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&out).contains("HTTP/1.1"),
            "{out:?}"
        );
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

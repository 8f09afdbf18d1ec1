//! OpenTelemetry traces over OTLP (http/protobuf), on only when `OTEL_EXPORTER_OTLP_ENDPOINT`
//! or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set.
//!
//! The exporter reads the standard variables itself (endpoint, `OTEL_EXPORTER_OTLP_HEADERS`,
//! `…_TIMEOUT`, `…_COMPRESSION`), the SDK `OTEL_TRACES_SAMPLER` / `…_ARG` and
//! `OTEL_RESOURCE_ATTRIBUTES`; `OTEL_SERVICE_NAME` defaults to the binary's name. Spans are sent
//! in batches from the SDK's own thread; the HTTP request itself runs on the server's tokio
//! runtime through [`HyperClient`] (hyper and the ring-backed rustls already in the tree: no
//! second HTTP client or TLS stack). An `https` endpoint is verified against the system roots
//! plus `OTEL_EXPORTER_OTLP_CERTIFICATE` (a PEM bundle), when set.
//!
//! Incoming requests continue the caller's trace: [`parent_context`] reads the W3C
//! `traceparent` header (kube-apiserver sends it to webhooks and aggregated API servers when
//! its own tracing is on); requests to kube-apiserver carry ours ([`PropagateLayer`]).

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{HeaderExtractor, HeaderInjector, HttpClient, HttpError};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;

/// The variables that turn tracing on (either).
pub const ENDPOINT_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// Largest collector response read (the exporter only needs the status).
const MAX_RESPONSE: usize = 64 * 1024;
/// Longest one export request may take when `OTEL_EXPORTER_OTLP_TIMEOUT` does not say.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The endpoint tracing exports to, if any is configured (an empty value counts as unset).
#[must_use]
pub fn endpoint() -> Option<String> {
    ENDPOINT_VARS
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|e| !e.trim().is_empty()))
}

/// Where spans go: as the environment says, or to this traces URL whatever it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (as is) or `OTEL_EXPORTER_OTLP_ENDPOINT` (+
    /// `/v1/traces`); nowhere when neither is set.
    FromEnv,
    /// The full traces URL (`http://collector:4318/v1/traces`).
    Url(String),
}

impl Destination {
    /// The configured endpoint, if tracing is on.
    #[must_use]
    pub fn endpoint(&self) -> Option<String> {
        match self {
            Self::FromEnv => endpoint(),
            Self::Url(url) => Some(url.clone()),
        }
    }
}

/// The tracer provider when tracing is configured: `Ok(None)` when no endpoint is set.
///
/// # Errors
///
/// A message naming what is wrong (an `https` endpoint whose roots cannot be loaded, an
/// exporter the SDK refuses to build); tracing then stays off.
pub(crate) fn provider(
    service: &str,
    destination: &Destination,
) -> Result<Option<SdkTracerProvider>, String> {
    let Some(endpoint) = destination.endpoint() else {
        return Ok(None);
    };
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| "OTLP export needs a tokio runtime".to_owned())?;
    let client = HyperClient::new(runtime, endpoint.trim_start().starts_with("https:"))?;
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_http_client(client);
    if let Destination::Url(url) = destination {
        builder = builder.with_endpoint(url.clone());
    }
    let exporter = builder.build().map_err(|e| format!("OTLP exporter: {e}"))?;
    let mut resource = Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name(service.to_owned());
    }
    let resource = resource
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    Ok(Some(
        SdkTracerProvider::builder()
            .with_resource(resource)
            .with_batch_exporter(exporter)
            .build(),
    ))
}

/// The tracing layer that turns spans into OpenTelemetry spans of `provider`.
pub(crate) fn layer<S>(
    provider: &SdkTracerProvider,
) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("kompox"))
        // No busy/idle nanosecond counters on every span: the span's own times say enough.
        .with_tracked_inactivity(false)
}

/// The trace context a request continues: its W3C `traceparent` (and `tracestate`), if valid.
#[must_use]
pub fn parent_context(headers: &HeaderMap) -> Option<opentelemetry::Context> {
    use opentelemetry::trace::TraceContextExt as _;
    let cx = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    cx.span().span_context().is_valid().then_some(cx)
}

/// Adds the current span's W3C trace context (`traceparent`, `tracestate`) to a request, when
/// the span is traced: kube-apiserver, with its own tracing on, then records its work in the
/// same trace.
pub fn inject_context(headers: &mut HeaderMap) {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let cx = tracing::Span::current().context();
    if cx.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(headers));
    }
}

/// A tower layer applying [`inject_context`] to every request (kube's
/// `ClientBuilder::with_layer`).
#[derive(Debug, Clone, Copy, Default)]
pub struct PropagateLayer;

impl<S> tower::Layer<S> for PropagateLayer {
    type Service = Propagate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Propagate { inner }
    }
}

/// The service of [`PropagateLayer`].
#[derive(Debug, Clone)]
pub struct Propagate<S> {
    inner: S,
}

impl<S, B> tower::Service<Request<B>> for Propagate<S>
where
    S: tower::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        inject_context(req.headers_mut());
        self.inner.call(req)
    }
}

/// The exporter's HTTP client: hyper's pooled client over plain TCP, or rustls for `https`.
/// The SDK calls it from its batch thread (no tokio there); each request is spawned onto the
/// server's runtime and awaited through its join handle.
#[derive(Debug, Clone)]
pub struct HyperClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
}

impl HyperClient {
    /// A client whose requests run on `runtime`; with `https`, verifying servers against the
    /// system roots and `OTEL_EXPORTER_OTLP_CERTIFICATE`.
    ///
    /// # Errors
    ///
    /// When `https` and no root certificate can be loaded, or the certificate file is bad.
    pub fn new(runtime: tokio::runtime::Handle, https: bool) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        if https {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            for var in [
                "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
            ] {
                let Some(path) = std::env::var_os(var).filter(|p| !p.is_empty()) else {
                    continue;
                };
                let pem = std::fs::read(&path)
                    .map_err(|e| format!("{var}: reading {}: {e}", path.to_string_lossy()))?;
                for cert in crate::tls::parse_certs(&pem, var).map_err(|e| e.to_string())? {
                    roots.add(cert).map_err(|e| format!("{var}: {e}"))?;
                }
                break;
            }
            if roots.is_empty() {
                return Err(
                    "an https OTLP endpoint, but no root certificate: set OTEL_EXPORTER_OTLP_CERTIFICATE"
                        .into(),
                );
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(crate::tls::crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("OTLP TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let timeout = std::env::var("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
            .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_TIMEOUT"))
            .ok()
            .and_then(|ms| ms.trim().parse::<u64>().ok())
            .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            runtime,
            timeout,
        })
    }
}

#[async_trait::async_trait]
impl HttpClient for HyperClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let timeout = self.timeout;
        let task = self.runtime.spawn(async move {
            let exchange = async {
                let response = client.request(request.map(Full::new)).await?;
                let (parts, body) = response.into_parts();
                let body = Limited::new(body, MAX_RESPONSE).collect().await?.to_bytes();
                Ok::<_, HttpError>(Response::from_parts(parts, body))
            };
            tokio::time::timeout(timeout, exchange)
                .await
                .map_err(|_| HttpError::from(format!("no answer within {timeout:?}")))?
        });
        task.await?
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceContextExt as _;
    use tower::Layer as _;

    #[test]
    fn a_valid_traceparent_is_continued_and_anything_else_ignored() {
        let mut headers = HeaderMap::new();
        assert!(parent_context(&headers).is_none());
        headers.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        let cx = parent_context(&headers).unwrap();
        assert_eq!(
            cx.span().span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        for bad in [
            "junk",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        ] {
            headers.insert("traceparent", bad.parse().unwrap());
            assert!(parent_context(&headers).is_none(), "{bad}");
        }
    }

    #[test]
    fn requests_carry_the_current_trace_only_inside_a_traced_span() {
        use tracing_subscriber::layer::SubscriberExt as _;
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry().with(layer(&provider));
        tracing::subscriber::with_default(subscriber, || {
            let mut outside = HeaderMap::new();
            inject_context(&mut outside);
            assert!(outside.is_empty(), "{outside:?}");

            let span = tracing::info_span!("kompox_test");
            let _entered = span.enter();
            let mut svc = PropagateLayer.layer(tower::service_fn(|req: Request<()>| async move {
                Ok::<_, std::convert::Infallible>(req.headers().clone())
            }));
            let headers =
                futures::executor::block_on(tower::Service::call(&mut svc, Request::new(())))
                    .unwrap();
            let sent = parent_context(&headers).unwrap();
            use opentelemetry::trace::TraceContextExt as _;
            use tracing_opentelemetry::OpenTelemetrySpanExt as _;
            assert_eq!(
                sent.span().span_context().trace_id(),
                span.context().span().span_context().trace_id()
            );
        });
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_client_answers_from_the_batch_thread_through_the_runtime() {
        // A plain-HTTP peer that answers one request 200, read from a thread with no runtime
        // (as the SDK's batch thread calls the client).
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0; 4096];
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
        });
        let client = HyperClient::new(tokio::runtime::Handle::current(), false).unwrap();
        let answer = std::thread::spawn(move || {
            futures::executor::block_on(
                client.send_bytes(
                    Request::post(format!("http://{addr}/v1/traces"))
                        .body(Bytes::from_static(b"x"))
                        .unwrap(),
                ),
            )
        })
        .join()
        .unwrap()
        .unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.body().as_ref(), b"ok");

        // Nobody listening: an error, not a hang.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gone = closed.local_addr().unwrap();
        drop(closed);
        let client = HyperClient::new(tokio::runtime::Handle::current(), false).unwrap();
        let err = std::thread::spawn(move || {
            futures::executor::block_on(
                client.send_bytes(
                    Request::post(format!("http://{gone}/v1/traces"))
                        .body(Bytes::new())
                        .unwrap(),
                ),
            )
        })
        .join()
        .unwrap();
        assert!(err.is_err());
    }
}

//! The accept loop: TLS handshake (or plain HTTP), HTTP/1.1 + HTTP/2, graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt as _;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use http_body_util::Full;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::{Body, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument as _;

use crate::error::{Error, Result};
use crate::respond::{BodyReadTimeout, BoxError};
use crate::tls::ReloadableTls;

/// What the handler knows about the connection a request arrived on.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnInfo {
    /// The client's address.
    pub remote_addr: SocketAddr,
    /// The client certificate chain (leaf first), verified against the client-CA bundle
    /// during the handshake. `None` when the client presented no certificate (or the server
    /// has no client-CA bundle). A chain that did not verify never gets here: its handshake
    /// failed.
    pub peer_certificates: Option<Vec<CertificateDer<'static>>>,
}

impl ConnInfo {
    /// A `ConnInfo` for tests of handlers that do not go through [`Server::serve`].
    #[must_use]
    pub fn new(
        remote_addr: SocketAddr,
        peer_certificates: Option<Vec<CertificateDer<'static>>>,
    ) -> Self {
        Self {
            remote_addr,
            peer_certificates,
        }
    }
}

/// The subject common name (CN) of the verified client leaf certificate, if the client
/// presented one and it has a CN.
///
/// The API server compares this with its `--requestheader-allowed-names` to accept
/// front-proxy headers from kube-apiserver only.
#[must_use]
pub fn peer_common_name(conn: &ConnInfo) -> Option<String> {
    let leaf = conn.peer_certificates.as_ref()?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

/// The subject organizations (O) of the verified client leaf certificate, i.e. the
/// Kubernetes groups of a client-certificate user. Empty when there is no certificate.
#[must_use]
pub fn peer_organizations(conn: &ConnInfo) -> Vec<String> {
    let Some(leaf) = conn.peer_certificates.as_ref().and_then(|c| c.first()) else {
        return Vec::new();
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf) else {
        return Vec::new();
    };
    cert.subject()
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_owned))
        .collect()
}

/// Timeouts and caps of the serve loop. `Default` suits every Kompox server; each binary
/// takes them as flags ([`ServeFlags`]). Defaults (docs/security.md):
///
/// | option | default |
/// |---|---|
/// | [`handshake_timeout`](Self::handshake_timeout) | 10 s |
/// | [`header_read_timeout`](Self::header_read_timeout) | 10 s |
/// | [`body_read_timeout`](Self::body_read_timeout) | 10 s |
/// | [`idle_timeout`](Self::idle_timeout) | 90 s |
/// | [`max_connections`](Self::max_connections) | 1,024 |
/// | [`max_http2_streams`](Self::max_http2_streams) | 100 |
/// | [`shutdown_grace`](Self::shutdown_grace) | 20 s |
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeOptions {
    /// Longest a client may take to complete the TLS handshake. Default 10 s.
    pub handshake_timeout: Duration,
    /// Longest an HTTP/1.1 client may take to send a request's headers (also between
    /// requests on a kept-alive connection). Default 10 s.
    pub header_read_timeout: Duration,
    /// Longest a client may take to send a request's body, from the moment its headers
    /// arrived: past it, reading the body fails ([`RequestBody`]; the handler answers
    /// `408 Request Timeout`) and the connection is closed. Default 10 s.
    pub body_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed (HTTP/1.1 and before
    /// the protocol is known: closed; HTTP/2: GOAWAY). Default 90 s, as kube-apiserver's.
    pub idle_timeout: Duration,
    /// Connections served at once; further clients wait in the listen backlog until one
    /// closes. Default 1,024.
    pub max_connections: usize,
    /// Concurrent HTTP/2 streams a client may open on one connection. Default 100.
    pub max_http2_streams: u32,
    /// After shutdown is signalled, how long in-flight requests may run before their
    /// connections are dropped. Default 20 s (under Kubernetes' 30 s termination grace).
    pub shutdown_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            max_connections: 1024,
            max_http2_streams: 100,
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

impl ServeOptions {
    /// Sets [`ServeOptions::handshake_timeout`].
    #[must_use]
    pub fn handshake_timeout(mut self, d: Duration) -> Self {
        self.handshake_timeout = d;
        self
    }

    /// Sets [`ServeOptions::header_read_timeout`].
    #[must_use]
    pub fn header_read_timeout(mut self, d: Duration) -> Self {
        self.header_read_timeout = d;
        self
    }

    /// Sets [`ServeOptions::body_read_timeout`].
    #[must_use]
    pub fn body_read_timeout(mut self, d: Duration) -> Self {
        self.body_read_timeout = d;
        self
    }

    /// Sets [`ServeOptions::idle_timeout`].
    #[must_use]
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = d;
        self
    }

    /// Sets [`ServeOptions::max_connections`] (at least 1).
    #[must_use]
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Sets [`ServeOptions::max_http2_streams`] (at least 1).
    #[must_use]
    pub fn max_http2_streams(mut self, n: u32) -> Self {
        self.max_http2_streams = n.max(1);
        self
    }

    /// Sets [`ServeOptions::shutdown_grace`].
    #[must_use]
    pub fn shutdown_grace(mut self, d: Duration) -> Self {
        self.shutdown_grace = d;
        self
    }
}

/// The serving limits as command-line flags, the same on every Kompox server (flatten into
/// the binary's clap parser, then [`ServeFlags::options`]).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ServeFlags {
    /// Seconds a client may take for the TLS handshake.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub handshake_timeout_seconds: u64,
    /// Seconds an HTTP/1.1 client may take to send a request's headers.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub header_read_timeout_seconds: u64,
    /// Seconds a client may take to send a request's body once its headers arrived.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub body_read_timeout_seconds: u64,
    /// Seconds a connection may stay without a request in flight before it is closed.
    #[arg(long, value_name = "SECONDS", default_value_t = 90)]
    pub idle_timeout_seconds: u64,
    /// Connections served at once (more wait in the listen backlog).
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,
    /// Concurrent HTTP/2 streams per connection.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_http2_streams: u32,
}

impl Default for ServeFlags {
    fn default() -> Self {
        let o = ServeOptions::default();
        Self {
            handshake_timeout_seconds: o.handshake_timeout.as_secs(),
            header_read_timeout_seconds: o.header_read_timeout.as_secs(),
            body_read_timeout_seconds: o.body_read_timeout.as_secs(),
            idle_timeout_seconds: o.idle_timeout.as_secs(),
            max_connections: o.max_connections as u64,
            max_http2_streams: o.max_http2_streams,
        }
    }
}

impl ServeFlags {
    /// The [`ServeOptions`] these flags give (the shutdown grace stays the default).
    #[must_use]
    pub fn options(&self) -> ServeOptions {
        ServeOptions::default()
            .handshake_timeout(Duration::from_secs(self.handshake_timeout_seconds))
            .header_read_timeout(Duration::from_secs(self.header_read_timeout_seconds))
            .body_read_timeout(Duration::from_secs(self.body_read_timeout_seconds))
            .idle_timeout(Duration::from_secs(self.idle_timeout_seconds))
            .max_connections(usize::try_from(self.max_connections).unwrap_or(usize::MAX))
            .max_http2_streams(self.max_http2_streams)
    }
}

/// A request body that fails once the client took longer than
/// [`ServeOptions::body_read_timeout`] (from the moment the request's headers arrived) to
/// send it; the error is [`BodyReadTimeout`] (which [`crate::read_body_limited`] reports as
/// `408`). The connection is closed after the response.
#[derive(Debug)]
pub struct RequestBody {
    inner: Incoming,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
    timed_out: Arc<AtomicBool>,
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::result::Result<hyper::body::Frame<Bytes>, BoxError>>> {
        use std::task::Poll;
        if let Poll::Ready(frame) = std::pin::Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.timed_out.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(Box::new(BodyReadTimeout(self.timeout)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// How the accept loop takes a connection.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Transport {
    /// TLS, with the config current at accept time (so a [`ReloadableTls`] update applies to
    /// new connections only).
    Tls(ReloadableTls),
    /// Plain HTTP, for endpoints that carry nothing confidential on a loopback or pod
    /// address (the controller's probes and metrics). [`ConnInfo::peer_certificates`] is
    /// always `None`.
    Plain,
}

impl From<ReloadableTls> for Transport {
    fn from(tls: ReloadableTls) -> Self {
        Self::Tls(tls)
    }
}

impl Transport {
    fn scheme(&self) -> &'static str {
        match self {
            Self::Tls(_) => "HTTPS",
            Self::Plain => "HTTP",
        }
    }
}

/// A bound listener with its [`Transport`] and [`ServeOptions`], not serving yet: the
/// address is known (tests register it) before [`Server::serve`] runs.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    transport: Transport,
    options: ServeOptions,
}

impl Server {
    /// Binds `addr` (`127.0.0.1:0` picks a free port), with [`ServeOptions::default`].
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] naming the address.
    pub async fn bind(addr: SocketAddr, transport: impl Into<Transport>) -> Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        Ok(Self::new(listener, transport))
    }

    /// Serves on a listener bound elsewhere, with [`ServeOptions::default`].
    #[must_use]
    pub fn new(listener: TcpListener, transport: impl Into<Transport>) -> Self {
        Self {
            listener,
            transport: transport.into(),
            options: ServeOptions::default(),
        }
    }

    /// Replaces the [`ServeOptions`].
    #[must_use]
    pub fn with_options(mut self, options: ServeOptions) -> Self {
        self.options = options;
        self
    }

    /// The bound address.
    ///
    /// # Errors
    ///
    /// When the socket has no local address (not expected once bound).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes.
    ///
    /// Each accepted connection gets its own task: with [`Transport::Tls`], a TLS handshake
    /// with the config current at accept time (bounded by
    /// [`ServeOptions::handshake_timeout`]); then HTTP/1.1 or HTTP/2 (chosen by ALPN, or by
    /// sniffing the preface). Every request calls `handler` with the request and the
    /// connection's [`ConnInfo`]; the handler turns its own errors into responses. A handler
    /// panic becomes a `500` for that request only.
    ///
    /// Connection errors (handshake failures, resets, timeouts) are logged at `debug` and
    /// never stop the loop; accept errors are logged at `warn` and retried after a short
    /// pause.
    ///
    /// On `shutdown`: the listener is closed, connections are told to finish (HTTP/1.1
    /// closes after the current response, HTTP/2 sends GOAWAY), and `serve` returns when all
    /// have finished or after [`ServeOptions::shutdown_grace`], dropping whatever is left.
    pub async fn serve<H, Fut, B>(self, handler: H, shutdown: impl Future<Output = ()>)
    where
        H: Fn(Request<RequestBody>, Arc<ConnInfo>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<B>> + Send + 'static,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let handler: DynHandler = Arc::new(move |req, conn| {
            let fut = handler(req, conn);
            Box::pin(async move { fut.await.map(|b| b.map_err(Into::into).boxed_unsync()) })
        });
        self.run(handler, shutdown).await;
    }

    async fn run(self, handler: DynHandler, shutdown: impl Future<Output = ()>) {
        let Self {
            listener,
            transport,
            options,
        } = self;
        let mut http = auto::Builder::new(TokioExecutor::new());
        http.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(options.header_read_timeout);
        http.http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(options.max_http2_streams);
        let http = Arc::new(http);

        let local = listener.local_addr().ok();
        let scheme = transport.scheme();
        tracing::info!(addr = ?local, "serving {scheme}");

        let (stop_tx, stop_rx) = watch::channel(false);
        let permits = Arc::new(Semaphore::new(options.max_connections.max(1)));
        let mut conns: JoinSet<()> = JoinSet::new();
        tokio::pin!(shutdown);

        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(joined) = conns.join_next(), if !conns.is_empty() => {
                    if let Err(e) = joined
                        && e.is_panic()
                    {
                        tracing::error!("connection task panicked");
                    }
                }
                (permit, accepted) = accept_within(&listener, &permits) => match accepted {
                    Ok((stream, remote_addr)) => {
                        let conn = Conn {
                            remote_addr,
                            http: http.clone(),
                            handler: handler.clone(),
                            stop: stop_rx.clone(),
                            options: options.clone(),
                            _permit: permit,
                        };
                        match &transport {
                            // The config current at accept time is the one this connection uses.
                            Transport::Tls(tls) => conns.spawn(conn.serve_tls(
                                stream,
                                tls.acceptor(),
                            )),
                            Transport::Plain => conns.spawn(conn.serve_plain(stream)),
                        };
                    }
                    Err(e) => {
                        // Typically EMFILE/ENFILE: back off so the loop does not spin, but stay
                        // responsive to shutdown.
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
        tracing::info!(addr = ?local, open = conns.len(), "shutting down {scheme} server");
        let _ = stop_tx.send(true);
        let drain = async { while conns.join_next().await.is_some() {} };
        if tokio::time::timeout(options.shutdown_grace, drain)
            .await
            .is_err()
        {
            tracing::warn!(
                addr = ?local,
                remaining = conns.len(),
                "shutdown grace period elapsed; dropping remaining connections"
            );
            conns.shutdown().await;
        }
        tracing::info!(addr = ?local, "{scheme} server stopped");
    }
}

/// Accepts the next connection once fewer than [`ServeOptions::max_connections`] are open;
/// the permit is held for the connection's life.
async fn accept_within(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
) -> (
    Option<tokio::sync::OwnedSemaphorePermit>,
    std::io::Result<(TcpStream, SocketAddr)>,
) {
    if permits.available_permits() == 0 {
        tracing::warn!("at the connection limit: new connections wait");
    }
    let permit = permits.clone().acquire_owned().await.ok();
    (permit, listener.accept().await)
}

/// Requests in flight on one connection and when the last one ended, for the idle timeout.
struct Activity {
    in_flight: AtomicUsize,
    last: Mutex<Instant>,
    changed: Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
            changed: Notify::new(),
        }
    }

    fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_one();
        InFlight(self.clone())
    }

    /// Completes once no request has been in flight for `timeout`.
    async fn idle(&self, timeout: Duration) {
        loop {
            if self.in_flight.load(Ordering::SeqCst) == 0 {
                let deadline = *self.last.lock().unwrap_or_else(PoisonError::into_inner) + timeout;
                if Instant::now() >= deadline {
                    return;
                }
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => {}
                    () = self.changed.notified() => {}
                }
            } else {
                self.changed.notified().await;
            }
        }
    }
}

/// One request in flight; its end is the connection's last activity.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        *self.0.last.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_one();
    }
}

type RespBody = UnsyncBoxBody<Bytes, BoxError>;

type BoxedResponse = std::pin::Pin<Box<dyn Future<Output = Response<RespBody>> + Send + 'static>>;

type DynHandler = Arc<dyn Fn(Request<RequestBody>, Arc<ConnInfo>) -> BoxedResponse + Send + Sync>;

fn internal_error() -> Response<RespBody> {
    let mut resp = Response::new(
        Full::new(Bytes::from_static(b"internal server error\n"))
            .map_err(|never: Infallible| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    resp
}

/// A HEAD response: the headers (with the `Content-Length` the body would have had), no body.
/// HTTP/1.1 drops a HEAD response's body itself; over HTTP/2 body frames after a HEAD are a
/// protocol error, so the body never reaches the connection.
fn without_body(resp: Response<RespBody>) -> Response<RespBody> {
    let (mut parts, body) = resp.into_parts();
    if let Some(len) = body.size_hint().exact()
        && !parts.headers.contains_key(http::header::CONTENT_LENGTH)
    {
        parts
            .headers
            .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
    }
    let empty = Full::new(Bytes::new())
        .map_err(|never: Infallible| match never {})
        .boxed_unsync();
    Response::from_parts(parts, empty)
}

/// One accepted connection, before its transport is set up.
struct Conn {
    remote_addr: SocketAddr,
    http: Arc<auto::Builder<TokioExecutor>>,
    handler: DynHandler,
    stop: watch::Receiver<bool>,
    options: ServeOptions,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Conn {
    async fn serve_plain(self, stream: TcpStream) {
        self.set_nodelay(&stream);
        self.serve_http(stream, None).await;
    }

    async fn serve_tls(self, stream: TcpStream, acceptor: TlsAcceptor) {
        self.set_nodelay(&stream);
        let remote_addr = self.remote_addr;
        let tls_stream =
            match tokio::time::timeout(self.options.handshake_timeout, acceptor.accept(stream))
                .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%remote_addr, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%remote_addr, "TLS handshake timed out");
                    return;
                }
            };
        let peer_certificates = tls_stream
            .get_ref()
            .1
            .peer_certificates()
            .filter(|chain| !chain.is_empty())
            .map(|chain| chain.iter().map(|c| c.clone().into_owned()).collect());
        self.serve_http(tls_stream, peer_certificates).await;
    }

    fn set_nodelay(&self, stream: &TcpStream) {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(remote_addr = %self.remote_addr, error = %e, "set_nodelay failed");
        }
    }

    async fn serve_http<IO>(self, io: IO, peer_certificates: Option<Vec<CertificateDer<'static>>>)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Self {
            remote_addr,
            http,
            handler,
            mut stop,
            options,
            _permit,
        } = self;
        let info = Arc::new(ConnInfo {
            remote_addr,
            peer_certificates,
        });
        let activity = Arc::new(Activity::new());
        let body_timeout = options.body_read_timeout;
        let service = {
            let activity = activity.clone();
            hyper::service::service_fn(move |req: Request<Incoming>| {
                let in_flight = activity.start();
                let handler = handler.clone();
                let info = info.clone();
                let timed_out = Arc::new(AtomicBool::new(false));
                let http1 = req.version() < http::Version::HTTP_2;
                let head = req.method() == http::Method::HEAD;
                let span = request_span(&req);
                let req = req.map(|inner| RequestBody {
                    inner,
                    deadline: Box::pin(tokio::time::sleep(body_timeout)),
                    timeout: body_timeout,
                    timed_out: timed_out.clone(),
                });
                // The handler is called inside the caught future so a panic before its first
                // `.await` is caught as well.
                let fut = AssertUnwindSafe(async move { handler(req, info).await }).catch_unwind();
                let traced = span.clone();
                async move {
                    let mut resp = fut.await.unwrap_or_else(|_| {
                        tracing::error!(%remote_addr, "request handler panicked");
                        internal_error()
                    });
                    record_response(&traced, resp.status());
                    // A client too slow to send its body loses the connection.
                    if http1 && timed_out.load(Ordering::Relaxed) {
                        resp.headers_mut().insert(
                            http::header::CONNECTION,
                            http::HeaderValue::from_static("close"),
                        );
                    }
                    drop(in_flight);
                    if head {
                        resp = without_body(resp);
                    }
                    Ok::<_, Infallible>(resp)
                }
                .instrument(span)
            })
        };
        let conn = http.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        let mut closing = false;
        let result = loop {
            tokio::select! {
                r = conn.as_mut() => break r,
                () = activity.idle(options.idle_timeout), if !closing => {
                    tracing::debug!(%remote_addr, "closing an idle connection");
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
                _ = stop.wait_for(|s| *s), if !closing => {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        };
        if let Err(e) = result {
            tracing::debug!(%remote_addr, error = %e, "connection ended with error");
        }
    }
}

/// Paths answered for probes and scrapes: not traced (a trace every few seconds per prober).
const UNTRACED_PATHS: [&str; 4] = ["/healthz", "/livez", "/readyz", "/metrics"];

/// The span of one request (`otel.kind = server`, named by its method as OpenTelemetry's HTTP
/// conventions say when the route is not known at the start), continuing the caller's W3C
/// trace context; disabled for probe and scrape paths. The handler's
/// [`crate::Metrics::observe`] records the route (`http.route`).
fn request_span<B>(req: &Request<B>) -> tracing::Span {
    let path = req.uri().path();
    if UNTRACED_PATHS.contains(&path) {
        return tracing::Span::none();
    }
    let method = crate::metrics::method_label(req.method());
    // Debug: in traces, not in the info-level log lines' context.
    let span = tracing::debug_span!(
        "request",
        otel.name = method,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = method,
        url.path = path,
        http.route = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    if let Some(parent) = crate::otlp::parent_context(req.headers()) {
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        let _ = span.set_parent(parent);
    }
    span
}

/// Records the answer's status on the request span (a 5xx marks the span as failed).
fn record_response(span: &tracing::Span, status: StatusCode) {
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
}

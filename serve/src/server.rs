//! The accept loop: TLS handshake (or plain HTTP), HTTP/1.1 + HTTP/2, graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
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
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::error::{Error, Result};
use crate::tls::ReloadableTls;

/// Boxed error type for response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

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

/// Timeouts of the serve loop. `Default` suits both Kompox servers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeOptions {
    /// Longest a client may take to complete the TLS handshake. Default 10 s.
    pub handshake_timeout: Duration,
    /// Longest an HTTP/1.1 client may take to send a request's headers. Default 10 s.
    pub header_read_timeout: Duration,
    /// After shutdown is signalled, how long in-flight requests may run before their
    /// connections are dropped. Default 20 s (under Kubernetes' 30 s termination grace).
    pub shutdown_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
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

    /// Sets [`ServeOptions::shutdown_grace`].
    #[must_use]
    pub fn shutdown_grace(mut self, d: Duration) -> Self {
        self.shutdown_grace = d;
        self
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
        H: Fn(Request<Incoming>, Arc<ConnInfo>) -> Fut + Send + Sync + 'static,
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
        http.http2().timer(TokioTimer::new());
        let http = Arc::new(http);

        let local = listener.local_addr().ok();
        let scheme = transport.scheme();
        tracing::info!(addr = ?local, "serving {scheme}");

        let graceful = GracefulShutdown::new();
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
                accepted = listener.accept() => match accepted {
                    Ok((stream, remote_addr)) => {
                        let conn = Conn {
                            remote_addr,
                            http: http.clone(),
                            handler: handler.clone(),
                            watcher: graceful.watcher(),
                        };
                        match &transport {
                            // The config current at accept time is the one this connection uses.
                            Transport::Tls(tls) => conns.spawn(conn.serve_tls(
                                stream,
                                tls.acceptor(),
                                options.handshake_timeout,
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
        let drain = async {
            graceful.shutdown().await;
            while conns.join_next().await.is_some() {}
        };
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

type RespBody = UnsyncBoxBody<Bytes, BoxError>;

type BoxedResponse = std::pin::Pin<Box<dyn Future<Output = Response<RespBody>> + Send + 'static>>;

type DynHandler = Arc<dyn Fn(Request<Incoming>, Arc<ConnInfo>) -> BoxedResponse + Send + Sync>;

fn internal_error() -> Response<RespBody> {
    let mut resp = Response::new(
        Full::new(Bytes::from_static(b"internal server error\n"))
            .map_err(|never: Infallible| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    resp
}

/// One accepted connection, before its transport is set up.
struct Conn {
    remote_addr: SocketAddr,
    http: Arc<auto::Builder<TokioExecutor>>,
    handler: DynHandler,
    watcher: Watcher,
}

impl Conn {
    async fn serve_plain(self, stream: TcpStream) {
        self.set_nodelay(&stream);
        self.serve_http(stream, None).await;
    }

    async fn serve_tls(
        self,
        stream: TcpStream,
        acceptor: TlsAcceptor,
        handshake_timeout: Duration,
    ) {
        self.set_nodelay(&stream);
        let remote_addr = self.remote_addr;
        let tls_stream =
            match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
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
            watcher,
        } = self;
        let info = Arc::new(ConnInfo {
            remote_addr,
            peer_certificates,
        });
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let handler = handler.clone();
            let info = info.clone();
            // The handler is called inside the caught future so a panic before its first
            // `.await` is caught as well.
            let fut = AssertUnwindSafe(async move { handler(req, info).await }).catch_unwind();
            async move {
                Ok::<_, Infallible>(fut.await.unwrap_or_else(|_| {
                    tracing::error!(%remote_addr, "request handler panicked");
                    internal_error()
                }))
            }
        });
        let conn = http.serve_connection(TokioIo::new(io), service);
        if let Err(e) = watcher.watch(conn).await {
            tracing::debug!(%remote_addr, error = %e, "connection ended with error");
        }
    }
}

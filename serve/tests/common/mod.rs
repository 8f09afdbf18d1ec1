//! Test support: a server on 127.0.0.1:0 and a rustls client.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Empty, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use kompox_serve::{
    CertKeyPem, ConnInfo, RequestBody, ServeOptions, Server, Transport, cert_fingerprint_sha256,
    peer_common_name, peer_organizations, read_body_limited, text,
};
use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Every await in a test is bounded by this.
pub const LIMIT: Duration = Duration::from_secs(10);

pub async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("test step timed out")
}

/// Shared state the test handler exposes.
#[derive(Default)]
pub struct Probe {
    /// Requests that reached the handler.
    pub hits: AtomicUsize,
    /// `/slow` notifies this when it starts ...
    pub slow_started: Notify,
    /// ... and waits for this.
    pub slow_release: Notify,
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub probe: Arc<Probe>,
    shutdown: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<()>,
}

impl TestServer {
    pub async fn start(transport: impl Into<Transport>) -> Self {
        Self::start_with(transport, ServeOptions::default()).await
    }

    pub async fn start_with(transport: impl Into<Transport>, options: ServeOptions) -> Self {
        let server = Server::bind("127.0.0.1:0".parse().unwrap(), transport)
            .await
            .unwrap()
            .with_options(options);
        let addr = server.local_addr().unwrap();
        let probe = Arc::new(Probe::default());
        let (tx, rx) = oneshot::channel::<()>();
        let p = probe.clone();
        let task = tokio::spawn(server.serve(
            move |req, conn| handle(req, conn, p.clone()),
            async move {
                let _ = rx.await;
            },
        ));
        Self {
            addr,
            probe,
            shutdown: Some(tx),
            task,
        }
    }

    /// Signals shutdown (does not wait).
    pub fn signal_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Signals shutdown and waits for `serve` to return.
    pub async fn stop(mut self) {
        self.signal_shutdown();
        bounded(&mut self.task).await.unwrap();
    }
}

async fn handle(
    req: Request<RequestBody>,
    conn: Arc<ConnInfo>,
    probe: Arc<Probe>,
) -> Response<Full<Bytes>> {
    probe.hits.fetch_add(1, Ordering::SeqCst);
    match req.uri().path() {
        "/whoami" => {
            let cn = peer_common_name(&conn).unwrap_or_else(|| "-".into());
            let orgs = peer_organizations(&conn).join(",");
            let chain = conn.peer_certificates.as_ref().map_or(0, Vec::len);
            text(
                StatusCode::OK,
                &format!(
                    "cn={cn};orgs={orgs};chain={chain};version={:?}",
                    req.version()
                ),
            )
        }
        "/slow" => {
            probe.slow_started.notify_one();
            probe.slow_release.notified().await;
            text(StatusCode::OK, "slow done")
        }
        "/panic" => panic!("handler panic on purpose"),
        "/echo" => match read_body_limited(req.into_body(), 1 << 20).await {
            Ok(b) => text(StatusCode::OK, &format!("{} bytes", b.len())),
            Err(e) => text(e.status(), &e.to_string()),
        },
        _ => text(StatusCode::NOT_FOUND, "not found"),
    }
}

pub struct ClientOpts<'a> {
    pub ca_pem: &'a str,
    pub server_name: &'a str,
    pub identity: Option<&'a CertKeyPem>,
    pub alpn: Vec<Vec<u8>>,
    pub tls12_only: bool,
}

impl<'a> ClientOpts<'a> {
    pub fn new(ca_pem: &'a str) -> Self {
        Self {
            ca_pem,
            server_name: "localhost",
            identity: None,
            alpn: vec![b"http/1.1".to_vec()],
            tls12_only: false,
        }
    }
}

pub fn client_config(opts: &ClientOpts<'_>) -> ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(opts.ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider);
    let builder = if opts.tls12_only {
        builder
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
    } else {
        builder.with_safe_default_protocol_versions().unwrap()
    }
    .with_root_certificates(roots);
    let mut config = match opts.identity {
        None => builder.with_no_client_auth(),
        Some(id) => {
            let chain: Vec<_> = CertificateDer::pem_slice_iter(id.cert_pem.as_bytes())
                .map(Result::unwrap)
                .collect();
            let key = PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    config.alpn_protocols = opts.alpn.clone();
    config
}

pub async fn connect(
    addr: SocketAddr,
    opts: &ClientOpts<'_>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let connector = TlsConnector::from(Arc::new(client_config(opts)));
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(opts.server_name.to_owned()).unwrap();
    bounded(connector.connect(name, tcp)).await
}

pub fn peer_fingerprint(stream: &TlsStream<TcpStream>) -> String {
    let certs = stream.get_ref().1.peer_certificates().unwrap();
    cert_fingerprint_sha256(&certs[0])
}

pub fn fingerprint_of_pem(cert_pem: &str) -> String {
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
    cert_fingerprint_sha256(&der)
}

/// An HTTP/1.1 client connection over an established TLS stream.
pub struct H1 {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    pub conn: JoinHandle<Result<(), hyper::Error>>,
}

impl H1 {
    /// Over TLS or a plain TCP stream.
    pub async fn new<S>(stream: S) -> Result<Self, hyper::Error>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        Ok(Self {
            sender,
            conn: tokio::spawn(conn),
        })
    }

    pub async fn get(&mut self, path: &str) -> Result<(StatusCode, String), hyper::Error> {
        bounded(self.sender.ready()).await?;
        let req = Request::get(path)
            .header(http::header::HOST, "localhost")
            .body(Empty::new())
            .unwrap();
        let resp = bounded(self.sender.send_request(req)).await?;
        let status = resp.status();
        let body = bounded(resp.into_body().collect()).await?.to_bytes();
        Ok((status, String::from_utf8(body.to_vec()).unwrap()))
    }
}

/// One GET over a fresh HTTP/1.1 connection.
pub async fn get_once(
    addr: SocketAddr,
    opts: &ClientOpts<'_>,
    path: &str,
) -> Result<(StatusCode, String), String> {
    let stream = connect(addr, opts)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut h1 = H1::new(stream)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    h1.get(path).await.map_err(|e| format!("request: {e:?}"))
}

/// One GET over a fresh HTTP/2 connection (ALPN h2).
pub async fn get_h2(addr: SocketAddr, ca_pem: &str, path: &str) -> (StatusCode, String) {
    let mut opts = ClientOpts::new(ca_pem);
    opts.alpn = vec![b"h2".to_vec()];
    let stream = connect(addr, &opts).await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get(format!("https://localhost{path}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = bounded(sender.send_request(req)).await.unwrap();
    let status = resp.status();
    let body = bounded(resp.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "kompox-serve-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

//! The `kompox-apiserver` binary as a process: flags, certificate rotation without a restart,
//! and `--exit-on-stdin-close`. No cluster is needed: the kubeconfig points at a closed port,
//! so only the endpoints that need no Kubernetes reads are exercised.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use kompox_serve::{cert_fingerprint_sha256, generate_ca, issue_serving_cert};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};

const KUBECONFIG: &str = r#"apiVersion: v1
kind: Config
clusters:
- name: nowhere
  cluster:
    server: https://127.0.0.1:9
users:
- name: nobody
  user:
    token: not-a-real-token
contexts:
- name: nowhere
  context: {cluster: nowhere, user: nobody}
current-context: nowhere
"#;

/// GET `path` over a new TLS connection; returns the status and the served leaf's fingerprint.
async fn get(port: u16, ca_pem: &str, path: &str) -> Option<(u16, String)> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.ok()?).ok()?;
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").ok()?, tcp)
        .await
        .ok()?;
    let leaf = tls.get_ref().1.peer_certificates()?.first()?.clone();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .ok()?;
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .ok()?;
    let resp = send.send_request(req).await.ok()?;
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    Some((status, cert_fingerprint_sha256(&leaf)))
}

async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn fingerprint(pem: &str) -> String {
    cert_fingerprint_sha256(&CertificateDer::from_pem_slice(pem.as_bytes()).unwrap())
}

/// A `kompox-apiserver` process on a free port with certificate files in a directory of its
/// own, stdin piped (`--exit-on-stdin-close`).
struct Process {
    child: std::process::Child,
    port: u16,
    ca: kompox_serve::CertifiedCa,
    first: kompox_serve::CertKeyPem,
    dir: std::path::PathBuf,
}

impl Process {
    async fn start(tag: &str) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir =
            std::env::temp_dir().join(format!("kompox-apiserver-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = generate_ca("process-test-ca").unwrap();
        let first = issue_serving_cert(&ca, &["localhost"], &[], 1).unwrap();
        std::fs::write(dir.join("tls.crt"), &first.cert_pem).unwrap();
        std::fs::write(dir.join("tls.key"), &first.key_pem).unwrap();
        std::fs::write(dir.join("kubeconfig"), KUBECONFIG).unwrap();
        std::fs::write(
            dir.join("hash.key"),
            "process test: a hash key of 32+ bytes\n",
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_kompox-apiserver"))
            .arg(format!("--listen=127.0.0.1:{port}"))
            .arg(format!("--tls-cert-file={}", dir.join("tls.crt").display()))
            .arg(format!(
                "--tls-private-key-file={}",
                dir.join("tls.key").display()
            ))
            .arg(format!("--kubeconfig={}", dir.join("kubeconfig").display()))
            .arg("--tls-reload-interval-seconds=1")
            .arg(format!(
                "--hash-key-file={}",
                dir.join("hash.key").display()
            ))
            .arg("--exit-on-stdin-close")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let p = Self {
            child,
            port,
            ca,
            first,
            dir,
        };
        let (status, served) = until("the server to answer /healthz", async || {
            get(p.port, p.ca.cert_pem(), "/healthz").await
        })
        .await;
        assert_eq!(status, 200);
        assert_eq!(served, fingerprint(&p.first.cert_pem));
        p
    }

    /// Waits (at most 30 s) for the process to exit; it must exit successfully.
    async fn exits(mut self, after: &str) {
        let started = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                panic!("the server did not exit after {after}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(status.success(), "{status:?}");
        let _ = std::io::stderr().flush();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn rotates_its_certificate_without_restart_and_exits_when_stdin_closes() {
    let mut p = Process::start("rotate").await;
    let (port, ca_pem) = (p.port, p.ca.cert_pem().to_owned());
    // Not ready: the front-proxy configuration cannot be read from this "cluster".
    let (status, _) = get(port, &ca_pem, "/readyz").await.unwrap();
    assert_eq!(status, 503);
    let (status, _) = get(port, &ca_pem, "/apis/subresources.k8s.kompox.dev/v1alpha1")
        .await
        .unwrap();
    assert_eq!(status, 200);

    // Rotate: key first, then certificate (a half-written rotation keeps the old pair).
    let second = issue_serving_cert(&p.ca, &["localhost"], &[], 1).unwrap();
    std::fs::write(p.dir.join("tls.key"), &second.key_pem).unwrap();
    std::fs::write(p.dir.join("tls.crt"), &second.cert_pem).unwrap();
    let want = fingerprint(&second.cert_pem);
    until("the rotated certificate to be served", async || {
        get(port, &ca_pem, "/healthz")
            .await
            .filter(|(_, f)| *f == want)
    })
    .await;

    // Closing stdin stops the server.
    drop(p.child.stdin.take());
    p.exits("stdin closed").await;
}

#[tokio::test]
async fn sigterm_stops_it_while_stdin_is_still_open() {
    let p = Process::start("sigterm").await;
    let killed = Command::new("kill")
        .args(["-TERM", &p.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // stdin stays open (p.child.stdin is held): the stdin watch must not keep it alive.
    p.exits("SIGTERM").await;
}

//! Harness for kompox-apiserver's end-to-end tests: one server per test process, registered
//! with the real kube-apiserver through an ExternalName Service and the APIService from
//! `manifests/apiserver/` (see hack/README.md for why ExternalName → `localhost`).
//!
//! The server runs in this process on a runtime of its own (so it outlives each test's
//! runtime), reads the cluster as the `kompox-apiserver` ServiceAccount with the RBAC of
//! `manifests/apiserver/rbac.yaml` (so the manifests are tested too), and the APIService is
//! put back as it was (or deleted) when this process ends, by a helper that waits for this
//! process's pipe to close. The tests' Service is `kompox-apiserver-e2e`, not the manifests'
//! `kompox-apiserver`. While they run, the APIService points at the tests' server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::KubeConfigOptions;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};

use crate::{cluster, ensure_crds, kubectl, repo_root, service_account_kubeconfig, wait_until};

/// Name of the APIService.
pub const APISERVICE: &str = "v1alpha1.subresources.k8s.kompox.dev";
/// Namespace of the server's Service and ServiceAccount.
pub const SYSTEM_NAMESPACE: &str = "k4x-system";
/// Name of the ServiceAccount (from manifests/apiserver/rbac.yaml).
pub const SERVICE_ACCOUNT: &str = "kompox-apiserver";
/// Name of the tests' ExternalName Service: not the manifests' `kompox-apiserver`, so a
/// Kompox installed on the same cluster (e.g. a running demo) keeps its Service.
pub const SERVICE: &str = "kompox-apiserver-e2e";
/// `/apis/<group>/<version>` of the served API.
pub const BASE: &str = "/apis/subresources.k8s.kompox.dev/v1alpha1";

/// The shared server.
#[derive(Debug)]
pub struct Aggregated {
    /// Where the server listens (loopback).
    pub addr: SocketAddr,
    /// The CA that signed its serving certificate (the APIService's caBundle).
    pub ca_pem: String,
}

/// The front-proxy client certificate and key kube-apiserver uses (from hack/cluster.sh's
/// PKI), for direct requests that present the real proxy identity.
pub fn front_proxy_client() -> Result<(String, String)> {
    let pki = cluster()
        .front_proxy_ca
        .parent()
        .map(PathBuf::from)
        .context("front-proxy CA path has no directory")?;
    let cert = std::fs::read_to_string(pki.join("front-proxy-client.crt"))
        .context("reading front-proxy-client.crt")?;
    let key = std::fs::read_to_string(pki.join("front-proxy-client.key"))
        .context("reading front-proxy-client.key")?;
    Ok((cert, key))
}

/// Starts (once per process) the server and registers it; waits until the APIService is
/// Available.
pub async fn shared() -> Result<&'static Aggregated> {
    static SHARED: tokio::sync::OnceCell<Aggregated> = tokio::sync::OnceCell::const_new();
    SHARED.get_or_try_init(start).await
}

fn apiservice_api(client: kube::Client) -> Api<DynamicObject> {
    Api::all_with(
        client,
        &ApiResource {
            group: "apiregistration.k8s.io".into(),
            version: "v1".into(),
            api_version: "apiregistration.k8s.io/v1".into(),
            kind: "APIService".into(),
            plural: "apiservices".into(),
        },
    )
}

/// Client configuration acting as the server's ServiceAccount (a fresh bound token). A
/// `Config`, not a `Client`: a client's worker lives on the runtime that built it, and the
/// server runs on a runtime of its own.
async fn service_account_config(admin: &kube::Client) -> Result<kube::Config> {
    let kc = service_account_kubeconfig(admin, SYSTEM_NAMESPACE, SERVICE_ACCOUNT).await?;
    Ok(kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?)
}

/// When this process ends, however it ends, puts the APIService back as it was before the
/// tests (`saved`, e.g. a demo's registration) or deletes it: a child waits for EOF on a pipe
/// only this process holds.
fn restore_apiservice_at_exit(saved: Option<&Value>) -> Result<()> {
    static GUARD: OnceLock<Mutex<Child>> = OnceLock::new();
    if GUARD.get().is_some() {
        return Ok(());
    }
    let c = cluster();
    let kubectl = format!(
        "'{}' --kubeconfig '{}'",
        c.bin_dir.join("kubectl").display(),
        c.admin_kubeconfig.display()
    );
    let script = match saved {
        Some(obj) => {
            let file = std::env::temp_dir()
                .join(format!("kompox-e2e-apiservice-{}.json", std::process::id()));
            std::fs::write(&file, serde_json::to_vec(obj)?)?;
            format!(
                "cat >/dev/null; {kubectl} replace -f '{f}' >/dev/null 2>&1; rm -f '{f}'",
                f = file.display()
            )
        }
        None => format!(
            "cat >/dev/null; exec {kubectl} delete apiservice {APISERVICE} --ignore-not-found --wait=false >/dev/null 2>&1"
        ),
    };
    let child = Command::new("bash")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("spawning the APIService restore helper")?;
    let _ = GUARD.set(Mutex::new(child));
    Ok(())
}

async fn start() -> Result<Aggregated> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    ensure_crds().await?;
    let admin = crate::admin_client().await?;
    let dir = repo_root().join("manifests/apiserver");
    let ns = repo_root().join("manifests/system/namespace.yaml");
    let rbac = dir.join("rbac.yaml");
    let (ns, rbac) = (
        ns.to_string_lossy().into_owned(),
        rbac.to_string_lossy().into_owned(),
    );
    tokio::task::spawn_blocking(move || {
        kubectl(&["apply", "--server-side", "--force-conflicts", "-f", &ns])?;
        kubectl(&["apply", "--server-side", "--force-conflicts", "-f", &rbac])
    })
    .await??;
    let sa_config = service_account_config(&admin).await?;

    let ca = kompox_serve::generate_ca("kompox-apiserver-e2e-ca")?;
    let dns = format!("{SERVICE}.{SYSTEM_NAMESPACE}.svc");
    let leaf = kompox_serve::issue_serving_cert(
        &ca,
        &[dns.as_str(), "localhost"],
        &[std::net::IpAddr::from([127, 0, 0, 1])],
        2,
    )?;
    let mut config = kompox_apiserver::Config::new(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        kompox_apiserver::TlsSource::Pem {
            cert: leaf.cert_pem.clone(),
            key: leaf.key_pem.clone(),
        },
        crate::hash_key(),
    );
    // Short verdict caches so RBAC changes show within a test's wait.
    config.authz_allow_ttl = Duration::from_millis(500);
    config.authz_deny_ttl = Duration::from_millis(500);

    let (tx, rx) = std::sync::mpsc::channel::<Result<SocketAddr, String>>();
    std::thread::Builder::new()
        .name("kompox-apiserver".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            rt.block_on(async move {
                let sa_client = match kube::Client::try_from(sa_config) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let server = match kompox_apiserver::Server::bind(config).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = tx.send(server.local_addr().map_err(|e| e.to_string()));
                server.run(sa_client, std::future::pending()).await;
            });
        })?;
    let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(30)))
        .await?
        .map_err(|e| anyhow!("server did not start: {e}"))?
        .map_err(|e| anyhow!("server did not start: {e}"))?;

    let apiservices = apiservice_api(admin.clone());
    // Keep someone else's registration (not one left by an earlier run of these tests).
    let saved = apiservices
        .get_opt(APISERVICE)
        .await?
        .filter(|a| a.data["spec"]["service"]["name"] != json!(SERVICE))
        .map(|a| {
            json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                   "metadata": {"name": APISERVICE}, "spec": a.data["spec"]})
        });
    restore_apiservice_at_exit(saved.as_ref())?;
    let pp = PatchParams::apply("kompox-e2e").force();
    let svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": SERVICE, "namespace": SYSTEM_NAMESPACE},
        "spec": {"type": "ExternalName", "externalName": "localhost",
                 "ports": [{"name": "https", "port": addr.port(), "protocol": "TCP"}]},
    });
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(admin.clone(), SYSTEM_NAMESPACE);
    // Replaced, not merged: an earlier run may have left another port.
    if services.get_opt(SERVICE).await?.is_some() {
        services.delete(SERVICE, &Default::default()).await?;
    }
    services.patch(SERVICE, &pp, &Patch::Apply(&svc)).await?;

    let text = std::fs::read_to_string(dir.join("apiservice.yaml"))?;
    let mut apiservice: Value =
        serde_saphyr::from_str(&text).context("parsing manifests/apiserver/apiservice.yaml")?;
    apiservice["spec"]["caBundle"] =
        json!(base64::engine::general_purpose::STANDARD.encode(ca.cert_pem()));
    apiservice["spec"]["service"]["port"] = json!(addr.port());
    apiservice["spec"]["service"]["name"] = json!(SERVICE);
    // The whole spec is ours while the tests run (a replace, not a merge with fields another
    // manager set, such as insecureSkipTLSVerify).
    match apiservices.get_opt(APISERVICE).await? {
        Some(existing) => {
            apiservice["metadata"]["resourceVersion"] = json!(existing.metadata.resource_version);
            let obj: DynamicObject = serde_json::from_value(apiservice)?;
            apiservices
                .replace(APISERVICE, &PostParams::default(), &obj)
                .await
                .context("replacing the APIService")?;
        }
        None => {
            let obj: DynamicObject = serde_json::from_value(apiservice)?;
            apiservices
                .create(&PostParams::default(), &obj)
                .await
                .context("creating the APIService")?;
        }
    }
    wait_until(
        "the APIService to be Available",
        Duration::from_secs(90),
        || {
            let api = apiservices.clone();
            let port = addr.port();
            async move {
                let a = api.get(APISERVICE).await?;
                let same_port = a.data["spec"]["service"]["port"] == json!(port)
                    && a.data["spec"]["service"]["name"] == json!(SERVICE);
                let available = a.data["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Available" && c["status"] == "True")
                });
                Ok(same_port && available)
            }
        },
    )
    .await?;
    Ok(Aggregated {
        addr,
        ca_pem: ca.cert_pem().to_owned(),
    })
}

/// A raw request through kube-apiserver with `client`'s identity: status and body.
pub async fn raw(
    client: &kube::Client,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<(StatusCode, Bytes)> {
    let mut b = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = client.send(b.body(kube::client::Body::from(body))?).await?;
    let status = resp.status();
    let bytes = resp.into_body().collect_bytes().await?;
    Ok((status, bytes))
}

/// A request straight to the server (not through kube-apiserver), trusting `ca_pem`, with an
/// optional client certificate. An `Err` means the TLS handshake or the connection failed.
pub async fn direct(
    agg: &Aggregated,
    client_cert: Option<(&str, &str)>,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(StatusCode, Bytes)> {
    let name = format!("{SERVICE}.{SYSTEM_NAMESPACE}.svc");
    let server = (agg.addr, agg.ca_pem.as_str(), name.as_str());
    https_request(server, client_cert, method, path, headers, body).await
}

/// A TLS connection to `server` = (address, CA to trust (PEM), TLS server name), offering
/// ALPN protocol `alpn` (`http/1.1`, `h2`), with an optional client certificate.
pub async fn tls_connect(
    server: (std::net::SocketAddr, &str, &str),
    client_cert: Option<(&str, &str)>,
    alpn: &[u8],
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let (addr, ca_pem, server_name) = server;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c?)?;
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let mut config = match client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain =
                CertificateDer::pem_slice_iter(cert.as_bytes()).collect::<Result<Vec<_>, _>>()?;
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes())?;
            builder.with_client_auth_cert(chain, key)?
        }
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from(server_name.to_owned())?;
    Ok(connector.connect(name, tcp).await?)
}

/// One HTTP/1.1 request over TLS to `server` = (address, CA to trust (PEM), TLS server
/// name), with an optional client certificate. An `Err` means the TLS handshake or the
/// connection failed.
pub async fn https_request(
    server: (std::net::SocketAddr, &str, &str),
    client_cert: Option<(&str, &str)>,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(StatusCode, Bytes)> {
    let tls = tls_connect(server, client_cert, b"http/1.1").await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "kompox-apiserver");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = sender
        .send_request(b.body(Full::new(Bytes::copy_from_slice(body)))?)
        .await?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok((status, bytes))
}

/// Parses a body as JSON, failing with the body text.
pub fn json_body(bytes: &Bytes) -> Result<Value> {
    serde_json::from_slice(bytes)
        .with_context(|| format!("not JSON: {}", String::from_utf8_lossy(bytes)))
}

/// Fails unless `status` is `want`, showing the body.
pub fn expect_status(what: &str, got: (StatusCode, &Bytes), want: StatusCode) -> Result<()> {
    if got.0 != want {
        bail!(
            "{what}: expected {want}, got {}: {}",
            got.0,
            String::from_utf8_lossy(got.1)
        );
    }
    Ok(())
}

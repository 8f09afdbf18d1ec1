//! `bench-apiserver`: latency and throughput of `GET …/kompoxapps/NAME/rendered`, through
//! kube-apiserver (aggregation) and directly, on the local control plane.
//!
//! ```sh
//! eval "$(hack/cluster.sh env)"
//! cargo run --release -p kompox-bench --bin bench-apiserver -- [--requests 300] [--seconds 5]
//! ```
//!
//! It starts the server in-process on 127.0.0.1 (as the admin kubeconfig's user), registers
//! it like tests/e2e does (ExternalName Service + APIService `v1alpha1.subresources.k8s.kompox.dev`
//! — so do not run it while the apiserver e2e tests run), creates a namespace with the Gitea
//! sample (samples/gitea, with a built-in gitea+postgres fallback) and a 50-service app,
//! measures, prints the figures, and deletes what it created. Loopback only, bounded in
//! requests and time.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use base64::Engine as _;
use bytes::Bytes;
use clap::Parser;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use kompox_apiserver::{Config, Server, TlsSource};
use kompox_core::api::{KompoxApp, KompoxDisk};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};

const APISERVICE: &str = "v1alpha1.subresources.k8s.kompox.dev";
const SYSTEM_NS: &str = "k4x-system";
/// Not the manifests' `kompox-apiserver`: an installed Kompox keeps its Service.
const SERVICE: &str = "kompox-apiserver-bench";
const BASE: &str = "/apis/subresources.k8s.kompox.dev/v1alpha1";

#[derive(Debug, Parser)]
struct Args {
    /// Admin kubeconfig (default: $KUBECONFIG).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    /// Sequential requests per latency measurement (after 20 warm-up requests).
    #[arg(long, default_value_t = 300)]
    requests: usize,
    /// Seconds of each throughput measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent clients of the throughput measurement.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

const GITEA_COMPOSE: &str = r#"
services:
  gitea:
    image: gitea/gitea:1.22
    env_file: [./gitea.env]
    environment: {GITEA__database__DB_TYPE: postgres, GITEA__database__HOST: "postgres:5432"}
    ports: ["3000:3000", "2222:22"]
    volumes: ["./data/gitea:/data"]
    depends_on: [postgres]
  postgres:
    image: postgres:16
    env_file: [./postgres.env]
    volumes: ["./data/postgres:/var/lib/postgresql/data"]
"#;

fn fifty_services() -> String {
    // One Pod runs every service, so each listens on its own port.
    let mut s = String::from("services:\n");
    for i in 0..50 {
        s.push_str(&format!(
            "  svc{i:02}:\n    image: registry.example/svc{i:02}:1\n    environment:\n      INDEX: \"{i}\"\n      PEER: svc{:02}:{}\n    ports: [\"{}:{}\"]\n",
            (i + 1) % 50,
            9000 + (i + 1) % 50,
            10000 + i,
            9000 + i
        ));
    }
    s
}

/// The Gitea sample's objects (app, disk, Secret) and compose, from samples/gitea if present.
fn gitea_sample() -> (String, Vec<Value>) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../samples/gitea");
    let compose = std::fs::read_to_string(dir.join("compose.yml")).ok();
    let objects = std::fs::read_to_string(dir.join("app.yml"))
        .ok()
        .and_then(|t| {
            t.split("\n---")
                .map(serde_saphyr::from_str::<Value>)
                .collect::<Result<Vec<_>, _>>()
                .ok()
        })
        .filter(|v| !v.is_empty());
    match (compose, objects) {
        (Some(c), Some(o)) => (c, o),
        _ => (
            GITEA_COMPOSE.to_owned(),
            vec![
                json!({"apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxApp", "metadata": {"name": "gitea"},
                       "spec": {"compose": {"configMapRef": {"name": "gitea-compose", "key": "compose.yml"}},
                                "ingress": {"className": "traefik", "rules": [{"name": "http", "port": 3000, "hosts": ["gitea.example.com"]}]},
                                "deployment": {"zone": "1"},
                                "volumes": [{"name": "default", "diskRef": {"name": "default"}}],
                                "files": {"mounts": [
                                    {"path": "/kompox/project/gitea.env", "secretRef": {"name": "gitea-env-files", "key": "gitea.env"}},
                                    {"path": "/kompox/project/postgres.env", "secretRef": {"name": "gitea-env-files", "key": "postgres.env"}}]}}}),
                json!({"apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxDisk", "metadata": {"name": "default"},
                       "spec": {"size": "10Gi", "zone": "1"}}),
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "gitea-env-files"},
                       "stringData": {"gitea.env": "GITEA__database__PASSWD=bench\n", "postgres.env": "POSTGRES_PASSWORD=bench\n"}}),
            ],
        ),
    }
}

async fn admin_client(path: &std::path::Path) -> Result<kube::Client> {
    Ok(kompox_cluster::client(Some(path)).await?)
}

fn apiservices(client: &kube::Client) -> Api<DynamicObject> {
    Api::all_with(
        client.clone(),
        &ApiResource {
            group: "apiregistration.k8s.io".into(),
            version: "v1".into(),
            api_version: "apiregistration.k8s.io/v1".into(),
            kind: "APIService".into(),
            plural: "apiservices".into(),
        },
    )
}

async fn setup_app(
    client: &kube::Client,
    ns: &str,
    compose: &str,
    objects: &[Value],
) -> Result<()> {
    let pp = PostParams::default();
    let mut compose_cm = None;
    for o in objects {
        let kind = o["kind"].as_str().unwrap_or("");
        match kind {
            "KompoxApp" => {
                let app: KompoxApp = serde_json::from_value(o.clone())?;
                compose_cm = Some(app.spec.compose.config_map_ref.clone());
                Api::<KompoxApp>::namespaced(client.clone(), ns)
                    .create(&pp, &app)
                    .await?;
            }
            "KompoxDisk" => {
                let d: KompoxDisk = serde_json::from_value(o.clone())?;
                let name = d.metadata.name.clone().unwrap_or_default();
                let disks = Api::<KompoxDisk>::namespaced(client.clone(), ns);
                disks.create(&pp, &d).await?;
                disks
                    .patch_status(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"status": {"pvName": format!("pv-{ns}-{name}")}})),
                    )
                    .await?;
            }
            "Secret" => {
                let s: Secret = serde_json::from_value(o.clone())?;
                Api::<Secret>::namespaced(client.clone(), ns)
                    .create(&pp, &s)
                    .await?;
            }
            other => bail!("sample object of kind {other:?} not handled"),
        }
    }
    let r = compose_cm.context("sample without a KompoxApp")?;
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": r.name}, "data": {r.key: compose}}))?;
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .create(&pp, &cm)
        .await?;
    Ok(())
}

/// A keep-alive HTTP/1.1 connection straight to the server with the front-proxy identity.
struct Direct {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Direct {
    async fn connect(addr: SocketAddr, ca_pem: &str, cert: &str, key: &str) -> Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(c?)?;
        }
        let chain =
            CertificateDer::pem_slice_iter(cert.as_bytes()).collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes())?;
        let mut config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(
                ServerName::try_from(format!("{SERVICE}.{SYSTEM_NS}.svc"))?,
                tcp,
            )
            .await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self { sender })
    }

    async fn get(&mut self, path: &str) -> Result<usize> {
        self.sender.ready().await?;
        let req = Request::get(path)
            .header("host", SERVICE)
            .header("X-Remote-User", "bench-admin")
            .header("X-Remote-Group", "system:masters")
            .body(Full::new(Bytes::new()))?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        if status != StatusCode::OK {
            bail!(
                "direct GET {path}: {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(body.len())
    }
}

async fn via_kube(client: &kube::Client, path: &str) -> Result<usize> {
    let req = Request::get(path).body(kube::client::Body::empty())?;
    let resp = client.send(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect_bytes().await?;
    if status != StatusCode::OK {
        bail!("GET {path}: {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(body.len())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

struct Latency {
    p50: Duration,
    p99: Duration,
    bytes: usize,
}

/// Where requests go: through kube-apiserver (aggregation) or straight to the server.
enum Target {
    ViaKube(kube::Client),
    Direct(Box<Direct>),
}

impl Target {
    /// `GET path`; the response size.
    async fn get(&mut self, path: &str) -> Result<usize> {
        match self {
            Self::ViaKube(client) => via_kube(client, path).await,
            Self::Direct(direct) => direct.get(path).await,
        }
    }
}

/// p50/p99 of `n` sequential requests after 20 warm-up requests, and the response size.
async fn latency(n: usize, target: &mut Target, path: &str) -> Result<Latency> {
    let mut bytes = 0;
    for _ in 0..20 {
        bytes = target.get(path).await?;
    }
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        target.get(path).await?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok(Latency {
        p50: percentile(&times, 0.50),
        p99: percentile(&times, 0.99),
        bytes,
    })
}

/// Requests per second of `targets`, each requesting `path` in a loop of its own for
/// `seconds`.
async fn throughput(targets: Vec<Target>, path: &str, seconds: u64) -> Result<f64> {
    let stop_at = Instant::now() + Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for mut target in targets {
        let path = path.to_owned();
        workers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < stop_at {
                target.get(&path).await?;
                n += 1;
            }
            anyhow::Ok(n)
        }));
    }
    let started = Instant::now();
    let mut total = 0;
    for w in workers {
        total += w.await??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

async fn run(args: Args) -> Result<()> {
    let admin = admin_client(&args.kubeconfig).await?;
    let suffix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let ns = format!("bench-apiserver-{suffix:08x}");

    // Server, registered with kube-apiserver.
    let ca = kompox_serve::generate_ca("kompox-apiserver-bench-ca")?;
    let leaf = kompox_serve::issue_serving_cert(
        &ca,
        &[format!("{SERVICE}.{SYSTEM_NS}.svc")],
        &[std::net::IpAddr::from([127, 0, 0, 1])],
        1,
    )?;
    let server = Server::bind(Config::new(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        TlsSource::Pem {
            cert: leaf.cert_pem.clone(),
            key: leaf.key_pem.clone(),
        },
        kompox_core::hash::HashKey::new(&[0x42; 32])?,
    ))
    .await?;
    let addr = server.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server_task = tokio::spawn(server.run(admin.clone(), async move {
        let _ = stop_rx.await;
    }));

    let pp = PatchParams::apply("kompox-bench").force();
    let nss = Api::<Namespace>::all(admin.clone());
    nss.patch(
        SYSTEM_NS,
        &pp,
        &Patch::Apply(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NS}}),
        ),
    )
    .await?;
    let services = Api::<Service>::namespaced(admin.clone(), SYSTEM_NS);
    // Replaced, not merged: the e2e tests may have left another port.
    if services.get_opt(SERVICE).await?.is_some() {
        services.delete(SERVICE, &DeleteParams::default()).await?;
    }
    services
        .patch(
            SERVICE,
            &pp,
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": SERVICE, "namespace": SYSTEM_NS},
            "spec": {"type": "ExternalName", "externalName": "localhost",
                     "ports": [{"name": "https", "port": addr.port()}]}})),
        )
        .await?;
    let apis = apiservices(&admin);
    // Whatever is registered now (e.g. an installed Kompox) is put back at the end.
    let saved = apis.get_opt(APISERVICE).await?;
    let mut ours: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": APISERVICE},
        "spec": {"group": "subresources.k8s.kompox.dev", "version": "v1alpha1", "groupPriorityMinimum": 1000,
                 "versionPriority": 15, "service": {"name": SERVICE, "namespace": SYSTEM_NS, "port": addr.port()},
                 "caBundle": base64::engine::general_purpose::STANDARD.encode(ca.cert_pem())}}))?;
    match &saved {
        Some(existing) => {
            ours.metadata.resource_version = existing.metadata.resource_version.clone();
            apis.replace(APISERVICE, &PostParams::default(), &ours)
                .await?;
        }
        None => {
            apis.create(&PostParams::default(), &ours).await?;
        }
    }

    let result = async {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let a = apis.get(APISERVICE).await?;
            let ok = a.data["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter().any(|c| c["type"] == "Available" && c["status"] == "True")
            });
            if ok && a.data["spec"]["service"]["port"] == json!(addr.port()) {
                break;
            }
            if Instant::now() > deadline {
                bail!("APIService not Available after 60 s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        nss.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": ns}}))?)
            .await?;
        let (gitea_compose, gitea_objects) = gitea_sample();
        setup_app(&admin, &ns, &gitea_compose, &gitea_objects).await?;
        let big = vec![json!({"apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxApp", "metadata": {"name": "fifty"},
                              "spec": {"compose": {"configMapRef": {"name": "fifty-compose", "key": "compose.yml"}}}})];
        setup_app(&admin, &ns, &fifty_services(), &big).await?;

        let pki = std::env::var("KOMPOX_FRONT_PROXY_CA")
            .ok()
            .and_then(|p| PathBuf::from(p).parent().map(PathBuf::from))
            .context("KOMPOX_FRONT_PROXY_CA not set: eval \"$(hack/cluster.sh env)\" first")?;
        let cert = std::fs::read_to_string(pki.join("front-proxy-client.crt"))?;
        let key = std::fs::read_to_string(pki.join("front-proxy-client.key"))?;

        println!("bench-apiserver: {} sequential requests per row (after 20 warm-up), {} s at {} concurrent clients", args.requests, args.seconds, args.concurrency);
        println!("| app | path | p50 | p99 | response bytes | req/s at {} clients |", args.concurrency);
        println!("|---|---|---|---|---|---|");
        for app in ["gitea", "fifty"] {
            let path = format!("{BASE}/namespaces/{ns}/kompoxapps/{app}/rendered");
            let via = latency(args.requests, &mut Target::ViaKube(admin.clone()), &path).await?;
            let direct = Direct::connect(addr, ca.cert_pem(), &cert, &key).await?;
            let dir = latency(args.requests, &mut Target::Direct(Box::new(direct)), &path).await?;
            // Throughput through kube-apiserver: `concurrency` workers, one shared client.
            let shared = (0..args.concurrency).map(|_| Target::ViaKube(admin.clone())).collect();
            let rps_via = throughput(shared, &path, args.seconds).await?;
            // Direct throughput: one keep-alive connection per worker.
            let mut conns = Vec::with_capacity(args.concurrency);
            for _ in 0..args.concurrency {
                let direct = Direct::connect(addr, ca.cert_pem(), &cert, &key).await?;
                conns.push(Target::Direct(Box::new(direct)));
            }
            let rps_direct = throughput(conns, &path, args.seconds).await?;
            let label = if app == "gitea" { "Gitea sample" } else { "50 services" };
            println!("| {label} | through kube-apiserver | {} | {} | {} | {rps_via:.0} |", ms(via.p50), ms(via.p99), via.bytes);
            println!("| {label} | direct (front-proxy cert) | {} | {} | {} | {rps_direct:.0} |", ms(dir.p50), ms(dir.p99), dir.bytes);
        }
        Ok(())
    }
    .await;

    // Clean up whatever happened above.
    match saved {
        Some(mut previous) => {
            if let Ok(now) = apis.get(APISERVICE).await {
                previous.metadata.resource_version = now.metadata.resource_version;
                previous.metadata.managed_fields = None;
                let _ = apis
                    .replace(APISERVICE, &PostParams::default(), &previous)
                    .await;
            }
        }
        None => {
            let _ = apis.delete(APISERVICE, &DeleteParams::default()).await;
        }
    }
    let _ = services.delete(SERVICE, &DeleteParams::default()).await;
    let _ = nss.delete(&ns, &DeleteParams::background()).await;
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(25), server_task).await;
    result
}

#[tokio::main]
async fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    run(Args::parse()).await
}

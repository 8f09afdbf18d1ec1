//! `bench-webhook`: throughput and latency of the admission webhook, printed as figures
//! (`hack/bench-webhook.sh` builds it in release mode and runs it against the local control
//! plane). Not a test: nothing is asserted beyond the answers being correct.
//!
//! 1. **Direct**: the `kompox-webhook` binary (started as a child process next to this one,
//!    with a fresh CA, `--exit-on-stdin-close`) answers realistic Pod CREATE AdmissionReviews
//!    over TLS keep-alive (HTTP/1.1, one connection per client) at each concurrency level;
//!    reviews/s and p50/p99/max latency.
//! 2. **Through kube-apiserver**: Pods created/s and create-latency percentiles, alternating
//!    rounds with the webhook registered and not registered, in one run. The Pods use a
//!    Kompox PVC and a Secret (so the webhook patches both) and name a scheduler that does not
//!    exist, so scheduling and kwok do not add noise.
//!
//! Everything runs on loopback; every phase is bounded by a count and a time.

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolume, PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt as _};
use serde_json::{Value, json};

/// Benchmark of the Kompox admission webhook (prints figures).
#[derive(Debug, Parser)]
struct Args {
    /// Kubeconfig of the cluster admin.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    /// Concurrent clients of the direct phase.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
    /// Register without the manifest's matchConditions (to measure what evaluating them costs
    /// kube-apiserver).
    #[arg(long)]
    without_match_conditions: bool,
    /// Baseline: register without matchConditions and create Pods with nothing to change, so
    /// kube-apiserver calls the webhook and gets "allowed, no patch" (the cost of any webhook).
    #[arg(long)]
    noop: bool,
    /// Direct phase over HTTP/2 (as kube-apiserver calls webhooks) instead of HTTP/1.1.
    #[arg(long)]
    http2: bool,
    /// Fixed rates (reviews/s) of the paced direct levels.
    #[arg(long, value_delimiter = ',', default_value = "2000,10000")]
    rates: Vec<f64>,
    /// Clients sharing a paced rate.
    #[arg(long, default_value_t = 16)]
    paced_clients: usize,
    /// Longest a direct level runs.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Most reviews a direct level sends.
    #[arg(long, default_value_t = 300_000)]
    max_reviews: usize,
    /// Pods per round of the apiserver phase.
    #[arg(long, default_value_t = 300)]
    pods: usize,
    /// Concurrent creators in the apiserver phase.
    #[arg(long, default_value_t = 16)]
    pod_concurrency: usize,
    /// Rounds per mode (with / without the webhook), alternating.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// The kompox-webhook binary (default: next to this one).
    #[arg(long)]
    webhook_bin: Option<PathBuf>,
}

const BENCH_LABEL: &str = "kompox.dev/bench-webhook";

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let client = kompox_cluster::client(Some(&args.kubeconfig)).await?;
    let id = format!("{:08x}", std::process::id() ^ (now_nanos() as u32));
    let ns = format!("bench-webhook-{id}");

    println!("# kompox-webhook benchmark ({} cores)", num_cpus());
    let fixture = Fixture::create(&client, &ns, &id).await?;
    let result = run(&args, &client, &fixture, &id).await;
    fixture.delete(&client).await;
    // The certificate directory, also when the run failed half way.
    let _ =
        std::fs::remove_dir_all(std::env::temp_dir().join(format!("kompox-bench-webhook-{id}")));
    result
}

async fn run(args: &Args, client: &Client, fx: &Fixture, id: &str) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("kompox-bench-webhook-{id}"));
    std::fs::create_dir_all(&dir)?;
    let ca = kompox_serve::generate_ca("kompox-bench-ca")?;
    let leaf =
        kompox_serve::issue_serving_cert(&ca, &["localhost"], &[Ipv4Addr::LOCALHOST.into()], 1)?;
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert, &leaf.cert_pem)?;
    std::fs::write(&key, &leaf.key_pem)?;
    // The webhook's env-hash key: the bytes of bench_key(), as the install's Secret holds one.
    let hash_key = dir.join("hash.key");
    std::fs::write(&hash_key, BENCH_KEY)?;
    let port = free_port()?;
    let bin = match &args.webhook_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .map(|d| d.join("kompox-webhook"))
            .context("no directory for the webhook binary")?,
    };
    let mut child = tokio::process::Command::new(&bin)
        .arg(format!("--listen=127.0.0.1:{port}"))
        .arg(format!("--tls-cert-file={}", cert.display()))
        .arg(format!("--tls-private-key-file={}", key.display()))
        .arg(format!("--kubeconfig={}", args.kubeconfig.display()))
        .arg(format!("--hash-key-file={}", hash_key.display()))
        .arg("--exit-on-stdin-close")
        // The direct phase's clients hold no kube-apiserver client certificate: the webhook
        // runs without client authentication (`hack/cluster.sh env` exports its CA file).
        .env_remove("KOMPOX_WEBHOOK_CLIENT_CA_FILE")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| {
            format!(
                "starting {} (build it with cargo build -p kompox-webhook)",
                bin.display()
            )
        })?;
    let tls = client_tls(ca.cert_pem(), args.http2)?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    wait_ready(&tls, addr).await?;
    // The webhook's caches must hold the fixture before we measure.
    let body = Bytes::from(review_body(&fx.ns)?.to_string());
    wait_for(
        Duration::from_secs(30),
        "the webhook to see the fixture",
        || {
            let (tls, body) = (tls.clone(), body.clone());
            async move {
                let mut c = Conn::open(&tls, addr).await?;
                let (_, resp) = c.post(body).await?;
                Ok(check_patched(&resp).is_ok())
            }
        },
    )
    .await?;
    decision_only(client, &body).await?;
    println!(
        "\n## Direct: Pod CREATE reviews over TLS keep-alive ({}, one connection per client), review body {} bytes",
        if args.http2 { "HTTP/2" } else { "HTTP/1.1" },
        body.len()
    );
    println!("\n| clients | reviews | reviews/s | p50 | p99 | max |\n|---|---|---|---|---|---|");
    let level = Duration::from_secs(args.seconds);
    for &c in &args.concurrency {
        let r = direct(&tls, addr, &body, c, level, args.max_reviews, None).await?;
        println!("{}", r.row(&c.to_string()));
    }
    println!(
        "\nPaced (open loop) at fixed rates, {} clients: latency at moderate load\n\n| target/s | reviews | achieved/s | p50 | p99 | max |\n|---|---|---|---|---|---|",
        args.paced_clients
    );
    for &rate in &args.rates {
        let clients = args.paced_clients;
        let r = direct(
            &tls,
            addr,
            &body,
            clients,
            level,
            args.max_reviews,
            Some(rate),
        )
        .await?;
        println!("{}", r.row(&format!("{rate:.0}")));
    }
    let _ = std::io::stdout().flush();

    println!(
        "\n## Through kube-apiserver: {} Pods per round, {} concurrent creators, {} rounds per mode, alternating{}",
        args.pods,
        args.pod_concurrency,
        args.rounds,
        if args.without_match_conditions {
            " (registered WITHOUT matchConditions)"
        } else {
            ""
        }
    );
    let url = format!("https://127.0.0.1:{port}/mutate");
    let token = kompox_bench::metrics_token(client).await?;
    let server_before = server_mutate_time(&tls, addr, &token).await?;
    let apiserver_before = apiserver_webhook_time(client).await?;
    let mut without = Samples::default();
    let mut with = Samples::default();
    let probe = bench_pod("probe")?;
    for round in 0..args.rounds {
        for registered in [false, true] {
            let reg = if registered {
                let name = register(
                    client,
                    id,
                    &url,
                    ca.cert_pem(),
                    !(args.without_match_conditions || args.noop),
                )
                .await?;
                wait_registration(client, &fx.ns, &probe, true).await?;
                Some(name)
            } else {
                None
            };
            let r = create_pods(
                args.noop,
                client,
                &fx.ns,
                args.pods,
                args.pod_concurrency,
                round,
                registered,
            )
            .await?;
            let mutated = r.1;
            ensure!(
                mutated
                    == if registered && !args.noop {
                        args.pods
                    } else {
                        0
                    },
                "round {round} (webhook {registered}): {mutated} of {} Pods mutated",
                args.pods
            );
            if registered {
                with.merge(r.0)
            } else {
                without.merge(r.0)
            };
            if let Some(name) = reg {
                Api::<MutatingWebhookConfiguration>::all(client.clone())
                    .delete(&name, &DeleteParams::default())
                    .await?;
                wait_registration(client, &fx.ns, &probe, false).await?;
            }
            delete_pods(client, &fx.ns).await?;
        }
    }
    let server_after = server_mutate_time(&tls, addr, &token).await?;
    let apiserver_after = apiserver_webhook_time(client).await?;
    println!("\n| webhook | Pods | Pods/s | p50 | p99 | max |\n|---|---|---|---|---|---|");
    for (name, s) in [("not registered", &without), ("registered", &with)] {
        println!("{}", s.row(name));
    }
    println!(
        "\nwith/without: Pods/s {:.1} %, p50 {:+.1} %, p99 {:+.1} %",
        100.0 * with.rate() / without.rate(),
        pct(with.percentile(0.5), without.percentile(0.5)),
        pct(with.percentile(0.99), without.percentile(0.99)),
    );
    let (calls, secs) = (
        server_after.0 - server_before.0,
        server_after.1 - server_before.1,
    );
    let (a_calls, a_secs) = (
        apiserver_after.0 - apiserver_before.0,
        apiserver_after.1 - apiserver_before.1,
    );
    if a_calls > 0.0 {
        println!(
            "kube-apiserver's time per call to the webhook (apiserver_admission_webhook_admission_duration_seconds): {} over {a_calls:.0} calls",
            fmt_us(Duration::from_secs_f64(a_secs / a_calls))
        );
    }
    if calls > 0.0 {
        println!(
            "webhook server time per call from kube-apiserver (its own /mutate histogram): {} over {calls:.0} calls",
            fmt_us(Duration::from_secs_f64(secs / calls))
        );
    }
    drop(child.stdin.take());
    let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The benchmark's hash key (any key costs the same).
const BENCH_KEY: [u8; 32] = [0x42; 32];

/// [`BENCH_KEY`] for the in-process decisions.
fn bench_key() -> Result<kompox_core::hash::HashKey> {
    Ok(kompox_core::hash::HashKey::new(&BENCH_KEY)?)
}

fn pct(a: Duration, b: Duration) -> f64 {
    100.0 * (a.as_secs_f64() - b.as_secs_f64()) / b.as_secs_f64().max(1e-9)
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

fn fmt_us(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

/// Latency samples and the wall time they were collected in.
#[derive(Default)]
struct Samples {
    lat: Vec<Duration>,
    count: usize,
    elapsed: Duration,
}

impl Samples {
    fn merge(&mut self, other: Samples) {
        self.add(other.lat);
        self.elapsed += other.elapsed;
    }

    fn add(&mut self, lat: Vec<Duration>) {
        self.count += lat.len();
        self.lat.extend(lat);
    }

    fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }

    /// `| label | count | count/s | p50 | p99 | max |`
    fn row(&self, label: &str) -> String {
        format!(
            "| {label} | {} | {:.0} | {} | {} | {} |",
            self.count,
            self.rate(),
            fmt_us(self.percentile(0.50)),
            fmt_us(self.percentile(0.99)),
            fmt_us(self.percentile(1.0)),
        )
    }

    fn percentile(&self, p: f64) -> Duration {
        let mut v = self.lat.clone();
        v.sort_unstable();
        if v.is_empty() {
            return Duration::ZERO;
        }
        let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
        v[i]
    }
}

async fn wait_for<F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = None;
    loop {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last = Some(e),
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}: {last:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Direct phase

/// The decision alone (decode, decide, encode; no TLS, no HTTP) on one thread, over the same
/// reflector caches the server uses: the webhook's own CPU cost per review.
async fn decision_only(client: &Client, body: &Bytes) -> Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (state, task) = kompox_webhook::ClusterState::start(client, None, async move {
        let _ = stop_rx.await;
    });
    state.wait_synced().await?;
    let health = kompox_serve::Health::new();
    health.set_ready(true);
    let handler = kompox_webhook::Handler::new(
        Arc::new(state),
        bench_key()?,
        health,
        kompox_serve::Metrics::new("bench"),
    );
    let review = handler.review(body)?;
    ensure!(
        review.response.as_ref().is_some_and(|r| r.patch.is_some()),
        "decision made no patch"
    );
    let (start, mut n) = (Instant::now(), 0u64);
    while start.elapsed() < Duration::from_secs(2) {
        for _ in 0..100 {
            std::hint::black_box(handler.review(std::hint::black_box(body))?);
        }
        n += 100;
    }
    let per = start.elapsed() / u32::try_from(n).unwrap_or(u32::MAX);
    println!(
        "\n## Decision only (decode + decide + encode, one thread, no TLS/HTTP)\n\n{} µs per review = {:.0} reviews/s per core",
        per.as_micros(),
        1.0 / per.as_secs_f64()
    );
    let _ = stop_tx.send(());
    let _ = task.await;
    Ok(())
}

fn client_tls(ca_pem: &str, http2: bool) -> Result<Arc<rustls::ClientConfig>> {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c?)?;
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![if http2 {
        b"h2".to_vec()
    } else {
        b"http/1.1".to_vec()
    }];
    Ok(Arc::new(cfg))
}

/// One keep-alive HTTP/1.1 connection over TLS.
struct Conn {
    send: Sender,
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Conn {
    async fn open(tls: &Arc<rustls::ClientConfig>, addr: SocketAddr) -> Result<Conn> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(rustls_pki_types::ServerName::try_from("localhost")?, tcp)
            .await?;
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(stream);
        let send = if h2 {
            let (send, conn) =
                hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                    .await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Sender::H2(send)
        } else {
            let (send, conn) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Sender::H1(send)
        };
        Ok(Conn { send })
    }

    async fn request(
        &mut self,
        req: http::Request<Full<Bytes>>,
    ) -> Result<(http::StatusCode, Bytes)> {
        let resp = match &mut self.send {
            Sender::H1(s) => {
                s.ready().await?;
                s.send_request(req).await?
            }
            Sender::H2(s) => {
                s.ready().await?;
                s.send_request(req).await?
            }
        };
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    async fn post(&mut self, body: Bytes) -> Result<(http::StatusCode, Bytes)> {
        let req = http::Request::post("/mutate?timeout=5s")
            .header(http::header::HOST, "localhost")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))?;
        let (status, body) = self.request(req).await?;
        ensure!(
            status == http::StatusCode::OK,
            "status {status}: {}",
            String::from_utf8_lossy(&body)
        );
        Ok((status, body))
    }
}

/// `(count, sum seconds)` of kube-apiserver's admission duration for the Pod webhook.
async fn apiserver_webhook_time(client: &Client) -> Result<(f64, f64)> {
    let req = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(req).await?;
    Ok(histogram_totals(
        &text,
        "apiserver_admission_webhook_admission_duration_seconds",
        &["name=\"pods.webhook.kompox.dev\"", "operation=\"CREATE\""],
    ))
}

/// `(count, sum seconds)` of the webhook's `/mutate` request-duration histogram.
async fn server_mutate_time(
    tls: &Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    token: &str,
) -> Result<(f64, f64)> {
    let mut c = Conn::open(tls, addr).await?;
    let req = http::Request::get("/metrics")
        .header(http::header::HOST, "localhost")
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::default())?;
    let (status, body) = c.request(req).await?;
    ensure!(status == http::StatusCode::OK, "/metrics: {status}");
    Ok(histogram_totals(
        &String::from_utf8_lossy(&body),
        "kompox_webhook_http_request_duration_seconds",
        &["route=\"/mutate\""],
    ))
}

/// `(count, sum)` of the histogram `name` in Prometheus text, over the series whose labels
/// contain all of `labels`.
fn histogram_totals(text: &str, name: &str, labels: &[&str]) -> (f64, f64) {
    let total = |suffix: &str| {
        let prefix = format!("{name}_{suffix}{{");
        text.lines()
            .filter(|l| l.starts_with(&prefix) && labels.iter().all(|want| l.contains(want)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    (total("count"), total("sum"))
}

async fn wait_ready(tls: &Arc<rustls::ClientConfig>, addr: SocketAddr) -> Result<()> {
    wait_for(Duration::from_secs(60), "the webhook's /readyz", || async {
        let mut c = Conn::open(tls, addr).await?;
        let req = http::Request::get("/readyz")
            .header(http::header::HOST, "localhost")
            .body(Full::default())?;
        Ok(c.request(req).await?.0 == http::StatusCode::OK)
    })
    .await
}

/// The response must allow the Pod with a base64 JSON Patch holding both changes.
fn check_patched(body: &[u8]) -> Result<()> {
    use base64::Engine as _;
    let v: Value = serde_json::from_slice(body)?;
    ensure!(v["response"]["allowed"] == true, "not allowed: {v}");
    let patch = v["response"]["patch"].as_str().context("no patch")?;
    let ops: Value =
        serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(patch)?)?;
    let paths: Vec<&str> = ops
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["path"].as_str())
        .collect();
    ensure!(
        paths.contains(&"/spec/affinity")
            && paths.iter().any(|p| p.starts_with("/metadata/annotations")),
        "patch {ops}"
    );
    Ok(())
}

async fn direct(
    tls: &Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    body: &Bytes,
    clients: usize,
    duration: Duration,
    max: usize,
    rate: Option<f64>,
) -> Result<Samples> {
    let per_client = max.div_ceil(clients);
    // Paced: each client sends every `clients / rate` seconds, the clients staggered evenly.
    let period = rate.map(|r| Duration::from_secs_f64(clients as f64 / r));
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        conns.push(Conn::open(tls, addr).await?);
    }
    // Warm up each connection once.
    for c in &mut conns {
        c.post(body.clone()).await?;
    }
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, mut c) in conns.into_iter().enumerate() {
        let body = body.clone();
        tasks.spawn(async move {
            let mut lat = Vec::with_capacity(per_client.min(1 << 20));
            let mut checked = false;
            let mut next = period.map(|p| start + p.mul_f64(i as f64 / clients as f64));
            while lat.len() < per_client && Instant::now() < deadline {
                if let (Some(at), Some(p)) = (next, period) {
                    tokio::time::sleep_until(at.into()).await;
                    next = Some(at + p);
                }
                let t = Instant::now();
                let (_, resp) = c.post(body.clone()).await?;
                lat.push(t.elapsed());
                if !checked {
                    check_patched(&resp)?;
                    checked = true;
                }
            }
            anyhow::Ok(lat)
        });
    }
    let mut all = Samples::default();
    while let Some(r) = tasks.join_next().await {
        all.add(r??);
    }
    all.elapsed = start.elapsed();
    Ok(all)
}

/// A Pod CREATE review shaped like kube-apiserver's (defaults, service-account volume,
/// managedFields), using the fixture's PVC and Secret.
fn review_body(ns: &str) -> Result<Value> {
    let mut pod = serde_json::to_value(bench_pod("web-7d9c6b5f4-x2k8q")?)?;
    pod["metadata"]["namespace"] = json!(ns);
    pod["metadata"]["uid"] = json!("0d7f3c52-6a0e-4b8e-9f55-1c2b3a4d5e6f");
    pod["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "name": "web-7d9c6b5f4", "uid": "9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d", "controller": true, "blockOwnerDeletion": true}]);
    pod["metadata"]["managedFields"] = json!([{"manager": "kube-controller-manager", "operation": "Update",
        "apiVersion": "v1", "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": {"f:generateName": {}, "f:labels": {".": {}, "f:app": {}}, "f:ownerReferences": {}},
            "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:envFrom": {}, "f:image": {}, "f:name": {}}},
                "f:volumes": {"k:{\"name\":\"data\"}": {".": {}, "f:name": {}, "f:persistentVolumeClaim": {}}}}}}]);
    let spec = &mut pod["spec"];
    spec["volumes"].as_array_mut().context("volumes")?.push(json!({"name": "kube-api-access-abcde", "projected": {
        "defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}));
    spec["containers"][0]["volumeMounts"] = json!([
        {"name": "data", "mountPath": "/data"},
        {"name": "kube-api-access-abcde", "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]);
    spec["containers"][0]["resources"] = json!({"requests": {"cpu": "100m", "memory": "128Mi"}});
    spec["containers"][0]["ports"] = json!([{"containerPort": 3000, "protocol": "TCP"}]);
    spec["containers"][0]["terminationMessagePath"] = json!("/dev/termination-log");
    spec["containers"][0]["imagePullPolicy"] = json!("IfNotPresent");
    spec["restartPolicy"] = json!("Always");
    spec["dnsPolicy"] = json!("ClusterFirst");
    spec["serviceAccountName"] = json!("default");
    spec["tolerations"] = json!([
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]);
    spec["priority"] = json!(0);
    spec["enableServiceLinks"] = json!(true);
    pod["status"] = json!({});
    Ok(json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "7e3f5a1c-2b4d-4e6f-8a9b-0c1d2e3f4a5b",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": ns, "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller",
                "uid": "1b2c3d4e", "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"]},
            "object": pod, "oldObject": null, "dryRun": false,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
        },
    }))
}

// ---------------------------------------------------------------------------------------
// Through kube-apiserver

/// The namespace, disk, bound PVC and Secret the Pods use.
struct Fixture {
    ns: String,
    pv: String,
}

impl Fixture {
    async fn create(client: &Client, ns: &str, id: &str) -> Result<Fixture> {
        // The KompoxDisk CRD (server-side apply of the generated CRDs).
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in kompox_core::api::crds() {
            let name = crd.name_any();
            crds.patch(
                &name,
                &PatchParams::apply("kompox-bench").force(),
                &Patch::Apply(&crd),
            )
            .await?;
        }
        wait_for(Duration::from_secs(60), "the KompoxDisk CRD", || {
            let crds = crds.clone();
            async move {
                let c = crds.get("kompoxdisks.k8s.kompox.dev").await?;
                Ok(c.status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True"))
            }
        })
        .await?;
        // Not labelled managed-by=kompox: a Kompox installation elsewhere in the cluster must not
        // mutate the "not registered" rounds. The bench's registration selects this label only.
        let namespace: Namespace =
            serde_json::from_value(json!({"metadata": {"name": ns, "labels": {BENCH_LABEL: id}}}))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await?;
        let fx = Fixture {
            ns: ns.to_owned(),
            pv: format!("{ns}-main"),
        };
        wait_for(
            Duration::from_secs(60),
            "the default ServiceAccount",
            || {
                let sa: Api<k8s_openapi::api::core::v1::ServiceAccount> =
                    Api::namespaced(client.clone(), ns);
                async move { Ok(sa.get_opt("default").await?.is_some()) }
            },
        )
        .await?;
        let disk: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxDisk",
            "metadata": {"name": "main", "namespace": ns},
            "spec": {"size": "1Gi", "zone": "2"}}))?;
        let ar = kube::api::ApiResource::erase::<kompox_core::api::KompoxDisk>(&());
        Api::<DynamicObject>::namespaced_with(client.clone(), ns, &ar)
            .create(&PostParams::default(), &disk)
            .await?;
        let pv: PersistentVolume = serde_json::from_value(
            json!({"metadata": {"name": fx.pv, "labels": {
                kompox_core::naming::DISK_LABEL: "main", kompox_core::naming::DISK_NAMESPACE_LABEL: ns}},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                "persistentVolumeReclaimPolicy": "Retain", "claimRef": {"namespace": ns, "name": "data"},
                "csi": {"driver": "hostpath.csi.k8s.io", "volumeHandle": fx.pv}}}),
        )?;
        Api::<PersistentVolume>::all(client.clone())
            .create(&PostParams::default(), &pv)
            .await?;
        let pvc: PersistentVolumeClaim =
            serde_json::from_value(json!({"metadata": {"name": "data", "namespace": ns},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "", "volumeName": fx.pv,
                "resources": {"requests": {"storage": "1Gi"}}}}))?;
        Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &pvc)
            .await?;
        let secret: Secret =
            serde_json::from_value(json!({"metadata": {"name": "env", "namespace": ns},
            "stringData": {"DATABASE_URL": "postgres://bench@db/bench", "API_KEY": "bench"}}))?;
        Api::<Secret>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &secret)
            .await?;
        Ok(fx)
    }

    async fn delete(&self, client: &Client) {
        let _ = Api::<Namespace>::all(client.clone())
            .delete(&self.ns, &DeleteParams::background())
            .await;
        let _ = Api::<PersistentVolume>::all(client.clone())
            .delete(&self.pv, &DeleteParams::background())
            .await;
    }
}

fn bench_pod(name: &str) -> Result<Pod> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {
            // No such scheduler: the Pods stay Pending, so only creation is measured.
            "schedulerName": "kompox-bench-unscheduled",
            "containers": [{"name": "app", "image": "registry.example/app:1",
                "envFrom": [{"secretRef": {"name": "env"}}]}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
        },
    }))?)
}

/// Waits until a dry-run create of `probe` comes back mutated (`registered`) or not.
async fn wait_registration(client: &Client, ns: &str, probe: &Pod, registered: bool) -> Result<()> {
    let what = if registered {
        "the registration to take effect"
    } else {
        "the registration to go away"
    };
    wait_for(Duration::from_secs(30), what, || {
        let p = dry_run(client, ns, probe);
        async move {
            let mutated = p
                .await?
                .annotations()
                .contains_key(kompox_core::naming::ENV_HASH_ANNOTATION);
            Ok(mutated == registered)
        }
    })
    .await
}

async fn dry_run(client: &Client, ns: &str, pod: &Pod) -> Result<Pod> {
    Ok(Api::<Pod>::namespaced(client.clone(), ns)
        .create(
            &PostParams {
                dry_run: true,
                ..PostParams::default()
            },
            pod,
        )
        .await?)
}

/// Registers the manifest's webhooks at `url` for the bench namespace only.
async fn register(
    client: &Client,
    id: &str,
    url: &str,
    ca_pem: &str,
    match_conditions: bool,
) -> Result<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../manifests/webhook/mutatingwebhookconfiguration.yaml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let v: Value = serde_saphyr::from_str(&text)?;
    let mut cfg: MutatingWebhookConfiguration = serde_json::from_value(v)?;
    let name = format!("kompox-bench-{id}");
    cfg.metadata.name = Some(name.clone());
    for w in cfg.webhooks.iter_mut().flatten() {
        if !match_conditions {
            w.match_conditions = None;
        }
        w.client_config.service = None;
        w.client_config.url = Some(url.to_owned());
        w.client_config.ca_bundle = Some(k8s_openapi::ByteString(ca_pem.as_bytes().to_vec()));
        w.namespace_selector = Some(serde_json::from_value(
            json!({"matchLabels": {BENCH_LABEL: id}}),
        )?);
    }
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &cfg)
        .await?;
    Ok(name)
}

/// Creates `n` Pods with `concurrency` creators; returns the create latencies and how many
/// came back mutated.
async fn create_pods(
    noop: bool,
    client: &Client,
    ns: &str,
    n: usize,
    concurrency: usize,
    round: usize,
    registered: bool,
) -> Result<(Samples, usize)> {
    let start = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (api, next) = (Api::<Pod>::namespaced(client.clone(), ns), next.clone());
        tasks.spawn(async move {
            let mut lat = Vec::new();
            let mut mutated = 0;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let name = format!("web-{round}-{}-{i}", u8::from(registered));
                let mut p = bench_pod(&name)?;
                if noop && let Some(spec) = p.spec.as_mut() {
                    spec.volumes = None;
                    spec.containers[0].env_from = None;
                }
                let t = Instant::now();
                let created = api.create(&PostParams::default(), &p).await?;
                lat.push(t.elapsed());
                if created
                    .annotations()
                    .contains_key(kompox_core::naming::ENV_HASH_ANNOTATION)
                {
                    mutated += 1;
                }
            }
            anyhow::Ok((lat, mutated))
        });
    }
    let mut s = Samples::default();
    let mut mutated = 0;
    while let Some(r) = tasks.join_next().await {
        let (lat, m) = r??;
        s.add(lat);
        mutated += m;
    }
    s.elapsed = start.elapsed();
    Ok((s, mutated))
}

async fn delete_pods(client: &Client, ns: &str) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    api.delete_collection(
        &DeleteParams::default().grace_period(0),
        &ListParams::default(),
    )
    .await?;
    wait_for(
        Duration::from_secs(120),
        "the round's Pods to be gone",
        || {
            let api = api.clone();
            async move {
                Ok(api
                    .list(&ListParams::default().limit(1))
                    .await?
                    .items
                    .is_empty())
            }
        },
    )
    .await
}

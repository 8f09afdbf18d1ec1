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
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use bytes::Bytes;
use clap::Parser;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use kube::Client;
use kube::api::{Api, DeleteParams};

mod direct;
mod through_apiserver;

use direct::{
    Conn, apiserver_webhook_time, check_patched, client_tls, decision_only, review_body,
    server_mutate_time, wait_ready,
};
use kompox_bench::{free_port, wait_for};
use through_apiserver::{
    Fixture, bench_pod, create_pods, delete_pods, register, wait_registration,
};

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
        let r = direct::direct(&tls, addr, &body, c, level, args.max_reviews, None).await?;
        println!("{}", r.row(&c.to_string()));
    }
    println!(
        "\nPaced (open loop) at fixed rates, {} clients: latency at moderate load\n\n| target/s | reviews | achieved/s | p50 | p99 | max |\n|---|---|---|---|---|---|",
        args.paced_clients
    );
    for &rate in &args.rates {
        let clients = args.paced_clients;
        let r = direct::direct(
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

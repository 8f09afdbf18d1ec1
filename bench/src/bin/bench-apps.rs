//! `bench-apps`: N KompoxApps (a small one-service compose file each, no disks, all in one
//! namespace; each compose service is named after its app so their Services do not collide)
//! created at once
//! against a running cluster, with `kompox-controller` as a child process scoped to a fresh
//! namespace. Prints the time until every app is Ready, the controller's peak RSS and CPU
//! (from `/proc`), and its idle CPU afterwards.
//!
//! ```sh
//! eval "$(hack/cluster.sh env)"           # the local control plane
//! cargo build --release -p kompox-controller -p kompox-bench --bins
//! target/release/bench-apps --apps 1000
//! ```
//!
//! The controller's log (level `warn`, `RUST_LOG` overrides) is discarded unless
//! `--controller-log FILE`.
//!
//! The compose ConfigMaps are created before the controller starts; the clock starts when the
//! first KompoxApp is created (all are created with `--create-concurrency` requests in flight)
//! and stops when a watch has seen every app `ready` for its generation. The namespace (and
//! everything in it) is deleted at the end unless `--keep`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kompox_core::api::KompoxApp;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::io::AsyncWriteExt;

/// Benchmark of the KompoxApp controller.
#[derive(Debug, Parser)]
#[command(name = "bench-apps")]
struct Args {
    /// Number of KompoxApps.
    #[arg(long, default_value_t = 1000)]
    apps: usize,
    /// Requests in flight while creating the apps.
    #[arg(long, default_value_t = 50)]
    create_concurrency: usize,
    /// Kubeconfig (default: $KUBECONFIG).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    /// The controller binary (default: `kompox-controller` next to this program).
    #[arg(long)]
    controller: Option<PathBuf>,
    /// Label the namespace as a Kompox app namespace (adds NetworkPolicy, Role, RoleBinding
    /// per app).
    #[arg(long)]
    managed: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
    /// Seconds of idle CPU measurement after all apps are Ready.
    #[arg(long, default_value_t = 30)]
    idle_secs: u64,
    /// Keep the namespace.
    #[arg(long)]
    keep: bool,
    /// Write the controller's log (stdout and stderr) to this file instead of discarding it.
    #[arg(long)]
    controller_log: Option<PathBuf>,
}

/// CPU time (user + system) and memory of a process, from `/proc/<pid>`.
#[derive(Debug, Clone, Copy, Default)]
struct ProcSample {
    cpu_ticks: u64,
    rss_kib: u64,
    hwm_kib: u64,
}

fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

fn sample(pid: u32) -> Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command: state is field 3, utime 14, stime 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11).and_then(|v| v.parse().ok()).context("utime")?;
    let stime: u64 = f.get(12).and_then(|v| v.parse().ok()).context("stime")?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(ProcSample {
        cpu_ticks: utime + stime,
        rss_kib: kib("VmRSS:"),
        hwm_kib: kib("VmHWM:"),
    })
}

async fn client(path: &std::path::Path) -> Result<Client> {
    Ok(kompox_cluster::client(Some(path)).await?)
}

/// One service (nginx, a port, a variable). The service is named after the app: apps share the
/// namespace, and a compose service becomes a Service of that name.
fn small_compose(app: &str) -> String {
    format!(
        "services:\n  web-{app}:\n    image: nginx:1.27\n    ports: [\"8080:80\"]\n    environment:\n      MODE: bench\n"
    )
}

async fn wait_ready(port: u16, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            use tokio::io::AsyncReadExt;
            s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await?;
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await?;
            if buf.starts_with(b"HTTP/1.1 200") {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("controller not ready after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// When the last of each kind of object was created, relative to `t0`: who the time went to.
async fn timeline(client: &Client, ns: &str, t0: k8s_openapi::jiff::Timestamp) -> Result<String> {
    use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::ListParams;
    fn last<K: kube::Resource>(items: &[K], t0: k8s_openapi::jiff::Timestamp) -> f64 {
        items
            .iter()
            .filter_map(|o| o.meta().creation_timestamp.as_ref())
            .map(|t| t.0.duration_since(t0).as_secs_f64())
            .fold(0.0, f64::max)
    }
    let lp = ListParams::default();
    let deps = Api::<Deployment>::namespaced(client.clone(), ns)
        .list(&lp)
        .await?
        .items;
    let rss = Api::<ReplicaSet>::namespaced(client.clone(), ns)
        .list(&lp)
        .await?
        .items;
    let pods = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&lp)
        .await?
        .items;
    Ok(format!(
        "last Deployment created  +{:.0} s (by kompox-controller)\n\
         last ReplicaSet created  +{:.0} s (by kube-controller-manager)\n\
         last Pod created         +{:.0} s (by kube-controller-manager)",
        last(&deps, t0),
        last(&rss, t0),
        last(&pods, t0)
    ))
}

/// The value of the metric line starting with `series` on the controller's `/metrics`.
async fn metric(port: u16, token: &str, series: &str) -> f64 {
    use tokio::io::AsyncReadExt;
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return f64::NAN;
    };
    let req = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).await.is_err() {
        return f64::NAN;
    }
    let mut buf = Vec::new();
    if s.read_to_end(&mut buf).await.is_err() {
        return f64::NAN;
    }
    String::from_utf8_lossy(&buf)
        .lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let client = client(&args.kubeconfig).await?;
    kompox_bench::apply_crds(&client, "bench-apps").await?;
    let controller = match &args.controller {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no directory of this program")?
            .join("kompox-controller"),
    };
    if !controller.exists() {
        bail!(
            "{} not found (cargo build --release -p kompox-controller -p kompox-bench --bins)",
            controller.display()
        );
    }
    let ns = format!("bench-apps-{:06x}", rand::random::<u32>() & 0xff_ffff);
    let mut labels = serde_json::Map::new();
    if args.managed {
        labels.insert("app.kubernetes.io/managed-by".into(), "kompox".into());
        labels.insert("kompox.dev/tenant".into(), "bench".into());
    }
    let nso: Namespace = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": ns, "labels": labels},
    }))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &nso)
        .await?;
    println!(
        "namespace {ns} ({}managed), {} apps",
        if args.managed { "" } else { "not " },
        args.apps
    );
    let result = bench(&args, &client, &ns, &controller).await;
    if !args.keep {
        Api::<Namespace>::all(client.clone())
            .delete(&ns, &DeleteParams::background())
            .await
            .ok();
    }
    result
}

async fn bench(args: &Args, client: &Client, ns: &str, controller: &PathBuf) -> Result<()> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let apps: Api<KompoxApp> = Api::namespaced(client.clone(), ns);
    let names: Vec<String> = (0..args.apps).map(|i| format!("app{i:04}")).collect();

    let t = Instant::now();
    futures::stream::iter(names.iter().map(|n| {
        let cms = cms.clone();
        async move {
            let cm: ConfigMap = serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": format!("{n}-compose")},
                "data": {"compose.yml": small_compose(n)},
            }))?;
            cms.create(&PostParams::default(), &cm).await?;
            anyhow::Ok(())
        }
    }))
    .buffer_unordered(args.create_concurrency)
    .try_collect::<Vec<()>>()
    .await?;
    println!(
        "created {} compose ConfigMaps in {:.1} s",
        args.apps,
        t.elapsed().as_secs_f64()
    );

    // The controller's hash key file, as the install's Secret holds one (any key costs the same).
    let hash_key = std::env::temp_dir().join(format!("kompox-{ns}.hash-key"));
    std::fs::write(&hash_key, [0x42u8; 32])?;
    let result = run_controller(args, client, ns, controller, &hash_key, &apps, &names).await;
    std::fs::remove_file(&hash_key).ok();
    result
}

/// Runs the controller over the apps and measures it.
async fn run_controller(
    args: &Args,
    client: &Client,
    ns: &str,
    controller: &PathBuf,
    hash_key: &std::path::Path,
    apps: &Api<KompoxApp>,
    names: &[String],
) -> Result<()> {
    let port = kompox_bench::free_port()?;
    let log = match &args.controller_log {
        Some(p) => Some(std::fs::File::create(p)?),
        None => None,
    };
    let mut child = tokio::process::Command::new(controller)
        .arg("--kubeconfig")
        .arg(&args.kubeconfig)
        .args([
            "--namespace",
            ns,
            "--leader-elect=false",
            "--exit-on-stdin-close",
        ])
        .arg("--metrics-listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--hash-key-file")
        .arg(hash_key)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::piped())
        .stdout(match &log {
            Some(f) => Stdio::from(f.try_clone()?),
            None => Stdio::null(),
        })
        .stderr(match &log {
            Some(f) => Stdio::from(f.try_clone()?),
            None => Stdio::inherit(),
        })
        .kill_on_drop(true)
        .spawn()
        .context("starting the controller")?;
    let pid = child.id().context("controller pid")?;
    wait_ready(port, Duration::from_secs(60)).await?;
    let ticks = clock_ticks() as f64;
    let start_sample = sample(pid)?;
    println!(
        "controller pid {pid} ready; RSS {:.1} MiB before the apps",
        mib(start_sample.rss_kib)
    );

    // Watch readiness.
    // (name, ready): every status with renderedHash for the current generation (applied), and
    // whether it is Ready.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, bool)>();
    let watch_api = apps.clone();
    let watch = tokio::spawn(async move {
        let mut s = watcher(watch_api, watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Some(Ok(a)) = s.next().await {
            let Some(st) = a.status.as_ref() else {
                continue;
            };
            if st.observed_generation != a.metadata.generation || st.rendered_hash.is_none() {
                continue;
            }
            if tx.send((a.name_any(), st.ready)).is_err() {
                break;
            }
        }
    });

    // Sample the controller every 250 ms.
    let peak = std::sync::Arc::new(std::sync::Mutex::new(start_sample));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(s) = sample(pid) {
                    let mut p = peak
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    p.rss_kib = p.rss_kib.max(s.rss_kib);
                    p.hwm_kib = p.hwm_kib.max(s.hwm_kib);
                    p.cpu_ticks = s.cpu_ticks;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };

    let t0 = Instant::now();
    let t0_wall = k8s_openapi::jiff::Timestamp::now();
    futures::stream::iter(names.iter().map(|n| {
        let apps = apps.clone();
        async move {
            let a: KompoxApp = serde_json::from_value(json!({
                "apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxApp",
                "metadata": {"name": n},
                "spec": {"compose": {"configMapRef": {"name": format!("{n}-compose"), "key": "compose.yml"}}},
            }))?;
            apps.create(&PostParams::default(), &a).await?;
            anyhow::Ok(())
        }
    }))
    .buffer_unordered(args.create_concurrency)
    .try_collect::<Vec<()>>()
    .await?;
    let created = t0.elapsed();
    println!(
        "created {} KompoxApps in {:.1} s",
        args.apps,
        created.as_secs_f64()
    );

    let mut ready = BTreeSet::new();
    let mut applied = BTreeSet::new();
    let mut all_applied = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout_secs);
    let mut half = None;
    while ready.len() < args.apps {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((n, is_ready))) => {
                applied.insert(n.clone());
                if all_applied.is_none() && applied.len() == args.apps {
                    all_applied = Some(t0.elapsed());
                }
                if !is_ready {
                    continue;
                }
                ready.insert(n);
                if half.is_none() && ready.len() * 2 >= args.apps {
                    half = Some(t0.elapsed());
                }
            }
            Ok(None) => bail!("the KompoxApp watch ended"),
            Err(_) => bail!(
                "only {} of {} apps Ready ({} applied) after {} s",
                ready.len(),
                applied.len(),
                args.apps,
                args.timeout_secs
            ),
        }
    }
    let all_ready = t0.elapsed();
    let timeline = timeline(client, ns, t0_wall).await?;
    let busy = sample(pid)?;
    let busy_cpu = (busy.cpu_ticks - start_sample.cpu_ticks) as f64 / ticks;
    watch.abort();

    // Idle.
    let idle_start = sample(pid)?;
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    let idle_end = sample(pid)?;
    sampler.abort();
    let idle_cpu = (idle_end.cpu_ticks - idle_start.cpu_ticks) as f64 / ticks;
    let p = *peak
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);

    println!();
    println!("apps                      {}", args.apps);
    println!(
        "all applied after         {:.1} s (status.renderedHash for every app)",
        all_applied.unwrap_or_default().as_secs_f64()
    );
    println!(
        "half Ready after          {:.1} s",
        half.unwrap_or_default().as_secs_f64()
    );
    println!("all Ready after           {:.1} s", all_ready.as_secs_f64());
    println!("{timeline}");
    println!(
        "controller CPU until then {:.1} s ({:.2} cores on average)",
        busy_cpu,
        busy_cpu / all_ready.as_secs_f64().max(0.001)
    );
    println!(
        "controller peak RSS       {:.1} MiB (VmHWM {:.1} MiB)",
        mib(p.rss_kib),
        mib(p.hwm_kib.max(idle_end.hwm_kib))
    );
    println!("controller RSS when idle  {:.1} MiB", mib(idle_end.rss_kib));
    println!(
        "idle CPU                  {:.2} s over {} s ({:.2} % of a core)",
        idle_cpu,
        args.idle_secs,
        100.0 * idle_cpu / args.idle_secs as f64
    );

    let token = kompox_bench::metrics_token(client).await?;
    let reconciles = metric(
        port,
        &token,
        "kompox_controller_reconciles_total{controller=\"app\"}",
    )
    .await;
    println!(
        "app reconciles            {:.0} ({:.1} per app)",
        reconciles,
        reconciles / args.apps as f64
    );

    // Deleting the apps goes through the controller's finalizer.
    let t1 = Instant::now();
    apps.delete_collection(&DeleteParams::background(), &Default::default())
        .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout_secs);
    loop {
        let left = apps
            .list_metadata(&kube::api::ListParams::default().limit(1))
            .await?;
        if left.items.is_empty() {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "apps still present {} s after deleting them",
                args.timeout_secs
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!(
        "all apps deleted after    {:.1} s",
        t1.elapsed().as_secs_f64()
    );

    if let Some(mut stdin) = child.stdin.take() {
        stdin.shutdown().await.ok();
    }
    match tokio::time::timeout(Duration::from_secs(20), child.wait()).await {
        Ok(_) => {}
        Err(_) => {
            child.start_kill().ok();
        }
    }
    Ok(())
}

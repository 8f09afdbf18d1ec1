//! Runs `kompox-controller` as a local process for the storage (and app) e2e tests.
//!
//! - The binary is built once per test process with `cargo build -p kompox-controller` (a
//!   no-op when fresh; the outer `cargo test` does not hold the build lock while tests run).
//! - It runs as the `kompox-controller` ServiceAccount with the RBAC of
//!   `manifests/controller/rbac.yaml` (a bound token in a kubeconfig of its own), so every
//!   test also proves that RBAC is enough.
//! - Scoped to the test's namespace (`--namespace`), so parallel tests do not interfere;
//!   `--exit-on-stdin-close` with a pipe only this process holds, so a killed test runner
//!   leaves no controller behind; killed on drop.
//! - [`ControllerProcess::kill9`] is `SIGKILL`, for restart-safety tests.
//!
//! - [`run`] gives a test body its [`TestEnv`] (built on [`scoped`]) and tears it down (with
//!   [`finish`]) whatever happened.
//!
//! Also the mock CSI driver's view for leak checks: [`driver_volumes`], [`driver_snapshots`],
//! [`driver_log`]; and its data plane (`hack/cluster.sh` runs it with `-data-dir`): the files
//! of a volume by handle, as a pod mounting it would see them ([`write_volume_file`],
//! [`read_volume_file`], [`volume_files`], [`volume_dir_exists`]).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use kompox_core::api::KompoxDisk;
use kube::Client;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin, Command};

use crate::{
    TestNamespace, admin_client, cluster, delete_all, ensure_crds, kubectl, repo_root,
    service_account_kubeconfig, wait_until,
};

/// Namespace of the controller's ServiceAccount and Lease.
pub const SYSTEM_NAMESPACE: &str = "k4x-system";
/// The controller's ServiceAccount.
pub const SERVICE_ACCOUNT: &str = "kompox-controller";

pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}

/// The serving certificate every controller of this test process gets for its HTTPS
/// endpoint, issued by a CA made for the process: (CA PEM, certificate file, key file).
pub struct MetricsTls {
    /// The CA to trust.
    pub ca_pem: String,
    /// Certificate chain (leaf for `localhost` and 127.0.0.1), PEM.
    pub cert_pem: String,
    /// Its key, PEM.
    pub key_pem: String,
    /// `cert_pem` in a file.
    pub cert_file: PathBuf,
    /// `key_pem` in a file.
    pub key_file: PathBuf,
}

/// [`MetricsTls`], made once per process (files named by the process id, so parallel test
/// binaries do not overwrite each other's).
pub fn metrics_tls() -> Result<&'static MetricsTls> {
    static TLS: OnceLock<std::result::Result<MetricsTls, String>> = OnceLock::new();
    TLS.get_or_init(|| {
        let make = || -> Result<MetricsTls> {
            let ca = kompox_serve::generate_ca("e2e-controller-metrics-ca")?;
            let leaf = kompox_serve::issue_serving_cert(
                &ca,
                &["localhost"],
                &[std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)],
                1,
            )?;
            let dir = target_dir().join("e2e-logs");
            std::fs::create_dir_all(&dir)?;
            let pid = std::process::id();
            let cert_file = dir.join(format!("controller-{pid}.crt"));
            let key_file = dir.join(format!("controller-{pid}.key"));
            std::fs::write(&cert_file, &leaf.cert_pem)?;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .mode(0o600)
                .open(&key_file)?;
            std::io::Write::write_all(&mut f, leaf.key_pem.as_bytes())?;
            Ok(MetricsTls {
                ca_pem: ca.cert_pem().to_owned(),
                cert_pem: leaf.cert_pem,
                key_pem: leaf.key_pem,
                cert_file,
                key_file,
            })
        };
        make().map_err(|e| format!("{e:#}"))
    })
    .as_ref()
    .map_err(|e| anyhow::anyhow!("making the controller's certificate: {e}"))
}

/// GETs `path` over HTTPS from a controller at `addr` (trusting [`metrics_tls`]'s CA), with
/// an optional bearer token: (status code, body).
pub async fn https_get(
    addr: std::net::SocketAddr,
    path: &str,
    token: Option<&str>,
) -> Result<(u16, String)> {
    let tls = metrics_tls()?;
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    let (code, body) = crate::apiserver::https_request(
        (addr, tls.ca_pem.as_str(), "localhost"),
        None,
        http::Method::GET,
        path,
        &headers,
        b"",
    )
    .await?;
    Ok((code.as_u16(), String::from_utf8_lossy(&body).into_owned()))
}

/// Builds `kompox-controller` (once per process) and returns the binary's path.
pub fn binary() -> Result<PathBuf> {
    static BIN: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = crate::cargo_command()
            .args([
                "build",
                "-p",
                "kompox-controller",
                "--bin",
                "kompox-controller",
            ])
            .output()
            .map_err(|e| format!("running cargo build: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "cargo build -p kompox-controller failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let bin = target_dir().join("debug/kompox-controller");
        if bin.exists() {
            Ok(bin)
        } else {
            Err(format!("{} missing after cargo build", bin.display()))
        }
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

/// Applies `manifests/system/namespace.yaml` and `manifests/controller/rbac.yaml` once per
/// process.
pub async fn ensure_rbac() -> Result<()> {
    static DONE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    DONE.get_or_try_init(|| async {
        let dir = repo_root().join("manifests/controller");
        let ns = repo_root()
            .join("manifests/system/namespace.yaml")
            .to_string_lossy()
            .into_owned();
        let rbac = dir.join("rbac.yaml").to_string_lossy().into_owned();
        tokio::task::spawn_blocking(move || {
            kubectl(&[
                "apply",
                "--server-side",
                "--force-conflicts",
                "-f",
                &ns,
                "-f",
                &rbac,
            ])
        })
        .await??;
        Ok(())
    })
    .await
    .map(|_| ())
}

/// A kubeconfig file acting as the controller's ServiceAccount (written once per process).
pub async fn kubeconfig() -> Result<PathBuf> {
    static PATH: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();
    PATH.get_or_try_init(|| async {
        ensure_rbac().await?;
        let admin = admin_client().await?;
        let kc = service_account_kubeconfig(&admin, SYSTEM_NAMESPACE, SERVICE_ACCOUNT).await?;
        let path = std::env::temp_dir().join(format!(
            "kompox-e2e-controller-{}.kubeconfig",
            std::process::id()
        ));
        // It holds a token: readable by this user only.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        std::io::Write::write_all(&mut f, &serde_json::to_vec(&kc)?)?;
        Ok(path)
    })
    .await
    .cloned()
}

/// How to start a controller.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--namespace`.
    pub namespace: String,
    /// `--lease-name` with leader election on; `None` runs with `--leader-elect=false`.
    pub lease: Option<String>,
    /// Extra environment (e.g. `OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub env: Vec<(String, String)>,
}

impl Options {
    /// Scoped to `namespace`, without leader election.
    pub fn namespace(namespace: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            lease: None,
            env: Vec::new(),
        }
    }
}

/// A running `kompox-controller` process.
pub struct ControllerProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Port of its `/healthz` `/readyz` `/metrics`.
    pub port: u16,
    /// Its log file.
    pub log: PathBuf,
    opts: Options,
    starts: u32,
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

async fn spawn(opts: &Options, start: u32) -> Result<(Child, ChildStdin, u16, PathBuf)> {
    let bin = binary()?;
    let kubeconfig = kubeconfig().await?;
    let port = free_port()?;
    let dir = target_dir().join("e2e-logs");
    std::fs::create_dir_all(&dir)?;
    let log = dir.join(format!("controller-{}-{start}.log", opts.namespace));
    let out = std::fs::File::create(&log)?;
    let err = out.try_clone()?;
    let mut cmd = Command::new(bin);
    cmd.arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--namespace")
        .arg(&opts.namespace)
        .arg("--metrics-listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--tls-cert-file")
        .arg(&metrics_tls()?.cert_file)
        .arg("--tls-private-key-file")
        .arg(&metrics_tls()?.key_file)
        .arg("--exit-on-stdin-close")
        // The kwok cluster's Traefik never runs, so nothing reports Ingress status.
        .arg("--ingress-admitted-by=existence")
        .arg("--hash-key-file")
        .arg(crate::hash_key_file()?);
    match &opts.lease {
        Some(lease) => cmd.args([
            "--leader-elect=true",
            "--lease-name",
            lease,
            "--lease-duration-secs",
            "6",
            "--lease-grace-secs",
            "2",
        ]),
        None => cmd.arg("--leader-elect=false"),
    };
    cmd.envs(opts.env.iter().map(|(k, v)| (k, v)));
    cmd.env("RUST_LOG", "info,kompox_controller=debug")
        .stdin(Stdio::piped())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true);
    let mut child = cmd.spawn().context("starting kompox-controller")?;
    let stdin = child.stdin.take().context("controller without stdin")?;
    Ok((child, stdin, port, log))
}

impl ControllerProcess {
    /// Starts a controller and waits until `/readyz` answers 200.
    pub async fn start(opts: Options) -> Result<Self> {
        let (child, stdin, port, log) = spawn(&opts, 0).await?;
        let p = Self {
            child,
            stdin: Some(stdin),
            port,
            log,
            opts,
            starts: 1,
        };
        p.wait_ready(Duration::from_secs(60)).await?;
        Ok(p)
    }

    /// Kills the process with SIGKILL (no cleanup of any kind) and reaps it.
    pub async fn kill9(&mut self) -> Result<()> {
        self.child.start_kill().ok();
        self.child.wait().await?;
        self.stdin = None;
        Ok(())
    }

    /// Starts the process again (after [`ControllerProcess::kill9`]), without waiting.
    pub async fn restart(&mut self) -> Result<()> {
        if self.child.try_wait()?.is_none() {
            self.kill9().await?;
        }
        let (child, stdin, port, log) = spawn(&self.opts, self.starts).await?;
        self.starts += 1;
        self.child = child;
        self.stdin = Some(stdin);
        self.port = port;
        self.log = log;
        Ok(())
    }

    /// Starts the process again if it is not running (e.g. a test killed it), and waits until
    /// it is ready.
    pub async fn ensure_running(&mut self, timeout: Duration) -> Result<()> {
        if !self.is_running() {
            self.restart().await?;
        }
        self.wait_ready(timeout).await
    }

    /// [`ControllerProcess::stop`], and the process must have exited with success.
    pub async fn shutdown(self, timeout: Duration) -> Result<()> {
        let status = self.stop(timeout).await?;
        ensure!(status.success(), "controller exited with {status}");
        Ok(())
    }

    /// Closes the process's stdin (it exits gracefully) and waits for it, at most `timeout`.
    pub async fn stop(mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        if let Some(mut s) = self.stdin.take() {
            let _ = s.shutdown().await;
        }
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => {
                self.child.start_kill().ok();
                bail!("controller did not exit within {timeout:?} after stdin closed")
            }
        }
    }

    /// GETs `path` from the controller's HTTP endpoint: (status code, body).
    pub async fn get(&self, path: &str) -> Result<(u16, String)> {
        self.get_as(path, None).await
    }

    /// [`Self::get`] with `Authorization: Bearer <token>`.
    pub async fn get_as(&self, path: &str, token: Option<&str>) -> Result<(u16, String)> {
        https_get(
            (std::net::Ipv4Addr::LOCALHOST, self.port).into(),
            path,
            token,
        )
        .await
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        wait_until("controller /readyz", timeout, || async {
            Ok(self
                .get("/readyz")
                .await
                .map(|(c, _)| c == 200)
                .unwrap_or(false))
        })
        .await
        .with_context(|| format!("controller log: {}", self.log.display()))
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// What each controller test starts from: the local control plane up with Kompox's CRDs, an
/// admin client, a namespace `e2e-<prefix>-…` with `labels`, and a ready controller scoped to it.
pub async fn scoped(
    prefix: &str,
    labels: &[(&str, &str)],
) -> Result<(Client, TestNamespace, ControllerProcess)> {
    cluster();
    ensure_crds().await?;
    let client = admin_client().await?;
    let ns = TestNamespace::create(&client, prefix, labels).await?;
    let controller = ControllerProcess::start(Options::namespace(&ns.name)).await?;
    Ok((client, ns, controller))
}

/// The end of every controller test's teardown: deletes the namespace's KompoxDisks (through
/// the controller, so their deletion policies reach the driver), stops the controller (it must
/// exit with success) and deletes the namespace.
pub async fn finish(ns: TestNamespace, controller: ControllerProcess) -> Result<()> {
    delete_all(&ns.api::<KompoxDisk>()).await?;
    controller.shutdown(Duration::from_secs(20)).await?;
    ns.cleanup().await
}

/// How long [`run`] waits for a restarted controller before the teardown.
const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(60);

/// A test file's environment around a scoped controller, for [`run`].
pub trait TestEnv: Sized {
    /// A fresh environment for one test (see [`scoped`]).
    fn start(prefix: &str) -> impl Future<Output = Result<Self>>;
    /// Removes what the test left (see [`finish`]); runs whether the test passed or not, with
    /// the controller running again if the test killed it.
    fn teardown(self) -> impl Future<Output = Result<()>>;
    /// The environment's controller: [`run`] names its log when the test fails, and restarts
    /// it for the teardown if it is not running.
    fn controller(&mut self) -> &mut ControllerProcess;
}

/// Runs a test body with a fresh `E` and always tears it down: the body's error wins (with the
/// controller's log named), and a failed teardown is reported with it.
pub async fn run<E, F>(prefix: &str, body: F) -> Result<()>
where
    E: TestEnv,
    F: for<'a> FnOnce(&'a mut E) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>,
{
    let mut env = E::start(prefix).await?;
    let result = body(&mut env).await;
    let log = env.controller().log.clone();
    let teardown = match env.controller().ensure_running(TEARDOWN_TIMEOUT).await {
        Ok(()) => env.teardown().await,
        Err(e) => Err(e.context("restarting the controller for the teardown")),
    };
    let result = result.with_context(|| format!("controller log: {}", log.display()));
    match (result, teardown) {
        (Err(e), Err(t)) => Err(e.context(format!("teardown failed too: {t:#}"))),
        (r, t) => r.and(t),
    }
}

fn cluster_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KOMPOX_CLUSTER_DIR") {
        return PathBuf::from(d);
    }
    let cache = std::env::var_os("KOMPOX_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/kompox")
        });
    cache.join("cluster")
}

/// The mock CSI driver's `-list` output for `what` (volumes|snapshots): one line an object,
/// its ID first.
fn driver_lines(what: &str) -> Result<Vec<String>> {
    let sock = cluster_dir().join("csi/csi.sock");
    let out = std::process::Command::new(cluster().bin_dir.join("csi-mock-driver"))
        .arg("-endpoint")
        .arg(&sock)
        .arg("-list")
        .arg(what)
        .output()
        .context("running csi-mock-driver -list")?;
    if !out.status.success() {
        bail!(
            "csi-mock-driver -list {what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect())
}

fn driver_list(what: &str) -> Result<BTreeSet<String>> {
    Ok(driver_lines(what)?
        .iter()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect())
}

/// IDs of the volumes the mock CSI driver holds (CSI `ListVolumes`).
pub fn driver_volumes() -> Result<BTreeSet<String>> {
    driver_list("volumes")
}

/// IDs of the snapshots the mock CSI driver holds (CSI `ListSnapshots`).
pub fn driver_snapshots() -> Result<BTreeSet<String>> {
    driver_list("snapshots")
}

/// The capacity in bytes the mock CSI driver reports for volume `handle` (CSI `ListVolumes`:
/// "<id> <bytes> <name>" a line); `None` when it has no such volume.
pub fn driver_volume_capacity(handle: &str) -> Result<Option<u64>> {
    let lines = driver_lines("volumes")?;
    let Some(line) = lines
        .iter()
        .find(|l| l.split_whitespace().next() == Some(handle))
    else {
        return Ok(None);
    };
    let bytes = line
        .split_whitespace()
        .nth(1)
        .with_context(|| format!("no capacity in {line:?}"))?;
    Ok(Some(
        bytes
            .parse()
            .with_context(|| format!("capacity in {line:?}"))?,
    ))
}

/// The mock CSI driver's log (every CSI call as JSON).
pub fn driver_log() -> Result<String> {
    let p = cluster_dir().join("logs/csi-mock-driver.log");
    std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
}

/// One successful CSI call from the driver log, parsed.
#[derive(Debug, Clone)]
pub struct CsiCall {
    /// e.g. `/csi.v1.Controller/CreateVolume`.
    pub method: String,
    /// The request.
    pub request: Value,
    /// The response.
    pub response: Value,
}

/// Successful calls of `method` (e.g. `CreateVolume`) in the driver log.
pub fn driver_calls(method: &str) -> Result<Vec<CsiCall>> {
    let log = driver_log()?;
    let want = format!("/csi.v1.Controller/{method}");
    Ok(log
        .lines()
        .filter_map(|l| l.split_once("gRPCCall: ").map(|(_, j)| j))
        .filter_map(|j| serde_json::from_str::<Value>(j).ok())
        .filter(|v| v["Method"] == want.as_str() && v["Error"] == "")
        .map(|v| CsiCall {
            method: want.clone(),
            request: v["Request"].clone(),
            response: v["Response"].clone(),
        })
        .collect())
}

/// Volume IDs the driver created for PVCs in `namespace` (from `CreateVolume` parameters).
pub fn volumes_created_in(namespace: &str) -> Result<BTreeSet<String>> {
    Ok(driver_calls("CreateVolume")?
        .into_iter()
        .filter(|c| c.request["parameters"]["csi.storage.k8s.io/pvc/namespace"] == namespace)
        .filter_map(|c| {
            c.response["volume"]["volume_id"]
                .as_str()
                .map(str::to_string)
        })
        .collect())
}

/// `rel` as a relative path of normal components only (data from a test, checked anyway: it
/// names files under the driver's data dir).
fn relative(rel: &str) -> Result<&Path> {
    let p = Path::new(rel);
    ensure!(
        !rel.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_))),
        "{rel:?} is not a relative path of plain names"
    );
    Ok(p)
}

/// The directory of volume `handle` in the mock driver's data plane
/// (`$KOMPOX_CSI_DATA_DIR/volumes/<handle>`). A handle comes from the API: it must be one
/// plain path element.
pub fn volume_dir(handle: &str) -> Result<PathBuf> {
    ensure!(
        relative(handle)?.components().count() == 1,
        "volume handle {handle:?} is not a single path element"
    );
    Ok(cluster_dir().join("csi/data/volumes").join(handle))
}

/// Whether volume `handle` has a directory in the driver's data plane.
pub fn volume_dir_exists(handle: &str) -> Result<bool> {
    let dir = volume_dir(handle)?;
    dir.try_exists()
        .with_context(|| format!("checking {}", dir.display()))
}

/// Writes `bytes` to file `rel` (relative, may be nested) in volume `handle`, as a pod would.
pub fn write_volume_file(handle: &str, rel: &str, bytes: &[u8]) -> Result<()> {
    let dir = volume_dir(handle)?;
    ensure!(
        dir.is_dir(),
        "volume {handle} has no data directory {}",
        dir.display()
    );
    let path = dir.join(relative(rel)?);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// File `rel` of volume `handle`.
pub fn read_volume_file(handle: &str, rel: &str) -> Result<Vec<u8>> {
    let path = volume_dir(handle)?.join(relative(rel)?);
    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

/// Every file of volume `handle`, by its path relative to the volume ("/"-separated).
pub fn volume_files(handle: &str) -> Result<BTreeMap<String, Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) -> Result<()> {
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                walk(root, &path, out)?;
            } else {
                let rel = path.strip_prefix(root)?.to_string_lossy().into_owned();
                let bytes =
                    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                out.insert(rel, bytes);
            }
        }
        Ok(())
    }
    let root = volume_dir(handle)?;
    let mut out = BTreeMap::new();
    walk(&root, &root, &mut out)?;
    Ok(out)
}

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
//! Also the mock CSI driver's view for leak checks: [`driver_volumes`], [`driver_snapshots`],
//! [`driver_log`].

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use kube::config::Kubeconfig;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};

use crate::{admin_client, cluster, kubectl, repo_root, wait_until};

/// Namespace of the controller's ServiceAccount and Lease.
pub const SYSTEM_NAMESPACE: &str = "k4x-system";
/// The controller's ServiceAccount.
pub const SERVICE_ACCOUNT: &str = "kompox-controller";

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}

/// Builds `kompox-controller` (once per process) and returns the binary's path.
pub fn binary() -> Result<PathBuf> {
    static BIN: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = std::process::Command::new(cargo)
            .args([
                "build",
                "-p",
                "kompox-controller",
                "--bin",
                "kompox-controller",
            ])
            .current_dir(repo_root())
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

/// Applies `manifests/controller/{namespace,rbac}.yaml` once per process.
pub async fn ensure_rbac() -> Result<()> {
    static DONE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    DONE.get_or_try_init(|| async {
        let dir = repo_root().join("manifests/controller");
        let ns = dir.join("namespace.yaml").to_string_lossy().into_owned();
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
        let sas: Api<ServiceAccount> = Api::namespaced(admin, SYSTEM_NAMESPACE);
        let tr = sas
            .create_token_request(
                SERVICE_ACCOUNT,
                &PostParams::default(),
                &TokenRequest {
                    spec: TokenRequestSpec {
                        audiences: vec![],
                        expiration_seconds: Some(3 * 3600),
                        ..TokenRequestSpec::default()
                    },
                    ..TokenRequest::default()
                },
            )
            .await
            .context("requesting a token for the kompox-controller ServiceAccount")?;
        let token = tr
            .status
            .map(|s| s.token)
            .context("TokenRequest without a token")?;
        let kc = Kubeconfig::read_from(&cluster().admin_kubeconfig)?;
        let mut v = serde_json::to_value(&kc)?;
        for u in v
            .get_mut("users")
            .and_then(Value::as_array_mut)
            .context("admin kubeconfig without users")?
            .iter_mut()
        {
            u["user"] = json!({"token": token});
        }
        let path = std::env::temp_dir().join(format!(
            "kompox-e2e-controller-{}.kubeconfig",
            std::process::id()
        ));
        std::fs::write(&path, serde_json::to_vec(&v)?)?;
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
}

impl Options {
    /// Scoped to `namespace`, without leader election.
    pub fn namespace(namespace: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            lease: None,
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
        .arg("--exit-on-stdin-close");
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
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let code = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .context("malformed HTTP response")?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((code, body))
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

fn driver_list(what: &str) -> Result<BTreeSet<String>> {
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

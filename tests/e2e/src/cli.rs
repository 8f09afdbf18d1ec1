//! Harness for the `kubectl-kompox` tests: the built binary (built once when missing, with the
//! three servers `install --local` starts) run as a process against the local control plane.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use anyhow::{Context as _, Result, bail};

use crate::{cluster, repo_root};

/// `target/debug` of this workspace (or `$CARGO_TARGET_DIR/debug`).
pub fn target_debug() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("debug")
}

/// The `kubectl-kompox` binary, building it and the servers once per process (cargo decides
/// whether anything is stale, so a changed server is rebuilt too).
///
/// # Errors
///
/// When cargo fails; its output is in the error.
pub fn binary() -> Result<PathBuf> {
    static BUILT: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn build() -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(repo_root())
        .args([
            "build",
            "-p",
            "kubectl-kompox",
            "-p",
            "kompox-apiserver",
            "-p",
            "kompox-webhook",
            "-p",
            "kompox-controller",
        ])
        .output()
        .context("running cargo build")?;
    if !out.status.success() {
        bail!(
            "cargo build failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let bin = target_debug().join("kubectl-kompox");
    if !bin.is_file() {
        bail!("{} missing after cargo build", bin.display());
    }
    Ok(bin)
}

/// One run's output.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Fails with both streams unless the exit code is 0.
    ///
    /// # Errors
    ///
    /// When the command failed.
    pub fn ok(self) -> Result<Self> {
        if self.code != 0 {
            bail!(
                "kubectl-kompox exited {}\nstdout:\n{}\nstderr:\n{}",
                self.code,
                self.stdout,
                self.stderr
            );
        }
        Ok(self)
    }
}

/// Runs `kubectl-kompox args…` with `KUBECONFIG` = the admin kubeconfig (unless `args` give
/// `--kubeconfig`) and `KOMPOX_CACHE` = `cache` (where `--local` keeps its servers' state).
///
/// # Errors
///
/// When the binary cannot be built or started.
pub fn kompox(cache: &Path, args: &[&str]) -> Result<Run> {
    let bin = binary()?;
    let out: Output = Command::new(&bin)
        .args(args)
        .env("KUBECONFIG", &cluster().admin_kubeconfig)
        .env("KOMPOX_CACHE", cache)
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    Ok(Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// A fresh temporary directory under the system temp dir.
///
/// # Errors
///
/// When it cannot be created.
pub fn temp_dir(name: &str) -> Result<PathBuf> {
    let d = std::env::temp_dir().join(format!(
        "kompox-e2e-{name}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    Ok(d)
}

/// Copies the files of `samples/<name>` into `dir` (so the state file lands outside the
/// repository).
///
/// # Errors
///
/// On I/O failure.
pub fn copy_sample(name: &str, dir: &Path) -> Result<()> {
    let src = repo_root().join("samples").join(name);
    for e in std::fs::read_dir(&src).with_context(|| format!("reading {}", src.display()))? {
        let e = e?;
        if e.file_type()?.is_file() {
            std::fs::copy(e.path(), dir.join(e.file_name()))?;
        }
    }
    Ok(())
}

/// [`kompox`] from async code, on a blocking thread.
///
/// # Errors
///
/// See [`kompox`].
pub async fn kompox_async(cache: &Path, args: &[&str]) -> Result<Run> {
    let cache = cache.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        kompox(&cache, &refs)
    })
    .await
    .context("joining the kubectl-kompox run")?
}

/// The table a `list` command printed: one row of whitespace-separated cells per line, the
/// header first.
pub fn table(stdout: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// The row of `table` whose first cell is `name`, as column → cell.
///
/// # Errors
///
/// When there is no such row, or it has fewer cells than the header.
pub fn row(
    table: &[Vec<String>],
    name: &str,
) -> Result<std::collections::BTreeMap<String, String>> {
    let header = table.first().context("empty table")?;
    let r = table
        .iter()
        .skip(1)
        .find(|r| r.first().map(String::as_str) == Some(name))
        .with_context(|| format!("no row {name} in {table:?}"))?;
    if r.len() != header.len() {
        bail!("row {r:?} does not match header {header:?}");
    }
    Ok(header.iter().cloned().zip(r.iter().cloned()).collect())
}

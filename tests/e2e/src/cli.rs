//! Harness for the `kubectl-kompox` tests: the built binary (built once when missing, with the
//! three servers `install --local` starts) run as a process against the local control plane.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt as _};

use crate::{admin_client, cluster, repo_root, wait_until};

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
    let out = crate::cargo_command()
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
        // `--local` state follows `cache`: a KOMPOX_LOCAL_DIR of the caller's shell would win.
        .env_remove("KOMPOX_LOCAL_DIR")
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

/// What [`with_local_install`] hands its body: Kompox's servers from `install --local`, their
/// controller scoped (`--watch-namespaces`) to the fresh workspace `ws`, and a fresh project
/// directory `dir`.
pub struct LocalInstall {
    /// `KOMPOX_CACHE` of the servers (where `--local` keeps their state and logs).
    pub cache: PathBuf,
    /// A fresh directory for the test's compose project.
    pub dir: PathBuf,
    /// The workspace (tenant) the test applies into; its namespaces are deleted afterwards.
    pub ws: String,
    /// The cluster admin.
    pub client: Client,
    /// The output of `install --local`.
    pub install: Run,
    start: Instant,
}

impl LocalInstall {
    /// `kubectl-kompox args…` against these servers.
    ///
    /// # Errors
    ///
    /// See [`kompox`].
    pub async fn kompox(&self, args: &[&str]) -> Result<Run> {
        kompox_async(&self.cache, args).await
    }

    /// The namespace `apply` recorded for `app` of this workspace in `dir/.kompox/state.json`.
    ///
    /// # Errors
    ///
    /// When the state file or the entry is missing.
    pub fn namespace_of(&self, app: &str) -> Result<String> {
        let path = self.dir.join(".kompox/state.json");
        let state: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?,
        )?;
        state["apps"][format!("{}/{app}", self.ws)]["namespace"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no namespace for {app} in {state}"))
    }

    /// Prints `[e2e <seconds since install>] what` on stderr (`--nocapture` shows where the
    /// time goes).
    pub fn step(&self, what: &str) {
        eprintln!("[e2e {:6.1}s] {what}", self.start.elapsed().as_secs_f32());
    }
}

/// Runs `body` against Kompox servers started by `install --local` for a fresh workspace
/// named `prefix` + 6 hex digits, then always (also after a failure) deletes the workspace's
/// namespaces (while the controller still runs its finalizers), runs `uninstall --local`
/// (which must stop the three servers) and removes the temporary directories.
///
/// # Errors
///
/// The body's error first, else what failed in the install or the cleanup.
pub async fn with_local_install<F>(prefix: &str, body: F) -> Result<()>
where
    F: for<'a> FnOnce(&'a LocalInstall) -> BoxFuture<'a, Result<()>>,
{
    // `install --local` registers cluster-wide objects (the APIService, the webhook
    // configuration) and `uninstall --local` removes them: one at a time in a process.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    let cache = temp_dir(&format!("{prefix}-cache"))?;
    let dir = temp_dir(prefix)?;
    let ws = format!("{prefix}{:06x}", rand::random::<u32>() & 0xff_ffff);
    let selector = format!("kompox.dev/tenant={ws}");
    let start = Instant::now();
    let install = kompox_async(
        &cache,
        &["install", "--local", "--watch-namespaces", &selector],
    )
    .await;
    let result = match install.and_then(Run::ok) {
        Ok(install) => match admin_client().await {
            Err(e) => Err(e),
            Ok(client) => {
                let env = LocalInstall {
                    cache: cache.clone(),
                    dir: dir.clone(),
                    ws: ws.clone(),
                    client,
                    install,
                    start,
                };
                env.step("installed (--local)");
                let r = if let Err(e) = local_servers_act_as_themselves(&cache).await {
                    Err(e)
                } else if env
                    .install
                    .stdout
                    .contains("APIService v1alpha1.subresources.k8s.kompox.dev is Available")
                {
                    body(&env).await
                } else {
                    Err(anyhow::anyhow!(
                        "install --local: no Available APIService: {:?}",
                        env.install
                    ))
                };
                env.step("body done");
                let cleaned = delete_namespaces(&env.client, &selector).await;
                env.step("namespaces deleted");
                r.and(cleaned)
            }
        },
        Err(e) => Err(e),
    };
    let un = kompox_async(&cache, &["uninstall", "--local"]).await;
    result?;
    let un = un?.ok()?;
    for server in ["kompox-apiserver", "kompox-webhook", "kompox-controller"] {
        ensure!(
            un.stdout
                .lines()
                .any(|l| l.starts_with(server) && l.ends_with("stopped")),
            "uninstall --local did not stop {server}: {un:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&cache);
    Ok(())
}

/// The servers `install --local` started act as their own ServiceAccounts, as in the cluster:
/// each kubeconfig in the state dir holds no credential of the installer, authenticates as
/// `system:serviceaccount:k4x-system:<server>`, and grants only that account's rights (the
/// webhook may not create a Deployment, the apiserver may not create a Pod).
async fn local_servers_act_as_themselves(cache: &Path) -> Result<()> {
    use k8s_openapi::api::authentication::v1::SelfSubjectReview;
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    };
    let admin_kc = std::fs::read_to_string(&cluster().admin_kubeconfig)?;
    let admin_key = admin_kc
        .lines()
        .find_map(|l| l.trim().strip_prefix("client-key-data:"))
        .map(str::trim)
        .unwrap_or_default();
    for (server, may_not) in [
        ("kompox-apiserver", ("", "pods", "create")),
        ("kompox-webhook", ("apps", "deployments", "create")),
        ("kompox-controller", ("", "pods", "create")),
    ] {
        let path = cache.join("local").join(format!("{server}.kubeconfig"));
        let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
        ensure!(
            !text.contains("client-key-data")
                && (admin_key.is_empty() || !text.contains(admin_key)),
            "{} holds the installer's credentials",
            path.display()
        );
        let client = crate::client_from(&path).await?;
        let me = Api::<SelfSubjectReview>::all(client.clone())
            .create(&PostParams::default(), &SelfSubjectReview::default())
            .await
            .with_context(|| format!("{server}: SelfSubjectReview"))?;
        let name = me
            .status
            .and_then(|s| s.user_info)
            .and_then(|u| u.username)
            .unwrap_or_default();
        ensure!(
            name == format!("system:serviceaccount:k4x-system:{server}"),
            "{server} acts as {name:?}"
        );
        let (group, resource, verb) = may_not;
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some("default".into()),
                    group: Some(group.into()),
                    resource: Some(resource.into()),
                    verb: Some(verb.into()),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        let answer = Api::<SelfSubjectAccessReview>::all(client)
            .create(&PostParams::default(), &review)
            .await?;
        ensure!(
            !answer.status.is_some_and(|s| s.allowed),
            "{server} may {verb} {resource}: not its own rights only"
        );
    }
    Ok(())
}

/// Deletes the namespaces matching `selector` and waits until they are gone.
async fn delete_namespaces(client: &Client, selector: &str) -> Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let lp = ListParams::default().labels(selector);
    for ns in api.list(&lp).await?.items {
        api.delete(&ns.name_any(), &DeleteParams::default()).await?;
    }
    wait_until(
        &format!("namespaces {selector} gone"),
        Duration::from_secs(120),
        || {
            let (api, lp) = (api.clone(), lp.clone());
            async move { Ok(api.list(&lp).await?.items.is_empty()) }
        },
    )
    .await
}

/// A Deployment's generation, pod-template `kompox.dev/env-hash` and the names of its
/// namespace's Pods, at one moment.
#[derive(Debug, Clone)]
pub struct PodsAt {
    /// `metadata.generation`.
    pub generation: i64,
    /// The template's env-hash.
    pub hash: String,
    /// The Pods (not terminating).
    pub pods: Vec<String>,
}

/// [`PodsAt`] now, for Deployment `dep` of namespace `ns` (the app's own namespace).
///
/// # Errors
///
/// When a read fails.
pub async fn pods_at(client: &Client, ns: &str, dep: &str) -> Result<PodsAt> {
    let d = Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), ns)
        .get(dep)
        .await?;
    let generation = d.metadata.generation.unwrap_or_default();
    let hash = d
        .spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.annotations)
        .and_then(|a| a.get(kompox_core::naming::ENV_HASH_ANNOTATION).cloned())
        .unwrap_or_default();
    let pods = live_pods(client, ns)
        .await?
        .into_iter()
        .map(|p| p.name_any())
        .collect();
    Ok(PodsAt {
        generation,
        hash,
        pods,
    })
}

async fn live_pods(client: &Client, ns: &str) -> Result<Vec<k8s_openapi::api::core::v1::Pod>> {
    Ok(
        Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), ns)
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect(),
    )
}

/// Checks, without waiting, that the app's Pod has rolled since `before`: a live Pod that
/// was not there before, Ready, and carrying an env-hash. Returns it (its env-hash as
/// `hash`, its image per container in `images`); the caller checks what had to change.
///
/// # Errors
///
/// Saying which of these does not hold.
pub async fn rolled_since(client: &Client, ns: &str, before: &PodsAt) -> Result<NewPod> {
    let pods = live_pods(client, ns).await?;
    let names: Vec<String> = pods.iter().map(|p| p.name_any()).collect();
    let ready = |p: &k8s_openapi::api::core::v1::Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    };
    let pod = pods
        .iter()
        .find(|p| !before.pods.contains(&p.name_any()) && ready(p))
        .with_context(|| {
            format!(
                "no new Ready Pod in {ns}: live {names:?}, before {:?}",
                before.pods
            )
        })?;
    let hash = pod
        .annotations()
        .get(kompox_core::naming::ENV_HASH_ANNOTATION)
        .cloned()
        .unwrap_or_default();
    ensure!(!hash.is_empty(), "Pod {} has no env-hash", pod.name_any());
    let images = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
        .collect();
    Ok(NewPod {
        name: pod.name_any(),
        hash,
        images,
    })
}

/// The new Pod [`rolled_since`] found.
#[derive(Debug, Clone)]
pub struct NewPod {
    /// Its name.
    pub name: String,
    /// Its `kompox.dev/env-hash`.
    pub hash: String,
    /// Container name → image.
    pub images: std::collections::BTreeMap<String, String>,
}

//! Test harness for Kompox's end-to-end tests against the local control plane.
//!
//! The control plane is real: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
//! kwok started by `hack/cluster.sh`. [`cluster()`] brings it up once per test binary (reusing it
//! when it is already up), [`TestNamespace`] gives each test a fresh namespace, and [`wait_until`]
//! / [`wait_for_condition`] wait with timeouts instead of sleeping.

pub mod webhook;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

pub mod apiserver;
pub mod apps;
pub mod cli;
pub mod controller;
pub mod node;
pub mod otel;
pub mod storage;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::config::Kubeconfig;
use kube::runtime::wait::{Condition, await_condition};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

/// Where the local control plane keeps what tests need to reach it.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Kubeconfig of the cluster admin (`system:masters`).
    pub admin_kubeconfig: PathBuf,
    /// Kubeconfig of the ordinary user `dev`, who has no rights beyond discovery.
    pub user_kubeconfig: PathBuf,
    /// The CA that signs kube-apiserver's front-proxy client certificate.
    pub front_proxy_ca: PathBuf,
    /// The CA of the client certificate kube-apiserver presents to admission webhooks (its
    /// AdmissionConfiguration `kubeConfigFile`).
    pub webhook_client_ca: PathBuf,
    /// Directory holding kubectl and the other upstream binaries.
    pub bin_dir: PathBuf,
    /// The kubeconfig context naming this cluster (`kompox-local`, `kompox-local-b`).
    pub context: String,
    /// The mock CSI driver's data plane (`<dir>/volumes/<handle>`), shared by every local
    /// cluster.
    pub csi_data_dir: PathBuf,
}

/// The hash key of the servers the tests start (the webhook, the controller and the
/// aggregated API server must share one, as an install's do).
pub const HASH_KEY: &str = "kompox e2e tests: a fixed hash key, 32+ bytes";

/// [`HASH_KEY`] as a key.
///
/// # Panics
/// Never: the constant is long enough.
pub fn hash_key() -> kompox_core::hash::HashKey {
    match kompox_core::hash::HashKey::new(HASH_KEY.as_bytes()) {
        Ok(k) => k,
        Err(e) => panic!("{e}"),
    }
}

/// A file holding [`HASH_KEY`], for servers run as processes (`--hash-key-file`).
///
/// Written to a file of this process and renamed over the shared one: a server another test
/// (or test process) is starting at that moment never reads it truncated (`fs::write` empties
/// the file before writing, and a controller once started on an empty key file and exited).
///
/// # Errors
/// When the file cannot be written.
pub fn hash_key_file() -> Result<PathBuf> {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("e2e-logs");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("hash.key");
    if std::fs::read(&path).is_ok_and(|b| b == HASH_KEY.as_bytes()) {
        return Ok(path);
    }
    let tmp = dir.join(format!(
        "hash.key.{}.{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::write(&tmp, HASH_KEY).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(path)
}

/// `cargo` (the one running the tests) in the workspace root, for the nested builds of the
/// binaries the tests run, without what cargo set for the test process itself.
///
/// Those variables describe the test crate, not the build: ring's build script reruns when
/// `CARGO_MANIFEST_DIR` changes, so passing them on rebuilt ring and everything above it
/// (kube, rustls, the four binaries: minutes on 2 cores) in the nested build, and again in
/// the next `cargo test`.
#[must_use]
pub fn cargo_command() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(repo_root());
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if matches!(
            k.as_ref(),
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
                | "CARGO_RUSTC_CURRENT_DIR"
        ) || k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_BIN_EXE_")
        {
            cmd.env_remove(k.as_ref());
        }
    }
    cmd
}

/// The repository root (the workspace this crate lives in).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cluster_script() -> PathBuf {
    repo_root().join("hack/cluster.sh")
}

/// Brings the local control plane up (once per process; reused when already up) and returns how
/// to reach it.
///
/// # Panics
/// When the control plane cannot be started: every e2e test needs it, so failing loudly with
/// the script's output is the useful outcome.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| match start_cluster(None) {
        Ok(c) => c,
        Err(e) => panic!("local control plane: {e:#}"),
    })
}

/// A second local cluster, `KOMPOX_CLUSTER=b` (its own control plane; the CSI driver and its
/// data plane shared with [`cluster`], as two clusters of one cloud account share its disks).
/// Brought up once per process, after the first.
///
/// # Panics
/// As [`cluster`].
pub fn second_cluster() -> &'static Cluster {
    static SECOND: OnceLock<Cluster> = OnceLock::new();
    cluster();
    SECOND.get_or_init(|| match start_cluster(Some("b")) {
        Ok(c) => c,
        Err(e) => panic!("second local control plane: {e:#}"),
    })
}

fn start_cluster(name: Option<&str>) -> Result<Cluster> {
    let script = cluster_script();
    let run = |arg: &str| {
        let mut cmd = Command::new("bash");
        cmd.arg(&script).arg(arg);
        match name {
            // The real node belongs to the default cluster only (hack/cluster.sh refuses it for
            // a named one): a run with KOMPOX_REAL_NODE=1 (CI's) starts the second one without.
            Some(n) => cmd.env("KOMPOX_CLUSTER", n).env_remove("KOMPOX_REAL_NODE"),
            None => cmd.env_remove("KOMPOX_CLUSTER"),
        };
        cmd.output()
    };
    let out = run("up").with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} up failed:\n{}{}",
            script.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let env = run("env")?;
    let text = String::from_utf8_lossy(&env.stdout);
    let var = |name: &str| -> Result<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("export {name}=")))
            .map(str::to_owned)
            .with_context(|| format!("{} env printed no {name}", script.display()))
    };
    let bin_dir = var("PATH")?
        .split(':')
        .next()
        .map(PathBuf::from)
        .context("no bin dir in PATH")?;
    Ok(Cluster {
        admin_kubeconfig: var("KUBECONFIG")?.into(),
        user_kubeconfig: var("KUBECONFIG_USER")?.into(),
        front_proxy_ca: var("KOMPOX_FRONT_PROXY_CA")?.into(),
        webhook_client_ca: var("KOMPOX_WEBHOOK_CLIENT_CA_FILE")?.into(),
        bin_dir,
        context: var("KOMPOX_CONTEXT")?,
        csi_data_dir: var("KOMPOX_CSI_DATA_DIR")?.into(),
    })
}

/// A client from a kubeconfig file.
pub async fn client_from(path: &Path) -> Result<Client> {
    Ok(kompox_cluster::client(Some(path)).await?)
}

/// A client acting as the cluster admin.
pub async fn admin_client() -> Result<Client> {
    client_from(&cluster().admin_kubeconfig).await
}

/// A client acting as the unprivileged user `dev`.
pub async fn user_client() -> Result<Client> {
    client_from(&cluster().user_kubeconfig).await
}

/// A kubeconfig acting as ServiceAccount `namespace/name`: the admin kubeconfig's cluster, with
/// a fresh bound token (valid 3 h) in place of every user's credentials.
pub async fn service_account_kubeconfig(
    admin: &Client,
    namespace: &str,
    name: &str,
) -> Result<Kubeconfig> {
    let token = service_account_token(admin, namespace, name).await?;
    let kc = Kubeconfig::read_from(&cluster().admin_kubeconfig)?;
    let mut v = serde_json::to_value(&kc)?;
    let users = v
        .get_mut("users")
        .and_then(serde_json::Value::as_array_mut)
        .context("admin kubeconfig without users")?;
    for u in users.iter_mut() {
        u["user"] = serde_json::json!({"token": token});
    }
    Ok(serde_json::from_value(v)?)
}

/// Bearer tokens for `/metrics` checks: of a ServiceAccount bound to the install's ClusterRole
/// `kompox-metrics-reader` (`manifests/apiserver/rbac.yaml`, applied from the file), and of
/// one with no rights.
#[derive(Debug, Clone)]
pub struct MetricsTokens {
    /// May `get /metrics`.
    pub reader: String,
    /// Authenticated, no rights.
    pub nobody: String,
}

/// Namespace of the ServiceAccounts of [`metrics_tokens`].
pub const METRICS_SA_NAMESPACE: &str = "kompox-e2e-metrics";

/// [`MetricsTokens`], made once per process (ServiceAccounts `reader` and `nobody` in
/// [`METRICS_SA_NAMESPACE`], tokens valid 3 h).
///
/// # Errors
/// When the objects or tokens cannot be made.
pub async fn metrics_tokens() -> Result<MetricsTokens> {
    static TOKENS: tokio::sync::OnceCell<MetricsTokens> = tokio::sync::OnceCell::const_new();
    TOKENS
        .get_or_try_init(|| async {
            let admin = admin_client().await?;
            let text = std::fs::read_to_string(repo_root().join("manifests/apiserver/rbac.yaml"))?;
            let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text)?;
            let role = docs
                .into_iter()
                .find(|d| d["metadata"]["name"] == "kompox-metrics-reader")
                .context(
                    "manifests/apiserver/rbac.yaml has no ClusterRole kompox-metrics-reader",
                )?;
            let pp = kube::api::PatchParams::apply("kompox-e2e").force();
            let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(admin.clone());
            roles
                .patch(
                    "kompox-metrics-reader",
                    &pp,
                    &kube::api::Patch::Apply(&role),
                )
                .await?;
            let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": METRICS_SA_NAMESPACE}});
            Api::<Namespace>::all(admin.clone())
                .patch(METRICS_SA_NAMESPACE, &pp, &kube::api::Patch::Apply(&ns))
                .await?;
            let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), METRICS_SA_NAMESPACE);
            for name in ["reader", "nobody"] {
                let sa = serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": name, "namespace": METRICS_SA_NAMESPACE}});
                sas.patch(name, &pp, &kube::api::Patch::Apply(&sa)).await?;
            }
            let binding = serde_json::json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "kompox-e2e-metrics-reader"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "kompox-metrics-reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "reader",
                    "namespace": METRICS_SA_NAMESPACE}],
            });
            Api::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>::all(admin.clone())
                .patch(
                    "kompox-e2e-metrics-reader",
                    &pp,
                    &kube::api::Patch::Apply(&binding),
                )
                .await?;
            Ok(MetricsTokens {
                reader: service_account_token(&admin, METRICS_SA_NAMESPACE, "reader").await?,
                nobody: service_account_token(&admin, METRICS_SA_NAMESPACE, "nobody").await?,
            })
        })
        .await
        .cloned()
}

/// A fresh bound token (valid 3 h) of ServiceAccount `namespace/name`.
///
/// # Errors
/// When the TokenRequest fails.
pub async fn service_account_token(admin: &Client, namespace: &str, name: &str) -> Result<String> {
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
    let tr = sas
        .create_token_request(
            name,
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
        .with_context(|| format!("requesting a token for ServiceAccount {namespace}/{name}"))?;
    tr.status
        .map(|s| s.token)
        .context("TokenRequest without a token")
}

/// Runs the pinned kubectl against the cluster as admin; returns stdout, fails with stderr.
pub fn kubectl(args: &[&str]) -> Result<String> {
    let c = cluster();
    let out = Command::new(c.bin_dir.join("kubectl"))
        .arg("--kubeconfig")
        .arg(&c.admin_kubeconfig)
        .args(args)
        .output()
        .context("running kubectl")?;
    if !out.status.success() {
        bail!(
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Applies Kompox's CRDs (`manifests/crds/`) with server-side apply and waits until they are
/// Established. Cheap to call from every test: it runs once per process.
pub async fn ensure_crds() -> Result<()> {
    static DONE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    DONE.get_or_try_init(|| async {
        let dir = repo_root().join("manifests/crds/kompox.yaml");
        let dir = dir.to_string_lossy().into_owned();
        tokio::task::spawn_blocking(move || {
            kubectl(&["apply", "--server-side", "--force-conflicts", "-f", &dir])?;
            kubectl(&[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "crd/kompoxapps.k8s.kompox.dev",
                "crd/kompoxdisks.k8s.kompox.dev",
                "crd/kompoxsnapshots.k8s.kompox.dev",
            ])
        })
        .await??;
        Ok(())
    })
    .await
    .map(|_| ())
}

/// A namespace of its own for one test, deleted by [`TestNamespace::cleanup`].
pub struct TestNamespace {
    /// The namespace's name.
    pub name: String,
    client: Client,
}

impl TestNamespace {
    /// Creates `e2e-<prefix>-<random>` with the given extra labels, and waits until its default
    /// ServiceAccount exists (Pods are rejected before that).
    pub async fn create(client: &Client, prefix: &str, labels: &[(&str, &str)]) -> Result<Self> {
        let suffix: u32 = rand::random();
        let name = format!("e2e-{prefix}-{:08x}", suffix);
        let mut all = serde_json::Map::new();
        all.insert("kompox.dev/e2e".into(), "true".into());
        for (k, v) in labels {
            all.insert((*k).into(), (*v).into());
        }
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": all},
        }))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
        wait_until(
            "the default ServiceAccount",
            Duration::from_secs(60),
            || {
                let sas = sas.clone();
                async move { Ok(sas.get_opt("default").await?.is_some()) }
            },
        )
        .await?;
        Ok(Self {
            name,
            client: client.clone(),
        })
    }

    /// A namespaced API in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Deletes the namespace (not waiting for its contents to go).
    pub async fn cleanup(self) -> Result<()> {
        Api::<Namespace>::all(self.client)
            .delete(&self.name, &DeleteParams::background())
            .await?;
        Ok(())
    }
}

/// Polls `check` every 200 ms until it returns `Ok(true)`, failing after `timeout` with `what`.
/// Errors from `check` are retried until the deadline (the last one is reported).
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_err = Some(e),
        }
        if tokio::time::Instant::now() >= deadline {
            match last_err {
                Some(e) => {
                    bail!("timed out after {timeout:?} waiting for {what}: last error: {e:#}")
                }
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How long [`delete_and_wait`] waits: deletions wait on controllers' finalizers and, for
/// volumes, on the CSI driver.
pub const DELETE_TIMEOUT: Duration = Duration::from_secs(90);

/// Deletes `name` and waits (at most [`DELETE_TIMEOUT`]) until it is gone; already gone is fine.
pub async fn delete_and_wait<K>(api: &Api<K>, name: &str) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(e) if kompox_cluster::is_not_found(&e) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    wait_until(&format!("{name} deleted"), DELETE_TIMEOUT, || async {
        Ok(api.get_opt(name).await?.is_none())
    })
    .await
}

/// [`delete_and_wait`] for every object `api` lists, one after the other.
pub async fn delete_all<K>(api: &Api<K>) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    for o in api.list(&ListParams::default()).await?.items {
        if let Some(name) = o.meta().name.as_deref() {
            delete_and_wait(api, name).await?;
        }
    }
    Ok(())
}

/// Watches one object until `cond` holds, failing after `timeout`.
pub async fn wait_for_condition<K>(
    api: Api<K>,
    name: &str,
    cond: impl Condition<K>,
    timeout: Duration,
) -> Result<Option<K>>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    tokio::time::timeout(timeout, await_condition(api, name, cond))
        .await
        .with_context(|| format!("timed out after {timeout:?} waiting on {name}"))?
        .with_context(|| format!("watching {name}"))
}

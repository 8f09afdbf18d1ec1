//! `install --local`: the three Kompox servers as background processes on this machine,
//! wired to the cluster (the webhook by URL, the aggregated API server through an
//! ExternalName Service → `localhost`; see hack/README.md).
//!
//! State lives in `$KOMPOX_LOCAL_DIR`, else `${KOMPOX_CACHE:-~/.cache/kompox}/local/`: per
//! server a pid file, a port file, a log and its own kubeconfig, plus the serving
//! certificate. Each server acts as its
//! own ServiceAccount, exactly as the in-cluster Deployments do (`k4x-system/kompox-apiserver`,
//! `…/kompox-webhook`, `…/kompox-controller`, with the install's RBAC): its kubeconfig holds the
//! chosen context's cluster and a `tokenFile` (`<server>.token`, mode 0600) that
//! [`write_tokens`] fills with a TokenRequest token valid [`TOKEN_SECONDS`] — never the
//! caller's credentials. Re-running `install --local` renews the tokens (running servers re-read
//! the file). A server whose pid is alive and still runs its binary is reused;
//! `uninstall --local` stops exactly the pids recorded here and removes the tokens.

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use kube::config::{AuthInfo, Kubeconfig, NamedAuthInfo, NamedContext};

use crate::CliError;
use crate::certs::Certs;
use crate::kubectx::{self, KubeArgs};

/// The three servers.
pub const SERVERS: [&str; 3] = ["kompox-apiserver", "kompox-webhook", "kompox-controller"];

/// `$KOMPOX_LOCAL_DIR` (one per cluster when several run: `hack/cluster.sh env` sets it for a
/// named cluster), else `${KOMPOX_CACHE:-~/.cache/kompox}/local`.
#[must_use]
pub fn state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KOMPOX_LOCAL_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("KOMPOX_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/kompox")))
        .unwrap_or_else(|| PathBuf::from(".kompox-cache"));
    cache.join("local")
}

/// What `start` will run.
#[derive(Debug, Clone)]
pub struct Servers {
    pub dir: PathBuf,
    pub apiserver_port: u16,
    pub webhook_port: u16,
    pub controller_port: u16,
    /// The controller's `--namespace-selector` (all namespaces when `None`).
    pub watch_namespaces: Option<String>,
    /// The webhook requires kube-apiserver's client certificate ([`WEBHOOK_CLIENT_CA_FILE`]).
    pub webhook_client_ca: bool,
    /// Which servers already run (reused).
    running: Vec<bool>,
    bins: Vec<PathBuf>,
}

fn io(what: &str, p: &Path, e: &std::io::Error) -> CliError {
    CliError::Io(format!("{what} {}: {e}", p.display()))
}

fn free_port() -> Result<u16, CliError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| CliError::Io(format!("finding a free port: {e}")))
}

/// The pid in `dir/<server>.pid` if that process is alive (not a zombie) and runs `server`.
#[must_use]
pub fn running_pid(dir: &Path, server: &str) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(dir.join(format!("{server}.pid")))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let stat = std::fs::read_to_string(proc_dir.join("stat")).ok()?;
    // The state follows the parenthesised command name.
    let state = stat.rsplit_once(')')?.1.split_whitespace().next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    let cmdline = std::fs::read(proc_dir.join("cmdline")).ok()?;
    let argv0 = cmdline.split(|b| *b == 0).next()?;
    let argv0 = String::from_utf8_lossy(argv0);
    (Path::new(argv0.as_ref()).file_name()?.to_string_lossy() == server).then_some(pid)
}

fn find_bin(server: &str, bin_dir: Option<&Path>) -> Result<PathBuf, CliError> {
    let mut candidates = Vec::new();
    if let Some(d) = bin_dir {
        candidates.push(d.join(server));
    }
    if let Some(d) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
    {
        candidates.push(d.join(server));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join(server)));
    }
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        CliError::Io(format!(
            "{server}: binary not found (looked in --bin-dir, next to kubectl-kompox and on PATH); build it with `cargo build -p {server}`"
        ))
    })
}

fn read_port(dir: &Path, server: &str) -> Option<u16> {
    std::fs::read_to_string(dir.join(format!("{server}.port")))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn write_private(path: &Path, content: &[u8]) -> Result<(), CliError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io("writing", path, &e))?;
    f.write_all(content).map_err(|e| io("writing", path, &e))
}

/// The servers' hash key (the content of the install's hash key Secret).
const HASH_KEY_FILE: &str = "hash.key";
/// The CA of kube-apiserver's webhook client certificate (`install --webhook-client-ca`).
const WEBHOOK_CLIENT_CA_FILE: &str = "webhook-client-ca.crt";

/// The file recording the running controller's `--namespace-selector`.
const CONTROLLER_SCOPE: &str = "kompox-controller.watch-namespaces";

/// Picks ports (reusing those of running servers), writes the certificates and the
/// kubeconfig into the state dir; starts nothing yet. A running controller watching other
/// namespaces than `watch_namespaces` is stopped, to be started again with the new scope.
///
/// # Errors
///
/// [`CliError::Io`] when the state dir cannot be written or a binary is missing.
pub async fn prepare(
    kube: &KubeArgs,
    bin_dir: Option<&Path>,
    certs: &Certs,
    hash_key: &str,
    webhook_client_ca: Option<&str>,
    watch_namespaces: Option<&str>,
    out: &mut dyn Write,
) -> Result<Servers, CliError> {
    let dir = state_dir();
    std::fs::create_dir_all(&dir).map_err(|e| io("creating", &dir, &e))?;
    let scope = std::fs::read_to_string(dir.join(CONTROLLER_SCOPE)).unwrap_or_default();
    if scope != watch_namespaces.unwrap_or_default() {
        stop_one(&dir, "kompox-controller", out).await?;
    }
    let mut bins = Vec::new();
    let mut running = Vec::new();
    let mut ports = Vec::new();
    for s in SERVERS {
        bins.push(find_bin(s, bin_dir)?);
        let alive = running_pid(&dir, s).is_some();
        let port = match (alive, read_port(&dir, s)) {
            (true, Some(p)) => p,
            _ => free_port()?,
        };
        running.push(alive);
        ports.push(port);
    }
    // Certificates: rewritten only when the servers are not running (same CA on reuse).
    write_private(&dir.join("tls.crt"), certs.tls_crt.as_bytes())?;
    write_private(&dir.join("tls.key"), certs.tls_key.as_bytes())?;
    write_private(&dir.join("ca.crt"), certs.ca_crt.as_bytes())?;
    write_private(&dir.join(HASH_KEY_FILE), hash_key.as_bytes())?;
    let client_ca = dir.join(WEBHOOK_CLIENT_CA_FILE);
    match webhook_client_ca {
        Some(pem) => write_private(&client_ca, pem.as_bytes())?,
        None => {
            let _ = std::fs::remove_file(&client_ca);
        }
    }
    let kc = kubectx::kubeconfig(kube)?;
    for s in SERVERS {
        let own = server_kubeconfig(&kc, s, &dir.join(format!("{s}.token")))?;
        let text = serde_saphyr::to_string(&own)
            .map_err(|e| CliError::Io(format!("writing {s}'s kubeconfig: {e}")))?;
        write_private(&dir.join(format!("{s}.kubeconfig")), text.as_bytes())?;
    }
    Ok(Servers {
        dir,
        apiserver_port: ports[0],
        webhook_port: ports[1],
        controller_port: ports[2],
        watch_namespaces: watch_namespaces.map(str::to_owned),
        webhook_client_ca: webhook_client_ca.is_some(),
        running,
        bins,
    })
}

/// How long the local servers' ServiceAccount tokens are valid (7 days); `install --local`
/// renews them.
pub const TOKEN_SECONDS: i64 = 7 * 24 * 3600;

/// `kc`'s current context's cluster, with one user: server `server` authenticating with the
/// token in `token_file`. None of the caller's credentials are kept.
///
/// # Errors
///
/// [`CliError::Cluster`] when the kubeconfig has no current context or its cluster is missing.
pub fn server_kubeconfig(
    kc: &Kubeconfig,
    server: &str,
    token_file: &Path,
) -> Result<Kubeconfig, CliError> {
    let current = kc.current_context.as_deref().ok_or_else(|| {
        CliError::Cluster("kubeconfig: no current context (give --context)".into())
    })?;
    let cluster_name = kc
        .contexts
        .iter()
        .find(|c| c.name == current)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .ok_or_else(|| CliError::Cluster(format!("kubeconfig: no context {current:?}")))?;
    let cluster = kc
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .cloned()
        .ok_or_else(|| {
            CliError::Cluster(format!(
                "kubeconfig: context {current:?} names cluster {cluster_name:?}, which is not there"
            ))
        })?;
    Ok(Kubeconfig {
        clusters: vec![cluster],
        auth_infos: vec![NamedAuthInfo {
            name: server.to_owned(),
            auth_info: Some(AuthInfo {
                token_file: Some(token_file.display().to_string()),
                ..AuthInfo::default()
            }),
            ..NamedAuthInfo::default()
        }],
        contexts: vec![NamedContext {
            name: server.to_owned(),
            context: Some(kube::config::Context {
                cluster: cluster_name,
                user: Some(server.to_owned()),
                ..kube::config::Context::default()
            }),
            ..NamedContext::default()
        }],
        current_context: Some(server.to_owned()),
        ..Kubeconfig::default()
    })
}

/// Writes `<server>.token` for every server: a token of its ServiceAccount in
/// [`crate::install::objects::SYSTEM_NS`] (which the install just applied), valid [`TOKEN_SECONDS`].
///
/// # Errors
///
/// [`CliError::Cluster`] when a token cannot be requested, [`CliError::Io`] when it cannot be
/// written.
pub async fn write_tokens(client: &kube::Client, dir: &Path) -> Result<(), CliError> {
    let sas: Api<ServiceAccount> =
        Api::namespaced(client.clone(), crate::install::objects::SYSTEM_NS);
    for server in SERVERS {
        let request = TokenRequest {
            spec: TokenRequestSpec {
                expiration_seconds: Some(TOKEN_SECONDS),
                ..TokenRequestSpec::default()
            },
            ..TokenRequest::default()
        };
        let answer = sas
            .create_token_request(server, &PostParams::default(), &request)
            .await
            .map_err(|e| {
                kubectx::kube_error(
                    &format!(
                        "requesting a token for ServiceAccount {}/{server}",
                        crate::install::objects::SYSTEM_NS
                    ),
                    &e,
                )
            })?;
        let token = answer.status.map(|s| s.token).unwrap_or_default();
        if token.is_empty() {
            return Err(CliError::Cluster(format!(
                "TokenRequest for ServiceAccount {}/{server}: no token in the answer",
                crate::install::objects::SYSTEM_NS
            )));
        }
        write_private(&dir.join(format!("{server}.token")), token.as_bytes())?;
    }
    Ok(())
}

/// Starts the servers that do not run yet (detached, in their own process group, logs in the
/// state dir) and waits for each one's `/readyz`.
///
/// # Errors
///
/// [`CliError::Io`] when a process cannot start; [`CliError::Timeout`] naming the server
/// and its log when it does not become ready.
pub async fn start(
    client: &kube::Client,
    s: &Servers,
    timeout: Duration,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let dir = &s.dir;
    write_tokens(client, dir).await?;
    let listen = |p: u16| format!("127.0.0.1:{p}");
    for (i, name) in SERVERS.iter().enumerate() {
        if s.running[i] {
            let _ = writeln!(out, "{name} already runs (reused)");
            continue;
        }
        let kc = dir.join(format!("{name}.kubeconfig"));
        let mut args: Vec<String> = match *name {
            "kompox-apiserver" => vec![
                format!("--listen={}", listen(s.apiserver_port)),
                format!("--tls-cert-file={}", dir.join("tls.crt").display()),
                format!("--tls-private-key-file={}", dir.join("tls.key").display()),
                format!("--kubeconfig={}", kc.display()),
            ],
            "kompox-webhook" => {
                let mut a = vec![
                    format!("--listen={}", listen(s.webhook_port)),
                    format!("--tls-cert-file={}", dir.join("tls.crt").display()),
                    format!("--tls-private-key-file={}", dir.join("tls.key").display()),
                    format!("--kubeconfig={}", kc.display()),
                ];
                if s.webhook_client_ca {
                    a.push(format!(
                        "--client-ca-file={}",
                        dir.join(WEBHOOK_CLIENT_CA_FILE).display()
                    ));
                }
                a
            }
            _ => {
                let mut a = vec![
                    format!("--metrics-listen={}", listen(s.controller_port)),
                    // The local servers' one serving certificate (localhost), so the scraper's
                    // token to /metrics travels over TLS here too.
                    format!("--tls-cert-file={}", dir.join("tls.crt").display()),
                    format!("--tls-private-key-file={}", dir.join("tls.key").display()),
                    format!("--kubeconfig={}", kc.display()),
                    "--lease-namespace=k4x-system".to_owned(),
                    // --local is for the local test cluster, whose Traefik (a kwok Pod) never
                    // reports Ingress status.
                    "--ingress-admitted-by=existence".to_owned(),
                ];
                let scope = s.watch_namespaces.as_deref().unwrap_or_default();
                if !scope.is_empty() {
                    a.push(format!("--namespace-selector={scope}"));
                }
                write_private(&dir.join(CONTROLLER_SCOPE), scope.as_bytes())?;
                a
            }
        };
        args.push(format!(
            "--hash-key-file={}",
            dir.join(HASH_KEY_FILE).display()
        ));
        let log_path = dir.join(format!("{name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| io("opening", &log_path, &e))?;
        let log2 = log.try_clone().map_err(|e| io("opening", &log_path, &e))?;
        let child = Command::new(&s.bins[i])
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .env_remove("KUBECONFIG")
            .process_group(0)
            .spawn()
            .map_err(|e| io("starting", &s.bins[i], &e))?;
        std::fs::write(dir.join(format!("{name}.pid")), child.id().to_string())
            .map_err(|e| io("writing pid of", &s.bins[i], &e))?;
        let port = [s.apiserver_port, s.webhook_port, s.controller_port][i];
        std::fs::write(dir.join(format!("{name}.port")), port.to_string())
            .map_err(|e| io("writing port of", &s.bins[i], &e))?;
        let _ = writeln!(
            out,
            "{name} started (pid {}, 127.0.0.1:{port}, log {})",
            child.id(),
            log_path.display()
        );
    }
    let ca =
        std::fs::read(dir.join("ca.crt")).map_err(|e| io("reading", &dir.join("ca.crt"), &e))?;
    for (i, name) in SERVERS.iter().enumerate() {
        let port = [s.apiserver_port, s.webhook_port, s.controller_port][i];
        wait_ready(name, port, &ca, timeout, dir).await?;
        let _ = writeln!(out, "{name} is ready (/readyz)");
    }
    Ok(())
}

async fn wait_ready(
    name: &str,
    port: u16,
    ca_pem: &[u8],
    timeout: Duration,
    dir: &Path,
) -> Result<(), CliError> {
    use rustls_pki_types::pem::PemObject as _;
    // All three serve HTTPS with the local serving certificate (localhost).
    let url: http::Uri = format!("https://localhost:{port}")
        .parse()
        .map_err(|e| CliError::Io(format!("{name}: bad URL: {e}")))?;
    let mut config = kube::Config::new(url);
    let ders: Vec<Vec<u8>> = rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem)
        .filter_map(Result::ok)
        .map(|c| c.to_vec())
        .collect();
    config.root_cert = Some(ders);
    config.connect_timeout = Some(Duration::from_secs(2));
    config.read_timeout = Some(Duration::from_secs(5));
    let client = kube::Client::try_from(config)
        .map_err(|e| CliError::Io(format!("{name}: building a health client: {e}")))?;
    let log = dir.join(format!("{name}.log"));
    // A bounded poll: a local process's /readyz is not an API object there is a watch for.
    let result = kubectx::poll(&format!("{name} /readyz"), timeout, || {
        let client = client.clone();
        let dir = dir.to_path_buf();
        async move {
            if running_pid(&dir, name).is_none() {
                return Err(CliError::Io(format!(
                    "{name} exited; see {}",
                    dir.join(format!("{name}.log")).display()
                )));
            }
            let req = http::Request::get("/readyz")
                .body(Vec::new())
                .map_err(|e| CliError::Io(format!("{name}: {e}")))?;
            Ok(match client.request_text(req).await {
                Ok(_) => Ok(()),
                Err(e) => Err(e.to_string()),
            })
        }
    })
    .await;
    result.map_err(|e| CliError::Timeout(format!("{e}; see {}", log.display())))
}

/// Stops the servers recorded in the state dir (SIGTERM, then SIGKILL after 10 s) and waits
/// until they are gone.
///
/// # Errors
///
/// [`CliError::Io`] when `kill` cannot be run.
pub async fn stop(out: &mut dyn Write) -> Result<(), CliError> {
    let dir = state_dir();
    for name in SERVERS {
        stop_one(&dir, name, out).await?;
        let _ = std::fs::remove_file(dir.join(format!("{name}.token")));
    }
    Ok(())
}

/// Stops server `name` of `dir` if it runs (SIGTERM, then SIGKILL after 10 s).
async fn stop_one(dir: &Path, name: &str, out: &mut dyn Write) -> Result<(), CliError> {
    let Some(pid) = running_pid(dir, name) else {
        let _ = std::fs::remove_file(dir.join(format!("{name}.pid")));
        return Ok(());
    };
    signal(pid, "TERM")?;
    // A bounded poll: the exit of a process we did not spawn (no child handle to await).
    let gone = kubectx::poll(
        &format!("{name} (pid {pid}) exit"),
        Duration::from_secs(10),
        || async move {
            Ok(if running_pid(dir, name) == Some(pid) {
                Err("still running".to_owned())
            } else {
                Ok(())
            })
        },
    )
    .await;
    if gone.is_err() {
        signal(pid, "KILL")?;
    }
    let _ = std::fs::remove_file(dir.join(format!("{name}.pid")));
    let _ = writeln!(out, "{name} (pid {pid}) stopped");
    Ok(())
}

fn signal(pid: u32, sig: &str) -> Result<(), CliError> {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .map(|_| ())
        .map_err(|e| CliError::Io(format!("kill -{sig} {pid}: {e}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const CALLER: &str = r#"
apiVersion: v1
kind: Config
current-context: admin@b
clusters:
- name: a
  cluster: {server: "https://a.example:6443"}
- name: b
  cluster: {server: "https://127.0.0.1:6443", certificate-authority-data: Q0E=}
users:
- name: admin
  user: {client-certificate-data: Q0VSVA==, client-key-data: S0VZ, token: caller-token}
contexts:
- name: admin@a
  context: {cluster: a, user: admin}
- name: admin@b
  context: {cluster: b, user: admin, namespace: team}
"#;

    #[test]
    fn a_server_kubeconfig_holds_the_cluster_and_its_own_token_file_only() {
        let kc = Kubeconfig::from_yaml(CALLER).unwrap();
        let own = server_kubeconfig(
            &kc,
            "kompox-webhook",
            Path::new("/state/kompox-webhook.token"),
        )
        .unwrap();
        let text = serde_saphyr::to_string(&own).unwrap();
        for secret in ["Q0VSVA==", "S0VZ", "caller-token", "a.example"] {
            assert!(!text.contains(secret), "{secret} kept:\n{text}");
        }
        assert_eq!(own.current_context.as_deref(), Some("kompox-webhook"));
        assert_eq!(own.clusters.len(), 1);
        assert_eq!(
            own.clusters[0]
                .cluster
                .as_ref()
                .and_then(|c| c.server.as_deref()),
            Some("https://127.0.0.1:6443")
        );
        let user = own.auth_infos[0].auth_info.as_ref().unwrap();
        assert_eq!(
            user.token_file.as_deref(),
            Some("/state/kompox-webhook.token")
        );
        assert!(user.token.is_none() && user.client_certificate_data.is_none());
    }

    #[test]
    fn a_kubeconfig_without_a_usable_context_is_refused() {
        let mut kc = Kubeconfig::from_yaml(CALLER).unwrap();
        kc.current_context = None;
        let e = server_kubeconfig(&kc, "s", Path::new("t")).unwrap_err();
        assert!(e.to_string().contains("no current context"), "{e}");
        kc.current_context = Some("admin@a".into());
        kc.clusters.retain(|c| c.name != "a");
        let e = server_kubeconfig(&kc, "s", Path::new("t")).unwrap_err();
        assert!(e.to_string().contains("names cluster \"a\""), "{e}");
    }
}

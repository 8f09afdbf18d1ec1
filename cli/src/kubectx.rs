//! What every cluster subcommand shares: kubectl's connection flags, the client, errors that
//! say what failed (unreachable cluster, 403 with its reason), server-side apply of untyped
//! objects, and waiting by watching ([`wait_for`]) rather than polling.

use std::fmt::Debug;
use std::io::Write;
use std::path::PathBuf;
use std::pin::pin;
use std::time::{Duration, Instant};

use clap::Args;
use futures::StreamExt as _;
use kompox_cluster::is_not_found;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, Config, Resource};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::CliError;
/// The object formats live in [`crate::output`]; kept here for the install commands.
pub use crate::output::{Format, write_objects};

/// Field manager of every server-side apply this plugin does.
pub const FIELD_MANAGER: &str = "kubectl-kompox";

/// kubectl's connection flags.
#[derive(Debug, Clone, Args, Default)]
pub struct KubeArgs {
    /// Path to the kubeconfig file (default: the files of $KUBECONFIG merged as kubectl
    /// merges them, else ~/.kube/config).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Act as this user (impersonation, as kubectl's --as).
    #[arg(long = "as", global = true, value_name = "USER")]
    pub as_user: Option<String>,
    /// Act as a member of this group (repeatable; with --as, as kubectl's --as-group).
    #[arg(
        long = "as-group",
        global = true,
        value_name = "GROUP",
        requires = "as_user"
    )]
    pub as_groups: Vec<String>,
}

/// Reads the kubeconfig as kubectl does, pinned to `--context` when given: `--kubeconfig`,
/// else every file of `$KUBECONFIG` merged (the first file to set a value wins), else
/// `~/.kube/config`.
///
/// # Errors
///
/// [`CliError::Cluster`] naming the file or context that is wrong.
pub fn kubeconfig(args: &KubeArgs) -> Result<Kubeconfig, CliError> {
    load_kubeconfig(
        args,
        std::env::var_os("KUBECONFIG").as_deref(),
        std::env::var_os("HOME").map(PathBuf::from),
    )
}

fn load_kubeconfig(
    args: &KubeArgs,
    env: Option<&std::ffi::OsStr>,
    home: Option<PathBuf>,
) -> Result<Kubeconfig, CliError> {
    let read = |p: &std::path::Path| {
        Kubeconfig::read_from(p)
            .map_err(|e| CliError::Cluster(format!("kubeconfig {}: {e}", p.display())))
    };
    let listed: Vec<PathBuf> = env
        .map(|v| {
            std::env::split_paths(v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default();
    let (mut kc, from) = if let Some(p) = &args.kubeconfig {
        (read(p)?, p.display().to_string())
    } else if !listed.is_empty() {
        let mut merged = Kubeconfig::default();
        for p in &listed {
            merged = merged
                .merge(read(p)?)
                .map_err(|e| CliError::Cluster(format!("kubeconfig {}: {e}", p.display())))?;
        }
        let names: Vec<String> = listed.iter().map(|p| p.display().to_string()).collect();
        (merged, format!("$KUBECONFIG ({})", names.join(", ")))
    } else {
        let p = home.map(|h| h.join(".kube/config")).ok_or_else(|| {
            CliError::Cluster("no kubeconfig: give --kubeconfig or set KUBECONFIG".into())
        })?;
        (read(&p)?, p.display().to_string())
    };
    if let Some(ctx) = &args.context {
        if !kc.contexts.iter().any(|c| &c.name == ctx) {
            return Err(CliError::Cluster(format!(
                "--context {ctx:?}: no such context in {from}"
            )));
        }
        kc.current_context = Some(ctx.clone());
    }
    Ok(kc)
}

/// The namespace a command acts in, as kubectl picks it: `explicit` (`-n`), else the
/// namespace of the kubeconfig's context (`--context`, else the current one), else
/// `default`.
///
/// # Errors
///
/// [`CliError::Cluster`] when no `-n` is given and the kubeconfig cannot be read.
pub fn namespace(args: &KubeArgs, explicit: Option<&str>) -> Result<String, CliError> {
    if let Some(ns) = explicit {
        return Ok(ns.to_owned());
    }
    Ok(context_namespace(&kubeconfig(args)?).unwrap_or_else(|| "default".to_owned()))
}

/// The namespace the kubeconfig's context (`--context`, else the current one) names, if any
/// (an unreadable kubeconfig names none: connecting reports it).
#[must_use]
pub fn context_namespace_of(args: &KubeArgs) -> Option<String> {
    kubeconfig(args).ok().as_ref().and_then(context_namespace)
}

/// The namespace of the kubeconfig's current context, if it names one.
fn context_namespace(kc: &Kubeconfig) -> Option<String> {
    let current = kc.current_context.as_deref()?;
    kc.contexts
        .iter()
        .find(|c| c.name == current)
        .and_then(|c| c.context.as_ref())
        .and_then(|c| c.namespace.clone())
        .filter(|n| !n.is_empty())
}

/// How long the client waits for the next bytes of a response: kube's own default, above the
/// server-side timeout of a watch.
const WATCH_READ_TIMEOUT: Duration = Duration::from_secs(295);

/// A client for the chosen kubeconfig and context, and the server's URL.
///
/// # Errors
///
/// [`CliError::Cluster`] when the kubeconfig cannot be used.
pub async fn client(args: &KubeArgs) -> Result<(Client, String), CliError> {
    let kc = kubeconfig(args)?;
    let opts = KubeConfigOptions {
        context: args.context.clone(),
        ..KubeConfigOptions::default()
    };
    let mut config = Config::from_custom_kubeconfig(kc, &opts)
        .await
        .map_err(|e| CliError::Cluster(format!("kubeconfig: {e}")))?;
    if let Some(user) = &args.as_user {
        config.auth_info.impersonate = Some(user.clone());
        config.auth_info.impersonate_groups =
            (!args.as_groups.is_empty()).then(|| args.as_groups.clone());
    }
    config.connect_timeout = Some(Duration::from_secs(5));
    // Above the 290 s a watch asks the server for (kube's watcher default): an idle watch (a
    // suspended app, a slow rollout) is ended by the server, not cut by a read timeout and
    // reported as "watch interrupted" every minute. Commands that wait have their own deadline.
    config.read_timeout = Some(WATCH_READ_TIMEOUT);
    let url = config.cluster_url.to_string();
    let client = Client::try_from(config)
        .map_err(|e| CliError::Cluster(format!("building the Kubernetes client: {e}")))?;
    Ok((client, url))
}

/// Turns a kube error into a message that says what was being done and why it failed: the
/// API server's reason (e.g. `Forbidden`) and message, or that the cluster is unreachable.
#[must_use]
pub fn kube_error(what: &str, e: &kube::Error) -> CliError {
    match e {
        kube::Error::Api(s) => CliError::Cluster(format!(
            "{what}: {} ({}, HTTP {})",
            s.message, s.reason, s.code
        )),
        kube::Error::HyperError(_) | kube::Error::Service(_) => CliError::Cluster(format!(
            "{what}: cannot reach the cluster ({e}); is it running, and is the kubeconfig's server right?"
        )),
        other => CliError::Cluster(format!("{what}: {other}")),
    }
}

/// Checks that the cluster answers (GET /version), with a clear message when it does not.
///
/// # Errors
///
/// [`CliError::Cluster`] naming the server URL.
pub async fn ping(client: &Client, url: &str) -> Result<(), CliError> {
    client
        .apiserver_version()
        .await
        .map(|_| ())
        .map_err(|e| match e {
            kube::Error::Api(_) => kube_error(&format!("cluster {url}"), &e),
            _ => CliError::Cluster(format!(
                "cannot reach the cluster at {url}: {e}\n(is it running? `hack/cluster.sh up` starts the local one)"
            )),
        })
}

/// `kind/name` (with `namespace/` when namespaced) of an untyped object, for messages.
#[must_use]
pub fn describe(obj: &Value) -> String {
    let kind = obj["kind"].as_str().unwrap_or("?");
    let name = obj["metadata"]["name"].as_str().unwrap_or("?");
    match obj["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// The API resource of an object's `apiVersion`/`kind`, from discovery.
///
/// # Errors
///
/// [`CliError::Cluster`] when the kind is not served.
pub async fn resource_of(client: &Client, obj: &Value) -> Result<(ApiResource, Scope), CliError> {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (ar, caps) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .map_err(|e| {
            kube_error(
                &format!("{}: looking up {api_version} {kind}", describe(obj)),
                &e,
            )
        })?;
    Ok((ar, caps.scope))
}

/// An `Api` for the object's kind and namespace.
///
/// # Errors
///
/// See [`resource_of`].
pub async fn api_for(client: &Client, obj: &Value) -> Result<Api<DynamicObject>, CliError> {
    let (ar, scope) = resource_of(client, obj).await?;
    Ok(match (scope, obj["metadata"]["namespace"].as_str()) {
        (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
        (Scope::Namespaced, None) => Api::default_namespaced_with(client.clone(), &ar),
        (Scope::Cluster, _) => Api::all_with(client.clone(), &ar),
    })
}

/// Server-side applies one untyped object (field manager [`FIELD_MANAGER`], forced), or
/// dry-runs it on the server; returns what the server answered. For what the plugin owns
/// outright (its install, the objects it renders in the controller's place).
///
/// # Errors
///
/// [`CliError::Cluster`] naming the object and the API server's reason.
pub async fn apply(client: &Client, obj: &Value, dry_run: bool) -> Result<Value, CliError> {
    let opts = ApplyOpts {
        field_manager: FIELD_MANAGER,
        force: true,
        dry_run,
    };
    apply_with(client, obj, &opts).await
}

/// How [`apply_with`] applies: kubectl's `--field-manager`, `--force-conflicts` and
/// `--dry-run=server`.
#[derive(Clone, Copy, Debug)]
pub struct ApplyOpts<'a> {
    /// The field manager named in `managedFields`.
    pub field_manager: &'a str,
    /// Take over fields other managers own instead of failing.
    pub force: bool,
    /// Only ask the server (`dryRun=All`): nothing is stored.
    pub dry_run: bool,
}

/// Server-side applies one untyped object as `opts` says; returns what the server answered.
///
/// # Errors
///
/// [`CliError::Cluster`] naming the object and the API server's reason; for a conflict, every
/// field and the manager that owns it ([`conflicts`]).
pub async fn apply_with(
    client: &Client,
    obj: &Value,
    opts: &ApplyOpts<'_>,
) -> Result<Value, CliError> {
    let api = api_for(client, obj).await?;
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let mut pp = PatchParams::apply(opts.field_manager);
    pp.force = opts.force;
    pp.dry_run = opts.dry_run;
    let got = api
        .patch(name, &pp, &Patch::Apply(obj))
        .await
        .map_err(|e| match conflicts(&e) {
            Some(fields) => CliError::Cluster(format!(
                "applying {}: {} (as field manager {:?})",
                describe(obj),
                fields.join("; "),
                opts.field_manager
            )),
            None => kube_error(&format!("applying {}", describe(obj)), &e),
        })?;
    serde_json::to_value(got).map_err(|e| CliError::Io(format!("encoding {}: {e}", describe(obj))))
}

/// The fields of a server-side apply conflict (HTTP 409 with `FieldManagerConflict` causes),
/// each as `.data.x: managed by "argocd-controller" (v1)`; `None` for any other error.
#[must_use]
pub fn conflicts(e: &kube::Error) -> Option<Vec<String>> {
    let kube::Error::Api(s) = e else {
        return None;
    };
    if s.code != 409 {
        return None;
    }
    let causes: Vec<String> = s
        .details
        .iter()
        .flat_map(|d| &d.causes)
        .filter(|c| c.reason == "FieldManagerConflict")
        .map(|c| {
            // The server says `conflict with "manager" using apps/v1` (or `with "manager"`
            // alone, for a manager that applied with another operation).
            let manager = c
                .message
                .strip_prefix("conflict with ")
                .unwrap_or(&c.message);
            format!("{} is managed by {manager}", c.field)
        })
        .collect();
    (!causes.is_empty()).then_some(causes)
}

/// Deletes one untyped object; absent is fine. Returns whether it existed.
///
/// # Errors
///
/// [`CliError::Cluster`] naming the object.
pub async fn delete(client: &Client, obj: &Value) -> Result<bool, CliError> {
    let api = match api_for(client, obj).await {
        Ok(api) => api,
        // The kind is not served (e.g. the CRDs are gone): nothing to delete.
        Err(_) => return Ok(false),
    };
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    match api
        .delete(name, &kube::api::DeleteParams::background())
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(kube_error(&format!("deleting {}", describe(obj)), &e)),
    }
}

/// Polls `check` every 250 ms until it returns `Ok`, or fails after `timeout` with the last
/// state `check` reported.
///
/// Only for state the API server cannot be watched for: a local process's `/readyz` or its
/// exit (`install --local`, `uninstall --local`). Everything in the cluster is awaited with
/// [`wait_for`] (a watch). Every round re-reads the real state, so the interval bounds the
/// latency; it is not a sleep used as synchronisation.
///
/// # Errors
///
/// [`CliError::Timeout`] saying what was awaited and the last state seen.
pub async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T, CliError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Result<T, String>, CliError>>,
{
    let start = Instant::now();
    loop {
        let last = match check().await? {
            Ok(v) => return Ok(v),
            Err(state) => state,
        };
        if start.elapsed() >= timeout {
            return Err(CliError::Timeout(format!(
                "{what}: not done after {} (last seen: {last})",
                seconds(timeout)
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `300s`, `1.5s`: a duration as the user wrote it, for messages.
#[must_use]
pub fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f32())
    }
}

/// The verdict of a wait's check: `Ok(Ok(v))` done, `Ok(Err(state))` still waiting (the state
/// is shown), `Err` give up.
pub type Check<T> = Result<Result<T, String>, CliError>;

/// Whether a watch error ends a wait: the API server refused the request itself (forbidden,
/// unknown kind, bad selector). Anything else (a dropped connection, 410 Gone, throttling) the
/// watcher recovers from with backoff, and `None` is returned.
#[must_use]
pub fn watch_error(what: &str, e: &watcher::Error) -> Option<CliError> {
    let fatal = |code: u16| (400..500).contains(&code) && code != 410 && code != 429;
    match e {
        watcher::Error::InitialListFailed(k)
        | watcher::Error::WatchStartFailed(k)
        | watcher::Error::WatchFailed(k) => match k {
            kube::Error::Api(s) if fatal(s.code) => {
                Some(kube_error(&format!("watching {what}"), k))
            }
            _ => None,
        },
        watcher::Error::WatchError(s) if fatal(s.code) => Some(CliError::Cluster(format!(
            "watching {what}: {} ({}, HTTP {})",
            s.message, s.reason, s.code
        ))),
        watcher::Error::WatchError(_) => None,
        watcher::Error::NoResourceVersion => {
            Some(CliError::Cluster(format!("watching {what}: {e}")))
        }
    }
}

/// Prints `  [  1.2s] state` for a wait's progress.
pub fn progress(out: &mut dyn Write, start: Instant, state: &str) {
    let _ = writeln!(out, "  [{:>5.1}s] {state}", start.elapsed().as_secs_f32());
}

/// Waits until `check` accepts object `name` of `api` (`None` while it does not exist), by
/// watching it (`watch_object`: one list, then watch events; no polling). Each new waiting
/// state is printed to `out` as it changes, when given.
///
/// # Errors
///
/// [`CliError::Timeout`] naming `what` and the last state after `timeout`; the watch's error
/// when the API server refuses it (e.g. 403); whatever `check` fails with.
pub async fn wait_for<K, T>(
    api: Api<K>,
    name: &str,
    what: &str,
    timeout: Duration,
    mut out: Option<&mut dyn Write>,
    mut check: impl FnMut(Option<&K>) -> Check<T>,
) -> Result<T, CliError>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut changes = pin!(watcher::watch_object(api, name).default_backoff());
    let mut last = "nothing observed yet".to_owned();
    loop {
        let state = match tokio::time::timeout_at(deadline, changes.next()).await {
            Err(_) => {
                return Err(CliError::Timeout(format!(
                    "{what}: not done after {} (last seen: {last})",
                    seconds(timeout)
                )));
            }
            Ok(None) => {
                return Err(CliError::Cluster(format!(
                    "watching {what}: the watch ended"
                )));
            }
            Ok(Some(Err(e))) => match watch_error(what, &e) {
                Some(fatal) => return Err(fatal),
                None => format!("watch interrupted, retrying ({e})"),
            },
            Ok(Some(Ok(obj))) => match check(obj.as_ref())? {
                Ok(v) => return Ok(v),
                Err(state) => state,
            },
        };
        if state != last {
            if let Some(out) = out.as_deref_mut() {
                progress(out, start, &state);
            }
            last = state;
        }
    }
}

/// Waits until object `name` of `api` no longer exists (finalizers done), by watching it.
///
/// # Errors
///
/// See [`wait_for`].
pub async fn wait_deleted<K>(
    api: Api<K>,
    name: &str,
    what: &str,
    timeout: Duration,
    out: Option<&mut dyn Write>,
    state: impl Fn(&K) -> String,
) -> Result<(), CliError>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    wait_for(api, name, what, timeout, out, |o| {
        Ok(match o {
            None => Ok(()),
            Some(o) => Err(state(o)),
        })
    })
    .await
}

/// `Type=Status Reason: message; …` of conditions, for progress and timeout messages.
#[must_use]
pub fn conditions_summary(
    conds: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> String {
    if conds.is_empty() {
        return "no conditions reported yet".to_owned();
    }
    conds
        .iter()
        .map(|c| format!("{}={} {}: {}", c.type_, c.status, c.reason, c.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The wait's state while the controller has reported nothing.
pub fn no_controller_yet(
    conds: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> String {
    if conds.is_empty() {
        "no conditions reported yet (is kompox-controller running? `kubectl kompox install`)"
            .to_owned()
    } else {
        conditions_summary(conds)
    }
}

/// Parses a duration such as `300s`, `5m`, `90` (seconds).
///
/// # Errors
///
/// A message for clap.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        return n
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| format!("{s:?}: expected e.g. 300s or 5m"));
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600)
    } else {
        (s, 1)
    };
    num.parse::<u64>()
        .map(|n| Duration::from_secs(n * mult))
        .map_err(|_| format!("{s:?}: expected e.g. 300s or 5m"))
}

/// Drops `status` and the metadata only the API server sets from an untyped object, plus the
/// metadata keys in `extra`.
pub fn strip_server_fields(v: &mut Value, extra: &[&str]) {
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
    }
    if let Some(m) = v["metadata"].as_object_mut() {
        for k in [
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "generation",
            "managedFields",
        ]
        .iter()
        .chain(extra)
        {
            m.remove(*k);
        }
    }
}

/// Replaces every value of `data`/`stringData` in Secrets by `<redacted>`.
#[must_use]
pub fn redact(objects: &[Value]) -> Vec<Value> {
    objects
        .iter()
        .map(|o| {
            let mut o = o.clone();
            if o["kind"] == "Secret" {
                for field in ["data", "stringData"] {
                    if let Some(m) = o.get_mut(field).and_then(Value::as_object_mut) {
                        for v in m.values_mut() {
                            *v = Value::String("<redacted>".into());
                        }
                    }
                }
            }
            o
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("300s"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn secrets_are_redacted() {
        let s = serde_json::json!({"kind": "Secret", "data": {"k": "c2VjcmV0"}, "stringData": {"x": "secret"}});
        let r = redact(&[s]);
        assert!(!r[0].to_string().contains("secret"));
        assert!(!r[0].to_string().contains("c2VjcmV0"));
    }

    #[test]
    fn kubeconfig_files_of_the_environment_are_merged() {
        let dir = std::env::temp_dir().join(format!("kompox-kubectx-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let file = |name: &str, ctx: &str, server: &str, current: Option<&str>| {
            let p = dir.join(name);
            let text = format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: {ctx}\n  cluster: {{server: {server}}}\nusers:\n- name: {ctx}\n  user: {{token: t}}\ncontexts:\n- name: {ctx}\n  context: {{cluster: {ctx}, user: {ctx}}}\n{}",
                current
                    .map(|c| format!("current-context: {c}\n"))
                    .unwrap_or_default()
            );
            let _ = std::fs::write(&p, text);
            p
        };
        let a = file("a", "one", "https://one.example:6443", Some("one"));
        let b = file("b", "two", "https://two.example:6443", Some("two"));
        let env = std::env::join_paths([&a, &b]).unwrap_or_default();
        let none = KubeArgs::default();
        let kc = load_kubeconfig(&none, Some(&env), None).unwrap_or_default();
        let names: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["one", "two"], "both files' contexts");
        assert_eq!(
            kc.current_context.as_deref(),
            Some("one"),
            "the first file wins"
        );
        let two = KubeArgs {
            context: Some("two".into()),
            ..KubeArgs::default()
        };
        let kc = load_kubeconfig(&two, Some(&env), None).unwrap_or_default();
        assert_eq!(kc.current_context.as_deref(), Some("two"));
        let nope = KubeArgs {
            context: Some("three".into()),
            ..KubeArgs::default()
        };
        let err = load_kubeconfig(&nope, Some(&env), None).map(|_| ());
        assert_eq!(
            err.map_err(|e| e.to_string()),
            Err(format!(
                "--context \"three\": no such context in $KUBECONFIG ({}, {})",
                a.display(),
                b.display()
            ))
        );
        // The context's namespace is the default namespace, as kubectl.
        let mut kc = load_kubeconfig(&none, Some(&env), None).unwrap_or_default();
        assert_eq!(context_namespace(&kc), None);
        if let Some(c) = kc.contexts.iter_mut().find(|c| c.name == "one")
            && let Some(ctx) = c.context.as_mut()
        {
            ctx.namespace = Some("k4x-ws-app-1".into());
        }
        assert_eq!(context_namespace(&kc).as_deref(), Some("k4x-ws-app-1"));
        kc.current_context = Some("two".into());
        assert_eq!(context_namespace(&kc), None);
        // --kubeconfig wins over the environment; no file anywhere says so.
        let only_b = KubeArgs {
            kubeconfig: Some(b.clone()),
            ..KubeArgs::default()
        };
        let kc = load_kubeconfig(&only_b, Some(&env), None).unwrap_or_default();
        assert_eq!(kc.contexts.len(), 1);
        assert!(load_kubeconfig(&none, None, None).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn seconds_as_written() {
        assert_eq!(seconds(Duration::from_secs(300)), "300s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5s");
    }

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            message: "m".into(),
            reason: "R".into(),
            ..kube::core::Status::default()
        }))
    }

    #[test]
    fn only_refusals_end_a_watch() {
        let fatal = |e: watcher::Error| watch_error("x", &e).is_some();
        assert!(fatal(watcher::Error::InitialListFailed(api_error(403))));
        assert!(fatal(watcher::Error::WatchStartFailed(api_error(404))));
        assert!(!fatal(watcher::Error::WatchFailed(api_error(500))));
        assert!(!fatal(watcher::Error::InitialListFailed(api_error(429))));
        assert!(!fatal(watcher::Error::WatchError(Box::new(
            kube::core::Status {
                code: 410,
                ..kube::core::Status::default()
            }
        ))));
        let msg = watch_error(
            "KompoxDisk ns/d",
            &watcher::Error::InitialListFailed(api_error(403)),
        )
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert_eq!(msg, "watching KompoxDisk ns/d: m (R, HTTP 403)");
    }
}

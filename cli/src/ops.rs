//! The day-2 subcommands: `rendered`, `status`, `diff`, `disk …`, `snapshot …`.

use std::io::{IsTerminal as _, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kompox_cluster::{is_conflict, is_not_found};
use kompox_core::api::condition::{self, reasons, types};
use kompox_core::api::{
    DeletionPolicy, KompoxApp, KompoxDisk, KompoxDiskSpec, KompoxSnapshot, KompoxSnapshotSpec,
    LocalRef, ProviderSpec,
};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, Resource, ResourceExt as _};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::CliError;
use crate::apply;
use crate::kubectx::{self, Format, KubeArgs};

/// The aggregated API's base path.
pub const SUBRESOURCES: &str = "/apis/subresources.k8s.kompox.dev/v1alpha1";

/// Which app: a name, found through `-n`, the state file or a cluster-wide search.
#[derive(Debug, Args)]
pub struct AppRef {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// The KompoxApp's name.
    pub app: String,
    /// Its namespace (default: from .kompox/state.json next to -f, else searched).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// The compose file whose .kompox/state.json records the namespace.
    #[arg(short = 'f', long = "file", value_name = "COMPOSE")]
    pub file: Option<PathBuf>,
}

async fn connect(r: &AppRef) -> Result<(Client, String), CliError> {
    let (client, url) = kubectx::client(&r.kube).await?;
    kubectx::ping(&client, &url).await?;
    let ns = apply::locate(&client, &r.app, r.namespace.as_deref(), r.file.as_deref()).await?;
    Ok((client, ns))
}

/// Object `name` of kind `K` in `ns`.
///
/// # Errors
///
/// [`CliError::NotFound`] naming it when absent; the API server's reason otherwise.
async fn get_in<K>(client: &Client, ns: &str, name: &str) -> Result<K, CliError>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    match Api::<K>::namespaced(client.clone(), ns).get_opt(name).await {
        Ok(Some(o)) => Ok(o),
        Ok(None) => Err(CliError::NotFound(format!("{kind} {ns}/{name}: not found"))),
        Err(e) => Err(kubectx::kube_error(
            &format!("reading {kind} {ns}/{name}"),
            &e,
        )),
    }
}

/// GETs the `rendered` subresource through kube-apiserver (with the caller's identity).
///
/// # Errors
///
/// [`CliError`] with the server's reason (e.g. 403 Forbidden, 422 render errors).
pub async fn fetch_rendered(client: &Client, ns: &str, name: &str) -> Result<Value, CliError> {
    let req = http::Request::get(format!(
        "{SUBRESOURCES}/namespaces/{ns}/kompoxapps/{name}/rendered"
    ))
    .body(Vec::new())
    .map_err(|e| CliError::Io(format!("building the request: {e}")))?;
    let text = client.request_text(req).await.map_err(|e| {
        kubectx::kube_error(&format!("getting kompoxapps/{name}/rendered in {ns}"), &e)
    })?;
    serde_json::from_str(&text)
        .map_err(|e| CliError::Cluster(format!("rendered of {ns}/{name}: not JSON: {e}")))
}

/// Arguments of `rendered`.
#[derive(Debug, Args)]
pub struct RenderedArgs {
    #[command(flatten)]
    pub app: AppRef,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Yaml)]
    pub output: Format,
}

/// Runs `rendered`.
///
/// # Errors
///
/// See [`fetch_rendered`].
pub async fn rendered(args: &RenderedArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let (client, ns) = connect(&args.app).await?;
    let list = fetch_rendered(&client, &ns, &args.app.app).await?;
    let items = list["items"].as_array().cloned().unwrap_or_default();
    kubectx::write_objects(out, &items, args.output)
}

/// Arguments of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub app: AppRef,
    /// Output format (default: a human summary).
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Format>,
}

/// Runs `status`: conditions, pods, zone, disks, ingress hosts.
///
/// # Errors
///
/// [`CliError`] when the app cannot be read.
pub async fn status(args: &StatusArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let (client, ns) = connect(&args.app).await?;
    let name = &args.app.app;
    let app: KompoxApp = get_in(&client, &ns, name).await?;
    let disks: Vec<KompoxDisk> = list_in(&client, &ns).await?;
    let pods: Vec<Pod> = list_in(&client, &ns).await?;
    if let Some(f) = args.output {
        let v = json!({"app": app, "disks": disks, "pods": pods.iter().map(|p| json!({"name": p.name_any(), "phase": p.status.as_ref().and_then(|s| s.phase.clone()), "node": p.spec.as_ref().and_then(|s| s.node_name.clone())})).collect::<Vec<_>>()});
        return kubectx::write_objects(out, &[v], f);
    }
    let st = app.status.clone().unwrap_or_default();
    let w = |out: &mut dyn Write, s: String| {
        writeln!(out, "{s}").map_err(|e| CliError::Io(e.to_string()))
    };
    w(out, format!("KompoxApp {ns}/{name}: ready={}", st.ready))?;
    if let Some(z) = app.spec.deployment.as_ref().and_then(|d| d.zone.clone()) {
        w(out, format!("Zone:        {z}"))?;
    }
    let hosts: Vec<String> = if st.ingress_hosts.is_empty() {
        app.spec
            .ingress
            .iter()
            .flat_map(|i| i.rules.iter().flat_map(|r| r.hosts.clone()))
            .collect()
    } else {
        st.ingress_hosts.clone()
    };
    w(
        out,
        format!(
            "Ingress:     {}",
            if hosts.is_empty() {
                "-".to_owned()
            } else {
                hosts.join(", ")
            }
        ),
    )?;
    w(out, "Conditions:".into())?;
    if st.conditions.is_empty() {
        w(
            out,
            "  (none reported: no KompoxApp controller has observed the app yet)".into(),
        )?;
    }
    for c in &st.conditions {
        w(
            out,
            format!(
                "  {:<12} {}  {}  {}",
                c.type_, c.status, c.reason, c.message
            ),
        )?;
    }
    w(out, "Disks:".into())?;
    for d in &disks {
        let s = d.status.clone().unwrap_or_default();
        let ready = ready_of(&s.conditions);
        let att = s
            .attached_to
            .map(|a| format!("{}/{}", a.app, a.volume))
            .unwrap_or_else(|| "-".into());
        w(
            out,
            format!(
                "  {:<16} size={} zone={} ready={ready} pv={} attachedTo={att}",
                d.name_any(),
                d.spec.size.0,
                s.zone.or(d.spec.zone.clone()).unwrap_or_else(|| "-".into()),
                s.pv_name.unwrap_or_else(|| "-".into())
            ),
        )?;
    }
    let deps: Vec<Deployment> = list_in(&client, &ns).await?;
    w(out, "Workloads:".into())?;
    for d in &deps {
        let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let avail = d
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0);
        w(
            out,
            format!("  Deployment {:<30} {avail}/{want} available", d.name_any()),
        )?;
    }
    w(out, "Pods:".into())?;
    for p in &pods {
        let phase = p
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        let node = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_else(|| "-".into());
        w(
            out,
            format!("  {:<40} {phase:<9} node={node}", p.name_any()),
        )?;
    }
    Ok(())
}

/// Arguments of `diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub app: AppRef,
}

/// Drops what only the server sets, for comparing.
fn comparable(v: &Value) -> Value {
    let mut v = v.clone();
    kubectx::strip_server_fields(&mut v, &["ownerReferences"]);
    v
}

/// Keeps in `live` only the fields `want` has (recursively), so defaults the server added do
/// not show as differences.
fn project(want: &Value, live: &Value) -> Value {
    match (want, live) {
        (Value::Object(w), Value::Object(l)) => Value::Object(
            w.iter()
                .filter_map(|(k, wv)| l.get(k).map(|lv| (k.clone(), project(wv, lv))))
                .collect(),
        ),
        (Value::Array(w), Value::Array(l)) if w.len() == l.len() => {
            Value::Array(w.iter().zip(l).map(|(a, b)| project(a, b)).collect())
        }
        _ => live.clone(),
    }
}

/// A line diff (longest common subsequence), `-` live, `+` rendered.
#[must_use]
pub fn unified(a: &str, b: &str) -> Vec<(char, String)> {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    let (n, m) = (a.len(), b.len());
    let mut t = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            t[i][j] = if a[i] == b[j] {
                t[i + 1][j + 1] + 1
            } else {
                t[i + 1][j].max(t[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push((' ', a[i].to_owned()));
            i += 1;
            j += 1;
        } else if j < m && (i == n || t[i][j + 1] >= t[i + 1][j]) {
            out.push(('+', b[j].to_owned()));
            j += 1;
        } else {
            out.push(('-', a[i].to_owned()));
            i += 1;
        }
    }
    out
}

/// Runs `diff`: the server's rendered objects against the live ones (Secret values are
/// redacted on both sides). Exit status 0 either way; differences are printed.
///
/// # Errors
///
/// [`CliError`] when the objects cannot be read.
pub async fn diff(args: &DiffArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let (client, ns) = connect(&args.app).await?;
    let list = fetch_rendered(&client, &ns, &args.app.app).await?;
    let color = std::io::stdout().is_terminal();
    let mut changed = 0;
    for want in list["items"].as_array().cloned().unwrap_or_default() {
        let want = comparable(&want);
        let api = kubectx::api_for(&client, &want).await?;
        let name = want["metadata"]["name"].as_str().unwrap_or_default();
        let live = match api.get_opt(name).await {
            Ok(Some(l)) => {
                let l = serde_json::to_value(l).map_err(|e| CliError::Io(e.to_string()))?;
                let l = kubectx::redact(&[comparable(&l)])
                    .pop()
                    .unwrap_or(Value::Null);
                project(&want, &l)
            }
            Ok(None) => Value::Null,
            Err(e) => {
                return Err(kubectx::kube_error(
                    &format!("reading {}", kubectx::describe(&want)),
                    &e,
                ));
            }
        };
        let mut want = kubectx::redact(&[want]).pop().unwrap_or(Value::Null);
        let mut no_annotations = false;
        if let Some(a) = want["metadata"]["annotations"].as_object_mut() {
            a.remove(kompox_core::redact::REDACTED_ANNOTATION);
            no_annotations = a.is_empty();
        }
        if let (true, Some(m)) = (no_annotations, want["metadata"].as_object_mut()) {
            m.remove("annotations");
        }
        let a = if live.is_null() {
            String::new()
        } else {
            kompox_core::render::yaml_stream(&[live]).unwrap_or_default()
        };
        let b = kompox_core::render::yaml_stream(std::slice::from_ref(&want)).unwrap_or_default();
        if a == b {
            continue;
        }
        changed += 1;
        let what = kubectx::describe(&want);
        let _ = writeln!(out, "--- live {what}\n+++ rendered {what}");
        let lines = unified(&a, &b);
        let near = |i: usize| {
            lines[i.saturating_sub(3)..(i + 4).min(lines.len())]
                .iter()
                .any(|(c, _)| *c != ' ')
        };
        for (i, (c, l)) in lines.iter().enumerate() {
            if !near(i) {
                continue;
            }
            let line = format!("{c}{l}");
            let _ = match (color, *c) {
                (true, '+') => writeln!(out, "\x1b[32m{line}\x1b[0m"),
                (true, '-') => writeln!(out, "\x1b[31m{line}\x1b[0m"),
                _ => writeln!(out, "{line}"),
            };
        }
    }
    if changed == 0 {
        let _ = writeln!(
            out,
            "no differences: the live objects match the rendered ones"
        );
        Ok(())
    } else {
        Err(CliError::Differs(changed))
    }
}

/// `disk` subcommands.
#[derive(Debug, Subcommand)]
pub enum DiskCmd {
    /// List the KompoxDisks of a namespace.
    List(ListArgs),
    /// Create KompoxDisk NAME (fresh, or from a snapshot) and wait until it is Ready.
    Create(DiskCreateArgs),
    /// Attach KompoxDisk NAME to an app volume (the `attach` subresource).
    Attach(AttachArgs),
    /// Detach KompoxDisk NAME from an app volume (the `detach` subresource).
    Detach(AttachArgs),
    /// Grow KompoxDisk NAME to --size and wait until its volume has that size.
    #[command(after_long_help = DISK_RESIZE_HELP)]
    Resize(DiskResizeArgs),
    /// Delete KompoxDisk NAME unless an app uses it, and wait until it is gone.
    #[command(after_long_help = DISK_DELETE_HELP)]
    Delete(DiskDeleteArgs),
}

/// Shown by `disk delete --help`.
pub const DISK_DELETE_HELP: &str = "\
A disk an app uses (its spec.volumes names it, or status.attachedTo names an existing app) is
not deleted: detach it first with `kubectl kompox disk detach`.

A disk with deletionPolicy Delete takes its volume and the data on it along: on a terminal the
command asks for the disk's name to confirm, otherwise it needs --yes. With deletionPolicy
Orphan the volume is kept and can be adopted again through spec.handle.";

/// Shown by `disk resize --help`.
pub const DISK_RESIZE_HELP: &str = "\
The volume is expanded through the CSI driver (the PVC that binds it, or a temporary one while
no app uses it); the disk is Progressing (Resizing) meanwhile and Ready at the new size after.
A disk never shrinks: a size below spec.size is refused by the API server. If the driver
refuses the size (Degraded, ResizeFailed), the command says so; spec.size may then be lowered
again, to a size above the volume's current one (status.size).";

/// Output formats of the list commands (default: a table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    /// The table with more columns.
    Wide,
    /// The objects as a multi-document YAML stream.
    Yaml,
    /// The objects as a JSON `v1 List`.
    Json,
}

/// The object a disk or snapshot command acts on.
#[derive(Debug, Args)]
pub struct Target {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Its name.
    pub name: String,
    /// Its namespace (default: the kubeconfig context's namespace, else `default`, as
    /// kubectl).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

impl Target {
    /// `-n`, else the kubeconfig context's namespace, else `default`.
    ///
    /// # Errors
    ///
    /// When the kubeconfig cannot be read.
    pub fn ns(&self) -> Result<String, CliError> {
        kubectx::namespace(&self.kube, self.namespace.as_deref())
    }
}

/// Arguments of the list commands.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// The namespace (default: the kubeconfig context's namespace, else `default`, as
    /// kubectl).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Output format (default: a table).
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<ListFormat>,
}

/// `--wait` and `--timeout` of the commands that wait for the controller.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Wait until the controller is done.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub wait: bool,
    /// How long to wait.
    #[arg(long, default_value = "120s", value_parser = kubectx::parse_duration)]
    pub timeout: std::time::Duration,
}

/// Arguments of `disk create`.
#[derive(Debug, Args)]
pub struct DiskCreateArgs {
    #[command(flatten)]
    pub target: Target,
    /// Size, e.g. 10Gi.
    #[arg(long, default_value = "10Gi")]
    pub size: String,
    /// Zone (a number such as "1" or a zone label value).
    #[arg(long)]
    pub zone: Option<String>,
    /// Restore from this KompoxSnapshot.
    #[arg(long, value_name = "SNAPSHOT")]
    pub from_snapshot: Option<String>,
    /// What deleting the KompoxDisk does to the volume: Orphan (keep it) or Delete.
    #[arg(long, default_value = "Orphan", value_parser = parse_deletion_policy)]
    pub deletion_policy: DeletionPolicy,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// Arguments of `disk resize`.
#[derive(Debug, Args)]
pub struct DiskResizeArgs {
    #[command(flatten)]
    pub target: Target,
    /// The new size, e.g. 20Gi.
    #[arg(long, value_parser = parse_size)]
    pub size: Size,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// A positive size as given (`20Gi`) and in bytes.
#[derive(Clone, Debug)]
pub struct Size {
    /// As given, for `spec.size` and messages.
    pub text: String,
    /// In bytes.
    pub bytes: u128,
}

fn parse_size(s: &str) -> Result<Size, String> {
    match kompox_core::api::quantity::parse_bytes(s) {
        Ok(bytes) if bytes > 0 => Ok(Size {
            text: s.to_owned(),
            bytes,
        }),
        Ok(_) => Err("must be a positive size, e.g. 20Gi".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// A positive size, kept as written (for flags that end up in `spec.size`).
pub(crate) fn parse_size_text(s: &str) -> Result<String, String> {
    parse_size(s).map(|z| z.text)
}

fn parse_deletion_policy(s: &str) -> Result<DeletionPolicy, String> {
    match s {
        "Orphan" => Ok(DeletionPolicy::Orphan),
        "Delete" => Ok(DeletionPolicy::Delete),
        _ => Err(format!("{s:?}: expected Orphan or Delete")),
    }
}

/// Arguments of `disk attach|detach`.
#[derive(Debug, Args)]
pub struct AttachArgs {
    #[command(flatten)]
    pub target: Target,
    /// The KompoxApp.
    #[arg(long)]
    pub app: String,
    /// The app's volume.
    #[arg(long)]
    pub volume: String,
}

/// Arguments of `disk delete`.
#[derive(Debug, Args)]
pub struct DiskDeleteArgs {
    #[command(flatten)]
    pub target: Target,
    /// Confirm deleting a disk whose deletionPolicy Delete destroys its volume.
    #[arg(short = 'y', long)]
    pub yes: bool,
    #[command(flatten)]
    pub wait: WaitArgs,
}

async fn ns_client(kube: &KubeArgs, ns: &str) -> Result<Client, CliError> {
    let (client, url) = kubectx::client(kube).await?;
    kubectx::ping(&client, &url).await?;
    apply::namespace_exists(&client, ns).await?;
    Ok(client)
}

fn ready_of(conds: &[Condition]) -> String {
    conds
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
        .unwrap_or_else(|| "-".into())
}

fn or_dash(s: Option<String>) -> String {
    s.filter(|s| !s.is_empty()).unwrap_or_else(|| "-".into())
}

fn line(out: &mut dyn Write, s: &str) -> Result<(), CliError> {
    writeln!(out, "{s}").map_err(|e| CliError::Io(format!("writing output: {e}")))
}

/// Every object of kind `K` in `ns`.
async fn list_in<K>(client: &Client, ns: &str) -> Result<Vec<K>, CliError>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    Api::<K>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .map_err(|e| {
            kubectx::kube_error(
                &format!("listing {}s in {ns}", K::kind(&K::DynamicType::default())),
                &e,
            )
        })
}

/// Rows as kubectl prints them: each column padded to its widest cell, three spaces apart.
#[must_use]
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut s = String::new();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            s.push_str(c);
            if i + 1 < r.len() {
                s.push_str(&" ".repeat(widths[i] - c.chars().count() + 3));
            }
        }
        s.push('\n');
    }
    s
}

/// kubectl's AGE column: `45s`, `12m`, `5h`, `3d` since `created`.
#[must_use]
pub fn age(created: Option<&Time>, now: k8s_openapi::jiff::Timestamp) -> String {
    let Some(t) = created else {
        return "<unknown>".into();
    };
    match (now.as_second() - t.0.as_second()).max(0) {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// Prints `items` as a table (the `wide` columns only with `-o wide`) or as YAML/JSON.
/// `row` gives an item's normal and wide cells.
fn print_list<K: serde::Serialize>(
    out: &mut dyn Write,
    items: &[K],
    output: Option<ListFormat>,
    header: (&[&str], &[&str]),
    row: impl Fn(&K) -> (Vec<String>, Vec<String>),
) -> Result<(), CliError> {
    let format = match output {
        Some(ListFormat::Yaml) => Some(Format::Yaml),
        Some(ListFormat::Json) => Some(Format::Json),
        None | Some(ListFormat::Wide) => None,
    };
    if let Some(f) = format {
        let objs = items
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CliError::Io(format!("encoding the list: {e}")))?;
        return kubectx::write_objects(out, &objs, f);
    }
    let wide = output == Some(ListFormat::Wide);
    let cells = |normal: &[&str], extra: &[&str]| -> Vec<String> {
        let extra = if wide { extra } else { &[] };
        normal
            .iter()
            .chain(extra)
            .map(|c| (*c).to_owned())
            .collect()
    };
    let mut rows = vec![cells(header.0, header.1)];
    for item in items {
        let (mut normal, extra) = row(item);
        if wide {
            normal.extend(extra);
        }
        rows.push(normal);
    }
    out.write_all(table(&rows).as_bytes())
        .map_err(|e| CliError::Io(format!("writing output: {e}")))
}

/// Creates `obj`, printing `created`; an existing object of that name is reused when `reuse`.
async fn create<K>(
    api: &Api<K>,
    obj: &K,
    what: &str,
    created: &str,
    reuse: bool,
    out: &mut dyn Write,
) -> Result<(), CliError>
where
    K: Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    match api.create(&PostParams::default(), obj).await {
        Ok(_) => line(out, created),
        Err(e) if reuse && is_conflict(&e) => line(out, &format!("{what} already exists (reused)")),
        Err(e) => Err(kubectx::kube_error(&format!("creating {what}"), &e)),
    }
}

/// The wait's state while the controller has reported nothing.
fn no_controller_yet(conds: &[Condition]) -> String {
    if conds.is_empty() {
        "no conditions reported yet (is kompox-controller running? `kubectl kompox install`)"
            .to_owned()
    } else {
        kubectx::conditions_summary(conds)
    }
}

/// Waits (watching) until disk `name` is Ready, printing its conditions as they change.
async fn wait_disk_ready(
    api: &Api<KompoxDisk>,
    ns: &str,
    name: &str,
    timeout: std::time::Duration,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let what = format!("KompoxDisk {ns}/{name} Ready");
    kubectx::wait_for(api.clone(), name, &what, timeout, Some(&mut *out), |d| {
        let Some(d) = d else {
            return Err(CliError::NotFound(format!(
                "KompoxDisk {ns}/{name} was deleted while waiting for it to be Ready"
            )));
        };
        let conds = d
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        Ok(if ready_of(conds) == "True" {
            Ok(())
        } else {
            Err(no_controller_yet(conds))
        })
    })
    .await?;
    line(out, &format!("kompoxdisk {ns}/{name} is Ready"))
}

fn new_disk(
    name: &str,
    ns: &str,
    size: String,
    zone: Option<String>,
    policy: DeletionPolicy,
    from_snapshot: Option<&str>,
) -> KompoxDisk {
    let mut d = KompoxDisk::new(
        name,
        KompoxDiskSpec {
            provider: ProviderSpec::default(),
            size: k8s_openapi::apimachinery::pkg::api::resource::Quantity(size),
            zone,
            options: Default::default(),
            deletion_policy: policy,
            from_snapshot: from_snapshot.map(|name| LocalRef { name: name.into() }),
            handle: None,
        },
    );
    d.metadata.namespace = Some(ns.to_owned());
    d
}

/// Runs a `disk` subcommand; `err` gets the confirmation prompt of `delete`.
///
/// # Errors
///
/// [`CliError`] with the server's reason, a refusal naming what holds the disk, or a timeout
/// naming the last conditions.
pub async fn disk(cmd: &DiskCmd, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), CliError> {
    match cmd {
        DiskCmd::List(a) => {
            let ns = kubectx::namespace(&a.kube, a.namespace.as_deref())?;
            let client = ns_client(&a.kube, &ns).await?;
            let ds: Vec<KompoxDisk> = list_in(&client, &ns).await?;
            let now = k8s_openapi::jiff::Timestamp::now();
            print_list(
                out,
                &ds,
                a.output,
                (
                    &[
                        "NAME",
                        "SIZE",
                        "ZONE",
                        "READY",
                        "ATTACHED-TO",
                        "FROM-SNAPSHOT",
                        "AGE",
                    ],
                    &["VOLUME-SIZE", "DELETION-POLICY", "PV", "HANDLE"],
                ),
                |d| {
                    let s = d.status.clone().unwrap_or_default();
                    (
                        vec![
                            d.name_any(),
                            d.spec.size.0.clone(),
                            or_dash(s.zone.or(d.spec.zone.clone())),
                            ready_of(&s.conditions),
                            or_dash(s.attached_to.map(|x| format!("{}/{}", x.app, x.volume))),
                            or_dash(d.spec.from_snapshot.clone().map(|r| r.name)),
                            age(d.metadata.creation_timestamp.as_ref(), now),
                        ],
                        vec![
                            or_dash(s.size.map(|q| q.0)),
                            format!("{:?}", d.spec.deletion_policy),
                            or_dash(s.pv_name),
                            or_dash(s.handle.or(d.spec.handle.clone())),
                        ],
                    )
                },
            )
        }
        DiskCmd::Create(a) => {
            let (ns, name) = (&a.target.ns()?, &a.target.name);
            let client = ns_client(&a.target.kube, ns).await?;
            let api: Api<KompoxDisk> = Api::namespaced(client, ns);
            let d = new_disk(
                name,
                ns,
                a.size.clone(),
                a.zone.clone(),
                a.deletion_policy,
                a.from_snapshot.as_deref(),
            );
            let what = format!("kompoxdisk {ns}/{name}");
            let from = a
                .from_snapshot
                .as_ref()
                .map(|s| format!(" from snapshot {s}"))
                .unwrap_or_default();
            create(
                &api,
                &d,
                &what,
                &format!("{what} created{from}"),
                false,
                out,
            )
            .await?;
            if a.wait.wait {
                wait_disk_ready(&api, ns, name, a.wait.timeout, out).await?;
            }
            Ok(())
        }
        DiskCmd::Attach(a) | DiskCmd::Detach(a) => {
            let (verb, prep) = if matches!(cmd, DiskCmd::Attach(_)) {
                ("attach", "to")
            } else {
                ("detach", "from")
            };
            let (ns, name) = (&a.target.ns()?, &a.target.name);
            let client = ns_client(&a.target.kube, ns).await?;
            let body = serde_json::to_vec(&json!({"app": a.app, "volume": a.volume}))
                .map_err(|e| CliError::Io(e.to_string()))?;
            let req = http::Request::post(format!(
                "{SUBRESOURCES}/namespaces/{ns}/kompoxdisks/{name}/{verb}"
            ))
            .header("content-type", "application/json")
            .body(body)
            .map_err(|e| CliError::Io(e.to_string()))?;
            client
                .request_text(req)
                .await
                .map_err(|e| kubectx::kube_error(&format!("{verb} kompoxdisk {ns}/{name}"), &e))?;
            line(
                out,
                &format!(
                    "kompoxdisk {ns}/{name} {verb}ed {prep} {}/{}",
                    a.app, a.volume
                ),
            )
        }
        DiskCmd::Resize(a) => resize_disk(a, out).await,
        DiskCmd::Delete(a) => delete_disk(a, out, err).await,
    }
}

/// `disk resize`: sets `spec.size`, then waits until the controller has seen that generation
/// and reports Ready with a volume of at least that size, or Degraded `ResizeFailed`.
async fn resize_disk(a: &DiskResizeArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let (ns, name) = (&a.target.ns()?, &a.target.name);
    let client = ns_client(&a.target.kube, ns).await?;
    let api: Api<KompoxDisk> = Api::namespaced(client, ns);
    let what = format!("kompoxdisk {ns}/{name}");
    let size = &a.size.text;
    let patch = json!({"spec": {"size": size}});
    let d = api
        .patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .map_err(|e| kubectx::kube_error(&format!("resizing {what}"), &e))?;
    line(out, &format!("{what} spec.size set to {size}"))?;
    if !a.wait.wait {
        return Ok(());
    }
    let generation = d.metadata.generation.unwrap_or_default();
    let awaited = format!("{what} Ready at {size}");
    kubectx::wait_for(api, name, &awaited, a.wait.timeout, Some(&mut *out), |d| {
        let Some(d) = d else {
            return Err(CliError::NotFound(format!(
                "{what} was deleted while waiting for it to grow"
            )));
        };
        let st = d.status.clone().unwrap_or_default();
        if st.observed_generation.unwrap_or_default() < generation {
            return Ok(Err(format!(
                "the controller has not seen generation {generation} yet"
            )));
        }
        if let Some(c) = condition::find(&st.conditions, types::DEGRADED)
            .filter(|c| c.status == "True" && c.reason == reasons::RESIZE_FAILED)
        {
            return Err(CliError::Cluster(format!(
                "{what} cannot grow to {size}: {}",
                c.message
            )));
        }
        let have = st
            .size
            .as_ref()
            .and_then(|q| kompox_core::api::quantity::parse_bytes(&q.0).ok())
            .unwrap_or(0);
        Ok(
            if condition::is_true(&st.conditions, types::READY) && have >= a.size.bytes {
                Ok(())
            } else {
                Err(kubectx::conditions_summary(&st.conditions))
            },
        )
    })
    .await?;
    line(out, &format!("{what} is Ready at {size}"))
}

/// The app volumes that hold disk `d`: volumes of existing apps naming it, and its
/// `status.attachedTo` while that app exists (a stale one the controller clears).
fn disk_users(d: &KompoxDisk, apps: &[KompoxApp]) -> Vec<(String, String)> {
    let name = d.name_any();
    let mut users: Vec<(String, String)> = apps
        .iter()
        .flat_map(|app| {
            app.spec
                .volumes
                .iter()
                .filter(|v| v.disk_ref.name == name)
                .map(|v| (app.name_any(), v.name.clone()))
        })
        .collect();
    if let Some(at) = d.status.as_ref().and_then(|s| s.attached_to.as_ref())
        && apps.iter().any(|app| app.name_any() == at.app)
        && !users.iter().any(|(a, v)| *a == at.app && *v == at.volume)
    {
        users.push((at.app.clone(), at.volume.clone()));
    }
    users
}

/// Asks on the terminal for the disk's name; `false` unless it is typed back.
async fn confirm(err: &mut dyn Write, question: &str, answer: &str) -> Result<bool, CliError> {
    let _ = write!(err, "{question}\nType the disk's name to confirm: ");
    let _ = err.flush();
    let typed = tokio::task::spawn_blocking(|| {
        let mut s = String::new();
        std::io::stdin().read_line(&mut s).map(|_| s)
    })
    .await
    .map_err(|e| CliError::Io(format!("reading the confirmation: {e}")))?
    .map_err(|e| CliError::Io(format!("reading the confirmation: {e}")))?;
    Ok(typed.trim() == answer)
}

/// `disk delete`: refuses a disk in use, asks before destroying a volume, deletes with a
/// resourceVersion precondition (so nothing attached it since the check) and waits until the
/// controller's finalizer let it go.
async fn delete_disk(
    a: &DiskDeleteArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CliError> {
    let (ns, name) = (&a.target.ns()?, &a.target.name);
    let client = ns_client(&a.target.kube, ns).await?;
    let api: Api<KompoxDisk> = Api::namespaced(client.clone(), ns);
    let d: KompoxDisk = get_in(&client, ns, name).await?;
    let apps: Vec<KompoxApp> = list_in(&client, ns).await?;
    let users = disk_users(&d, &apps);
    if !users.is_empty() {
        let mut lines = vec![format!(
            "KompoxDisk {ns}/{name} is in use by {}: not deleted",
            users
                .iter()
                .map(|(app, vol)| format!("KompoxApp {app} volume {vol}"))
                .collect::<Vec<_>>()
                .join(", ")
        )];
        lines.extend(users.iter().map(|(app, vol)| {
            format!("detach it first: kubectl kompox disk detach {name} -n {ns} --app {app} --volume {vol}")
        }));
        return Err(CliError::Invalid(lines));
    }
    let handle = or_dash(d.status.as_ref().and_then(|s| s.handle.clone()));
    if d.spec.deletion_policy == DeletionPolicy::Delete && !a.yes {
        let question = format!(
            "KompoxDisk {ns}/{name} has deletionPolicy Delete: deleting it destroys volume {handle} and its data."
        );
        let confirmed = std::io::stdin().is_terminal() && confirm(err, &question, name).await?;
        if !confirmed {
            return Err(CliError::Invalid(vec![format!(
                "{question} Not deleted: give --yes to confirm"
            )]));
        }
    }
    let dp = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: d.metadata.uid.clone(),
            resource_version: d.metadata.resource_version.clone(),
        }),
        ..DeleteParams::background()
    };
    match api.delete(name, &dp).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {
            return Err(CliError::NotFound(format!(
                "KompoxDisk {ns}/{name}: not found"
            )));
        }
        Err(e) if is_conflict(&e) => {
            return Err(CliError::Cluster(format!(
                "KompoxDisk {ns}/{name} changed while it was checked (an attach?); not deleted, try again"
            )));
        }
        Err(e) => {
            return Err(kubectx::kube_error(
                &format!("deleting KompoxDisk {ns}/{name}"),
                &e,
            ));
        }
    }
    line(out, &format!("kompoxdisk {ns}/{name} deletion requested"))?;
    if a.wait.wait {
        kubectx::wait_deleted(
            api,
            name,
            &format!("KompoxDisk {ns}/{name} deleted"),
            a.wait.timeout,
            Some(&mut *out),
            |d| {
                no_controller_yet(
                    d.status
                        .as_ref()
                        .map(|s| s.conditions.as_slice())
                        .unwrap_or_default(),
                )
            },
        )
        .await?;
    }
    let kept = match d.spec.deletion_policy {
        DeletionPolicy::Orphan => format!(
            " (deletionPolicy Orphan: volume {handle} kept; adopt it again with spec.handle)"
        ),
        DeletionPolicy::Delete => format!(" (deletionPolicy Delete: volume {handle} deleted)"),
    };
    if a.wait.wait {
        line(out, &format!("kompoxdisk {ns}/{name} deleted{kept}"))
    } else {
        Ok(())
    }
}

/// `snapshot` subcommands.
#[derive(Debug, Subcommand)]
pub enum SnapshotCmd {
    /// List the KompoxSnapshots of a namespace.
    List(ListArgs),
    /// Snapshot a disk into KompoxSnapshot NAME and wait until it is ready to use.
    Create(SnapshotCreateArgs),
    /// Restore KompoxSnapshot NAME into a new disk (`--to`) and wait until it is Ready.
    Restore(RestoreArgs),
}

/// Arguments of `snapshot create`.
#[derive(Debug, Args)]
pub struct SnapshotCreateArgs {
    #[command(flatten)]
    pub target: Target,
    /// The KompoxDisk to snapshot.
    #[arg(long)]
    pub disk: String,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// Arguments of `snapshot restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub target: Target,
    /// Name of the new disk.
    #[arg(long = "to")]
    pub disk: String,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// Runs a `snapshot` subcommand.
///
/// # Errors
///
/// [`CliError`] with the server's reason, or a timeout naming the last condition.
pub async fn snapshot(cmd: &SnapshotCmd, out: &mut dyn Write) -> Result<(), CliError> {
    match cmd {
        SnapshotCmd::List(a) => {
            let ns = kubectx::namespace(&a.kube, a.namespace.as_deref())?;
            let client = ns_client(&a.kube, &ns).await?;
            let ss: Vec<KompoxSnapshot> = list_in(&client, &ns).await?;
            let now = k8s_openapi::jiff::Timestamp::now();
            print_list(
                out,
                &ss,
                a.output,
                (
                    &["NAME", "DISK", "READY", "AGE"],
                    &["RESTORE-SIZE", "HANDLE"],
                ),
                |s| {
                    let st = s.status.clone().unwrap_or_default();
                    (
                        vec![
                            s.name_any(),
                            s.spec.disk_ref.name.clone(),
                            st.ready_to_use.to_string(),
                            age(s.metadata.creation_timestamp.as_ref(), now),
                        ],
                        vec![
                            or_dash(st.restore_size.map(|q| q.0)),
                            or_dash(st.snapshot_handle),
                        ],
                    )
                },
            )
        }
        SnapshotCmd::Create(a) => {
            let (ns, name) = (&a.target.ns()?, &a.target.name);
            let client = ns_client(&a.target.kube, ns).await?;
            let api: Api<KompoxSnapshot> = Api::namespaced(client, ns);
            let mut s = KompoxSnapshot::new(
                name,
                KompoxSnapshotSpec {
                    disk_ref: LocalRef {
                        name: a.disk.clone(),
                    },
                },
            );
            s.metadata.namespace = Some(ns.clone());
            let what = format!("kompoxsnapshot {ns}/{name}");
            let created = format!("{what} created from disk {}", a.disk);
            create(&api, &s, &what, &created, true, out).await?;
            if !a.wait.wait {
                return Ok(());
            }
            let awaited = format!("KompoxSnapshot {ns}/{name} ready to use");
            kubectx::wait_for(api, name, &awaited, a.wait.timeout, Some(&mut *out), |s| {
                let Some(s) = s else {
                    return Err(CliError::NotFound(format!(
                        "KompoxSnapshot {ns}/{name} was deleted while waiting for it"
                    )));
                };
                let st = s.status.clone().unwrap_or_default();
                Ok(if st.ready_to_use {
                    Ok(())
                } else {
                    Err(no_controller_yet(&st.conditions))
                })
            })
            .await?;
            line(out, &format!("{what} is ready to use"))
        }
        SnapshotCmd::Restore(a) => {
            let (ns, from, to) = (&a.target.ns()?, &a.target.name, &a.disk);
            let client = ns_client(&a.target.kube, ns).await?;
            let snap: KompoxSnapshot = get_in(&client, ns, from).await?;
            let disks: Api<KompoxDisk> = Api::namespaced(client.clone(), ns);
            let src = disks.get_opt(&snap.spec.disk_ref.name).await.ok().flatten();
            let size = src
                .as_ref()
                .map_or_else(|| "10Gi".to_owned(), |d| d.spec.size.0.clone());
            let zone = src.as_ref().and_then(|d| d.spec.zone.clone());
            let d = new_disk(to, ns, size, zone, DeletionPolicy::Orphan, Some(from));
            let what = format!("kompoxdisk {ns}/{to}");
            let created = format!("{what} created from snapshot {from}");
            create(&disks, &d, &what, &created, true, out).await?;
            if a.wait.wait {
                wait_disk_ready(&disks, ns, to, a.wait.timeout, out).await?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unified_marks_changed_lines_only() {
        let d = unified("a\nb\nc\n", "a\nB\nc\n");
        assert_eq!(
            d,
            vec![
                (' ', "a".to_owned()),
                ('+', "B".to_owned()),
                ('-', "b".to_owned()),
                (' ', "c".to_owned()),
            ]
        );
        assert!(unified("x\n", "x\n").iter().all(|(c, _)| *c == ' '));
    }

    #[test]
    fn project_ignores_server_defaults() {
        let want = json!({"spec": {"replicas": 1}});
        let live = json!({"spec": {"replicas": 1, "revisionHistoryLimit": 10}, "status": {}});
        assert_eq!(project(&want, &live), want);
    }

    #[test]
    fn table_pads_columns_like_kubectl() {
        let rows = vec![
            vec!["NAME".to_owned(), "SIZE".to_owned(), "AGE".to_owned()],
            vec!["a-long-name".to_owned(), "1Gi".to_owned(), "5s".to_owned()],
        ];
        assert_eq!(
            table(&rows),
            "NAME          SIZE   AGE\na-long-name   1Gi    5s\n"
        );
        assert_eq!(table(&[]), "");
    }

    #[test]
    fn ages() {
        let now = k8s_openapi::jiff::Timestamp::from_second(1_000_000).unwrap_or_default();
        let at = |secs: i64| {
            Time(k8s_openapi::jiff::Timestamp::from_second(1_000_000 - secs).unwrap_or_default())
        };
        assert_eq!(age(Some(&at(5)), now), "5s");
        assert_eq!(age(Some(&at(119)), now), "119s");
        assert_eq!(age(Some(&at(600)), now), "10m");
        assert_eq!(age(Some(&at(3 * 3600)), now), "3h");
        assert_eq!(age(Some(&at(3 * 86400)), now), "3d");
        assert_eq!(age(Some(&at(-30)), now), "0s", "clock skew");
        assert_eq!(age(None, now), "<unknown>");
    }

    fn app_with(name: &str, volumes: &[(&str, &str)]) -> KompoxApp {
        let mut a = crate::render::default_app(name);
        a.spec.volumes = volumes
            .iter()
            .map(|(v, d)| kompox_core::api::AppVolume {
                name: (*v).to_owned(),
                disk_ref: LocalRef {
                    name: (*d).to_owned(),
                },
            })
            .collect();
        a
    }

    #[test]
    fn disk_users_from_app_specs_and_a_live_holder() {
        let mut d = crate::render::disk("data");
        let apps = vec![
            app_with("web", &[("default", "data"), ("logs", "other")]),
            app_with("wiki", &[("default", "wiki-disk")]),
        ];
        assert_eq!(
            disk_users(&d, &apps),
            vec![("web".to_owned(), "default".to_owned())]
        );
        // status.attachedTo of an existing app counts, of a deleted app not.
        for (holder, users) in [("wiki", 2), ("gone", 1)] {
            d.status = Some(kompox_core::api::KompoxDiskStatus {
                attached_to: Some(kompox_core::api::AttachedTo {
                    app: holder.into(),
                    volume: "old".into(),
                }),
                ..Default::default()
            });
            assert_eq!(disk_users(&d, &apps).len(), users, "{holder}");
        }
        assert!(disk_users(&crate::render::disk("free"), &apps).is_empty());
    }

    #[test]
    fn deletion_policy_flag() {
        assert_eq!(parse_deletion_policy("Delete"), Ok(DeletionPolicy::Delete));
        assert_eq!(parse_deletion_policy("Orphan"), Ok(DeletionPolicy::Orphan));
        assert!(parse_deletion_policy("delete").is_err());
    }
}

//! The day-2 subcommands: `rendered`, `status`, `diff`, `disk …`, `snapshot …`.

use std::io::{IsTerminal as _, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use k8s_openapi::api::core::v1::Pod;
use kompox_core::api::{
    DeletionPolicy, KompoxApp, KompoxDisk, KompoxDiskSpec, KompoxSnapshot, KompoxSnapshotSpec,
    LocalRef, ProviderSpec,
};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt as _};
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

async fn get_app(client: &Client, ns: &str, name: &str) -> Result<KompoxApp, CliError> {
    let api: Api<KompoxApp> = Api::namespaced(client.clone(), ns);
    match api.get_opt(name).await {
        Ok(Some(a)) => Ok(a),
        Ok(None) => Err(CliError::NotFound(format!(
            "KompoxApp {ns}/{name}: not found"
        ))),
        Err(e) => Err(kubectx::kube_error(
            &format!("reading KompoxApp {ns}/{name}"),
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
    let app = get_app(&client, &ns, name).await?;
    let disks: Api<KompoxDisk> = Api::namespaced(client.clone(), &ns);
    let disks = disks
        .list(&ListParams::default())
        .await
        .map_err(|e| kubectx::kube_error(&format!("listing KompoxDisks in {ns}"), &e))?
        .items;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pods = pods
        .list(&ListParams::default())
        .await
        .map_err(|e| kubectx::kube_error(&format!("listing Pods in {ns}"), &e))?
        .items;
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
        let ready = s
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| c.status.clone())
            .unwrap_or_else(|| "-".into());
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
    let deps: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client.clone(), &ns);
    let deps = deps
        .list(&ListParams::default())
        .await
        .map_err(|e| kubectx::kube_error(&format!("listing Deployments in {ns}"), &e))?
        .items;
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
            "ownerReferences",
        ] {
            m.remove(k);
        }
    }
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
            a.remove("kompox.dev/redacted");
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
    }
    Ok(())
}

/// `disk` subcommands.
#[derive(Debug, Subcommand)]
pub enum DiskCmd {
    /// List the KompoxDisks of a namespace.
    List(NsArgs),
    /// Create a KompoxDisk (fresh, or from a snapshot).
    Create(DiskCreateArgs),
    /// Attach a disk to an app volume (the `attach` subresource).
    Attach(AttachArgs),
    /// Detach a disk from an app volume (the `detach` subresource).
    Detach(AttachArgs),
    /// Delete a KompoxDisk.
    Delete(NamedArgs),
}

/// A namespace.
#[derive(Debug, Args)]
pub struct NsArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// The namespace.
    #[arg(short = 'n', long)]
    pub namespace: String,
}

/// A named object in a namespace.
#[derive(Debug, Args)]
pub struct NamedArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Its name.
    pub name: String,
    /// The namespace.
    #[arg(short = 'n', long)]
    pub namespace: String,
}

/// Arguments of `disk create`.
#[derive(Debug, Args)]
pub struct DiskCreateArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// The disk's name.
    pub name: String,
    /// The namespace.
    #[arg(short = 'n', long)]
    pub namespace: String,
    /// Size, e.g. 10Gi.
    #[arg(long, default_value = "10Gi")]
    pub size: String,
    /// Zone (a number such as "1" or a zone label value).
    #[arg(long)]
    pub zone: Option<String>,
    /// Restore from this KompoxSnapshot.
    #[arg(long, value_name = "SNAPSHOT")]
    pub from_snapshot: Option<String>,
}

/// Arguments of `disk attach|detach`.
#[derive(Debug, Args)]
pub struct AttachArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// The disk's name.
    pub name: String,
    /// The namespace.
    #[arg(short = 'n', long)]
    pub namespace: String,
    /// The KompoxApp.
    #[arg(long)]
    pub app: String,
    /// The app's volume.
    #[arg(long)]
    pub volume: String,
}

async fn ns_client(kube: &KubeArgs, ns: &str) -> Result<Client, CliError> {
    let (client, url) = kubectx::client(kube).await?;
    kubectx::ping(&client, &url).await?;
    apply::namespace_exists(&client, ns).await?;
    Ok(client)
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

fn ready_of(conds: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]) -> String {
    conds
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
        .unwrap_or_else(|| "-".into())
}

/// Runs a `disk` subcommand.
///
/// # Errors
///
/// [`CliError`] with the server's reason.
pub async fn disk(cmd: &DiskCmd, out: &mut dyn Write) -> Result<(), CliError> {
    let p = |out: &mut dyn Write, s: String| {
        writeln!(out, "{s}").map_err(|e| CliError::Io(e.to_string()))
    };
    match cmd {
        DiskCmd::List(a) => {
            let client = ns_client(&a.kube, &a.namespace).await?;
            let api: Api<KompoxDisk> = Api::namespaced(client, &a.namespace);
            let ds = api
                .list(&ListParams::default())
                .await
                .map_err(|e| {
                    kubectx::kube_error(&format!("listing KompoxDisks in {}", a.namespace), &e)
                })?
                .items;
            p(
                out,
                format!(
                    "{:<20} {:<8} {:<16} {:<7} {:<20} {}",
                    "NAME", "SIZE", "ZONE", "READY", "ATTACHED-TO", "FROM-SNAPSHOT"
                ),
            )?;
            for d in ds {
                let s = d.status.clone().unwrap_or_default();
                p(
                    out,
                    format!(
                        "{:<20} {:<8} {:<16} {:<7} {:<20} {}",
                        d.name_any(),
                        d.spec.size.0,
                        s.zone
                            .clone()
                            .or(d.spec.zone.clone())
                            .unwrap_or_else(|| "-".into()),
                        ready_of(&s.conditions),
                        s.attached_to
                            .map(|x| format!("{}/{}", x.app, x.volume))
                            .unwrap_or_else(|| "-".into()),
                        d.spec
                            .from_snapshot
                            .map(|r| r.name)
                            .unwrap_or_else(|| "-".into()),
                    ),
                )?;
            }
            Ok(())
        }
        DiskCmd::Create(a) => {
            let client = ns_client(&a.kube, &a.namespace).await?;
            let api: Api<KompoxDisk> = Api::namespaced(client, &a.namespace);
            let mut d = KompoxDisk::new(
                &a.name,
                KompoxDiskSpec {
                    provider: ProviderSpec::default(),
                    size: k8s_openapi::apimachinery::pkg::api::resource::Quantity(a.size.clone()),
                    zone: a.zone.clone(),
                    options: Default::default(),
                    deletion_policy: DeletionPolicy::Orphan,
                    from_snapshot: a.from_snapshot.clone().map(|name| LocalRef { name }),
                    handle: None,
                },
            );
            d.metadata.namespace = Some(a.namespace.clone());
            api.create(&PostParams::default(), &d).await.map_err(|e| {
                kubectx::kube_error(
                    &format!("creating KompoxDisk {}/{}", a.namespace, a.name),
                    &e,
                )
            })?;
            p(
                out,
                format!(
                    "kompoxdisk {}/{} created{}",
                    a.namespace,
                    a.name,
                    a.from_snapshot
                        .as_ref()
                        .map(|s| format!(" from snapshot {s}"))
                        .unwrap_or_default()
                ),
            )
        }
        DiskCmd::Attach(a) | DiskCmd::Detach(a) => {
            let verb = if matches!(cmd, DiskCmd::Attach(_)) {
                "attach"
            } else {
                "detach"
            };
            let client = ns_client(&a.kube, &a.namespace).await?;
            let body = serde_json::to_vec(&json!({"app": a.app, "volume": a.volume}))
                .map_err(|e| CliError::Io(e.to_string()))?;
            let req = http::Request::post(format!(
                "{SUBRESOURCES}/namespaces/{}/kompoxdisks/{}/{verb}",
                a.namespace, a.name
            ))
            .header("content-type", "application/json")
            .body(body)
            .map_err(|e| CliError::Io(e.to_string()))?;
            client.request_text(req).await.map_err(|e| {
                kubectx::kube_error(&format!("{verb} kompoxdisk {}/{}", a.namespace, a.name), &e)
            })?;
            p(
                out,
                format!(
                    "kompoxdisk {}/{} {verb}ed {} {}/{}",
                    a.namespace,
                    a.name,
                    if verb == "attach" { "to" } else { "from" },
                    a.app,
                    a.volume
                ),
            )
        }
        DiskCmd::Delete(a) => {
            let client = ns_client(&a.kube, &a.namespace).await?;
            let api: Api<KompoxDisk> = Api::namespaced(client, &a.namespace);
            match api.delete(&a.name, &DeleteParams::default()).await {
                Ok(_) => p(
                    out,
                    format!("kompoxdisk {}/{} deleted", a.namespace, a.name),
                ),
                Err(e) => Err(if kubectx::is_not_found(&e) {
                    CliError::NotFound(format!("KompoxDisk {}/{}: not found", a.namespace, a.name))
                } else {
                    kubectx::kube_error(
                        &format!("deleting KompoxDisk {}/{}", a.namespace, a.name),
                        &e,
                    )
                }),
            }
        }
    }
}

/// `snapshot` subcommands.
#[derive(Debug, Subcommand)]
pub enum SnapshotCmd {
    /// List the KompoxSnapshots of a namespace.
    List(NsArgs),
    /// Snapshot a disk.
    Create(SnapshotCreateArgs),
    /// Restore a snapshot into a new disk (`fromSnapshot`).
    Restore(RestoreArgs),
}

/// Arguments of `snapshot create`.
#[derive(Debug, Args)]
pub struct SnapshotCreateArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// The snapshot's name.
    pub name: String,
    /// The namespace.
    #[arg(short = 'n', long)]
    pub namespace: String,
    /// The KompoxDisk to snapshot.
    #[arg(long)]
    pub disk: String,
    /// Wait until the snapshot is ready to use.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub wait: bool,
    /// How long to wait.
    #[arg(long, default_value = "120s", value_parser = kubectx::parse_duration)]
    pub timeout: std::time::Duration,
}

/// Arguments of `snapshot restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// The snapshot.
    pub snapshot: String,
    /// The namespace.
    #[arg(short = 'n', long)]
    pub namespace: String,
    /// Name of the new disk.
    #[arg(long = "to")]
    pub disk: String,
    /// Wait until the new disk is Ready.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub wait: bool,
    /// How long to wait.
    #[arg(long, default_value = "120s", value_parser = kubectx::parse_duration)]
    pub timeout: std::time::Duration,
}

/// Runs a `snapshot` subcommand.
///
/// # Errors
///
/// [`CliError`] with the server's reason, or a timeout naming the last condition.
pub async fn snapshot(cmd: &SnapshotCmd, out: &mut dyn Write) -> Result<(), CliError> {
    let p = |out: &mut dyn Write, s: String| {
        writeln!(out, "{s}").map_err(|e| CliError::Io(e.to_string()))
    };
    match cmd {
        SnapshotCmd::List(a) => {
            let client = ns_client(&a.kube, &a.namespace).await?;
            let api: Api<KompoxSnapshot> = Api::namespaced(client, &a.namespace);
            let ss = api
                .list(&ListParams::default())
                .await
                .map_err(|e| {
                    kubectx::kube_error(&format!("listing KompoxSnapshots in {}", a.namespace), &e)
                })?
                .items;
            p(
                out,
                format!("{:<24} {:<20} {:<12} {}", "NAME", "DISK", "READY", "HANDLE"),
            )?;
            for s in ss {
                let st = s.status.clone().unwrap_or_default();
                p(
                    out,
                    format!(
                        "{:<24} {:<20} {:<12} {}",
                        s.name_any(),
                        s.spec.disk_ref.name,
                        st.ready_to_use,
                        st.snapshot_handle.unwrap_or_else(|| "-".into())
                    ),
                )?;
            }
            Ok(())
        }
        SnapshotCmd::Create(a) => {
            let client = ns_client(&a.kube, &a.namespace).await?;
            let api: Api<KompoxSnapshot> = Api::namespaced(client, &a.namespace);
            let mut s = KompoxSnapshot::new(
                &a.name,
                KompoxSnapshotSpec {
                    disk_ref: LocalRef {
                        name: a.disk.clone(),
                    },
                },
            );
            s.metadata.namespace = Some(a.namespace.clone());
            match api.create(&PostParams::default(), &s).await {
                Ok(_) => p(
                    out,
                    format!(
                        "kompoxsnapshot {}/{} created from disk {}",
                        a.namespace, a.name, a.disk
                    ),
                )?,
                Err(e) if is_conflict(&e) => p(
                    out,
                    format!(
                        "kompoxsnapshot {}/{} already exists (reused)",
                        a.namespace, a.name
                    ),
                )?,
                Err(e) => {
                    return Err(kubectx::kube_error(
                        &format!("creating KompoxSnapshot {}/{}", a.namespace, a.name),
                        &e,
                    ));
                }
            }
            if a.wait {
                let name = a.name.clone();
                kubectx::poll(
                    &format!("KompoxSnapshot {}/{name} ready to use", a.namespace),
                    a.timeout,
                    || {
                        let api = api.clone();
                        let name = name.clone();
                        async move {
                            let s = api.get(&name).await.map_err(|e| {
                                kubectx::kube_error(&format!("reading KompoxSnapshot {name}"), &e)
                            })?;
                            let st = s.status.unwrap_or_default();
                            Ok(if st.ready_to_use {
                                Ok(())
                            } else {
                                Err(st
                                    .conditions
                                    .iter()
                                    .map(|c| format!("{}={} {}", c.type_, c.status, c.message))
                                    .collect::<Vec<_>>()
                                    .join("; "))
                            })
                        }
                    },
                )
                .await?;
                p(
                    out,
                    format!("kompoxsnapshot {}/{} is ready to use", a.namespace, a.name),
                )?;
            }
            Ok(())
        }
        SnapshotCmd::Restore(a) => {
            let client = ns_client(&a.kube, &a.namespace).await?;
            let snaps: Api<KompoxSnapshot> = Api::namespaced(client.clone(), &a.namespace);
            let snap = match snaps.get_opt(&a.snapshot).await {
                Ok(Some(s)) => s,
                Ok(None) => {
                    return Err(CliError::NotFound(format!(
                        "KompoxSnapshot {}/{}: not found",
                        a.namespace, a.snapshot
                    )));
                }
                Err(e) => {
                    return Err(kubectx::kube_error(
                        &format!("reading KompoxSnapshot {}/{}", a.namespace, a.snapshot),
                        &e,
                    ));
                }
            };
            let disks: Api<KompoxDisk> = Api::namespaced(client.clone(), &a.namespace);
            let src = disks.get_opt(&snap.spec.disk_ref.name).await.ok().flatten();
            let size = src
                .as_ref()
                .map_or_else(|| "10Gi".to_owned(), |d| d.spec.size.0.clone());
            let zone = src.as_ref().and_then(|d| d.spec.zone.clone());
            let mut d = KompoxDisk::new(
                &a.disk,
                KompoxDiskSpec {
                    provider: ProviderSpec::default(),
                    size: k8s_openapi::apimachinery::pkg::api::resource::Quantity(size),
                    zone,
                    options: Default::default(),
                    deletion_policy: DeletionPolicy::Orphan,
                    from_snapshot: Some(LocalRef {
                        name: a.snapshot.clone(),
                    }),
                    handle: None,
                },
            );
            d.metadata.namespace = Some(a.namespace.clone());
            match disks.create(&PostParams::default(), &d).await {
                Ok(_) => p(
                    out,
                    format!(
                        "kompoxdisk {}/{} created from snapshot {}",
                        a.namespace, a.disk, a.snapshot
                    ),
                )?,
                Err(e) if is_conflict(&e) => p(
                    out,
                    format!(
                        "kompoxdisk {}/{} already exists (reused)",
                        a.namespace, a.disk
                    ),
                )?,
                Err(e) => {
                    return Err(kubectx::kube_error(
                        &format!("creating KompoxDisk {}/{}", a.namespace, a.disk),
                        &e,
                    ));
                }
            }
            if a.wait {
                let name = a.disk.clone();
                kubectx::poll(
                    &format!("KompoxDisk {}/{name} Ready", a.namespace),
                    a.timeout,
                    || {
                        let api = disks.clone();
                        let name = name.clone();
                        async move {
                            let d = api.get(&name).await.map_err(|e| {
                                kubectx::kube_error(&format!("reading KompoxDisk {name}"), &e)
                            })?;
                            let st = d.status.unwrap_or_default();
                            let ready = st
                                .conditions
                                .iter()
                                .any(|c| c.type_ == "Ready" && c.status == "True");
                            Ok(if ready {
                                Ok(())
                            } else {
                                Err(st
                                    .conditions
                                    .iter()
                                    .map(|c| format!("{}={} {}", c.type_, c.status, c.message))
                                    .collect::<Vec<_>>()
                                    .join("; "))
                            })
                        }
                    },
                )
                .await?;
                p(
                    out,
                    format!("kompoxdisk {}/{} is Ready", a.namespace, a.disk),
                )?;
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
}

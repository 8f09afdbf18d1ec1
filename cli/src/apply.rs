//! `kubectl kompox apply`: a compose app into its own namespace.
//!
//! ```text
//! kubectl kompox apply -f compose.yml [--app app.yml | --kompoxops kompoxops.yml]
//!     [--env-file FILE]... [--project-file PATH=FILE]... [--workspace W] [--wait=true|false]
//!     [--timeout 300s]
//! ```
//!
//! 1. Everything is built and rendered offline first, so an invalid compose file or app fails
//!    before the cluster is touched, with the failing field named.
//! 2. The app namespace `k4x-<workspace>-app-<compact-id>` is created, or reused when
//!    `.kompox/state.json` next to the compose file records it.
//! 3. Server-side apply of the compose ConfigMap, the Secrets/ConfigMaps with the files the
//!    compose file names (`env_file`, file binds …; values are never printed), the KompoxDisks
//!    and the KompoxApp. Without `--app` the app is inferred from the compose file
//!    ([`crate::infer`], each inference an `inferred: …` line on stderr); an inferred disk that
//!    exists already is left as it is, so re-applying never changes or recreates a disk.
//! 4. With `--wait` (default), a progress line per condition change until the app is Ready:
//!    the controller's Ready for this generation, its `status.renderedHash` equal to what the
//!    cluster's inputs render to now (the `rendered` subresource: so an edited project file,
//!    `.env` or compose file, which change only ConfigMaps and Secrets, has been applied), and
//!    every Deployment of the app rolled out (new generation observed, all replicas updated
//!    and available, no old one left).
//!
//! `--reconcile`: the KompoxApp controller applies the rendered objects. Until it does
//! (`auto`: when no controller has observed the app after `--controller-grace`), or with
//! `client`, the plugin renders from the cluster's objects exactly as the controller does
//! (`kompox_cluster::gather_inputs` + `kompox_core::render`) and applies them itself, then
//! waits for the Deployments to be available.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kompox_core::api::{
    AppVolume, DeploymentSpec, IngressRule, IngressSpec, KompoxApp, KompoxDisk, LocalRef,
    ProviderType,
};
use kompox_core::naming;
use kompox_core::render::{Bundle, ClusterInfo, RenderInput, Sources, Warning, render};
use kube::api::{Api, ListParams};
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, Resource as _, ResourceExt as _};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::CliError;
use crate::kubectx::{self, KubeArgs};
use crate::render::{self as offline, RenderArgs};
use crate::vars::{ProjectVars, process_env};

/// How the rendered objects reach the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Reconcile {
    /// The controller if it acts on the app within --controller-grace, else the plugin.
    Auto,
    /// Only the KompoxApp controller.
    Controller,
    /// The plugin renders and applies (as the controller would).
    Client,
}

/// Arguments of `apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// The compose file.
    #[arg(short = 'f', long = "file", value_name = "COMPOSE")]
    pub file: PathBuf,
    /// YAML with the KompoxApp, its KompoxDisks and the Secrets/ConfigMaps it names.
    #[arg(long, value_name = "APP_YAML", conflicts_with = "kompoxops")]
    pub app: Option<PathBuf>,
    /// A legacy kompoxops.yml; its `app:` section (name, ingress, volumes, deployment.zone).
    #[arg(long, value_name = "KOMPOXOPS_YML")]
    pub kompoxops: Option<PathBuf>,
    /// An env file of interpolation variables instead of the project .env (repeatable, as
    /// `docker compose --env-file`; later files win).
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Read the file the compose file names PATH (env_file …) from FILE.
    #[arg(long = "project-file", value_name = "PATH=FILE")]
    pub project_files: Vec<String>,
    #[command(flatten)]
    pub infer: crate::infer::InferArgs,
    /// The workspace (tenant) part of the namespace name.
    #[arg(long, default_value = naming::DEFAULT_WORKSPACE)]
    pub workspace: String,
    /// Wait until the app is Ready.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub wait: bool,
    /// How long to wait.
    #[arg(long, default_value = "300s", value_parser = kubectx::parse_duration)]
    pub timeout: Duration,
    /// Who applies the rendered objects.
    #[arg(long, value_enum, default_value_t = Reconcile::Auto)]
    pub reconcile: Reconcile,
    /// With --reconcile=auto: how long to give the controller to observe the app.
    #[arg(long, default_value = "15s", value_parser = kubectx::parse_duration)]
    pub controller_grace: Duration,
}

/// `.kompox/state.json`: which namespace each app of this directory lives in.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    /// `<workspace>/<app>` → where it lives.
    #[serde(default)]
    pub apps: BTreeMap<String, AppState>,
}

/// One app's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppState {
    pub namespace: String,
    pub app_id: String,
    pub name: String,
    pub workspace: String,
}

/// The state file for a compose file.
#[must_use]
pub fn state_path(compose: &Path) -> PathBuf {
    compose
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
        .join(".kompox/state.json")
}

/// Reads the state file (absent: empty).
///
/// # Errors
///
/// [`CliError::Invalid`] when it exists but does not parse.
pub fn read_state(path: &Path) -> Result<State, CliError> {
    match std::fs::read_to_string(path) {
        Ok(t) => serde_json::from_str(&t)
            .map_err(|e| CliError::Invalid(vec![format!("{}: {e}", path.display())])),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(CliError::Io(format!("reading {}: {e}", path.display()))),
    }
}

fn write_state(path: &Path, state: &State) -> Result<(), CliError> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)
            .map_err(|e| CliError::Io(format!("creating {}: {e}", d.display())))?;
    }
    let text = serde_json::to_string_pretty(state)
        .map_err(|e| CliError::Io(format!("encoding state: {e}")))?;
    std::fs::write(path, text + "\n")
        .map_err(|e| CliError::Io(format!("writing {}: {e}", path.display())))
}

/// The app, disks and sources to apply, from the flags (no cluster).
#[derive(Debug)]
pub struct Plan {
    pub compose: String,
    pub app: KompoxApp,
    pub disks: BTreeMap<String, KompoxDisk>,
    pub sources: Sources,
    pub warnings: Vec<Warning>,
    /// What was inferred (zero-config), one line each.
    pub notes: Vec<String>,
    /// Disks inferred from the compose file: created when absent, never changed.
    pub inferred_disks: BTreeSet<String>,
    /// Disks of `external` compose volumes (disk → compose volume) that `--app` does not
    /// declare: they must exist in the app's namespace; nothing creates them.
    pub external: BTreeMap<String, String>,
}

/// Builds the [`Plan`] and renders it offline to surface every error first.
///
/// # Errors
///
/// [`CliError::Invalid`] with one `file: path: message` line per problem.
pub fn plan(args: &ApplyArgs) -> Result<Plan, CliError> {
    let compose = offline::read_text(&args.file)?;
    let fname = args.file.display().to_string();
    let vars = ProjectVars::load(&args.file, &args.env_files, process_env())?;
    let parsed = kompox_core::compose::parse(&compose, &|k| vars.lookup(k)).map_err(|e| {
        CliError::Invalid(e.errors.iter().map(|d| format!("{fname}: {d}")).collect())
    })?;
    let mut warnings: Vec<Warning> = parsed
        .warnings
        .iter()
        .map(|w| Warning {
            path: format!("{fname}: {}", w.path),
            message: w.message.clone(),
        })
        .collect();
    let mut notes = Vec::new();
    let (mut app, mut disks, mut sources) = if let Some(path) = &args.app {
        let (app, b) = offline::read_app_file(path, &mut warnings)?;
        (app, b.disks, b.sources)
    } else if let Some(path) = &args.kompoxops {
        let (app, disks) = from_kompoxops(path, &parsed, &args.file, &mut warnings)?;
        (app, disks, Sources::default())
    } else {
        let (name, from) = offline::default_name(Some(&parsed.project), &args.file);
        notes.push(format!("app name {name} (from {from})"));
        (
            offline::default_app(&name),
            BTreeMap::new(),
            Sources::default(),
        )
    };
    let rargs = RenderArgs {
        file: args.file.clone(),
        app: None,
        output: offline::Output::Yaml,
        env_files: args.env_files.clone(),
        project_files: args.project_files.clone(),
        vars: Vec::new(),
        provider: ProviderType::Csi,
        region: None,
        namespace: None,
        show_secrets: false,
        infer: args.infer.clone(),
        hash_key_file: None,
    };
    let dir = args
        .file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    offline::provide_files(
        &mut app,
        &mut sources,
        &mut warnings,
        &mut notes,
        &parsed.project,
        &dir,
        &rargs,
        &vars,
    )?;
    let inferred = crate::infer::complete(&mut app, &mut disks, &parsed.project, &args.infer)?;
    notes.extend(inferred.notes);
    // The interpolation variables, in the Secret `<app>-dotenv` (always: a variable removed
    // from .env is removed from the cluster too).
    if let Some(name) = vars.attach(&mut app, &mut sources, &mut warnings, true) {
        notes.push(format!(
            "variables {}",
            offline::vars_line(&vars, &sources, &name)
        ));
    }
    // The disks of external compose volumes must exist ([`run`] checks), unless `--app`
    // declares them.
    let external: BTreeMap<String, String> = inferred
        .external
        .into_iter()
        .filter(|(d, _)| !disks.contains_key(d))
        .collect();
    for v in &app.spec.volumes {
        if !external.contains_key(&v.disk_ref.name) {
            disks
                .entry(v.disk_ref.name.clone())
                .or_insert_with(|| offline::disk(&v.disk_ref.name));
        }
    }

    // Render offline against fresh disks: the same checks the controller will make.
    let mut fresh = Bundle {
        disks: disks.clone(),
        ..Bundle::default()
    };
    for d in external.keys() {
        fresh
            .disks
            .entry(d.clone())
            .or_insert_with(|| offline::disk(d));
    }
    fresh.assume_fresh_disks();
    let cluster = ClusterInfo {
        provider: ProviderType::Csi,
        region: Some("offline".into()),
    };
    let interpolation = BTreeMap::new();
    if let Err(e) = render(&RenderInput {
        app: &app,
        compose: &compose,
        disks: &fresh.disks,
        sources: &sources,
        cluster: &cluster,
        interpolation: &interpolation,
        key: &crate::render::run_key()?,
    }) {
        return Err(CliError::Invalid(
            e.errors.iter().map(|d| format!("{fname}: {d}")).collect(),
        ));
    }
    Ok(Plan {
        compose,
        app,
        disks,
        sources,
        warnings,
        notes,
        inferred_disks: inferred.disks,
        external,
    })
}

/// The `app:` section of a legacy kompoxops.yml.
///
/// `app.volumes[].options` become the disks' `spec.options`; `app.compose` is not read (the
/// compose file is `-f`), which a warning says.
fn from_kompoxops(
    path: &Path,
    parsed: &kompox_core::compose::Parsed,
    compose_file: &Path,
    warnings: &mut Vec<Warning>,
) -> Result<(KompoxApp, BTreeMap<String, KompoxDisk>), CliError> {
    let text = offline::read_text(path)?;
    let p = path.display();
    let doc: Value = serde_saphyr::from_str(&text)
        .map_err(|e| CliError::Invalid(vec![format!("{p}: invalid YAML: {e}")]))?;
    let a = &doc["app"];
    if !a.is_object() {
        return Err(CliError::Invalid(vec![format!(
            "{p}: app: missing (the app section is what kompox reads)"
        )]));
    }
    let name = match a["name"].as_str() {
        Some(n) if naming::is_dns1123_label(n) => n.to_owned(),
        Some(n) => {
            return Err(CliError::Invalid(vec![format!(
                "{p}: app.name: {n:?} is not a DNS-1123 label"
            )]));
        }
        None => offline::default_name(Some(&parsed.project), compose_file).0,
    };
    if !a["compose"].is_null() {
        warnings.push(Warning {
            path: format!("{p}: app.compose"),
            message: format!(
                "not read: the compose file is {} (-f)",
                compose_file.display()
            ),
        });
    }
    let mut app = offline::default_app(&name);
    app.spec.volumes.clear();
    let mut disks = BTreeMap::new();
    let mut errors = Vec::new();
    match a["volumes"].as_array() {
        Some(vols) => {
            for (i, v) in vols.iter().enumerate() {
                let Some(vn) = v["name"].as_str() else {
                    errors.push(format!("{p}: app.volumes[{i}].name: missing"));
                    continue;
                };
                if !naming::is_dns1123_label(vn) {
                    errors.push(format!(
                        "{p}: app.volumes[{i}].name: {vn:?} is not a DNS-1123 label"
                    ));
                    continue;
                }
                let mut d = offline::disk(vn);
                if let Some(size) = scalar(&v["size"]) {
                    d.spec.size = Quantity(size);
                }
                if let Some(opts) = v["options"].as_object() {
                    for (k, o) in opts {
                        match scalar(o) {
                            Some(o) => {
                                d.spec.options.insert(k.clone(), o);
                            }
                            None => errors.push(format!(
                                "{p}: app.volumes[{i}].options.{k}: expected a string or number"
                            )),
                        }
                    }
                }
                app.spec.volumes.push(AppVolume {
                    name: vn.to_owned(),
                    disk_ref: LocalRef {
                        name: vn.to_owned(),
                    },
                });
                disks.insert(vn.to_owned(), d);
            }
        }
        None => {
            app.spec.volumes.push(AppVolume {
                name: offline::DEFAULT_VOLUME.into(),
                disk_ref: LocalRef {
                    name: offline::DEFAULT_VOLUME.into(),
                },
            });
            disks.insert(
                offline::DEFAULT_VOLUME.into(),
                offline::disk(offline::DEFAULT_VOLUME),
            );
        }
    }
    if let Some(zone) = scalar(&a["deployment"]["zone"]) {
        app.spec.deployment = Some(DeploymentSpec {
            zone: Some(zone.clone()),
        });
        for d in disks.values_mut() {
            d.spec.zone = Some(zone.clone());
        }
    }
    let ing = &a["ingress"];
    if ing.is_object() {
        let mut rules = Vec::new();
        for (i, r) in ing["rules"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let (Some(rn), Some(port)) = (r["name"].as_str(), r["port"].as_i64()) else {
                errors.push(format!("{p}: app.ingress.rules[{i}]: needs name and port"));
                continue;
            };
            let hosts = r["hosts"]
                .as_array()
                .map(|h| {
                    h.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let Some(port) = i32::try_from(port).ok().filter(|p| (1..=65535).contains(p)) else {
                errors.push(format!(
                    "{p}: app.ingress.rules[{i}].port: {port} is not a port (1-65535)"
                ));
                continue;
            };
            rules.push(IngressRule {
                name: rn.to_owned(),
                port,
                hosts,
            });
        }
        app.spec.ingress = Some(IngressSpec {
            class_name: Some("traefik".into()),
            cert_resolver: ing["certResolver"].as_str().map(str::to_owned),
            rules,
            ..IngressSpec::default()
        });
    }
    if errors.is_empty() {
        Ok((app, disks))
    } else {
        Err(CliError::Invalid(errors))
    }
}

/// A YAML scalar as a string (`"1"`, `1`, `true` all count), `None` for anything else.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn meta_json<T: serde::Serialize>(what: &str, v: &T) -> Result<Value, CliError> {
    serde_json::to_value(v).map_err(|e| CliError::Io(format!("encoding {what}: {e}")))
}

/// Every object `apply` sends, namespaced into `ns`.
///
/// # Errors
///
/// [`CliError::Io`] if encoding fails.
pub fn objects(plan: &Plan, ns: &str) -> Result<Vec<Value>, CliError> {
    let mut out = Vec::new();
    let cref = &plan.app.spec.compose.config_map_ref;
    out.push(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": cref.name, "namespace": ns, "labels": {naming::MANAGED_BY_LABEL: naming::MANAGED_BY}},
        "data": {cref.key.clone(): plan.compose},
    }));
    for s in plan.sources.secrets.values() {
        let mut v = meta_json("Secret", s)?;
        v["apiVersion"] = json!("v1");
        v["kind"] = json!("Secret");
        v["metadata"]["namespace"] = json!(ns);
        out.push(v);
    }
    for c in plan.sources.config_maps.values() {
        let mut v = meta_json("ConfigMap", c)?;
        v["apiVersion"] = json!("v1");
        v["kind"] = json!("ConfigMap");
        v["metadata"]["namespace"] = json!(ns);
        out.push(v);
    }
    for d in plan.disks.values() {
        let mut v = meta_json("KompoxDisk", d)?;
        v["metadata"]["namespace"] = json!(ns);
        kubectx::strip_server_fields(&mut v, &[]);
        out.push(v);
    }
    let mut v = meta_json("KompoxApp", &plan.app)?;
    v["metadata"]["namespace"] = json!(ns);
    kubectx::strip_server_fields(&mut v, &[]);
    out.push(v);
    Ok(out)
}

fn key(workspace: &str, app: &str) -> String {
    format!("{workspace}/{app}")
}

/// The namespace recorded for `app`, if any.
///
/// # Errors
///
/// See [`read_state`].
pub fn recorded(compose: &Path, workspace: &str, app: &str) -> Result<Option<AppState>, CliError> {
    Ok(read_state(&state_path(compose))?
        .apps
        .get(&key(workspace, app))
        .cloned())
}

/// Runs `apply`.
///
/// # Errors
///
/// [`CliError`] naming the failing field, object or wait.
pub async fn run(
    args: &ApplyArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CliError> {
    if !args.file.is_file() {
        return Err(CliError::Io(format!(
            "{}: compose file not found",
            args.file.display()
        )));
    }
    naming::validate_dns1123_label(&args.workspace)
        .map_err(|e| CliError::Invalid(vec![format!("--workspace {:?}: {e}", args.workspace)]))?;
    let plan = plan(args)?;
    for n in &plan.notes {
        let _ = writeln!(err, "inferred: {n}");
    }
    for w in &plan.warnings {
        let _ = writeln!(err, "warning: {w}");
    }
    let name = plan.app.name_any();
    let (client, url) = kubectx::client(&args.kube).await?;
    kubectx::ping(&client, &url).await?;

    // The namespace: recorded, else new.
    let spath = state_path(&args.file);
    let mut state = read_state(&spath)?;
    let k = key(&args.workspace, &name);
    let entry = match state.apps.get(&k) {
        Some(e) => e.clone(),
        None => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            let id = naming::compact_id(now, rand::random::<u64>());
            let ns = naming::app_namespace(&args.workspace, &id)
                .map_err(|e| CliError::Invalid(vec![format!("--workspace: {e}")]))?;
            AppState {
                namespace: ns,
                app_id: id,
                name: name.clone(),
                workspace: args.workspace.clone(),
            }
        }
    };
    let ns = entry.namespace.clone();
    let reused = state.apps.contains_key(&k);
    // External volumes' disks, checked before anything is applied.
    let disk_api: Api<KompoxDisk> = Api::namespaced(client.clone(), &ns);
    let mut existing: BTreeMap<String, KompoxDisk> = BTreeMap::new();
    let mut missing = Vec::new();
    for (d, volume) in &plan.external {
        let found = if reused {
            disk_api
                .get_opt(d)
                .await
                .map_err(|e| kubectx::kube_error(&format!("reading KompoxDisk {ns}/{d}"), &e))?
        } else {
            None
        };
        match found {
            Some(x) => {
                existing.insert(d.clone(), x);
            }
            None => missing.push(external_missing(
                &args.file,
                volume,
                d,
                reused.then_some(ns.as_str()),
            )),
        }
    }
    if !missing.is_empty() {
        return Err(CliError::Invalid(missing));
    }
    let ns_obj = json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": ns, "labels": {
            naming::MANAGED_BY_LABEL: naming::MANAGED_BY,
            naming::TENANT_LABEL: args.workspace,
            naming::APP_ID_LABEL: entry.app_id,
        }},
    });
    kubectx::apply(&client, &ns_obj, false).await?;
    let _ = writeln!(
        out,
        "namespace {ns} {}",
        if reused { "(reused)" } else { "created" }
    );
    state.apps.insert(k, entry);
    write_state(&spath, &state)?;

    for d in plan.disks.keys() {
        if let Some(x) = disk_api
            .get_opt(d)
            .await
            .map_err(|e| kubectx::kube_error(&format!("reading KompoxDisk {ns}/{d}"), &e))?
        {
            existing.insert(d.clone(), x);
        }
    }
    let mut objs = objects(&plan, &ns)?;
    let mut applied_first = None;
    // One Pod uses all the app's disks, so they must share a zone. Inferred disks without one
    // go where an existing disk of the app is, else where the provisioner puts the first.
    let fresh: Vec<String> = plan
        .app
        .spec
        .volumes
        .iter()
        .map(|v| v.disk_ref.name.clone())
        .filter(|d| {
            plan.inferred_disks.contains(d)
                && !existing.contains_key(d)
                && plan.disks.get(d).is_some_and(|x| x.spec.zone.is_none())
        })
        .collect();
    if !fresh.is_empty() && plan.disks.len() + plan.external.len() > 1 {
        let non_empty = |z: Option<&String>| z.filter(|z| !z.trim().is_empty()).cloned();
        let mut zone = plan
            .disks
            .values()
            .find_map(|d| non_empty(d.spec.zone.as_ref()))
            .or_else(|| {
                existing.values().find_map(|d| {
                    non_empty(d.spec.zone.as_ref())
                        .or_else(|| non_empty(d.status.as_ref().and_then(|s| s.zone.as_ref())))
                })
            });
        if zone.is_none()
            && let Some(first) = fresh.first()
            && let Some(o) = objs
                .iter()
                .find(|o| o["kind"] == "KompoxDisk" && o["metadata"]["name"] == first.as_str())
        {
            kubectx::apply(&client, o, false).await?;
            let _ = writeln!(out, "{} applied", kubectx::describe(o));
            zone = disk_zone(&disk_api, &ns, first, args.timeout).await?;
            if let Some(z) = &zone {
                let _ = writeln!(
                    err,
                    "inferred: zone {z} for the other disks (where the provisioner put KompoxDisk {first})"
                );
            }
            applied_first = Some(first.clone());
        }
        if let Some(z) = zone {
            for o in &mut objs {
                if o["kind"] == "KompoxDisk"
                    && o["metadata"]["name"]
                        .as_str()
                        .is_some_and(|n| fresh.iter().any(|f| f == n))
                {
                    o["spec"]["zone"] = json!(z);
                }
            }
        }
    }
    for o in objs {
        // An inferred disk is created once and then left alone: re-applying never changes
        // (shrinks, moves) or recreates it; `disk resize` grows it.
        if o["kind"] == "KompoxDisk"
            && let Some(dname) = o["metadata"]["name"].as_str()
        {
            if applied_first.as_deref() == Some(dname) {
                continue;
            }
            if plan.inferred_disks.contains(dname) && existing.contains_key(dname) {
                let _ = writeln!(out, "KompoxDisk {ns}/{dname} exists (kept as it is)");
                continue;
            }
        }
        kubectx::apply(&client, &o, false).await?;
        let extra = if o["kind"] == "Secret" {
            let n = o["data"].as_object().map_or(0, serde_json::Map::len)
                + o["stringData"].as_object().map_or(0, serde_json::Map::len);
            format!(" ({n} keys, values not shown)")
        } else {
            String::new()
        };
        let _ = writeln!(out, "{} applied{extra}", kubectx::describe(&o));
    }
    if !args.wait {
        let _ = writeln!(
            out,
            "not waiting (--wait=false); follow with `kubectl kompox status {name} -n {ns}`"
        );
        return Ok(());
    }
    wait_ready(&client, &ns, &name, args, out).await
}

/// The error for the disk of external compose volume `volume` that does not exist: in
/// namespace `ns`, or (`None`) for an app with no namespace yet.
fn external_missing(file: &Path, volume: &str, disk: &str, ns: Option<&str>) -> String {
    let f = file.display();
    let why = "compose creates no external volume, so apply does not either";
    match ns {
        Some(ns) => format!(
            "{f}: volumes.{volume}.external: KompoxDisk {disk} not found in namespace {ns} ({why}): create it with `kubectl kompox disk create {disk} -n {ns} --size 10Gi` (or --from-snapshot SNAPSHOT), declare it with --app, or drop external to let apply make a new disk"
        ),
        None => format!(
            "{f}: volumes.{volume}.external: KompoxDisk {disk} must exist before the app is applied ({why}), and this app has no namespace yet: declare the disk with --app (a KompoxDisk named {disk}, e.g. with spec.handle to adopt an existing volume or spec.fromSnapshot), or drop external to let apply make a new disk"
        ),
    }
}

/// The zone the provisioner gave a new disk (`status.zone`), waiting until it has one or is
/// Ready without one (a provider without zones).
async fn disk_zone(
    api: &Api<KompoxDisk>,
    ns: &str,
    name: &str,
    timeout: Duration,
) -> Result<Option<String>, CliError> {
    let placed = |d: Option<&KompoxDisk>| {
        d.is_some_and(|d| {
            disk_ready(d)
                || d.status
                    .as_ref()
                    .and_then(|s| s.zone.as_deref())
                    .is_some_and(|z| !z.is_empty())
        })
    };
    let wait = kube::runtime::wait::await_condition(api.clone(), name, placed);
    match tokio::time::timeout(timeout, wait).await {
        Ok(Ok(d)) => Ok(d
            .and_then(|d| d.status)
            .and_then(|s| s.zone)
            .filter(|z| !z.is_empty())),
        Ok(Err(e)) => Err(CliError::Cluster(format!(
            "watching KompoxDisk {ns}/{name}: {e}"
        ))),
        Err(_) => Err(CliError::Timeout(format!(
            "KompoxDisk {ns}/{name} got no zone after {} (is kompox-controller running? `kubectl kompox install`); give --zone to place the disks yourself",
            kubectx::seconds(timeout)
        ))),
    }
}

/// One line per condition of the app and its disks (`who type` → `status reason message`),
/// printed when it changes.
fn condition_lines(
    app_name: &str,
    app: Option<&KompoxApp>,
    disks: &[Arc<KompoxDisk>],
) -> BTreeMap<String, String> {
    let mut lines = BTreeMap::new();
    let mut add = |who: String, conds: &[Condition]| {
        for c in conds {
            lines.insert(
                format!("{who} {}", c.type_),
                format!("{} {} {}", c.status, c.reason, c.message),
            );
        }
    };
    if let Some(a) = app {
        add(
            format!("KompoxApp {app_name}"),
            a.status
                .as_ref()
                .map(|s| s.conditions.as_slice())
                .unwrap_or_default(),
        );
    }
    for d in disks {
        add(
            format!("KompoxDisk {}", d.name_any()),
            d.status
                .as_ref()
                .map(|s| s.conditions.as_slice())
                .unwrap_or_default(),
        );
    }
    lines
}

fn disk_ready(d: &KompoxDisk) -> bool {
    d.status.as_ref().is_some_and(|s| {
        s.pv_name.as_deref().is_some_and(|p| !p.is_empty())
            && s.conditions
                .iter()
                .any(|c| c.type_ == kompox_core::api::condition::types::READY && c.status == "True")
    })
}

fn app_ready(a: &KompoxApp) -> bool {
    a.status
        .as_ref()
        .is_some_and(|s| s.ready && s.observed_generation == a.meta().generation)
}

/// A change seen by `apply --wait`'s watches.
enum Change {
    /// The KompoxApp (`None`: absent).
    App(Box<Option<KompoxApp>>),
    /// A KompoxDisk of the namespace.
    Disk(Box<watcher::Event<KompoxDisk>>),
    /// A Deployment of the namespace (awaited when the plugin applies the rendered objects).
    Deployment(Box<watcher::Event<Deployment>>),
}

/// What `apply --wait` has seen: the app, and the namespace's disks and Deployments, each
/// known once its watch has listed them.
struct Seen {
    app: Option<Option<KompoxApp>>,
    disks: (Store<KompoxDisk>, Writer<KompoxDisk>, bool),
    deployments: (Store<Deployment>, Writer<Deployment>, bool),
}

impl Seen {
    fn new() -> Self {
        let (dr, dw) = reflector::store();
        let (wr, ww) = reflector::store();
        Seen {
            app: None,
            disks: (dr, dw, false),
            deployments: (wr, ww, false),
        }
    }

    fn apply(&mut self, change: Change) {
        match change {
            Change::App(a) => self.app = Some(*a),
            Change::Disk(e) => {
                self.disks.2 |= matches!(*e, watcher::Event::InitDone);
                self.disks.1.apply_watcher_event(&e);
            }
            Change::Deployment(e) => {
                self.deployments.2 |= matches!(*e, watcher::Event::InitDone);
                self.deployments.1.apply_watcher_event(&e);
            }
        }
    }

    /// Whether every watch has listed its objects.
    fn synced(&self) -> bool {
        self.app.is_some() && self.disks.2 && self.deployments.2
    }
}

/// Waits until the app is Ready, watching the KompoxApp and the namespace's KompoxDisks and
/// Deployments (no polling): a line per condition change; after `--controller-grace` without
/// a controller (`--reconcile=auto`), or at once with `--reconcile=client`, the plugin applies
/// the rendered objects and waits for the Deployments instead.
async fn wait_ready(
    client: &Client,
    ns: &str,
    app: &str,
    args: &ApplyArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + args.timeout;
    let grace = tokio::time::Instant::now() + args.controller_grace;
    let _ = writeln!(
        out,
        "waiting for KompoxApp {ns}/{app} to be Ready (timeout {})…",
        kubectx::seconds(args.timeout)
    );
    let config = watcher::Config::default;
    let mut changes = futures::stream::select_all([
        watcher::watch_object(Api::namespaced(client.clone(), ns), app)
            .map_ok(|a| Change::App(Box::new(a)))
            .default_backoff()
            .boxed(),
        watcher(Api::namespaced(client.clone(), ns), config())
            .map_ok(|e| Change::Disk(Box::new(e)))
            .default_backoff()
            .boxed(),
        watcher(Api::namespaced(client.clone(), ns), config())
            .map_ok(|e| Change::Deployment(Box::new(e)))
            .default_backoff()
            .boxed(),
    ]);
    let what = format!("KompoxApp {ns}/{app} and the KompoxDisks and Deployments of {ns}");
    let mut state = Seen::new();
    let mut printed: BTreeMap<String, String> = BTreeMap::new();
    let mut grace_over = false;
    let mut client_applied: Option<BTreeMap<String, i64>> = None;
    let mut rollout = Rollout::default();
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {
                let last: Vec<String> = printed.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                return Err(CliError::Timeout(format!(
                    "KompoxApp {ns}/{app} not Ready after {}; last conditions: {}",
                    kubectx::seconds(args.timeout),
                    if last.is_empty() {
                        "none (is kompox-controller running? `kubectl kompox install`)".to_owned()
                    } else {
                        last.join("; ")
                    }
                )));
            }
            () = tokio::time::sleep_until(grace), if !grace_over => grace_over = true,
            change = changes.next() => match change {
                Some(Ok(c)) => state.apply(c),
                Some(Err(e)) => {
                    if let Some(fatal) = kubectx::watch_error(&what, &e) {
                        return Err(fatal);
                    }
                    kubectx::progress(out, start, &format!("watch interrupted, retrying ({e})"));
                }
                None => return Err(CliError::Cluster(format!("watching {what}: the watch ended"))),
            },
        }
        if !state.synced() {
            continue;
        }
        let Some(Some(a)) = state.app.clone() else {
            return Err(CliError::Cluster(format!(
                "KompoxApp {ns}/{app} disappeared while waiting"
            )));
        };
        let disks = state.disks.0.state();
        for (k, v) in condition_lines(app, Some(&a), &disks) {
            if printed.get(&k) != Some(&v) {
                kubectx::progress(out, start, &format!("{k}: {v}"));
                printed.insert(k, v);
            }
        }
        if app_ready(&a) {
            match rollout
                .check(client, &a, &state.deployments.0.state(), out)
                .await
            {
                Ok(()) => {
                    let _ = writeln!(
                        out,
                        "KompoxApp {ns}/{app} is Ready ({:.1}s)",
                        start.elapsed().as_secs_f32()
                    );
                    return Ok(());
                }
                Err(waiting) => {
                    let k = "rollout".to_owned();
                    if printed.get(&k) != Some(&waiting) {
                        kubectx::progress(out, start, &waiting);
                        printed.insert(k, waiting);
                    }
                    if args.reconcile != Reconcile::Client {
                        continue;
                    }
                }
            }
        }
        let observed = a
            .status
            .as_ref()
            .and_then(|s| s.observed_generation)
            .is_some();
        let use_client = match args.reconcile {
            Reconcile::Client => true,
            Reconcile::Controller => false,
            Reconcile::Auto => !observed && grace_over,
        };
        // A stateless app has no disks to wait for.
        if !use_client
            || (disks.is_empty() && !a.spec.volumes.is_empty())
            || !disks.iter().all(|d| disk_ready(d))
        {
            continue;
        }
        let applied = match &client_applied {
            Some(g) => g,
            None => {
                if args.reconcile == Reconcile::Auto {
                    let _ = writeln!(
                        out,
                        "  no controller has observed the app after {}: applying the rendered objects from the plugin (--reconcile=client)",
                        kubectx::seconds(args.controller_grace)
                    );
                }
                let (n, generations) = client_reconcile(client, &a).await?;
                kubectx::progress(out, start, &format!("applied {n} rendered objects"));
                client_applied.insert(generations)
            }
        };
        match workloads_ready(&state.deployments.0.state(), applied) {
            Ok(()) => {
                let _ = writeln!(
                    out,
                    "KompoxApp {ns}/{app} is Ready: its Deployments are available ({:.1}s)",
                    start.elapsed().as_secs_f32()
                );
                return Ok(());
            }
            Err(waiting) => {
                let k = "workloads".to_owned();
                if printed.get(&k) != Some(&waiting) {
                    kubectx::progress(out, start, &waiting);
                    printed.insert(k, waiting);
                }
            }
        }
    }
}

/// Renders `app` from the cluster's objects (as the controller does) and server-side applies
/// the result. Returns how many objects were applied, and the generation of each Deployment
/// as applied (what its rollout must reach).
///
/// # Errors
///
/// [`CliError`] naming the render error or the object the server refused.
pub async fn client_reconcile(
    client: &Client,
    app: &KompoxApp,
) -> Result<(usize, BTreeMap<String, i64>), CliError> {
    let inputs = kompox_cluster::gather_inputs(client, app)
        .await
        .map_err(|e| CliError::Cluster(format!("gathering the app's inputs: {e}")))?;
    let cluster = kompox_cluster::cluster_info(client, app.spec.provider.type_)
        .await
        .map_err(|e| CliError::Cluster(format!("detecting the cluster's provider: {e}")))?;
    // The install's key when this user may read it (so the env hash is the webhook's),
    // else one for this run: nobody else compares these objects' digests.
    let key = match crate::install::read_hash_key(client).await {
        Ok(Some(k)) => k,
        Ok(None) | Err(_) => crate::render::run_key()?,
    };
    let rendered = render(&inputs.input(&cluster, &key))
        .map_err(|e| CliError::Invalid(e.errors.iter().map(ToString::to_string).collect()))?;
    let owner = app.controller_owner_ref(&());
    let mut n = 0;
    let mut generations = BTreeMap::new();
    for mut o in rendered.objects {
        if let Some(owner) = &owner {
            o["metadata"]["ownerReferences"] = json!([owner]);
        }
        let got = kubectx::apply(client, &o, false).await?;
        if got["kind"] == "Deployment"
            && let (Some(name), Some(generation)) = (
                got["metadata"]["name"].as_str(),
                got["metadata"]["generation"].as_i64(),
            )
        {
            generations.insert(name.to_owned(), generation);
        }
        n += 1;
    }
    Ok((n, generations))
}

/// `Ok` when every Deployment the plugin applied has rolled out the generation it applied
/// ([`kompox_cluster::deployment_ready`]), else what is missing. `applied`: name → generation
/// the apply returned (a watch may still show the object from before it).
fn workloads_ready(
    deployments: &[Arc<Deployment>],
    applied: &BTreeMap<String, i64>,
) -> Result<(), String> {
    if applied.is_empty() {
        return Err("no Deployment applied".into());
    }
    let mut waiting = Vec::new();
    for (name, generation) in applied {
        match deployments.iter().find(|d| d.name_any() == *name) {
            None => waiting.push(format!("Deployment {name}: not seen yet")),
            Some(d) if d.metadata.generation.unwrap_or(0) < *generation => waiting.push(format!(
                "Deployment {name}: generation {generation} not seen yet"
            )),
            Some(d) => {
                let (ready, why) = kompox_cluster::deployment_ready(d);
                if !ready {
                    waiting.push(why);
                }
            }
        }
    }
    if waiting.is_empty() {
        Ok(())
    } else {
        Err(waiting.join(", "))
    }
}

/// `apply --wait`'s check that the controller's Ready is about what this apply sent.
///
/// A changed project file, `.env` or compose file changes only ConfigMaps and Secrets, so the
/// KompoxApp's generation stays and its status is Ready from before. The controller records
/// the keyed digest of what it applied (`status.renderedHash`); the `rendered` subresource
/// says which digest the cluster's current inputs render to. Ready is confirmed when the two
/// agree and every Deployment of the app has rolled out
/// ([`kompox_cluster::deployment_ready`]).
#[derive(Default)]
struct Rollout {
    /// `status.renderedHash` values already compared with `rendered`: whether they matched.
    compared: BTreeMap<String, bool>,
    /// `rendered` could not be read: the status's word is taken (said once).
    unconfirmable: bool,
}

impl Rollout {
    async fn check(
        &mut self,
        client: &Client,
        a: &KompoxApp,
        deployments: &[Arc<Deployment>],
        out: &mut dyn Write,
    ) -> Result<(), String> {
        let ns = a.namespace().unwrap_or_default();
        let name = a.name_any();
        let status = a.status.clone().unwrap_or_default();
        if !self.unconfirmable {
            let applied = status.rendered_hash.clone().unwrap_or_default();
            let matched = match self.compared.get(&applied) {
                Some(m) => *m,
                None => match crate::ops::fetch_rendered(client, &ns, &name).await {
                    Ok(list) => {
                        let want = list["metadata"]["annotations"]
                            [kompox_core::well_known::RENDERED_HASH_ANNOTATION]
                            .as_str()
                            .unwrap_or_default();
                        let m = !applied.is_empty() && want == applied;
                        self.compared.insert(applied, m);
                        m
                    }
                    Err(e) => {
                        let _ = writeln!(
                            out,
                            "  cannot compare with kompoxapps/{name}/rendered ({e}): Ready is the controller's word for generation {}, a changed file or variable may still be rolling out",
                            a.metadata.generation.unwrap_or_default()
                        );
                        self.unconfirmable = true;
                        true
                    }
                },
            };
            if !matched {
                return Err(format!(
                    "KompoxApp {name}: the controller has not applied the current inputs yet"
                ));
            }
        }
        let mut waiting = Vec::new();
        for e in status.inventory.iter().filter(|e| e.kind == "Deployment") {
            match deployments.iter().find(|d| d.name_any() == e.name) {
                None => waiting.push(format!("Deployment {}: not seen yet", e.name)),
                Some(d) => {
                    let (ready, why) = kompox_cluster::deployment_ready(d);
                    if !ready {
                        waiting.push(why);
                    }
                }
            }
        }
        if waiting.is_empty() {
            Ok(())
        } else {
            Err(waiting.join(", "))
        }
    }
}

/// Finds the namespace of `app`: `-n`, else `.kompox/state.json` next to `compose`, else a
/// cluster-wide search among Kompox namespaces.
///
/// # Errors
///
/// [`CliError::NotFound`] when no KompoxApp of that name exists.
pub async fn locate(
    client: &Client,
    app: &str,
    namespace: Option<&str>,
    compose: Option<&Path>,
) -> Result<String, CliError> {
    if let Some(ns) = namespace {
        return Ok(ns.to_owned());
    }
    if let Some(c) = compose {
        let st = read_state(&state_path(c))?;
        if let Some(e) = st.apps.values().find(|e| e.name == app) {
            return Ok(e.namespace.clone());
        }
    }
    let api: Api<KompoxApp> = Api::all(client.clone());
    let all = api
        .list(&ListParams::default())
        .await
        .map_err(|e| kubectx::kube_error("listing KompoxApps", &e))?
        .items;
    let found: Vec<String> = all
        .iter()
        .filter(|a| a.name_any() == app)
        .filter_map(|a| a.namespace())
        .collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(CliError::NotFound(format!(
            "KompoxApp {app:?}: not found in any namespace (see `kubectl get kompoxapps -A`)"
        ))),
        many => Err(CliError::Invalid(vec![format!(
            "KompoxApp {app:?} exists in {} namespaces ({}): give -n",
            many.len(),
            many.join(", ")
        )])),
    }
}

/// Checks that a namespace exists (for a clear error instead of an empty answer).
///
/// # Errors
///
/// [`CliError::NotFound`].
pub async fn namespace_exists(client: &Client, ns: &str) -> Result<(), CliError> {
    let api: Api<Namespace> = Api::all(client.clone());
    match api.get_opt(ns).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(CliError::NotFound(format!("namespace {ns:?} not found"))),
        Err(e) => Err(kubectx::kube_error(&format!("reading namespace {ns}"), &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(name: &str, generation: i64, replicas: i32, available: i32) -> Arc<Deployment> {
        let d: Result<Deployment, _> = serde_json::from_value(json!({
            "metadata": {"name": name, "generation": generation},
            "spec": {"replicas": replicas, "selector": {}, "template": {}},
            "status": {"observedGeneration": generation, "replicas": available,
                       "availableReplicas": available, "updatedReplicas": available},
        }));
        Arc::new(d.unwrap_or_default())
    }

    #[test]
    fn workloads_ready_names_what_is_missing() {
        let applied = |v: &[(&str, i64)]| -> BTreeMap<String, i64> {
            v.iter().map(|(n, g)| ((*n).to_owned(), *g)).collect()
        };
        type Case = (
            &'static str,
            Vec<Arc<Deployment>>,
            BTreeMap<String, i64>,
            Result<(), &'static str>,
        );
        let cases: [Case; 5] = [
            (
                "nothing applied",
                vec![],
                applied(&[]),
                Err("no Deployment applied"),
            ),
            (
                "applied, not seen",
                vec![],
                applied(&[("web", 1)]),
                Err("Deployment web: not seen yet"),
            ),
            (
                "the watch still shows the generation before the apply",
                vec![deployment("web", 1, 1, 1)],
                applied(&[("web", 2)]),
                Err("Deployment web: generation 2 not seen yet"),
            ),
            (
                "rolling",
                vec![deployment("web", 2, 2, 1)],
                applied(&[("web", 2)]),
                Err("Deployment web: 1 of 2 replicas updated"),
            ),
            (
                "rolled out",
                vec![deployment("web", 2, 1, 1)],
                applied(&[("web", 2)]),
                Ok(()),
            ),
        ];
        for (name, deps, applied, want) in cases {
            assert_eq!(
                workloads_ready(&deps, &applied),
                want.map_err(str::to_owned),
                "{name}"
            );
        }
    }

    #[test]
    fn kompoxops_scalars() {
        assert_eq!(scalar(&json!("1")), Some("1".into()));
        assert_eq!(scalar(&json!(2)), Some("2".into()));
        assert_eq!(scalar(&json!(true)), Some("true".into()));
        assert_eq!(scalar(&json!({"a": 1})), None);
        assert_eq!(scalar(&Value::Null), None);
    }
}

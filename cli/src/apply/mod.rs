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

mod kompoxops;
mod plan;
mod reconcile;
mod wait;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use k8s_openapi::api::core::v1::Namespace;
use kompox_core::api::KompoxDisk;
use kompox_core::naming;
use kube::ResourceExt as _;
use kube::api::Api;
use serde_json::{Value, json};

pub use self::plan::{Plan, objects, plan};
pub use self::reconcile::client_reconcile;
use self::wait::{disk_zone, wait_ready};
use crate::CliError;
use crate::kubectx::{self, KubeArgs};
use crate::state::{AppState, key, read_state, state_path, write_state};

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
    /// As kubectl: `client` prints what would be applied without contacting the cluster;
    /// `server` also has the API server check every object (nothing is stored). Neither
    /// records a namespace in .kompox/state.json.
    #[arg(long, value_enum, default_value_t = DryRun::None, num_args = 0..=1, default_missing_value = "client", require_equals = true, value_name = "none|client|server")]
    pub dry_run: DryRun,
    /// The field manager of the server-side applies (e.g. the one your GitOps tool uses for
    /// the same objects).
    #[arg(long, default_value = kubectx::FIELD_MANAGER, value_name = "NAME")]
    pub field_manager: String,
    /// Take over fields another field manager owns; without it such conflicts are listed
    /// (field and manager) and nothing is applied.
    #[arg(long)]
    pub force_conflicts: bool,
    /// Print the applied objects as the API server answered them (with --dry-run: the objects
    /// that would be applied), Secret values redacted: name, json, yaml or jsonpath=TEMPLATE.
    /// Progress then goes to stderr.
    #[arg(short = 'o', long, value_name = "FORMAT", value_parser = crate::output::Output::parse)]
    pub output: Option<crate::output::Output>,
}

/// `--dry-run`, as kubectl's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DryRun {
    /// Apply.
    None,
    /// Check the input and print what would be applied; no cluster is contacted.
    Client,
    /// Also ask the API server (`dryRun=All`: validation, admission, field ownership);
    /// nothing is stored.
    Server,
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
    let Some(format) = &args.output else {
        return apply(args, out, err, &mut Vec::new()).await;
    };
    if *format == crate::output::Output::Wide {
        return Err(CliError::Invalid(vec![
            "-o wide: apply prints no table; use -o yaml, json, name or jsonpath=…".into(),
        ]));
    }
    // -o: the objects on stdout, the progress lines on stderr.
    let mut applied = Vec::new();
    apply(args, &mut std::io::stderr(), err, &mut applied).await?;
    for o in &mut applied {
        if let Some(m) = o["metadata"].as_object_mut() {
            m.remove("managedFields");
        }
    }
    crate::output::write_as(out, &kubectx::redact(&applied), format, true)
}

/// `apply` proper; every object applied (as the server answered, or as it would be sent with
/// `--dry-run=client`) is added to `applied`.
async fn apply(
    args: &ApplyArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
    applied: &mut Vec<Value>,
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
    let ns_obj = json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": ns, "labels": {
            naming::MANAGED_BY_LABEL: naming::MANAGED_BY,
            naming::TENANT_LABEL: args.workspace,
            naming::APP_ID_LABEL: entry.app_id,
        }},
    });
    if args.dry_run == DryRun::Client {
        let _ = writeln!(
            out,
            "namespace {ns} {} (dry run)",
            if reused {
                "(recorded in .kompox/state.json)"
            } else {
                "would be created (its name is drawn anew at apply)"
            }
        );
        applied.push(ns_obj.clone());
        for o in objects(&plan, &ns)? {
            let _ = writeln!(
                out,
                "{} applied{} (dry run)",
                kubectx::describe(&o),
                keys(&o)
            );
            applied.push(o);
        }
        return Ok(());
    }
    let (client, url) = kubectx::client(&args.kube).await?;
    kubectx::ping(&client, &url).await?;
    let opts = kubectx::ApplyOpts {
        field_manager: &args.field_manager,
        force: args.force_conflicts,
        dry_run: false,
    };
    // A recorded namespace may have been deleted since.
    let ns_exists = reused
        && Api::<Namespace>::all(client.clone())
            .get_opt(&ns)
            .await
            .map_err(|e| kubectx::kube_error(&format!("reading namespace {ns}"), &e))?
            .is_some();
    // External volumes' disks, checked before anything is applied.
    let disk_api: Api<KompoxDisk> = Api::namespaced(client.clone(), &ns);
    let mut existing: BTreeMap<String, KompoxDisk> = BTreeMap::new();
    let mut missing = Vec::new();
    for (d, volume) in &plan.external {
        let found = if ns_exists {
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
    if ns_exists {
        for d in plan.disks.keys() {
            if let Some(x) = disk_api
                .get_opt(d)
                .await
                .map_err(|e| kubectx::kube_error(&format!("reading KompoxDisk {ns}/{d}"), &e))?
            {
                existing.insert(d.clone(), x);
            }
        }
    }
    // An inferred disk is created once and then left alone: re-applying never changes
    // (shrinks, moves) or recreates it; `disk resize` grows it.
    let kept = |o: &Value| {
        o["kind"] == "KompoxDisk"
            && o["metadata"]["name"]
                .as_str()
                .is_some_and(|d| plan.inferred_disks.contains(d) && existing.contains_key(d))
    };
    let mut objs: Vec<Value> = Vec::new();
    for o in objects(&plan, &ns)? {
        if kept(&o) {
            let _ = writeln!(out, "{} exists (kept as it is)", kubectx::describe(&o));
        } else {
            objs.push(o);
        }
    }

    // Every object is first sent as a server-side dry run, so a conflict with another field
    // manager, or any other refusal, is reported for all objects at once and nothing is
    // applied. A new namespace has no objects to conflict with; it is created first (and
    // recorded) so its objects can be checked.
    if !ns_exists && args.dry_run == DryRun::None {
        kubectx::apply_with(&client, &ns_obj, &opts).await?;
        state.apps.insert(k.clone(), entry.clone());
        write_state(&spath, &state)?;
    }
    let check = kubectx::ApplyOpts {
        dry_run: true,
        ..opts
    };
    let checked = if ns_exists || args.dry_run == DryRun::None {
        let mut refused = Vec::new();
        let mut answers = Vec::new();
        for o in std::iter::once(&ns_obj).chain(&objs) {
            match kubectx::apply_with(&client, o, &check).await {
                Ok(a) => answers.push(a),
                Err(e) => refused.push(e.to_string()),
            }
        }
        if !refused.is_empty() {
            if refused.iter().any(|r| r.contains(" is managed by ")) && !args.force_conflicts {
                refused.push(format!(
                    "nothing was applied: give --force-conflicts to take the fields over as {:?}, or change them where their manager keeps them",
                    args.field_manager
                ));
            } else {
                refused.push("nothing was applied".to_owned());
            }
            return Err(CliError::Cluster(refused.join("\n")));
        }
        if args.dry_run == DryRun::Server {
            applied.extend(answers);
        }
        true
    } else {
        let a = kubectx::apply_with(&client, &ns_obj, &check).await?;
        if args.dry_run == DryRun::Server {
            applied.push(a);
            // The namespace does not exist yet: its objects as they would be sent.
            applied.extend(objs.iter().cloned());
        }
        false
    };
    if args.dry_run == DryRun::Server {
        let _ = writeln!(
            out,
            "namespace {ns} {} (server dry run)",
            if ns_exists { "(reused)" } else { "created" }
        );
        for o in &objs {
            let how = if checked {
                "(server dry run)"
            } else {
                "(not checked: the namespace does not exist yet)"
            };
            let _ = writeln!(out, "{} applied{} {how}", kubectx::describe(o), keys(o));
        }
        return Ok(());
    }
    applied.push(kubectx::apply_with(&client, &ns_obj, &opts).await?);
    let _ = writeln!(
        out,
        "namespace {ns} {}",
        if ns_exists { "(reused)" } else { "created" }
    );
    state.apps.insert(k, entry);
    write_state(&spath, &state)?;

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
            applied.push(kubectx::apply_with(&client, o, &opts).await?);
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
        if o["kind"] == "KompoxDisk" && applied_first.as_deref() == o["metadata"]["name"].as_str() {
            continue;
        }
        applied.push(kubectx::apply_with(&client, &o, &opts).await?);
        let _ = writeln!(out, "{} applied{}", kubectx::describe(&o), keys(&o));
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

/// ` (3 keys, values not shown)` for a Secret, else nothing.
fn keys(o: &Value) -> String {
    if o["kind"] == "Secret" {
        let n = o["data"].as_object().map_or(0, serde_json::Map::len)
            + o["stringData"].as_object().map_or(0, serde_json::Map::len);
        format!(" ({n} keys, values not shown)")
    } else {
        String::new()
    }
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

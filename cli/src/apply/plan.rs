//! `apply`'s plan: the app, disks and sources built from the flags and rendered offline, so
//! every error surfaces before the cluster is touched; and the objects that are applied.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use kompox_core::api::{KompoxApp, KompoxDisk, ProviderType};
use kompox_core::naming;
use kompox_core::render::{Bundle, ClusterInfo, RenderInput, Sources, Warning, render};
use serde_json::{Value, json};

use super::ApplyArgs;
use super::kompoxops::from_kompoxops;
use crate::CliError;
use crate::files::{FileFlags, provide_files};
use crate::infer::default_name;
use crate::kubectx;
use crate::project::{default_app, disk, read_app_file, read_text, run_key};
use crate::vars::{ProjectVars, process_env, vars_line};

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
    let compose = read_text(&args.file)?;
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
        let (app, b) = read_app_file(path, &mut warnings)?;
        (app, b.disks, b.sources)
    } else if let Some(path) = &args.kompoxops {
        let (app, disks) = from_kompoxops(path, &parsed, &args.file, &mut warnings)?;
        (app, disks, Sources::default())
    } else {
        let (name, from) = default_name(Some(&parsed.project), &args.file);
        notes.push(format!("app name {name} (from {from})"));
        (default_app(&name), BTreeMap::new(), Sources::default())
    };
    let dir = args
        .file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    provide_files(
        &mut app,
        &mut sources,
        &mut warnings,
        &mut notes,
        &parsed.project,
        &dir,
        FileFlags {
            project_files: &args.project_files,
            secret_files: &args.infer.secret_files,
        },
        &vars,
    )?;
    let inferred = crate::infer::complete(&mut app, &mut disks, &parsed.project, &args.infer)?;
    notes.extend(inferred.notes);
    // The interpolation variables, in the Secret `<app>-dotenv` (always: a variable removed
    // from .env is removed from the cluster too).
    if let Some(name) = vars.attach(&mut app, &mut sources, &mut warnings, true) {
        notes.push(format!("variables {}", vars_line(&vars, &sources, &name)));
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
                .or_insert_with(|| disk(&v.disk_ref.name));
        }
    }

    // Render offline against fresh disks: the same checks the controller will make.
    let mut fresh = Bundle {
        disks: disks.clone(),
        ..Bundle::default()
    };
    for d in external.keys() {
        fresh.disks.entry(d.clone()).or_insert_with(|| disk(d));
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
        key: &run_key()?,
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

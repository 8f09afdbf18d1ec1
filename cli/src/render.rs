//! `kubectl kompox render`: renders a compose app without a cluster.
//!
//! ```text
//! kubectl kompox render -f compose.yml [--app app.yml] [-o yaml|json] [--env-file FILE]...
//!     [--project-file PATH=FILE]... [--var KEY=VALUE]...
//! ```
//!
//! - Without `--app` (zero-config), the app is inferred ([`crate::infer`]): named after the
//!   compose `name:` (or the compose file's directory), one fresh disk per compose volume
//!   (`x-kompox: {size}` or `--disk-size`, default 10Gi) plus `default` for binds, ingress
//!   rules from `--host NAME[=PORT]` and `x-kompox: {host}`; each inference is an
//!   `inferred: …` line on stderr. With `--app`, the file wins and only its gaps are filled.
//! - Single-file binds of project files become a ConfigMap (a Secret with `--secret-file`)
//!   and a `spec.files.mounts` entry; so do small read-only directory binds, one key per
//!   file (1 MiB at most).
//! - `--app` reads a multi-document YAML file with one KompoxApp, its KompoxDisks and the
//!   Secrets/ConfigMaps its `spec.files.mounts` name. Disks are assumed fresh: one without
//!   `status.pvName` gets `kompox-<disk>`; one that is missing is assumed to be 10Gi.
//! - Files the compose file names (`env_file`, configs/secrets `file:`) that no
//!   `spec.files.mounts` entry provides are read from disk, relative to the compose file, or
//!   from `--project-file PATH=FILE` (PATH as written in the compose file).
//! - `${VAR}` is interpolated as `docker compose` does ([`crate::vars`]): the environment,
//!   then `.env` beside the compose file or the `--env-file` files. The variables used are
//!   passed to the renderer as the Secret `<app>-dotenv` named by `spec.compose.envFrom`,
//!   exactly as `apply` uploads them, so the output is what the controller renders: an
//!   `environment` entry using one reads it from the derived Secret `<app>-environment`.
//!   `--var KEY=VALUE` sets a plain variable over all of them.
//! - Secrets are redacted unless `--show-secrets` is given (e.g. to pipe the output into
//!   `kubectl apply -f -`): each value is replaced by a keyed digest under a key drawn at
//!   random for this run ([`kompox_core::hash`]), as are the env hash and the rendered hash,
//!   so nothing in the output confirms a guessed value. Within one output, equal digests of the
//!   same Secret key mean equal values; across runs digests differ.
//! - Warnings go to stderr as `warning: path: message`; invalid input exits with status 1
//!   and `error: path: message` lines.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use kompox_core::api::ProviderType;
use kompox_core::hash::HashKey;
use kompox_core::redact::redact_objects;
use kompox_core::render::{Bundle, ClusterInfo, RenderInput, Sources, Warning, render};

use crate::CliError;
use crate::files::{FileFlags, provide_files};
use crate::infer::{InferArgs, default_name};
use crate::project::{
    DEFAULT_DISK_SIZE, default_app, disk, read_app_file, read_text, run_key, split_pair,
};
use crate::vars::{ProjectVars, process_env, vars_line};

/// Shown by `render --help`.
pub const LONG_HELP: &str = "\
Without --app, the app is inferred and each inference printed as `inferred: …` on stderr: the
name from the compose `name:` (or the directory), one disk per compose volume (size from
`x-kompox: {size: 20Gi}` on the volume, else --disk-size, else 10Gi) plus `default` for binds,
the zone from --zone, ingress rules from --host NAME[=PORT] or `x-kompox: {host: NAME}` on a
service. A volume with `external: true` refers to the existing KompoxDisk named by its `name:`
(else its key); none is made for it. Single-file binds become a ConfigMap (a Secret with --secret-file PATH), small
read-only directory binds too (one key per file, 1 MiB at most).

--app takes a YAML stream with one KompoxApp, its KompoxDisks and the Secrets/ConfigMaps its
spec.files.mounts name. Disks are assumed fresh (status.pvName kompox-<disk>).

Files the compose file names (env_file, configs/secrets `file:`) that no spec.files.mounts entry
provides are read next to the compose file, or from --project-file PATH=FILE. Relative paths map
to /kompox/project/<path> in spec.files.mounts.

${VAR} is interpolated as docker compose does: from the environment, then `.env` beside the
compose file (or the --env-file files instead, later files winning). Those values are treated as
secret (apply keeps them in the Secret <app>-dotenv): an environment entry using one reads it
from a derived Secret, anywhere else a warning names the field. --var KEY=VALUE sets a plain
variable over all of them.

Secrets are printed redacted (each value as a keyed digest under a random key drawn for this run,
so nothing in the output confirms a guessed value); use --show-secrets to pipe the output into
`kubectl apply -f -`. Warnings go to stderr; invalid input exits with status 1.

Example:
  kubectl kompox render -f samples/gitea/compose.yml --app samples/gitea/app.yml \\
    --provider aks --region japaneast";

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// A multi-document YAML stream.
    Yaml,
    /// A JSON `v1 List`.
    Json,
}

/// Arguments of `render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The compose file.
    #[arg(short = 'f', long = "file", value_name = "COMPOSE")]
    pub file: PathBuf,
    /// YAML with a KompoxApp and its KompoxDisks, Secrets and ConfigMaps.
    #[arg(long, value_name = "APP_YAML")]
    pub app: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Yaml)]
    pub output: Output,
    /// An env file of interpolation variables instead of the project .env (repeatable, as
    /// `docker compose --env-file`; later files win).
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Read the file the compose file names PATH (env_file, configs/secrets file) from FILE.
    #[arg(long = "project-file", value_name = "PATH=FILE")]
    pub project_files: Vec<String>,
    /// A plain variable for ${VAR} interpolation, over the environment and env files
    /// (repeatable).
    #[arg(long = "var", value_name = "KEY=VALUE")]
    pub vars: Vec<String>,
    /// The cluster's provider (maps zone numbers to node zone labels).
    #[arg(long, default_value = "csi", value_parser = parse_provider)]
    pub provider: ProviderType,
    /// The cluster's region (needed to map zone numbers such as "1").
    #[arg(long, env = "KOMPOX_REGION")]
    pub region: Option<String>,
    /// Namespace to set on the app (and the objects).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Print Secret values instead of their keyed digests (e.g. for kubectl apply).
    #[arg(long)]
    pub show_secrets: bool,
    #[command(flatten)]
    pub infer: InferArgs,
    /// Key the digests with this key file (e.g. the install's, to compare with what the
    /// servers show) instead of a random key for this run.
    #[arg(long, env = "KOMPOX_HASH_KEY_FILE", value_name = "FILE")]
    pub hash_key_file: Option<PathBuf>,
}

impl RenderArgs {
    /// Where the project files come from.
    #[must_use]
    pub fn file_flags(&self) -> FileFlags<'_> {
        FileFlags {
            project_files: &self.project_files,
            secret_files: &self.infer.secret_files,
        }
    }
}

pub(crate) fn parse_provider(s: &str) -> Result<ProviderType, String> {
    match ProviderType::parse(s) {
        Some(ProviderType::Auto) | None => Err(format!(
            "unknown provider {s:?} (expected aks, eks, gke, oke, k3s or csi)"
        )),
        Some(p) => Ok(p),
    }
}

/// Runs `render`.
///
/// # Errors
///
/// [`CliError::Invalid`] listing every problem (`path: message`), or [`CliError::Io`].
pub fn run(args: &RenderArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), CliError> {
    let built = build(args)?;
    if let Some(line) = &built.vars {
        writeln!(err, "variables: {line}")
            .map_err(|e| CliError::Io(format!("writing notes: {e}")))?;
    }
    let rendered = match built.rendered {
        Ok(r) => r,
        Err(errors) => {
            write_warnings(err, &built.warnings)?;
            return Err(CliError::Invalid(errors));
        }
    };
    write_notes(err, &built.notes)?;
    write_warnings(err, &built.warnings)?;
    let objects = if args.show_secrets {
        rendered
    } else {
        redact_objects(&built.key, &rendered)
    };
    let text = match args.output {
        Output::Yaml => kompox_core::render::yaml_stream(&objects)
            .map_err(|e| CliError::Io(format!("writing YAML: {e}")))?,
        Output::Json => {
            let list = serde_json::json!({
                "apiVersion": "v1",
                "kind": "List",
                "metadata": {},
                "items": objects,
            });
            let mut s = serde_json::to_string_pretty(&list)
                .map_err(|e| CliError::Io(format!("writing JSON: {e}")))?;
            s.push('\n');
            s
        }
    };
    out.write_all(text.as_bytes())
        .map_err(|e| CliError::Io(format!("writing output: {e}")))
}

/// What rendering a compose app offline gave: the objects or the render errors, and
/// everything said on the way (never a value).
#[derive(Debug)]
pub struct Built {
    /// The rendered objects (Secrets not redacted), or one `path: message` per error.
    pub rendered: Result<Vec<serde_json::Value>, Vec<String>>,
    /// What was inferred without `--app`.
    pub notes: Vec<String>,
    /// The variables Secret's line (names and where they came from).
    pub vars: Option<String>,
    /// Warnings of the input files and the renderer.
    pub warnings: Vec<Warning>,
    /// The key of the digests.
    pub key: HashKey,
}

/// Renders the app `args` describe, offline.
///
/// # Errors
///
/// [`CliError::Invalid`] for input that stops before the renderer (an `--app` file that does
/// not parse, a missing project file, a bad flag), [`CliError::Io`] for a file that cannot be
/// read.
pub fn build(args: &RenderArgs) -> Result<Built, CliError> {
    let compose = read_text(&args.file)?;
    let dir = args
        .file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut interpolation = BTreeMap::new();
    for v in &args.vars {
        let (k, val) = split_pair("--var", v)?;
        interpolation.insert(k.to_owned(), val.to_owned());
    }
    let mut warnings: Vec<Warning> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let vars = ProjectVars::load(&args.file, &args.env_files, process_env())?;
    let parsed = kompox_core::compose::parse(&compose, &|k| {
        interpolation.get(k).cloned().or_else(|| vars.lookup(k))
    })
    .ok();

    let (mut app, mut disks, mut sources) = match &args.app {
        Some(path) => {
            let (app, b) = read_app_file(path, &mut warnings)?;
            (app, b.disks, b.sources)
        }
        None => {
            let (name, from) = default_name(parsed.as_ref().map(|p| &p.project), &args.file);
            notes.push(format!("app name {name} (from {from})"));
            (default_app(&name), BTreeMap::new(), Sources::default())
        }
    };
    if let Some(ns) = &args.namespace {
        app.metadata.namespace = Some(ns.clone());
    }

    if let Some(parsed) = &parsed {
        provide_files(
            &mut app,
            &mut sources,
            &mut warnings,
            &mut notes,
            &parsed.project,
            &dir,
            args.file_flags(),
            &vars,
        )?;
        let inferred = crate::infer::complete(&mut app, &mut disks, &parsed.project, &args.infer)?;
        notes.extend(inferred.notes);
        // An external volume's disk exists in the cluster (apply checks): rendered as fresh.
        for d in inferred.external.keys() {
            disks.entry(d.clone()).or_insert_with(|| disk(d));
        }
    }
    if let Some(path) = &args.app {
        for (i, v) in app.spec.volumes.iter().enumerate() {
            let name = &v.disk_ref.name;
            if !disks.contains_key(name) {
                warnings.push(Warning {
                    path: format!("spec.volumes[{i}].diskRef"),
                    message: format!(
                        "KompoxDisk {name:?} is not in {}: assuming a fresh {DEFAULT_DISK_SIZE} disk",
                        path.display()
                    ),
                });
                disks.insert(name.clone(), disk(name));
            }
        }
    }
    let vars_line = vars
        .attach(&mut app, &mut sources, &mut warnings, false)
        .map(|name| vars_line(&vars, &sources, &name));
    let mut fresh = Bundle {
        disks,
        ..Bundle::default()
    };
    fresh.assume_fresh_disks();
    let disks = fresh.disks;

    let cluster = ClusterInfo {
        provider: args.provider,
        region: args.region.clone(),
    };
    let key = match &args.hash_key_file {
        Some(path) => {
            let material = std::fs::read(path).map_err(|e| {
                CliError::Invalid(vec![format!("--hash-key-file {}: {e}", path.display())])
            })?;
            HashKey::from_file_contents(&material).map_err(|e| {
                CliError::Invalid(vec![format!("--hash-key-file {}: {e}", path.display())])
            })?
        }
        None => run_key()?,
    };
    let rendered = render(&RenderInput {
        app: &app,
        compose: &compose,
        disks: &disks,
        sources: &sources,
        cluster: &cluster,
        interpolation: &interpolation,
        key: &key,
    });
    let rendered = match rendered {
        Ok(r) => {
            warnings.extend(r.warnings);
            Ok(r.objects)
        }
        Err(e) => Err(e.errors.iter().map(ToString::to_string).collect()),
    };
    Ok(Built {
        rendered,
        notes,
        vars: vars_line,
        warnings,
        key,
    })
}

/// What was inferred without `--app`, one `inferred: …` line each.
pub(crate) fn write_notes(err: &mut dyn Write, notes: &[String]) -> Result<(), CliError> {
    for n in notes {
        writeln!(err, "inferred: {n}").map_err(|e| CliError::Io(format!("writing notes: {e}")))?;
    }
    Ok(())
}

fn write_warnings(err: &mut dyn Write, warnings: &[Warning]) -> Result<(), CliError> {
    for w in warnings {
        writeln!(err, "warning: {w}")
            .map_err(|e| CliError::Io(format!("writing warnings: {e}")))?;
    }
    Ok(())
}

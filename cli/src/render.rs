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

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kompox_core::api::{
    ComposeSource, DeletionPolicy, FileMount, FilesSpec, KompoxApp, KompoxAppSpec, KompoxDisk,
    KompoxDiskSpec, LocalKeyRef, ProviderSpec, ProviderType,
};
use kompox_core::hash::HashKey;
use kompox_core::naming::short_hash;
use kompox_core::redact::redact_objects;
use kompox_core::render::{
    Bundle, ClusterInfo, HostPathKind, RenderInput, Sources, Warning, host_paths, project_path,
    render,
};

use crate::CliError;
use crate::infer::InferArgs;
pub use crate::infer::default_name;
use crate::vars::{ProjectVars, process_env};

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

/// Name of the volume and disk of the default app.
pub const DEFAULT_VOLUME: &str = "default";
/// Size assumed for disks that are not given.
pub const DEFAULT_DISK_SIZE: &str = "10Gi";
/// Key of the synthetic Secrets/ConfigMaps holding files read from disk.
const FILE_KEY: &str = "content";

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

fn parse_provider(s: &str) -> Result<ProviderType, String> {
    match ProviderType::parse(s) {
        Some(ProviderType::Auto) | None => Err(format!(
            "unknown provider {s:?} (expected aks, eks, gke, oke, k3s or csi)"
        )),
        Some(p) => Ok(p),
    }
}

pub(crate) fn split_pair<'a>(flag: &str, s: &'a str) -> Result<(&'a str, &'a str), CliError> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k, v)),
        _ => Err(CliError::Invalid(vec![format!(
            "{flag} {s:?}: expected KEY=VALUE"
        )])),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| CliError::Io(format!("reading {}: {e}", path.display())))
}

pub(crate) fn read_text(path: &Path) -> Result<String, CliError> {
    String::from_utf8(read(path)?)
        .map_err(|_| CliError::Invalid(vec![format!("{}: not UTF-8 text", path.display())]))
}

/// Reads an `--app` file: exactly one KompoxApp, with its KompoxDisks and Secrets/ConfigMaps
/// (the bundle's `apps` is left empty); the file's warnings are appended to `warnings`.
///
/// # Errors
///
/// [`CliError::Invalid`] with one `file: path: message` line per problem.
pub(crate) fn read_app_file(
    path: &Path,
    warnings: &mut Vec<Warning>,
) -> Result<(KompoxApp, Bundle), CliError> {
    let text = read_text(path)?;
    let mut b = Bundle::parse(&text).map_err(|errs| {
        CliError::Invalid(
            errs.iter()
                .map(|d| format!("{}: {d}", path.display()))
                .collect(),
        )
    })?;
    warnings.append(&mut b.warnings);
    if b.apps.len() != 1 {
        return Err(CliError::Invalid(vec![format!(
            "{}: expected exactly one KompoxApp, found {}",
            path.display(),
            b.apps.len()
        )]));
    }
    let app = b.apps.remove(0);
    Ok((app, b))
}

/// Runs `render`.
///
/// # Errors
///
/// [`CliError::Invalid`] listing every problem (`path: message`), or [`CliError::Io`].
pub fn run(args: &RenderArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), CliError> {
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
            args,
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
    if let Some(name) = vars.attach(&mut app, &mut sources, &mut warnings, false) {
        write_vars_line(err, &vars, &sources, &name)?;
    }
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
        Ok(r) => r,
        Err(e) => {
            write_warnings(err, &warnings)?;
            return Err(CliError::Invalid(
                e.errors.iter().map(ToString::to_string).collect(),
            ));
        }
    };
    warnings.extend(rendered.warnings);
    write_notes(err, &notes)?;
    write_warnings(err, &warnings)?;
    let objects = if args.show_secrets {
        rendered.objects
    } else {
        redact_objects(&key, &rendered.objects)
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

/// `variables: A, B (from .env and the environment) in Secret <name>`: names only.
pub(crate) fn write_vars_line(
    err: &mut dyn Write,
    vars: &ProjectVars,
    sources: &Sources,
    name: &str,
) -> Result<(), CliError> {
    writeln!(err, "variables: {}", vars_line(vars, sources, name))
        .map_err(|e| CliError::Io(format!("writing notes: {e}")))
}

/// The names kept in the variables Secret and where they came from (never a value).
pub(crate) fn vars_line(vars: &ProjectVars, sources: &Sources, name: &str) -> String {
    let names: Vec<&str> = sources
        .secrets
        .get(name)
        .and_then(|s| s.data.as_ref())
        .map(|d| d.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let from: Vec<String> = vars.read.iter().map(|p| p.display().to_string()).collect();
    format!(
        "{} from {}the environment, in Secret {name} (spec.compose.envFrom)",
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        },
        if from.is_empty() {
            String::new()
        } else {
            format!("{} and ", from.join(", "))
        }
    )
}

/// What was inferred without `--app`, one `inferred: …` line each.
pub(crate) fn write_notes(err: &mut dyn Write, notes: &[String]) -> Result<(), CliError> {
    for n in notes {
        writeln!(err, "inferred: {n}").map_err(|e| CliError::Io(format!("writing notes: {e}")))?;
    }
    Ok(())
}

/// A key drawn at random for one run: offline there is no install key, and a fixed one would
/// make the digests in the output checkable offline.
///
/// # Errors
///
/// Not expected ([`HashKey::new`] accepts 32 random bytes).
pub(crate) fn run_key() -> Result<HashKey, CliError> {
    HashKey::new(&rand::random::<[u8; 32]>())
        .map_err(|e| CliError::Io(format!("drawing a key: {e}")))
}

fn write_warnings(err: &mut dyn Write, warnings: &[Warning]) -> Result<(), CliError> {
    for w in warnings {
        writeln!(err, "warning: {w}")
            .map_err(|e| CliError::Io(format!("writing warnings: {e}")))?;
    }
    Ok(())
}

/// The warning for a bind source outside the project (absolute or `~/`) uploaded from this
/// machine.
fn outside_upload(field: &str, shown: &str, secret: bool, name: &str) -> Warning {
    Warning {
        path: field.to_owned(),
        message: if secret {
            format!(
                "{shown} is outside the project: this machine's copy goes to Secret {name}, as it is now (re-apply after editing it)"
            )
        } else {
            format!(
                "{shown} is outside the project: this machine's copy goes to ConfigMap {name}, as it is now (re-apply after editing it); --secret-file {shown} puts it in a Secret if it holds a credential"
            )
        },
    }
}

/// A fresh disk of [`DEFAULT_DISK_SIZE`].
pub(crate) fn disk(name: &str) -> KompoxDisk {
    KompoxDisk::new(
        name,
        KompoxDiskSpec {
            provider: ProviderSpec::default(),
            size: Quantity(DEFAULT_DISK_SIZE.to_owned()),
            zone: None,
            options: BTreeMap::new(),
            deletion_policy: DeletionPolicy::Orphan,
            from_snapshot: None,
            handle: None,
        },
    )
}

/// The app without `--app`: the compose file in ConfigMap `<name>-compose`, nothing else
/// ([`crate::infer::complete`] fills in volumes, disks, zone and ingress).
pub fn default_app(name: &str) -> KompoxApp {
    KompoxApp::new(
        name,
        KompoxAppSpec {
            compose: ComposeSource {
                config_map_ref: LocalKeyRef {
                    name: format!("{name}-compose"),
                    key: "compose.yml".to_owned(),
                },
                env_from: Vec::new(),
            },
            ..KompoxAppSpec::default()
        },
    )
}

/// Provides the files the compose file names that no `spec.files.mounts` entry covers, from
/// `--project-file` or next to the compose file, as synthetic Secrets/ConfigMaps with mounts the
/// renderer consumes: env files, configs/secrets files, single-file binds (a ConfigMap, or a
/// Secret with `--secret-file`, key = the file name) and small read-only directory binds
/// (one key per file). Each bind file made this way is a line in `notes`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn provide_files(
    app: &mut KompoxApp,
    sources: &mut Sources,
    warnings: &mut Vec<Warning>,
    notes: &mut Vec<String>,
    project: &kompox_core::compose::Project,
    dir: &Path,
    args: &RenderArgs,
    vars: &ProjectVars,
) -> Result<(), CliError> {
    for def in project.configs.values().chain(project.secrets.values()) {
        if let kompox_core::compose::FileObjectSource::Environment(v) = &def.source {
            let _ = vars.lookup(v);
        }
    }
    let mut mapped: BTreeMap<String, (&str, PathBuf)> = BTreeMap::new();
    for e in &args.project_files {
        let (k, f) = split_pair("--project-file", e)?;
        let key = project_path(k).ok_or_else(|| {
            CliError::Invalid(vec![format!("--project-file {k:?}: not a file path")])
        })?;
        mapped.insert(key, (k, PathBuf::from(f)));
    }
    let secret_paths: BTreeSet<PathBuf> = args
        .infer
        .secret_files
        .iter()
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
        .collect();
    let mut secret_used: BTreeSet<PathBuf> = BTreeSet::new();
    let mut covered: BTreeSet<String> = app
        .spec
        .files
        .iter()
        .flat_map(|f| &f.mounts)
        .filter_map(|m| project_path(&m.path))
        .collect();
    let mut used_flags = BTreeSet::new();
    let mut errors = Vec::new();
    for hp in host_paths(project) {
        let Some(pp) = hp.project_path.clone() else {
            continue; // the renderer reports it
        };
        if covered.contains(&pp) {
            continue;
        }
        let local = match mapped.get(&pp) {
            Some((_, f)) => {
                used_flags.insert(pp.clone());
                Some(f.clone())
            }
            // `~/` as compose expands it: the home directory of whoever runs the command.
            None if hp.path.starts_with("~/") => std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(&hp.path[2..])),
            None if !hp.path.starts_with('/') => Some(dir.join(&hp.path)),
            None if hp.kind == HostPathKind::Bind => Some(PathBuf::from(&hp.path)),
            None => None,
        };
        if hp.kind == HostPathKind::Bind {
            let Some(local) = local else { continue };
            // Outside the project (absolute or `~/`): this machine's file is what compose
            // would bind; it is uploaded as it is now, which a warning says.
            let outside = hp.path.starts_with('/') || hp.path.starts_with("~/");
            let shown = if outside {
                hp.path.clone()
            } else {
                format!("./{}", hp.path)
            };
            let abs = std::path::absolute(&local).unwrap_or_else(|_| local.clone());
            let secret = secret_paths.contains(&abs);
            if secret {
                secret_used.insert(abs);
            }
            let dir_prefix = format!("{pp}/");
            if covered.iter().any(|c| c.starts_with(&dir_prefix)) {
                continue; // the same directory, bound by another service
            }
            if local.is_file() {
                let content = read(&local)?;
                let key = file_key(hp.path.rsplit('/').next().unwrap_or_default());
                let name = format!("kompox-file-{}", short_hash(&pp));
                let mode = executable_mode(&local);
                add_file(app, sources, &name, secret, &pp, &key, content, mode);
                notes.push(format!(
                    "{} {name} key {key} from {shown} for {} (re-apply after editing it)",
                    if secret { "Secret" } else { "ConfigMap" },
                    hp.field
                ));
                if outside {
                    warnings.push(outside_upload(&hp.field, &shown, secret, &name));
                }
                covered.insert(pp);
            } else if local.is_dir() && hp.read_only {
                let files = match dir_files(&local) {
                    Ok(f) => f,
                    Err(e) => {
                        errors.push(format!("{}: {e}", hp.field));
                        continue;
                    }
                };
                if files.is_empty() {
                    continue; // an empty directory: on the default disk
                }
                let total: usize = files
                    .iter()
                    .map(|(_, _, n, _)| *n)
                    .fold(0, usize::saturating_add);
                let mounts = app.spec.files.as_ref().map_or(0, |f| f.mounts.len());
                if total > MAX_DIR_BYTES {
                    errors.push(format!(
                        "{}: read-only directory {shown} holds {total} bytes in {} files, more than the {MAX_DIR_BYTES} (1 MiB) a ConfigMap or Secret can: bind it without :ro (a directory on the default disk, empty at first) or build the files into the image",
                        hp.field,
                        files.len()
                    ));
                    continue;
                }
                if mounts + files.len() > MAX_FILE_MOUNTS {
                    errors.push(format!(
                        "{}: read-only directory {shown} holds {} files; with the other files that makes more than the {MAX_FILE_MOUNTS} spec.files.mounts entries a KompoxApp can have: bind it without :ro (a directory on the default disk, empty at first) or build the files into the image",
                        hp.field,
                        files.len()
                    ));
                    continue;
                }
                let name = format!("kompox-dir-{}", short_hash(&pp));
                let n = files.len();
                for (rel, path, _, mode) in files {
                    let content = read(&path)?;
                    let key = file_key(&rel);
                    add_file(
                        app,
                        sources,
                        &name,
                        secret,
                        &format!("{pp}/{rel}"),
                        &key,
                        content,
                        mode,
                    );
                }
                notes.push(format!(
                    "{} {name} from directory {shown} ({n} files, {total} bytes) for {} (re-apply after editing them)",
                    if secret { "Secret" } else { "ConfigMap" },
                    hp.field
                ));
                if outside {
                    warnings.push(outside_upload(&hp.field, &shown, secret, &name));
                }
                covered.insert(pp);
            }
            continue;
        }
        let Some(local) = local.filter(|p| p.is_file()) else {
            // Said in the terms of this machine; the renderer reports it otherwise (an
            // absolute path with no --project-file, or env_file `required: false`).
            if hp.required && !hp.path.starts_with('/') {
                errors.push(format!(
                    "{}: {} not found: create it next to the compose file ({}), or give --project-file {}=FILE",
                    hp.field,
                    hp.path,
                    dir.join(hp.path.trim_start_matches("./")).display(),
                    hp.path
                ));
            }
            continue;
        };
        let content = read(&local)?;
        if hp.kind == HostPathKind::EnvFile
            && let Ok(text) = std::str::from_utf8(&content)
        {
            vars.scan_env_file(text);
        }
        let name = format!("kompox-file-{}", short_hash(&pp));
        let meta = ObjectMeta {
            name: Some(name.clone()),
            ..ObjectMeta::default()
        };
        let r = LocalKeyRef {
            name: name.clone(),
            key: FILE_KEY.to_owned(),
        };
        let mut mount = FileMount {
            path: pp.clone(),
            ..FileMount::default()
        };
        if hp.kind == HostPathKind::ConfigFile {
            sources.config_maps.insert(
                name,
                ConfigMap {
                    metadata: meta,
                    binary_data: Some(BTreeMap::from([(FILE_KEY.to_owned(), ByteString(content))])),
                    ..ConfigMap::default()
                },
            );
            mount.config_map_ref = Some(r);
        } else {
            sources.secrets.insert(
                name,
                Secret {
                    metadata: meta,
                    data: Some(BTreeMap::from([(FILE_KEY.to_owned(), ByteString(content))])),
                    ..Secret::default()
                },
            );
            mount.secret_ref = Some(r);
        }
        app.spec
            .files
            .get_or_insert_with(FilesSpec::default)
            .mounts
            .push(mount);
        covered.insert(pp);
    }
    for (pp, (k, _)) in &mapped {
        if !used_flags.contains(pp) {
            warnings.push(Warning {
                path: format!("--project-file {k}"),
                message: "not needed: the compose file does not name it, or spec.files.mounts provides it".to_owned(),
            });
        }
    }
    for p in &args.infer.secret_files {
        let abs = std::path::absolute(p).unwrap_or_else(|_| p.clone());
        if !secret_used.contains(&abs) {
            errors.push(format!(
                "--secret-file {}: no bind of the compose file has this file or read-only directory as its source",
                p.display()
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CliError::Invalid(errors))
    }
}

/// Most bytes of one directory bind (a ConfigMap or Secret holds at most 1 MiB).
const MAX_DIR_BYTES: usize = 1024 * 1024;
/// Most `spec.files.mounts` entries of a KompoxApp (the CRD's limit).
const MAX_FILE_MOUNTS: usize = 64;
/// Most files looked at in one directory bind before giving up.
const MAX_DIR_FILES: usize = 1000;

/// A ConfigMap/Secret key for a relative path: the path itself when it is a valid key
/// (`[-._a-zA-Z0-9]+`, so no `/`), else the path with other characters as `_` and a short
/// hash of it (`sub/b.conf` → `sub_b.conf-<hash>`).
fn file_key(rel: &str) -> String {
    let valid = !rel.is_empty()
        && rel != "."
        && rel != ".."
        && rel
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if valid {
        return rel.to_owned();
    }
    let flat: String = rel
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{flat}-{}", short_hash(rel))
}

/// 0755 for an executable file (a script bound into the container), else the default.
fn executable_mode(path: &Path) -> Option<i32> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o111 != 0).then_some(0o755)
}

/// The regular files under `dir` (recursively, symlinks followed), as (relative path, local
/// path, size, mode), sorted; contents are read by the caller once the total is known to fit.
#[allow(clippy::type_complexity)]
fn dir_files(dir: &Path) -> Result<Vec<(String, PathBuf, usize, Option<i32>)>, String> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    let mut seen = 0usize;
    while let Some((d, rel)) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| format!("reading {}: {e}", d.display()))?;
        for e in entries {
            let e = e.map_err(|e| format!("reading {}: {e}", d.display()))?;
            seen += 1;
            if seen > MAX_DIR_FILES {
                return Err(format!(
                    "directory {} has more than {MAX_DIR_FILES} entries: bind it without :ro (a directory on the default disk)",
                    dir.display()
                ));
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let r = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let path = e.path();
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() => stack.push((path, r)),
                Ok(m) if m.is_file() => {
                    let size = usize::try_from(m.len()).unwrap_or(usize::MAX);
                    let mode = executable_mode(&path);
                    out.push((r, path, size, mode));
                }
                _ => {} // sockets, devices, dangling links
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Adds one file from a synthetic ConfigMap/Secret `name` (created or extended) and its
/// `spec.files.mounts` entry at `path`.
#[allow(clippy::too_many_arguments)]
fn add_file(
    app: &mut KompoxApp,
    sources: &mut Sources,
    name: &str,
    secret: bool,
    path: &str,
    key: &str,
    content: Vec<u8>,
    mode: Option<i32>,
) {
    let meta = ObjectMeta {
        name: Some(name.to_owned()),
        ..ObjectMeta::default()
    };
    let r = LocalKeyRef {
        name: name.to_owned(),
        key: key.to_owned(),
    };
    let mut mount = FileMount {
        path: path.to_owned(),
        mode,
        ..FileMount::default()
    };
    if secret {
        let s = sources
            .secrets
            .entry(name.to_owned())
            .or_insert_with(|| Secret {
                metadata: meta,
                ..Secret::default()
            });
        s.data
            .get_or_insert_with(BTreeMap::new)
            .insert(key.to_owned(), ByteString(content));
        mount.secret_ref = Some(r);
    } else {
        let c = sources
            .config_maps
            .entry(name.to_owned())
            .or_insert_with(|| ConfigMap {
                metadata: meta,
                ..ConfigMap::default()
            });
        match String::from_utf8(content) {
            Ok(text) => {
                c.data
                    .get_or_insert_with(BTreeMap::new)
                    .insert(key.to_owned(), text);
            }
            Err(e) => {
                c.binary_data
                    .get_or_insert_with(BTreeMap::new)
                    .insert(key.to_owned(), ByteString(e.into_bytes()));
            }
        }
        mount.config_map_ref = Some(r);
    }
    app.spec
        .files
        .get_or_insert_with(FilesSpec::default)
        .mounts
        .push(mount);
}

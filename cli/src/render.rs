//! `kubectl kompox render`: renders a compose app without a cluster.
//!
//! ```text
//! kubectl kompox render -f compose.yml [--app app.yml] [-o yaml|json] [--env-file PATH=FILE]...
//! ```
//!
//! - Without `--app`, a default app is assumed: named after the compose `name:` (or the
//!   compose file's directory), one volume `default` on a fresh 10Gi disk `default`, no
//!   ingress, no namespace.
//! - `--app` reads a multi-document YAML file with one KompoxApp, its KompoxDisks and the
//!   Secrets/ConfigMaps its `spec.files.mounts` name. Disks are assumed fresh: one without
//!   `status.pvName` gets `kompox-<disk>`; one that is missing is assumed to be 10Gi.
//! - Files the compose file names (`env_file`, configs/secrets `file:`) that no
//!   `spec.files.mounts` entry provides are read from disk, relative to the compose file, or
//!   from `--env-file PATH=FILE` (PATH as written in the compose file). A relative bind whose
//!   source is a file is refused, as in the cluster it would become a directory.
//! - `${VAR}` is interpolated from `--var KEY=VALUE` only: the process environment is not
//!   read, so the output is what the controller renders.
//! - Secrets are redacted (each value replaced by its sha256) unless `--show-secrets` is
//!   given, e.g. to pipe the output into `kubectl apply -f -`.
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
    AppVolume, ComposeSource, DeletionPolicy, FileMount, FilesSpec, KompoxApp, KompoxAppSpec,
    KompoxDisk, KompoxDiskSpec, LocalKeyRef, LocalRef, ProviderSpec, ProviderType,
};
use kompox_core::naming::{sanitize_label, short_hash};
use kompox_core::redact::redact_objects;
use kompox_core::render::{
    Bundle, ClusterInfo, HostPathKind, RenderInput, Sources, Warning, host_paths, project_path,
    render,
};

use crate::CliError;

/// Shown by `render --help`.
pub const LONG_HELP: &str = "\
Without --app, a default app is assumed: named after the compose `name:` (or the directory),
one volume `default` on a fresh 10Gi disk `default`, no ingress.

--app takes a YAML stream with one KompoxApp, its KompoxDisks and the Secrets/ConfigMaps its
spec.files.mounts name. Disks are assumed fresh (status.pvName kompox-<disk>).

Files the compose file names (env_file, configs/secrets `file:`) that no spec.files.mounts entry
provides are read next to the compose file, or from --env-file PATH=FILE. Relative paths map to
/kompox/project/<path> in spec.files.mounts.

Secrets are printed redacted (each value as its sha256); use --show-secrets to pipe the output
into `kubectl apply -f -`. Warnings go to stderr; invalid input exits with status 1.

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
    /// Read the file the compose file names PATH (env_file, configs/secrets file) from FILE.
    #[arg(long = "env-file", value_name = "PATH=FILE")]
    pub env_files: Vec<String>,
    /// A variable for ${VAR} interpolation (repeatable).
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
    /// Print Secret values instead of their sha256 (e.g. for kubectl apply).
    #[arg(long)]
    pub show_secrets: bool,
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
    let parsed = kompox_core::compose::parse(&compose, &|k| interpolation.get(k).cloned()).ok();

    let (mut app, disks, mut sources) = match &args.app {
        Some(path) => {
            let (app, mut b) = read_app_file(path, &mut warnings)?;
            for (i, v) in app.spec.volumes.iter().enumerate() {
                let name = &v.disk_ref.name;
                if !b.disks.contains_key(name) {
                    warnings.push(Warning {
                        path: format!("spec.volumes[{i}].diskRef"),
                        message: format!(
                            "KompoxDisk {name:?} is not in {}: assuming a fresh {DEFAULT_DISK_SIZE} disk",
                            path.display()
                        ),
                    });
                    b.disks.insert(name.clone(), disk(name));
                }
            }
            b.assume_fresh_disks();
            (app, b.disks, b.sources)
        }
        None => {
            let name = default_name(parsed.as_ref(), &args.file);
            let mut b = Bundle::default();
            b.disks
                .insert(DEFAULT_VOLUME.to_owned(), disk(DEFAULT_VOLUME));
            b.assume_fresh_disks();
            (default_app(&name), b.disks, b.sources)
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
            &parsed.project,
            &dir,
            args,
        )?;
    }

    let cluster = ClusterInfo {
        provider: args.provider,
        region: args.region.clone(),
    };
    let rendered = render(&RenderInput {
        app: &app,
        compose: &compose,
        disks: &disks,
        sources: &sources,
        cluster: &cluster,
        interpolation: &interpolation,
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
    write_warnings(err, &warnings)?;
    let objects = if args.show_secrets {
        rendered.objects
    } else {
        redact_objects(&rendered.objects)
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

fn write_warnings(err: &mut dyn Write, warnings: &[Warning]) -> Result<(), CliError> {
    for w in warnings {
        writeln!(err, "warning: {w}")
            .map_err(|e| CliError::Io(format!("writing warnings: {e}")))?;
    }
    Ok(())
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

/// The app's name without `--app`: the compose `name:`, else the compose file's directory.
pub(crate) fn default_name(parsed: Option<&kompox_core::compose::Parsed>, file: &Path) -> String {
    let from_compose = parsed.and_then(|p| p.project.name.clone());
    let from_dir = || {
        std::path::absolute(file).ok().and_then(|p| {
            p.parent()
                .and_then(Path::file_name)
                .map(|n| n.to_string_lossy().into_owned())
        })
    };
    let raw = from_compose.or_else(from_dir).unwrap_or_default();
    if raw.is_empty() {
        "app".to_owned()
    } else {
        sanitize_label(&raw, 40)
    }
}

/// The default app: one volume `default` on disk `default`, no ingress.
pub fn default_app(name: &str) -> KompoxApp {
    KompoxApp::new(
        name,
        KompoxAppSpec {
            compose: ComposeSource {
                config_map_ref: LocalKeyRef {
                    name: format!("{name}-compose"),
                    key: "compose.yml".to_owned(),
                },
            },
            volumes: vec![AppVolume {
                name: DEFAULT_VOLUME.to_owned(),
                disk_ref: LocalRef {
                    name: DEFAULT_VOLUME.to_owned(),
                },
            }],
            ..KompoxAppSpec::default()
        },
    )
}

/// Provides the files the compose file names that no `spec.files.mounts` entry covers, from
/// `--env-file` or next to the compose file, as synthetic Secrets/ConfigMaps with mounts the
/// renderer consumes; refuses single-file binds.
pub(crate) fn provide_files(
    app: &mut KompoxApp,
    sources: &mut Sources,
    warnings: &mut Vec<Warning>,
    project: &kompox_core::compose::Project,
    dir: &Path,
    args: &RenderArgs,
) -> Result<(), CliError> {
    let mut mapped: BTreeMap<String, (&str, PathBuf)> = BTreeMap::new();
    for e in &args.env_files {
        let (k, f) = split_pair("--env-file", e)?;
        let key = project_path(k)
            .ok_or_else(|| CliError::Invalid(vec![format!("--env-file {k:?}: not a file path")]))?;
        mapped.insert(key, (k, PathBuf::from(f)));
    }
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
            None if !hp.path.starts_with('/') => Some(dir.join(&hp.path)),
            None => None,
        };
        if hp.kind == HostPathKind::Bind {
            if local.as_deref().is_some_and(Path::is_file) {
                errors.push(format!(
                    "{}: bind source {:?} is a file: Kompox binds directories (on spec.volumes[0]); put the file in a ConfigMap or Secret and add a spec.files.mounts entry with path {pp}",
                    hp.field, hp.path
                ));
            }
            continue;
        }
        let Some(local) = local.filter(|p| p.is_file()) else {
            continue; // the renderer reports a missing required file
        };
        let content = read(&local)?;
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
                path: format!("--env-file {k}"),
                message: "not needed: the compose file does not name it, or spec.files.mounts provides it".to_owned(),
            });
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CliError::Invalid(errors))
    }
}

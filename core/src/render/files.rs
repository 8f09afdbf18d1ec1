//! Files: `spec.files.mounts`, the compose paths that name them (env_file, configs/secrets
//! `file:`, bind sources), the derived env Secrets and config objects, and the pod volumes
//! that project Secret/ConfigMap keys as files.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    ConfigMapProjection, ConfigMapVolumeSource, KeyToPath, ProjectedVolumeSource, SecretProjection,
    SecretVolumeSource, Volume, VolumeMount, VolumeProjection,
};

use super::ctx::{Ctx, generated_volume_name};
use super::paths::project_path;
use super::vars::{Variables, config_map_value, secret_value};
use super::{ErrorReason, Sources};
use crate::api::KompoxApp;
use crate::compose::{EnvFile, FileObjectDef, FileObjectSource, Project, Service};
use crate::compose::{Interpolations, child};
use crate::hash::SourceKind;

/// File mode of files.mounts entries without `mode` (Kubernetes' default).
pub(crate) const DEFAULT_FILE_MODE: i32 = 0o644;
/// File mode of compose configs and secrets without `mode` (compose's default).
pub(crate) const DEFAULT_COMPOSE_FILE_MODE: i32 = 0o444;
/// The path of the one projected file inside a file volume (mounted with `subPath`).
const ITEM_PATH: &str = "file";
/// Largest data a Secret or ConfigMap may hold.
const MAX_OBJECT_BYTES: usize = 1024 * 1024;

/// One `spec.files.mounts` entry, resolved against the sources the caller passed.
pub(crate) struct FileEntry {
    /// `spec.files.mounts[i]`.
    pub field: String,
    /// Normalized absolute path.
    pub path: String,
    pub kind: SourceKind,
    /// Secret or ConfigMap name.
    pub name: String,
    pub key: String,
    pub mode: Option<i32>,
    /// The content; `None` when the object or key is missing (an error was recorded).
    pub value: Option<Vec<u8>>,
}

impl FileEntry {
    /// `Secret "x" key "k"`: names only, never content.
    pub fn describe(&self) -> String {
        format!("{} {:?} key {:?}", self.kind, self.name, self.key)
    }
}

/// All `spec.files.mounts` entries by path, remembering which ones the compose file used.
#[derive(Default)]
pub(crate) struct FileTable {
    entries: Vec<FileEntry>,
    by_path: BTreeMap<String, usize>,
    used: BTreeSet<usize>,
}

impl FileTable {
    /// Resolves every mount; a missing Secret/ConfigMap or key is a MissingReference error.
    pub fn resolve(cx: &mut Ctx, app: &KompoxApp, sources: &Sources) -> FileTable {
        let mut table = FileTable::default();
        for (i, m) in app.spec.files.iter().flat_map(|f| &f.mounts).enumerate() {
            let field = format!("spec.files.mounts[{i}]");
            let (kind, r, ref_field) = match (&m.secret_ref, &m.config_map_ref) {
                (Some(r), None) => (SourceKind::Secret, r, format!("{field}.secretRef")),
                (None, Some(r)) => (SourceKind::ConfigMap, r, format!("{field}.configMapRef")),
                // Refused by spec validation already.
                _ => continue,
            };
            let Some(path) = project_path(&m.path).filter(|_| m.path.starts_with('/')) else {
                continue; // refused by spec validation already
            };
            let value = match kind {
                SourceKind::Secret => match sources.secrets.get(&r.name) {
                    None => Err(format!("Secret {:?} not found", r.name)),
                    Some(s) => secret_value(s, &r.key)
                        .ok_or(())
                        .map_err(|()| format!("Secret {:?} has no key {:?}", r.name, r.key)),
                },
                SourceKind::ConfigMap => match sources.config_maps.get(&r.name) {
                    None => Err(format!("ConfigMap {:?} not found", r.name)),
                    Some(c) => config_map_value(c, &r.key)
                        .ok_or(())
                        .map_err(|()| format!("ConfigMap {:?} has no key {:?}", r.name, r.key)),
                },
            };
            let value = match value {
                Ok(v) => Some(v),
                Err(msg) => {
                    cx.error(ErrorReason::MissingReference, ref_field, msg);
                    None
                }
            };
            let idx = table.entries.len();
            table.by_path.entry(path.clone()).or_insert(idx);
            table.entries.push(FileEntry {
                field,
                path,
                kind,
                name: r.name.clone(),
                key: r.key.clone(),
                mode: m.mode,
                value,
            });
        }
        table
    }

    /// The entry at `path` (a [`project_path`]), marked as used by the compose file.
    pub fn take(&mut self, path: &str) -> Option<&FileEntry> {
        let idx = *self.by_path.get(path)?;
        self.used.insert(idx);
        self.entries.get(idx)
    }

    /// The entries under directory `dir` (a [`project_path`]), marked as used, each with its
    /// path relative to `dir`: a directory bind provided file by file.
    pub fn take_dir(&mut self, dir: &str) -> Vec<(FileRef, String, i32)> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        let mut out = Vec::new();
        for (path, idx) in self.by_path.range(prefix.clone()..) {
            let Some(rel) = path.strip_prefix(&prefix) else {
                break;
            };
            let Some(e) = self.entries.get(*idx) else {
                continue;
            };
            self.used.insert(*idx);
            out.push((
                FileRef {
                    kind: e.kind,
                    name: e.name.clone(),
                    key: e.key.clone(),
                },
                rel.to_owned(),
                e.mode.unwrap_or(DEFAULT_FILE_MODE),
            ));
        }
        out
    }

    /// Entries the compose file did not name: mounted into every service container.
    pub fn unused(&self) -> impl Iterator<Item = &FileEntry> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.used.contains(i))
            .map(|(_, e)| e)
    }

    /// Names of every source object, by kind (to detect clashes with generated names).
    pub fn source_names(&self) -> impl Iterator<Item = (&FileEntry, SourceKind, &str)> {
        self.entries.iter().map(|e| (e, e.kind, e.name.as_str()))
    }
}

/// The merged variables of a service's env files (later files win), or `None` when no env
/// file was found. Keys set by `environment` are left out: `env` wins anyway.
///
/// As compose-go does, `${VAR}` in a value (and a `KEY` line alone) looks the project's
/// variables up first, then the service's `environment`, then the values read so far.
pub(crate) fn env_file_data(
    cx: &mut Ctx,
    files: &mut FileTable,
    service: &str,
    svc: &Service,
    vars: &Variables,
) -> Option<BTreeMap<String, String>> {
    let lookup = |k: &str| vars.get(k).or_else(|| svc.environment.get(k).cloned());
    let mut data: Option<BTreeMap<String, String>> = None;
    for (i, ef) in svc.env_file.iter().enumerate() {
        let field = format!("{}.env_file[{i}]", crate::compose::service_path(service));
        let Some(path) = project_path(&ef.path) else {
            cx.error(
                ErrorReason::InvalidCompose,
                field,
                format!("env file {:?} is outside the project directory", ef.path),
            );
            continue;
        };
        let Some(entry) = files.take(&path) else {
            if ef.required {
                cx.error(
                    ErrorReason::MissingReference,
                    field,
                    format!(
                        "env file {:?} not found: add a spec.files.mounts entry with path {path} (a Secret key holding the file)",
                        ef.path
                    ),
                );
            } else {
                cx.warn(
                    field,
                    format!(
                        "env file {:?} not found (no spec.files.mounts entry with path {path}); skipped as required: false",
                        ef.path
                    ),
                );
            }
            continue;
        };
        let Some(bytes) = &entry.value else { continue };
        let what = format!("env file {path} ({}, {})", entry.field, entry.describe());
        let Ok(text) = std::str::from_utf8(bytes) else {
            cx.error(
                ErrorReason::InvalidSpec,
                field,
                format!("{what}: not UTF-8 text"),
            );
            continue;
        };
        let d = data.get_or_insert_with(BTreeMap::new);
        if let Err(e) = parse_env_file(ef, text, d, &lookup) {
            cx.error(ErrorReason::InvalidSpec, field, format!("{what}: {e}"));
        }
    }
    if let Some(d) = &mut data {
        d.retain(|k, _| !svc.environment.contains_key(k));
    }
    data
}

/// Parses env file text per its `format` into `out`: dotenv by default, `raw` as
/// `KEY=VALUE` lines taken literally. Errors name lines, never content.
fn parse_env_file(
    ef: &EnvFile,
    text: &str,
    out: &mut BTreeMap<String, String>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), String> {
    match ef.format.as_deref() {
        None => crate::dotenv::parse_dotenv_into(text, out, lookup).map_err(|e| e.to_string()),
        Some("raw") => {
            for (n, line) in text.lines().enumerate() {
                let t = line.trim_start();
                if t.is_empty() || t.starts_with('#') {
                    continue;
                }
                match line.split_once('=') {
                    Some((k, v)) if !k.trim().is_empty() => {
                        out.insert(k.trim().to_owned(), v.to_owned());
                    }
                    _ => return Err(format!("line {}: expected KEY=VALUE", n + 1)),
                }
            }
            Ok(())
        }
        Some(other) => Err(format!(
            "unknown env_file format {other:?} (expected raw or none)"
        )),
    }
}

/// A derived object holding compose configs/secrets and env files.
#[derive(Default)]
pub(crate) struct Derived {
    /// `<app>-configs` ConfigMap: configs whose content is not secret.
    pub configs: BTreeMap<String, Vec<u8>>,
    /// `<app>-configs` Secret: configs read from a Secret.
    pub secret_configs: BTreeMap<String, Vec<u8>>,
    /// `<app>-secrets` Secret: compose secrets.
    pub secrets: BTreeMap<String, Vec<u8>>,
    /// Resolved compose configs/secrets: (is_secret_top_level, name) → where the file is.
    pub resolved: BTreeMap<(bool, String), FileRef>,
}

/// A file inside a Secret or ConfigMap.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct FileRef {
    pub kind: SourceKind,
    /// Object name.
    pub name: String,
    pub key: String,
}

/// Resolves the compose configs (`secret == false`) or secrets used by services into the
/// derived objects.
#[allow(clippy::too_many_arguments)]
pub(crate) fn resolve_compose_files(
    cx: &mut Ctx,
    files: &mut FileTable,
    derived: &mut Derived,
    project: &Project,
    secret: bool,
    vars: &Variables,
    interpolations: &Interpolations,
    configs_name: &str,
    secrets_name: &str,
) {
    let (top, defs) = if secret {
        ("secrets", &project.secrets)
    } else {
        ("configs", &project.configs)
    };
    let used: BTreeSet<&str> = project
        .services
        .values()
        .flat_map(|s| if secret { &s.secrets } else { &s.configs })
        .map(|m| m.source.as_str())
        .collect();
    for (name, def) in defs {
        if !used.contains(name.as_str()) {
            continue;
        }
        let field = child(top, name);
        let Some((content, from_secret)) =
            compose_file_content(cx, files, &field, def, vars, interpolations, top)
        else {
            continue;
        };
        let (kind, obj, map) = if secret {
            (SourceKind::Secret, secrets_name, &mut derived.secrets)
        } else if from_secret {
            (
                SourceKind::Secret,
                configs_name,
                &mut derived.secret_configs,
            )
        } else {
            (SourceKind::ConfigMap, configs_name, &mut derived.configs)
        };
        map.insert(name.clone(), content);
        derived.resolved.insert(
            (secret, name.clone()),
            FileRef {
                kind,
                name: obj.to_owned(),
                key: name.clone(),
            },
        );
    }
}

/// The content of one top-level config/secret, and whether it is secret: it came from a
/// Secret or a secret-held variable (or is a compose secret's environment value).
fn compose_file_content(
    cx: &mut Ctx,
    files: &mut FileTable,
    field: &str,
    def: &FileObjectDef,
    vars: &Variables,
    interpolations: &Interpolations,
    top: &str,
) -> Option<(Vec<u8>, bool)> {
    match &def.source {
        FileObjectSource::Content(c) => Some((
            c.as_bytes().to_vec(),
            interpolations.uses_secret(&format!("{field}.content")),
        )),
        FileObjectSource::Environment(var) => match vars.get(var) {
            Some(v) => Some((
                v.as_bytes().to_vec(),
                top == "secrets" || vars.is_secret(var),
            )),
            None => {
                cx.error(
                    ErrorReason::MissingReference,
                    format!("{field}.environment"),
                    format!("variable {var:?} is not set"),
                );
                None
            }
        },
        FileObjectSource::File(path) => {
            let Some(p) = project_path(path) else {
                cx.error(
                    ErrorReason::InvalidCompose,
                    format!("{field}.file"),
                    format!("file {path:?} is outside the project directory"),
                );
                return None;
            };
            match files.take(&p) {
                Some(e) => e.value.clone().map(|v| (v, e.kind == SourceKind::Secret)),
                None => {
                    cx.error(
                        ErrorReason::MissingReference,
                        format!("{field}.file"),
                        format!(
                            "file {path:?} not found: add a spec.files.mounts entry with path {p}"
                        ),
                    );
                    None
                }
            }
        }
        FileObjectSource::External => {
            cx.error(
                ErrorReason::InvalidCompose,
                format!("{field}.external"),
                format!(
                    "external {top} are not supported: give the content with `file:` and a spec.files.mounts entry"
                ),
            );
            None
        }
    }
}

/// Errors when `data` will not fit in one object.
pub(crate) fn check_size(cx: &mut Ctx, field: &str, what: &str, data: &BTreeMap<String, Vec<u8>>) {
    let total: usize = data.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > MAX_OBJECT_BYTES {
        cx.error(
            ErrorReason::InvalidSpec,
            field,
            format!("{what} would hold {total} bytes, more than the {MAX_OBJECT_BYTES} a Kubernetes object can"),
        );
    }
}

/// The pod volumes that project one key of a Secret/ConfigMap as a file, deduplicated.
#[derive(Default)]
pub(crate) struct FileVolumes {
    volumes: BTreeMap<String, Volume>,
}

impl FileVolumes {
    /// The volume mount of `file` at `target` with file mode `mode`.
    pub fn mount(&mut self, file: &FileRef, mode: i32, target: &str) -> VolumeMount {
        let prefix = match file.kind {
            SourceKind::Secret => "secret",
            SourceKind::ConfigMap => "cm",
        };
        let name = generated_volume_name(prefix, &format!("{}-{}-{:o}", file.name, file.key, mode));
        let items = Some(vec![KeyToPath {
            key: file.key.clone(),
            path: ITEM_PATH.to_owned(),
            mode: None,
        }]);
        self.volumes.entry(name.clone()).or_insert_with(|| Volume {
            name: name.clone(),
            secret: (file.kind == SourceKind::Secret).then(|| SecretVolumeSource {
                secret_name: Some(file.name.clone()),
                items: items.clone(),
                default_mode: Some(mode),
                optional: None,
            }),
            config_map: (file.kind == SourceKind::ConfigMap).then(|| ConfigMapVolumeSource {
                name: file.name.clone(),
                items: items.clone(),
                default_mode: Some(mode),
                optional: None,
            }),
            ..Volume::default()
        });
        VolumeMount {
            name,
            mount_path: target.to_owned(),
            sub_path: Some(ITEM_PATH.to_owned()),
            read_only: Some(true),
            ..VolumeMount::default()
        }
    }

    /// The volume mount of a directory made of `files` (each with its path inside the
    /// directory and its mode) at `target`: one projected volume, named after `seed`.
    pub fn mount_dir(
        &mut self,
        seed: &str,
        files: &[(FileRef, String, i32)],
        target: &str,
    ) -> VolumeMount {
        let name = generated_volume_name("dir", seed);
        let sources = files
            .iter()
            .map(|(f, rel, mode)| {
                let items = Some(vec![KeyToPath {
                    key: f.key.clone(),
                    path: rel.clone(),
                    mode: Some(*mode),
                }]);
                match f.kind {
                    SourceKind::Secret => VolumeProjection {
                        secret: Some(SecretProjection {
                            name: f.name.clone(),
                            items,
                            optional: None,
                        }),
                        ..VolumeProjection::default()
                    },
                    SourceKind::ConfigMap => VolumeProjection {
                        config_map: Some(ConfigMapProjection {
                            name: f.name.clone(),
                            items,
                            optional: None,
                        }),
                        ..VolumeProjection::default()
                    },
                }
            })
            .collect();
        self.volumes.entry(name.clone()).or_insert_with(|| Volume {
            name: name.clone(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(sources),
                default_mode: None,
            }),
            ..Volume::default()
        });
        VolumeMount {
            name,
            mount_path: target.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        }
    }

    pub fn into_volumes(self) -> impl Iterator<Item = Volume> {
        self.volumes.into_values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_env_files() {
        let ef = EnvFile {
            path: "x".into(),
            required: true,
            format: Some("raw".into()),
        };
        let parse = |ef: &EnvFile, text: &str| {
            let mut out = BTreeMap::new();
            parse_env_file(ef, text, &mut out, &|_| Some("looked up".into())).map(|()| out)
        };
        assert_eq!(
            parse(&ef, "# c\nA=\"q\" #x\n\nB = ${X}\n"),
            Ok(BTreeMap::from([
                ("A".into(), "\"q\" #x".into()),
                ("B".into(), " ${X}".into())
            ]))
        );
        assert_eq!(
            parse(&ef, "A=1\nnope\n"),
            Err("line 2: expected KEY=VALUE".into())
        );
        let dotenv = EnvFile {
            format: None,
            ..ef.clone()
        };
        assert_eq!(
            parse(&dotenv, "A=${X}\nINHERITED\n"),
            Ok(BTreeMap::from([
                ("A".into(), "looked up".into()),
                ("INHERITED".into(), "looked up".into())
            ]))
        );
        let bad = EnvFile {
            format: Some("yaml".into()),
            ..ef
        };
        assert!(parse(&bad, "").is_err());
    }
}

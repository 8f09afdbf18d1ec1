//! The project files a compose file names (`env_file`, configs/secrets `file:`, binds of
//! files and small read-only directories), read from this machine into synthetic
//! Secrets/ConfigMaps with the `spec.files.mounts` entries the renderer consumes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kompox_core::api::{FileMount, FilesSpec, KompoxApp, LocalKeyRef};
use kompox_core::naming::short_hash;
use kompox_core::render::{HostPathKind, Sources, Warning, host_paths, project_path};

use crate::CliError;
use crate::project::{read, split_pair};
use crate::vars::ProjectVars;

/// The flags that say where project files come from.
#[derive(Clone, Copy, Debug, Default)]
pub struct FileFlags<'a> {
    /// `--project-file PATH=FILE`: read the file the compose file names PATH from FILE.
    pub project_files: &'a [String],
    /// `--secret-file PATH`: a bind source that goes into a Secret, not a ConfigMap.
    pub secret_files: &'a [PathBuf],
}

/// Key of the synthetic Secrets/ConfigMaps holding files read from disk.
const FILE_KEY: &str = "content";

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
    flags: FileFlags<'_>,
    vars: &ProjectVars,
) -> Result<(), CliError> {
    for def in project.configs.values().chain(project.secrets.values()) {
        if let kompox_core::compose::FileObjectSource::Environment(v) = &def.source {
            let _ = vars.lookup(v);
        }
    }
    let mut mapped: BTreeMap<String, (&str, PathBuf)> = BTreeMap::new();
    for e in flags.project_files {
        let (k, f) = split_pair("--project-file", e)?;
        let key = project_path(k).ok_or_else(|| {
            CliError::Invalid(vec![format!("--project-file {k:?}: not a file path")])
        })?;
        mapped.insert(key, (k, PathBuf::from(f)));
    }
    let secret_paths: BTreeSet<PathBuf> = flags
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
    for p in flags.secret_files {
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

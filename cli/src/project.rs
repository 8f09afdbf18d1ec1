//! The building blocks of an app the CLI makes offline, shared by `render`, `apply` and the
//! inference ([`crate::infer`]): the default app and disk, reading input files and `--app`
//! files, `KEY=VALUE` and size flags, the per-run digest key.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kompox_core::api::{
    ComposeSource, DeletionPolicy, KompoxApp, KompoxAppSpec, KompoxDisk, KompoxDiskSpec,
    LocalKeyRef, ProviderSpec,
};
use kompox_core::hash::HashKey;
use kompox_core::render::{Bundle, Warning};

use crate::CliError;

/// Name of the volume and disk of the default app.
pub const DEFAULT_VOLUME: &str = "default";

/// Size assumed for disks that are not given.
pub const DEFAULT_DISK_SIZE: &str = "10Gi";

pub(crate) fn split_pair<'a>(flag: &str, s: &'a str) -> Result<(&'a str, &'a str), CliError> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k, v)),
        _ => Err(CliError::Invalid(vec![format!(
            "{flag} {s:?}: expected KEY=VALUE"
        )])),
    }
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, CliError> {
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

/// A positive size as given (`20Gi`) and in bytes.
#[derive(Clone, Debug)]
pub struct Size {
    /// As given, for `spec.size` and messages.
    pub text: String,
    /// In bytes.
    pub bytes: u128,
}

pub(crate) fn parse_size(s: &str) -> Result<Size, String> {
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

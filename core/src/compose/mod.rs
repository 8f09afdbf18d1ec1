//! The compose-spec parser: YAML text → a validated, typed [`Project`].
//!
//! ```text
//! text ──serde-saphyr──▶ tree ──interpolation──▶ tree ──walk──▶ Project + warnings
//! ```
//!
//! - YAML is read by serde-saphyr with anchors, aliases and `<<` merge keys, duplicate keys
//!   refused, and a budget against alias bombs and deep nesting (see `yaml.rs`).
//! - `${VAR}` interpolation applies to string values (never to keys), with variables from
//!   the caller's `env` function: core never reads the process environment.
//! - The walk tracks the path of every node, so each diagnostic names it exactly:
//!   `services.web.ports[1]: invalid port "x"`. All errors are collected, not just the first.
//! - What happens to each compose key is listed in one table, [`KEYS`].
//!
//! Nothing here panics on any input.
//!
//! ```
//! use kompox_core::compose::{MountSource, parse};
//!
//! let yaml = "
//! services:
//!   web:
//!     image: nginx:${TAG:-1.27}
//!     ports: [\"8080:80\"]
//!     volumes: [\"./html:/usr/share/nginx/html:ro\"]
//! ";
//! let parsed = parse(yaml, &|name| (name == "TAG").then(|| "1.28".to_owned()))?;
//! let web = parsed.project.services.get("web").expect("declared above");
//! assert_eq!(web.image.as_deref(), Some("nginx:1.28"));
//! assert_eq!(web.ports[0].published, Some(8080));
//! assert_eq!(web.mounts[0].source, MountSource::RelativeBind { path: "html".into() });
//!
//! let err = parse("services:\n  web:\n    ports: [x]\n", &|_| None).unwrap_err();
//! assert_eq!(err.to_string(), "services.web.ports[0]: invalid port \"x\"");
//! # Ok::<(), kompox_core::compose::Error>(())
//! ```
//!
//! Choices worth knowing:
//! - A compose value of `0` for `cpus`/`memory` means "no limit" and becomes `None`.
//! - Durations need a unit (`10s`); a bare integer other than 0 is an error.
//! - The legacy `cpus`, `mem_limit`, `mem_reservation` and `scale` fill in the `deploy`
//!   values; set in both places with different values, they are an error.
//! - Port ranges are expanded into one [`Port`] per port, up to [`MAX_PORT_RANGE`].
//! - `environment` entries without a value are looked up with `env`; unset ones are left
//!   out, with a warning.

mod env;
mod extensions;
mod image;
pub(crate) mod interpolate;
mod keys;
mod model;
mod mounts;
mod origins;
mod ports;
mod service;
mod shellwords;
mod top;
pub mod units;
mod walk;
mod yaml;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;

use std::fmt;

pub use image::check_image_reference;
pub use keys::{Disposition, KEYS, KeyRule, Scope, keys_markdown, rule_for};
pub use model::*;
pub use origins::{Interpolations, Origin};
pub use ports::MAX_PORT_RANGE;
pub use top::MAX_SERVICES;
pub(crate) use walk::child;
pub use yaml::{MAX_DEPTH, MAX_EXPANDED_NODES, MAX_INPUT_BYTES, MAX_MERGED_NODES};

/// The diagnostic path of a service: `services.web`, or `services["Web.Front"]` when the
/// name holds characters other than letters, digits, `_` and `-` (as the parser writes it).
#[must_use]
pub fn service_path(name: &str) -> String {
    walk::child("services", name)
}

/// A successfully parsed compose file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Parsed {
    pub project: Project,
    /// Things accepted but ignored or questionable, each naming its path.
    pub warnings: Vec<Warning>,
    /// The scalars that used variables, by path, and which variables were secret-held.
    pub interpolations: Interpolations,
}

/// A non-fatal finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Where, e.g. `services.web.container_name`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_located(f, &self.path, &self.message)
    }
}

/// One error found in the compose file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where, e.g. `services.web.ports[1]`; empty for the file as a whole.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_located(f, &self.path, &self.message)
    }
}

fn write_located(f: &mut fmt::Formatter<'_>, path: &str, message: &str) -> fmt::Result {
    if path.is_empty() {
        f.write_str(message)
    } else {
        write!(f, "{path}: {message}")
    }
}

/// Why a compose file was refused: every error found, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Error {
    /// Never empty.
    pub errors: Vec<Diagnostic>,
}

impl fmt::Display for Error {
    /// One diagnostic per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_lines(f, &self.errors)
    }
}

/// Writes the diagnostics one per line, without a trailing newline.
pub(crate) fn write_lines(f: &mut fmt::Formatter<'_>, diagnostics: &[Diagnostic]) -> fmt::Result {
    for (i, d) in diagnostics.iter().enumerate() {
        if i > 0 {
            f.write_str("\n")?;
        }
        write!(f, "{d}")?;
    }
    Ok(())
}

/// Parses a compose file.
///
/// `env` supplies interpolation variables (and values for `environment` entries written
/// without a value); the caller decides where they come from. None is secret-held (see
/// [`parse_with`]).
///
/// # Errors
/// Every problem found (invalid YAML, invalid values, unresolved references, refused keys,
/// failed `${VAR:?msg}` interpolations), each naming its path.
pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Parsed, Error> {
    parse_with(text, env, &|_| false)
}

/// [`parse`] with some variables secret-held (`secret(name)`): diagnostics never show their
/// values, and [`Parsed::interpolations`] says where they went
/// ([`Service::secret_environment`] for `environment` entries).
///
/// # Errors
/// As [`parse`]; a diagnostic about an interpolated value names the variables it came from.
pub fn parse_with(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    secret: &dyn Fn(&str) -> bool,
) -> Result<Parsed, Error> {
    let mut root = match yaml::load(text) {
        Ok(root) => root,
        Err(message) => {
            return Err(Error {
                errors: vec![Diagnostic {
                    path: String::new(),
                    message: format!("invalid YAML: {message}"),
                }],
            });
        }
    };
    let mut ctx = walk::Ctx::new(env, secret);
    ctx.interpolate_tree(&mut root);
    let project = top::project(&mut ctx, &root);
    ctx.explain_diagnostics();
    if ctx.errors.is_empty() {
        Ok(Parsed {
            project,
            warnings: ctx.warnings,
            interpolations: ctx.interpolations,
        })
    } else {
        Err(Error { errors: ctx.errors })
    }
}

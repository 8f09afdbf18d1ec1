//! The walking context: where diagnostics are collected, plus typed readers for tree nodes
//! that report mismatches at the node's path.

use std::collections::{BTreeMap, BTreeSet};

use super::interpolate::{Interpolated, InterpolationError, interpolate};
use super::keys::{Disposition, Scope, rule_for};
use super::origins::Interpolations;
use super::yaml::Value;
use super::{Diagnostic, Warning};

/// Collects errors and warnings while the tree is walked.
pub(crate) struct Ctx<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// Whether a variable is secret-held.
    pub secret: &'a dyn Fn(&str) -> bool,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Warning>,
    /// The interpolated scalars.
    pub interpolations: Interpolations,
    /// Variables already warned about as unset (one warning per variable).
    unset_warned: Vec<String>,
    /// Paths of scalars that failed to interpolate.
    interpolation_failed: BTreeSet<String>,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(
        env: &'a dyn Fn(&str) -> Option<String>,
        secret: &'a dyn Fn(&str) -> bool,
    ) -> Self {
        Ctx {
            env,
            secret,
            errors: Vec::new(),
            warnings: Vec::new(),
            interpolations: Interpolations::default(),
            unset_warned: Vec::new(),
            interpolation_failed: BTreeSet::new(),
        }
    }

    /// Names the variables of interpolated scalars in the errors, and removes secret-held
    /// values from errors and warnings.
    pub(crate) fn explain_diagnostics(&mut self) {
        // A scalar that failed to interpolate keeps its text: only that error is reported.
        let failed = std::mem::take(&mut self.interpolation_failed);
        let mut seen = BTreeSet::new();
        self.errors
            .retain(|d| !failed.contains(&d.path) || seen.insert(d.path.clone()));
        for d in &mut self.errors {
            self.interpolations.explain(&d.path, &mut d.message);
        }
        for w in &mut self.warnings {
            self.interpolations.redact(&w.path, &mut w.message);
        }
    }

    /// Looks a variable up for an `environment` entry without a value, recording it at `path`.
    pub(crate) fn lookup_recorded(&mut self, path: &str, name: &str) -> Option<String> {
        let value = (self.env)(name);
        let done = match &value {
            Some(v) => Interpolated {
                value: v.clone(),
                used: vec![name.to_owned()],
                unset: Vec::new(),
            },
            None => Interpolated {
                value: String::new(),
                used: Vec::new(),
                unset: vec![name.to_owned()],
            },
        };
        self.interpolations
            .record(path, name, &done, self.env, self.secret);
        value
    }

    pub(crate) fn error(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(Diagnostic {
            path: path.to_owned(),
            message: message.into(),
        });
    }

    pub(crate) fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.warnings.push(Warning {
            path: path.to_owned(),
            message: message.into(),
        });
    }

    /// Reports a node of the wrong kind.
    pub(crate) fn expected(&mut self, path: &str, what: &str, found: &Value) {
        self.error(path, format!("expected {what}, found {}", found.kind()));
    }

    /// Interpolates every string scalar of the tree in place, except inside `x-*` keys at the
    /// top level and in services (they are ignored anyway, and their content reaches services
    /// through anchors, where it is interpolated).
    pub(crate) fn interpolate_tree(&mut self, root: &mut Value) {
        self.interpolate_node(root, "", 0);
    }

    fn interpolate_node(&mut self, node: &mut Value, path: &str, level: usize) {
        match node {
            Value::String(s) => {
                if !s.contains('$') {
                    return;
                }
                match interpolate(s, self.env) {
                    Ok(done) => {
                        self.interpolations
                            .record(path, s, &done, self.env, self.secret);
                        *s = done.value;
                        for name in done.unset {
                            if !self.unset_warned.contains(&name) {
                                self.warn(
                                    path,
                                    format!("variable {name:?} is not set; using an empty string"),
                                );
                                self.unset_warned.push(name);
                            }
                        }
                    }
                    Err(e) => {
                        self.interpolation_failed.insert(path.to_owned());
                        let message = match e {
                            InterpolationError::Required {
                                name, message_used, ..
                            } if message_used.iter().any(|n| (self.secret)(n)) => format!(
                                "required variable {name} is missing a value (the message is not shown: it uses a secret-held variable)"
                            ),
                            e => e.to_string(),
                        };
                        self.error(path, message);
                    }
                }
            }
            Value::Seq(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.interpolate_node(item, &index(path, i), level + 1);
                }
            }
            Value::Map(entries) => {
                // level 0: the top level; level 2: inside `services.<name>`.
                let extensions_skipped = level == 0 || (level == 2 && path.starts_with("services"));
                for (key, value) in entries.iter_mut() {
                    if extensions_skipped && key.starts_with("x-") {
                        continue;
                    }
                    self.interpolate_node(value, &child(path, key), level + 1);
                }
            }
            Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) => {}
        }
    }

    /// Applies the key table to one key. Returns true when the key is Supported (the caller
    /// handles it); Silent/Warned/Refused/unknown/`x-*` keys are dealt with here.
    pub(crate) fn dispose_key(&mut self, scope: Scope, path: &str, key: &str) -> bool {
        if key.starts_with("x-") {
            return false;
        }
        let at = child(path, key);
        match rule_for(scope, key) {
            Some(rule) => match rule.disposition {
                Disposition::Supported => true,
                Disposition::Silent => false,
                Disposition::Warned => {
                    self.warn(&at, rule.note);
                    false
                }
                Disposition::Refused => {
                    self.error(&at, rule.note);
                    false
                }
            },
            None => {
                self.warn(&at, "unknown key; ignored");
                false
            }
        }
    }

    /// Warns about keys of a nested long-syntax mapping that are not in `known`
    /// (`x-*` keys are ignored silently).
    pub(crate) fn check_keys(&mut self, path: &str, entries: &[(String, Value)], known: &[&str]) {
        for (key, _) in entries {
            if !key.starts_with("x-") && !known.contains(&key.as_str()) {
                self.warn(&child(path, key), "unknown key; ignored");
            }
        }
    }

    // ---- typed readers. `None` means absent/null or already reported.

    /// A mapping (null → `None` without a diagnostic).
    pub(crate) fn map<'v>(&mut self, path: &str, v: &'v Value) -> Option<&'v [(String, Value)]> {
        match v {
            Value::Map(entries) => Some(entries),
            Value::Null => None,
            other => {
                self.expected(path, "a mapping", other);
                None
            }
        }
    }

    /// A list's items (null → none without a diagnostic; anything else but a list is
    /// reported as not being `what`).
    pub(crate) fn seq<'v>(&mut self, path: &str, v: &'v Value, what: &str) -> &'v [Value] {
        match v {
            Value::Seq(items) => items,
            Value::Null => &[],
            other => {
                self.expected(path, what, other);
                &[]
            }
        }
    }

    /// A string (numbers and booleans are refused: quote them).
    pub(crate) fn string(&mut self, path: &str, v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => {
                self.expected(path, "a string", other);
                None
            }
        }
    }

    /// A scalar as text: strings, numbers and booleans.
    pub(crate) fn scalar(&mut self, path: &str, v: &Value) -> Option<String> {
        match v {
            Value::Null => None,
            Value::Seq(_) | Value::Map(_) => {
                self.expected(path, "a string or number", v);
                None
            }
            other => other.scalar_text(),
        }
    }

    /// A boolean; after interpolation also the strings true/false/yes/no/on/off.
    pub(crate) fn boolean(&mut self, path: &str, v: &Value) -> Option<bool> {
        match v {
            Value::Bool(b) => Some(*b),
            Value::Null => None,
            Value::String(s) => match s.to_ascii_lowercase().as_str() {
                "true" | "yes" | "y" | "on" => Some(true),
                "false" | "no" | "n" | "off" => Some(false),
                _ => {
                    self.error(path, format!("expected a boolean, found {s:?}"));
                    None
                }
            },
            other => {
                self.expected(path, "a boolean", other);
                None
            }
        }
    }

    /// A non-negative integer that fits `u32` (numeric strings accepted).
    pub(crate) fn uint(&mut self, path: &str, v: &Value) -> Option<u32> {
        let n = match v {
            Value::Null => return None,
            Value::Int(i) => *i,
            Value::String(s) => match s.trim().parse::<i128>() {
                Ok(i) => i,
                Err(_) => {
                    self.error(path, format!("expected an integer, found {s:?}"));
                    return None;
                }
            },
            other => {
                self.expected(path, "an integer", other);
                return None;
            }
        };
        match u32::try_from(n) {
            Ok(n) => Some(n),
            Err(_) => {
                self.error(path, format!("integer {n} is out of range"));
                None
            }
        }
    }

    /// A list of strings (numbers are converted); a single string is a one-item list.
    pub(crate) fn string_list(&mut self, path: &str, v: &Value) -> Vec<String> {
        match v {
            Value::Null => Vec::new(),
            Value::String(s) => vec![s.clone()],
            Value::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    if let Some(s) = self.scalar(&index(path, i), item) {
                        out.push(s);
                    } else if matches!(item, Value::Null) {
                        self.error(&index(path, i), "expected a string, found null");
                    }
                }
                out
            }
            other => {
                self.expected(path, "a list of strings", other);
                Vec::new()
            }
        }
    }

    /// A duration (`10s`, `1m30s`, `0`).
    pub(crate) fn duration(&mut self, path: &str, v: &Value) -> Option<std::time::Duration> {
        let text = match v {
            Value::Null => return None,
            Value::Int(0) => return Some(std::time::Duration::ZERO),
            Value::Int(i) => {
                self.error(path, format!("duration {i} needs a unit (e.g. \"{i}s\")"));
                return None;
            }
            Value::String(s) => s,
            other => {
                self.expected(path, "a duration such as \"10s\"", other);
                return None;
            }
        };
        match super::units::parse_duration(text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(path, e);
                None
            }
        }
    }

    /// A byte size: an integer number of bytes or a string with a unit (`512M`).
    pub(crate) fn bytes(&mut self, path: &str, v: &Value) -> Option<u64> {
        match v {
            Value::Null => None,
            Value::Int(i) => match u64::try_from(*i) {
                Ok(n) => Some(n),
                Err(_) => {
                    self.error(path, format!("invalid size {i}"));
                    None
                }
            },
            Value::String(s) => match super::units::parse_bytes(s) {
                Ok(n) => Some(n),
                Err(e) => {
                    self.error(path, e);
                    None
                }
            },
            other => {
                self.expected(path, "a size such as \"512M\"", other);
                None
            }
        }
    }

    /// A CPU count in millicores.
    pub(crate) fn millicpus(&mut self, path: &str, v: &Value) -> Option<u64> {
        let text = match v {
            Value::Null => return None,
            Value::Int(_) | Value::Float(_) | Value::String(_) => v.scalar_text()?,
            other => {
                self.expected(path, "a number of CPUs such as \"0.5\"", other);
                return None;
            }
        };
        match super::units::parse_millicpus(&text) {
            Ok(n) => Some(n),
            Err(e) => {
                self.error(path, e);
                None
            }
        }
    }

    /// A `KEY: value` map or a `KEY=value` list (labels, annotations). A missing value is "".
    pub(crate) fn string_map(&mut self, path: &str, v: &Value) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        match v {
            Value::Null => {}
            Value::Map(entries) => {
                for (key, value) in entries {
                    let text = self.scalar(&child(path, key), value).unwrap_or_default();
                    out.insert(key.clone(), text);
                }
            }
            Value::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    let at = index(path, i);
                    let Some(text) = self.string(&at, item) else {
                        if matches!(item, Value::Null) {
                            self.error(&at, "expected \"KEY=value\", found null");
                        }
                        continue;
                    };
                    let (key, value) = text.split_once('=').unwrap_or((text.as_str(), ""));
                    if key.is_empty() {
                        self.error(&at, "expected \"KEY=value\" with a non-empty KEY");
                        continue;
                    }
                    out.insert(key.to_owned(), value.to_owned());
                }
            }
            other => self.expected(path, "a mapping or a list of \"KEY=value\"", other),
        }
        out
    }
}

/// Whether `key` can follow a `.` in a path without quoting.
fn plain_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `path.key`, or `path["odd key"]` for keys that are not plain.
pub(crate) fn child(path: &str, key: &str) -> String {
    if plain_key(key) {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    } else {
        format!("{path}[{key:?}]")
    }
}

/// `path[i]`.
pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// Compose resource names (volumes, configs, secrets): `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub(crate) fn is_resource_name(s: &str) -> bool {
    crate::naming::is_compose_name(s)
}

/// Lexically normalizes a relative path: drops `.` and empty components and resolves `..`.
/// The project directory itself is `.`. `None` if `..` climbs above the start.
pub(crate) fn normalize_relative(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        Some(".".to_owned())
    } else {
        Some(parts.join("/"))
    }
}

/// Lexically normalizes an absolute path (`..` at the root stays at the root).
pub(crate) fn normalize_absolute(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

//! A service's `environment` and `env_file`: which variables a container gets, and which of
//! them came from secret-held variables (kept out of the ConfigMap).

use std::collections::{BTreeMap, BTreeSet};

use super::model::EnvFile;
use super::walk::{Ctx, child, index};
use super::yaml::Value;

/// Environment variable names: anything without `=` and NUL (compose is permissive).
fn valid_env_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('=') && !name.contains('\0')
}

/// `environment`: map (null value = take from env) or `KEY=VAL` / `KEY` list. Also returns
/// the keys whose values came from secret-held variables.
pub(crate) fn environment(
    ctx: &mut Ctx<'_>,
    path: &str,
    v: &Value,
) -> (BTreeMap<String, String>, BTreeSet<String>) {
    let mut out = BTreeMap::new();
    let mut secret = BTreeSet::new();
    let mut set = |ctx: &mut Ctx<'_>, at: &str, name: &str, value: Option<String>| {
        if ctx.interpolations.uses_secret(at) {
            ctx.interpolations.keep_in_secret(at);
            secret.insert(name.to_owned());
        } else {
            secret.remove(name);
        }
        match value {
            Some(v) => {
                out.insert(name.to_owned(), v);
            }
            None => {
                out.remove(name);
            }
        }
    };
    let from_env = |ctx: &mut Ctx<'_>, at: &str, name: &str| {
        let value = ctx.lookup_recorded(at, name);
        if value.is_none() {
            ctx.warn(
                at,
                format!("variable {name:?} is not set; left unset in the container"),
            );
        }
        value
    };
    match v {
        Value::Null => {}
        Value::Map(entries) => {
            for (key, value) in entries {
                let at = child(path, key);
                if !valid_env_name(key) {
                    ctx.error(&at, format!("invalid variable name {key:?}"));
                    continue;
                }
                match value {
                    Value::Null => {
                        let value = from_env(ctx, &at, key);
                        set(ctx, &at, key, value);
                    }
                    Value::Seq(_) | Value::Map(_) => {
                        ctx.expected(&at, "a string, number, boolean or null", value);
                    }
                    scalar => {
                        let text = scalar.scalar_text().unwrap_or_default();
                        set(ctx, &at, key, Some(text));
                    }
                }
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                let at = index(path, i);
                let Value::String(text) = item else {
                    ctx.expected(&at, "\"KEY=value\" or \"KEY\"", item);
                    continue;
                };
                match text.split_once('=') {
                    Some((name, value)) => {
                        if valid_env_name(name) {
                            set(ctx, &at, name, Some(value.to_owned()));
                        } else {
                            ctx.error(&at, "invalid variable name");
                        }
                    }
                    None => {
                        if valid_env_name(text) {
                            let value = from_env(ctx, &at, text);
                            set(ctx, &at, text, value);
                        } else {
                            ctx.error(&at, "invalid variable name");
                        }
                    }
                }
            }
        }
        other => ctx.expected(path, "a mapping or a list of \"KEY=value\"", other),
    }
    (out, secret)
}

/// `env_file`: a path, a list of paths, or `{path, required, format}` items.
pub(crate) fn env_file(ctx: &mut Ctx<'_>, path: &str, v: &Value) -> Vec<EnvFile> {
    let one = |ctx: &mut Ctx<'_>, at: &str, item: &Value| -> Option<EnvFile> {
        match item {
            Value::String(s) if s.is_empty() => {
                ctx.error(at, "empty path");
                None
            }
            Value::String(s) => Some(EnvFile {
                path: s.clone(),
                required: true,
                format: None,
            }),
            Value::Map(entries) => {
                ctx.check_keys(at, entries, &["path", "required", "format"]);
                let mut f = EnvFile {
                    path: String::new(),
                    required: true,
                    format: None,
                };
                for (key, value) in entries {
                    let kat = child(at, key);
                    match key.as_str() {
                        "path" => f.path = ctx.string(&kat, value).unwrap_or_default(),
                        "required" => f.required = ctx.boolean(&kat, value).unwrap_or(true),
                        "format" => f.format = ctx.string(&kat, value),
                        _ => {}
                    }
                }
                if f.path.is_empty() {
                    ctx.error(&child(at, "path"), "required");
                    return None;
                }
                Some(f)
            }
            other => {
                ctx.expected(at, "a path or {path, required}", other);
                None
            }
        }
    };
    match v {
        Value::Null => Vec::new(),
        Value::Seq(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| one(ctx, &index(path, i), item))
            .collect(),
        other => one(ctx, path, other).into_iter().collect(),
    }
}

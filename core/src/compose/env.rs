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
                        warn_literal_credential(ctx, path, &at, key, &text);
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
                            warn_literal_credential(ctx, path, &at, name, value);
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

/// Warns about a credential written literally in `environment` (`DB_PASSWORD: hunter2`): the
/// compose file is stored in a ConfigMap and the value in the Deployment, both in plain text.
/// Names the entry as `services.X.environment.KEY`, never the value. A value that used a
/// variable (`${DB_PASSWORD}`, from `.env`: kept in a Secret), an empty or on/off value
/// (`MYSQL_ALLOW_EMPTY_PASSWORD: "yes"`) and a key naming a file or a setting about the
/// credential (`POSTGRES_PASSWORD_FILE`, `PASSWORD_MIN_LENGTH`) are left alone.
fn warn_literal_credential(ctx: &mut Ctx<'_>, env_path: &str, at: &str, name: &str, value: &str) {
    let switch = ["", "0", "1", "true", "false", "yes", "no", "on", "off"];
    if ctx.interpolations.get(at).is_some()
        || switch.contains(&value.trim().to_ascii_lowercase().as_str())
        || !looks_like_credential(name)
    {
        return;
    }
    ctx.warn(
        &child(env_path, name),
        format!(
            "a literal credential: it is stored in plain text (the compose ConfigMap, the Deployment); put it in .env (kept in a Secret) and write ${{{name}}}, or set it with `kubectl kompox secret env set`"
        ),
    );
}

/// Whether an environment variable name says it holds a credential: a word (split at `_`,
/// `.`, `-`) PASSWORD, PASSWD, PASS, SECRET, TOKEN, APIKEY, CREDENTIAL(S), or API/PRIVATE/
/// ACCESS followed by KEY — unless its last word makes it about a file or a setting.
#[must_use]
pub fn looks_like_credential(name: &str) -> bool {
    let words: Vec<String> = name
        .split(['_', '.', '-'])
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_uppercase)
        .collect();
    let about = [
        "FILE",
        "PATH",
        "DIR",
        "LENGTH",
        "MIN",
        "MAX",
        "TTL",
        "EXPIRY",
        "ENABLED",
        "REQUIRED",
        "POLICY",
        "TYPE",
        "MODE",
        "HASH",
        "ALGORITHM",
        "URL",
    ];
    if words.last().is_some_and(|w| about.contains(&w.as_str())) {
        return false;
    }
    let single = [
        "PASSWORD",
        "PASSWD",
        "PASS",
        "SECRET",
        "TOKEN",
        "APIKEY",
        "CREDENTIAL",
        "CREDENTIALS",
    ];
    words.iter().any(|w| single.contains(&w.as_str()))
        || words.windows(2).any(|p| {
            p[1] == "KEY" && ["API", "PRIVATE", "ACCESS", "SECRET"].contains(&p[0].as_str())
        })
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

#[cfg(test)]
mod credential_tests {
    use super::looks_like_credential;
    use rstest::rstest;

    #[rstest]
    #[case::password("POSTGRES_PASSWORD", true)]
    #[case::gitea_passwd("GITEA__database__PASSWD", true)]
    #[case::pass_word("DB_PASS", true)]
    #[case::secret_key_base("SECRET_KEY_BASE", true)]
    #[case::api_key("STRIPE_API_KEY", true)]
    #[case::token("GITHUB_TOKEN", true)]
    #[case::lowercase("smtp.password", true)]
    #[case::password_file("POSTGRES_PASSWORD_FILE", false)]
    #[case::min_length("PASSWORD_MIN_LENGTH", false)]
    #[case::user("POSTGRES_USER", false)]
    #[case::passenger("PASSENGER_APP_ENV", false)]
    #[case::key_alone("KEY", false)]
    #[case::tokenizer("TOKENIZER", false)]
    fn credential_names(#[case] name: &str, #[case] want: bool) {
        assert_eq!(looks_like_credential(name), want, "{name}");
    }

    #[test]
    fn a_literal_credential_is_warned_by_path_never_value() {
        let text = "services:
  db:
    image: postgres
    environment:
      POSTGRES_PASSWORD: hunter2-literal
      POSTGRES_USER: app
      FROM_ENV: ${PW}
      DB_PASS: ${PW}
      MYSQL_ALLOW_EMPTY_PASSWORD: \"yes\"
  web:
    image: nginx
    environment: [\"API_TOKEN=hunter2-list\", \"PLAIN=x\"]
";
        let parsed = match crate::compose::parse(text, &|_| Some("from-dotenv".into())) {
            Ok(p) => p,
            Err(e) => panic!("{e:?}"),
        };
        let warned: Vec<(&str, &str)> = parsed
            .warnings
            .iter()
            .filter(|w| w.message.starts_with("a literal credential"))
            .map(|w| (w.path.as_str(), w.message.as_str()))
            .collect();
        let paths: Vec<&str> = warned.iter().map(|(p, _)| *p).collect();
        assert_eq!(
            paths,
            [
                "services.db.environment.POSTGRES_PASSWORD",
                "services.web.environment.API_TOKEN"
            ]
        );
        for (_, m) in &warned {
            assert!(!m.contains("hunter2"), "{m}");
        }
    }
}

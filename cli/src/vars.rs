//! The project's `${VAR}` interpolation variables, as `docker compose` finds them: the CLI's
//! environment, then the project `.env` beside the compose file, or instead the
//! `--env-file FILE` files (repeatable, later files win). The environment wins over the
//! files; values in the files may use `${VAR}` (the environment first, then the files' earlier
//! values). `COMPOSE_DISABLE_ENV_FILE=true` skips the default `.env`, as compose does.
//!
//! What `render`/`apply` keep of them is [`ProjectVars::secret`]: every variable the files
//! define, and the environment variables the compose file (or an env_file) actually looks
//! up, with the values compose would use. `apply` uploads it as the Secret `<app>-dotenv`
//! named by `spec.compose.envFrom`, so the controller renders what the CLI renders; `render`
//! passes it the same way. Nothing here prints a value: errors name files, lines and keys.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kompox_core::api::{ComposeEnvFrom, KompoxApp, OptionalRef};
use kompox_core::render::{Sources, Warning};

use crate::CliError;

/// Suffix of the Secret holding the project's variables: `<app>-dotenv`.
pub const SECRET_SUFFIX: &str = "dotenv";
/// Compose's switch for the default `.env`.
const DISABLE_ENV_FILE: &str = "COMPOSE_DISABLE_ENV_FILE";

/// The variables of one project.
pub struct ProjectVars {
    /// The CLI's environment.
    process: BTreeMap<String, String>,
    /// What the env files define.
    files: BTreeMap<String, String>,
    /// The env files read, in order.
    pub read: Vec<PathBuf>,
    /// Names looked up through [`ProjectVars::lookup`].
    used: RefCell<BTreeSet<String>>,
}

impl std::fmt::Debug for ProjectVars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectVars")
            .field("files", &self.files.keys().collect::<Vec<_>>())
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

/// The CLI's environment (variables whose name or value is not UTF-8 are left out).
#[must_use]
pub fn process_env() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

impl ProjectVars {
    /// Reads the env files of the compose file `compose`: `env_files` if any (relative to the
    /// working directory), else `.env` beside `compose` when it exists.
    ///
    /// # Errors
    ///
    /// [`CliError::Invalid`] for a missing `--env-file`, a directory, text that is not UTF-8
    /// or a malformed line (named by file and line, never by value).
    pub fn load(
        compose: &Path,
        env_files: &[PathBuf],
        process: BTreeMap<String, String>,
    ) -> Result<ProjectVars, CliError> {
        let paths: Vec<PathBuf> = if env_files.is_empty() {
            let disabled = process
                .get(DISABLE_ENV_FILE)
                .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "t"));
            let default = compose
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default()
                .join(".env");
            if disabled || !default.is_file() {
                Vec::new()
            } else {
                vec![default]
            }
        } else {
            env_files.to_vec()
        };
        let mut files = BTreeMap::new();
        for p in &paths {
            let shown = p.display();
            if p.is_dir() {
                return Err(CliError::Invalid(vec![format!(
                    "--env-file {shown}: is a directory"
                )]));
            }
            let bytes = std::fs::read(p).map_err(|e| {
                CliError::Invalid(vec![format!("env file {shown}: cannot be read: {e}")])
            })?;
            let text = String::from_utf8(bytes).map_err(|_| {
                CliError::Invalid(vec![format!("env file {shown}: not UTF-8 text")])
            })?;
            kompox_core::dotenv::parse_dotenv_into(&text, &mut files, &|k| process.get(k).cloned())
                .map_err(|e| CliError::Invalid(vec![format!("env file {shown}: {e}")]))?;
        }
        Ok(ProjectVars {
            process,
            files,
            read: paths,
            used: RefCell::default(),
        })
    }

    /// The value compose uses for `name` (the environment wins), remembering the lookup.
    pub fn lookup(&self, name: &str) -> Option<String> {
        self.used.borrow_mut().insert(name.to_owned());
        self.process
            .get(name)
            .or_else(|| self.files.get(name))
            .cloned()
    }

    /// Remembers the variables `text` (an env_file the compose file names) looks up.
    pub fn scan_env_file(&self, text: &str) {
        let _ = kompox_core::dotenv::parse_dotenv(text, &|k| self.lookup(k));
    }

    /// The variables to keep: those the files define, and those of the environment a
    /// lookup used, with compose's values. Keys that cannot be Secret keys are left out with
    /// a warning (no `${…}` can name them).
    pub fn kept(&self, warnings: &mut Vec<Warning>) -> BTreeMap<String, String> {
        let used = self.used.borrow();
        let names = self
            .files
            .keys()
            .chain(used.iter().filter(|k| self.process.contains_key(*k)));
        let mut out = BTreeMap::new();
        for k in names {
            let valid = !k.is_empty()
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !valid {
                warnings.push(Warning {
                    path: "env file".to_owned(),
                    message: format!("variable {k:?} left out: not a valid Secret key"),
                });
                continue;
            }
            if let Some(v) = self.process.get(k).or_else(|| self.files.get(k)) {
                out.insert(k.clone(), v.clone());
            }
        }
        out
    }

    /// Adds the Secret `<app>-dotenv` holding [`ProjectVars::kept`] to `sources` and names it
    /// last in `spec.compose.envFrom` (so it wins, as the CLI's variables do). With
    /// `always` false nothing is added when there is nothing to keep.
    pub fn attach(
        &self,
        app: &mut KompoxApp,
        sources: &mut Sources,
        warnings: &mut Vec<Warning>,
        always: bool,
    ) -> Option<String> {
        let kept = self.kept(warnings);
        if kept.is_empty() && !always {
            return None;
        }
        let name = format!(
            "{}-{SECRET_SUFFIX}",
            app.metadata.name.as_deref().unwrap_or_default()
        );
        sources.secrets.insert(
            name.clone(),
            Secret {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    ..ObjectMeta::default()
                },
                type_: Some("Opaque".to_owned()),
                data: Some(
                    kept.into_iter()
                        .map(|(k, v)| (k, ByteString(v.into_bytes())))
                        .collect(),
                ),
                ..Secret::default()
            },
        );
        let env_from = &mut app.spec.compose.env_from;
        env_from.retain(|e| e.secret_ref.as_ref().is_none_or(|r| r.name != name));
        env_from.push(ComposeEnvFrom {
            secret_ref: Some(OptionalRef {
                name: name.clone(),
                optional: None,
            }),
            ..ComposeEnvFrom::default()
        });
        Some(name)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "kompox-vars-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&d).unwrap_or_default();
        d
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn precedence_and_files() {
        let d = dir();
        let compose = d.join("compose.yml");
        std::fs::write(d.join(".env"), "A=dot\nB=dot\nC=${HOME_X}/c\n").unwrap_or_default();
        std::fs::write(d.join("one.env"), "A=one\nD=1\n").unwrap_or_default();
        std::fs::write(d.join("two.env"), "D=${D}2\n").unwrap_or_default();
        let process = env(&[("B", "proc"), ("HOME_X", "/h"), ("UNUSED", "x")]);
        struct Case {
            name: &'static str,
            files: Vec<PathBuf>,
            process: BTreeMap<String, String>,
            want: &'static [(&'static str, Option<&'static str>)],
        }
        let cases = [
            Case {
                name: "the default .env; the environment wins",
                files: vec![],
                process: process.clone(),
                want: &[
                    ("A", Some("dot")),
                    ("B", Some("proc")),
                    ("C", Some("/h/c")),
                    ("D", None),
                ],
            },
            Case {
                name: "--env-file replaces .env; later files win and see earlier values",
                files: vec![d.join("one.env"), d.join("two.env")],
                process: process.clone(),
                want: &[
                    ("A", Some("one")),
                    ("B", Some("proc")),
                    ("C", None),
                    ("D", Some("12")),
                ],
            },
            Case {
                name: "COMPOSE_DISABLE_ENV_FILE skips .env",
                files: vec![],
                process: env(&[(DISABLE_ENV_FILE, "true")]),
                want: &[("A", None)],
            },
        ];
        for c in cases {
            let v = match ProjectVars::load(&compose, &c.files, c.process) {
                Ok(v) => v,
                Err(e) => panic!("case {}: {e}", c.name),
            };
            for (k, want) in c.want {
                assert_eq!(v.lookup(k).as_deref(), *want, "case {}: {k}", c.name);
            }
        }
    }

    #[test]
    fn kept_variables_and_the_secret() {
        let d = dir();
        let compose = d.join("compose.yml");
        std::fs::write(d.join(".env"), "PW=s3cret\nclé=x\n").unwrap_or_default();
        let v = ProjectVars::load(
            &compose,
            &[],
            env(&[("TAG", "1.27"), ("PW", "from-env"), ("HOME", "/home/u")]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let _ = v.lookup("TAG");
        v.scan_env_file("X=${NOPE}\nHOME\n");
        let mut warnings = Vec::new();
        let kept = v.kept(&mut warnings);
        assert_eq!(
            kept,
            env(&[("HOME", "/home/u"), ("PW", "from-env"), ("TAG", "1.27")])
        );
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].message.contains("clé"), "{warnings:?}");
        let mut app = crate::project::default_app("web");
        let mut sources = Sources::default();
        let name = v.attach(&mut app, &mut sources, &mut warnings, false);
        assert_eq!(name.as_deref(), Some("web-dotenv"));
        assert_eq!(app.spec.compose.env_from.len(), 1);
        // Attaching again replaces the entry.
        let _ = v.attach(&mut app, &mut sources, &mut warnings, false);
        assert_eq!(app.spec.compose.env_from.len(), 1);
        assert!(!format!("{v:?}").contains("s3cret"));
    }

    #[test]
    fn errors_name_the_file_and_line_only() {
        let d = dir();
        let compose = d.join("compose.yml");
        let bad = d.join("bad.env");
        std::fs::write(&bad, "A=1\nPW=\"s3cret\n").unwrap_or_default();
        let cases: &[(&str, Vec<PathBuf>, &str)] = &[
            (
                "missing",
                vec![d.join("nope.env")],
                "nope.env: cannot be read",
            ),
            ("directory", vec![d.clone()], "is a directory"),
            (
                "unterminated",
                vec![bad],
                "bad.env: line 2: unterminated quoted value",
            ),
        ];
        for (name, files, want) in cases {
            let msg = match ProjectVars::load(&compose, files, BTreeMap::new()) {
                Err(CliError::Invalid(m)) => m.join("\n"),
                other => panic!("case {name}: {other:?}"),
            };
            assert!(msg.contains(want), "case {name}: {msg}");
            assert!(!msg.contains("s3cret"), "case {name}: {msg}");
        }
    }
}

//! Differential test against compose-spec's reference loader.
//!
//! For every compose project of the corpus (the samples and `tests/compose-corpus/*`), the
//! project is loaded twice:
//! - by `compose-oracle` (hack/tools/compose-oracle: compose-go, loaded as `docker compose
//!   config` loads it, built by `hack/build-tools.sh`), which prints per service what Docker
//!   would run;
//! - by `kubectl-kompox render -o json --show-secrets`, whose containers are read back the way
//!   the kubelet starts them: `envFrom` then `env` resolved against the rendered Secrets and
//!   ConfigMaps, `$(VAR)` references and `$$` expanded as Kubernetes does.
//!
//! Per service these fields must agree: image, entrypoint (`command`), command (`args`), the
//! environment after interpolation and env_file, the container ports (`ports` targets and
//! `expose`, with their protocol), working_dir, user (`securityContext`) and the healthcheck
//! (exec probe, period, timeout, retries, start period). Published ports and host IPs are
//! not compared: in the cluster a service is reached by name on its target port, and only
//! `spec.ingress` publishes one.
//!
//! Every difference must be listed in [`ALLOWED`] with its reason; the test fails on a new
//! difference and on an allowed one that disappeared (remove it from the list then).
//!
//! The oracle binary: `$KOMPOX_COMPOSE_ORACLE`, else `$KOMPOX_BIN/compose-oracle` as
//! `hack/lib/common.sh` sets it. `make test` builds it (`make up` → `hack/build-tools.sh`) and
//! sets `KOMPOX_REQUIRE_ORACLE=1`; with that set, or under CI (`CI` set), a missing oracle
//! fails the test. A plain `cargo test` without it skips this test with a loud message.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde_json::Value;

/// One compose project of the corpus.
struct Case {
    name: &'static str,
    /// Directory (relative to the repository) holding `compose.yml` and its files.
    dir: &'static str,
    /// The environment of the run (the process environment of both the oracle and
    /// `kubectl-kompox render`).
    env: &'static [(&'static str, &'static str)],
    /// `docker compose --env-file` files, relative to the case directory.
    env_files: &'static [&'static str],
    /// A KompoxApp stream for `--app` (relative to the repository); its `spec.files.mounts`
    /// under `/kompox/project/` are also written into the project for the oracle.
    app: Option<&'static str>,
}

const NO_ENV: &[(&str, &str)] = &[];

const fn sample(name: &'static str, dir: &'static str, app: &'static str) -> Case {
    Case {
        name,
        dir,
        env: NO_ENV,
        env_files: &[],
        app: Some(app),
    }
}

const fn corpus(name: &'static str, dir: &'static str) -> Case {
    Case {
        name,
        dir,
        env: NO_ENV,
        env_files: &[],
        app: None,
    }
}

const CASES: &[Case] = &[
    sample("gitea", "samples/gitea", "samples/gitea/app.yml"),
    sample(
        "wordpress",
        "samples/wordpress",
        "samples/wordpress/app.yml",
    ),
    sample(
        "nextcloud",
        "samples/nextcloud",
        "samples/nextcloud/app.yml",
    ),
    sample(
        "vaultwarden",
        "samples/vaultwarden",
        "samples/vaultwarden/app.yml",
    ),
    sample("miniflux", "samples/miniflux", "samples/miniflux/app.yml"),
    Case {
        env: &[
            ("TAG", "1.27"),
            ("NAME", "web"),
            ("EMPTY", ""),
            ("PORT", "8080"),
            ("DIR", "/srv"),
            ("HOST_VAR", "from-host"),
            ("UID_", "1000"),
        ],
        ..corpus("interpolation", "cli/tests/compose-corpus/interpolation")
    },
    Case {
        env: &[("TAG", "1.27"), ("OVERRIDDEN", "from-environment")],
        ..corpus("dotenv", "cli/tests/compose-corpus/dotenv")
    },
    Case {
        env_files: &["prod.env", "local.env"],
        ..corpus("env-file-flag", "cli/tests/compose-corpus/env-file-flag")
    },
    Case {
        env: &[("TAG", "1.27")],
        ..corpus("env-file", "cli/tests/compose-corpus/env-file")
    },
    Case {
        env: &[("TAG", "1.27")],
        ..corpus(
            "env-file-syntax",
            "cli/tests/compose-corpus/env-file-syntax",
        )
    },
    Case {
        env: &[("INHERITED", "from-environment")],
        ..corpus(
            "dotenv-deviations",
            "cli/tests/compose-corpus/dotenv-deviations",
        )
    },
    // Published files taken as they are: Immich's release docker-compose.yml with its .env,
    // and the Nextcloud image's MariaDB example.
    corpus("immich", "cli/tests/compose-corpus/immich"),
    corpus("nextcloud", "cli/tests/compose-corpus/nextcloud"),
    corpus("ports", "cli/tests/compose-corpus/ports"),
    corpus("commands", "cli/tests/compose-corpus/commands"),
    corpus("healthchecks", "cli/tests/compose-corpus/healthchecks"),
    corpus("names", "cli/tests/compose-corpus/names"),
    corpus("volume-names", "cli/tests/compose-corpus/volume-names"),
    corpus("extensions", "cli/tests/compose-corpus/extensions"),
    corpus("users", "cli/tests/compose-corpus/users"),
];

/// A known difference: `case`, `service` (or `*` for the whole project), `field`, and why;
/// `shows`, when not empty, is the difference exactly as the test prints it, so that a
/// documented deviation cannot change unnoticed.
struct Allowed {
    case: &'static str,
    service: &'static str,
    field: &'static str,
    shows: &'static str,
    reason: &'static str,
}

const fn allow(
    case: &'static str,
    service: &'static str,
    field: &'static str,
    reason: &'static str,
) -> Allowed {
    Allowed {
        case,
        service,
        field,
        shows: "",
        reason,
    }
}

const fn allow_exactly(
    case: &'static str,
    service: &'static str,
    field: &'static str,
    shows: &'static str,
    reason: &'static str,
) -> Allowed {
    Allowed {
        case,
        service,
        field,
        shows,
        reason,
    }
}

const ALLOWED: &[Allowed] = &[
    allow_exactly(
        "dotenv-deviations",
        "empty-key",
        "environment",
        "    : oracle Some(\"orphan\"), kompox None\n",
        "a `=value` line has no variable name: Kompox skips it (core/src/dotenv.rs), compose-go \
         keeps a variable named \"\", which no ${} can name and no container env can hold",
    ),
    allow_exactly(
        "dotenv-deviations",
        "bare-last",
        "environment",
        "    : oracle Some(\"INHERITED\"), kompox None\n    INHERITED: oracle None, kompox \
         Some(\"from-environment\")\n",
        "`KEY` alone on the last line without a final newline: Kompox inherits KEY as for a `KEY` \
         line anywhere else (core/src/dotenv.rs); compose-go stores \"KEY\" as the value of a \
         variable named \"\" (the same line with a newline inherits in both: service \
         bare-newline)",
    ),
    allow(
        "commands",
        "cleared-entrypoint",
        "entrypoint",
        "Kubernetes cannot run an image without its ENTRYPOINT (an empty command means the \
         image's); render warns at services.<name>.entrypoint",
    ),
    allow(
        "extensions",
        "debug",
        "image",
        "Kompox renders every service, whatever its profiles (compose starts a profiled service \
         only with --profile); render warns at services.<name>.profiles",
    ),
    allow(
        "users",
        "named",
        "user",
        "Kubernetes takes numeric IDs only (runAsUser): a user name is left to the image, with a \
         warning at services.<name>.user",
    ),
    allow(
        "users",
        "named-group",
        "user",
        "Kubernetes takes numeric IDs only (runAsGroup): a group name is left to the image, with \
         a warning at services.<name>.user",
    ),
];

/// What one service runs, in the terms both sides are compared in.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Observed {
    image: String,
    /// `None`: the image's ENTRYPOINT. `Some([])`: cleared (compose `entrypoint: []`).
    entrypoint: Option<Vec<String>>,
    /// `None`: the image's CMD (compose `command: []` means the same).
    command: Option<Vec<String>>,
    environment: BTreeMap<String, String>,
    /// (port, protocol in lowercase), sorted, unique.
    ports: Vec<(u32, String)>,
    working_dir: String,
    /// `uid[:gid]` (`root` → `0`), names kept as written.
    user: String,
    healthcheck: Option<Health>,
}

/// A healthcheck as the probe that runs it, compose's defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Health {
    exec: Vec<String>,
    interval_s: u64,
    timeout_s: u64,
    retries: u64,
    start_period_s: u64,
}

const FIELDS: [&str; 8] = [
    "image",
    "entrypoint",
    "command",
    "environment",
    "ports",
    "working_dir",
    "user",
    "healthcheck",
];

impl Observed {
    fn field(&self, name: &str) -> String {
        match name {
            "image" => format!("{:?}", self.image),
            "entrypoint" => format!("{:?}", self.entrypoint),
            "command" => format!("{:?}", self.command),
            "environment" => format!("{:?}", self.environment),
            "ports" => format!("{:?}", self.ports),
            "working_dir" => format!("{:?}", self.working_dir),
            "user" => format!("{:?}", self.user),
            "healthcheck" => format!("{:?}", self.healthcheck),
            _ => String::new(),
        }
    }

    /// A readable per-field diff (environment key by key).
    fn diff(&self, other: &Self, field: &str) -> String {
        if field != "environment" {
            return format!(
                "    oracle: {}\n    kompox: {}\n",
                self.field(field),
                other.field(field)
            );
        }
        let mut out = String::new();
        let keys: BTreeSet<&String> = self
            .environment
            .keys()
            .chain(other.environment.keys())
            .collect();
        for k in keys {
            let (a, b) = (self.environment.get(k), other.environment.get(k));
            if a != b {
                let _ = writeln!(out, "    {k}: oracle {a:?}, kompox {b:?}");
            }
        }
        out
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The oracle binary, or `None` (after saying so loudly) when it is not built and not
/// required.
fn oracle() -> Option<PathBuf> {
    let path = match std::env::var_os("KOMPOX_COMPOSE_ORACLE") {
        Some(p) => PathBuf::from(p),
        None => {
            let script = repo().join("hack/lib/common.sh");
            let out = Command::new("bash")
                .arg("-c")
                .arg("source \"$1\" && printf %s \"$KOMPOX_BIN\"")
                .arg("bash")
                .arg(&script)
                .output();
            match out {
                Ok(o) if o.status.success() => {
                    PathBuf::from(text(&o.stdout)).join("compose-oracle")
                }
                Ok(o) => panic!("{}: {}", script.display(), text(&o.stderr)),
                Err(e) => panic!("running bash for {}: {e}", script.display()),
            }
        }
    };
    if path.is_file() {
        return Some(path);
    }
    let required = std::env::var_os("KOMPOX_REQUIRE_ORACLE").is_some_and(|v| !v.is_empty())
        || std::env::var_os("CI").is_some_and(|v| !v.is_empty());
    assert!(
        !required,
        "the compose oracle {} is missing: run hack/build-tools.sh (make test does)",
        path.display()
    );
    eprintln!(
        "\n{bar}\nSKIPPED: the compose differential test needs {} (hack/build-tools.sh builds it;\n\
         make test builds it and requires it). Nothing was compared.\n{bar}\n",
        path.display(),
        bar = "!".repeat(78)
    );
    None
}

/// Copies `from` (files and subdirectories, dotfiles included) into `to`.
fn copy_dir(from: &Path, to: &Path) {
    let entries = match std::fs::read_dir(from) {
        Ok(e) => e,
        Err(e) => panic!("{}: {e}", from.display()),
    };
    if let Err(e) = std::fs::create_dir_all(to) {
        panic!("{}: {e}", to.display());
    }
    for entry in entries.flatten() {
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if src.is_dir() {
            copy_dir(&src, &dst);
        } else if let Err(e) = std::fs::copy(&src, &dst) {
            panic!("{} → {}: {e}", src.display(), dst.display());
        }
    }
}

fn write(path: &Path, content: &[u8]) {
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    if let Err(e) = std::fs::write(path, content) {
        panic!("{}: {e}", path.display());
    }
}

/// Writes the project files an `--app` stream provides through `spec.files.mounts` (paths
/// under `/kompox/project/`), so the oracle reads what Kompox reads.
fn materialize_app_files(app: &Path, project: &Path) {
    let yaml = std::fs::read_to_string(app).unwrap_or_default();
    let bundle = match kompox_core::render::Bundle::parse(&yaml) {
        Ok(b) => b,
        Err(e) => panic!("{}: {e:?}", app.display()),
    };
    for a in &bundle.apps {
        for m in a.spec.files.iter().flat_map(|f| &f.mounts) {
            let Some(rel) = m.path.strip_prefix("/kompox/project/") else {
                continue;
            };
            let content = if let Some(r) = &m.secret_ref {
                bundle.sources.secrets.get(&r.name).and_then(|s| {
                    s.string_data
                        .as_ref()
                        .and_then(|d| d.get(&r.key))
                        .map(|v| v.clone().into_bytes())
                        .or_else(|| {
                            s.data
                                .as_ref()
                                .and_then(|d| d.get(&r.key))
                                .map(|b| b.0.clone())
                        })
                })
            } else if let Some(r) = &m.config_map_ref {
                bundle
                    .sources
                    .config_maps
                    .get(&r.name)
                    .and_then(|c| c.data.as_ref())
                    .and_then(|d| d.get(&r.key))
                    .map(|v| v.clone().into_bytes())
            } else {
                None
            };
            match content {
                Some(c) => write(&project.join(rel), &c),
                None => panic!("{}: no content for {}", app.display(), m.path),
            }
        }
    }
}

/// The oracle's view: services by name, or the loader's error.
fn run_oracle(
    oracle: &Path,
    case: &Case,
    project: &Path,
) -> Result<BTreeMap<String, Observed>, String> {
    let mut cmd = Command::new(oracle);
    cmd.env_clear().arg("-f").arg(project.join("compose.yml"));
    for f in case.env_files {
        cmd.arg("--env-file").arg(project.join(f));
    }
    for (k, v) in case.env {
        cmd.env(k, v);
    }
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) => panic!("running {}: {e}", oracle.display()),
    };
    assert!(
        out.status.success(),
        "{}: compose-oracle failed: {}",
        case.name,
        text(&out.stderr)
    );
    let v: Value = match serde_json::from_slice(&out.stdout) {
        Ok(v) => v,
        Err(e) => panic!(
            "{}: compose-oracle printed no JSON ({e}): {}",
            case.name,
            text(&out.stdout)
        ),
    };
    if let Some(e) = v["error"].as_str() {
        return Err(e.to_owned());
    }
    let mut services = BTreeMap::new();
    for (name, s) in v["services"].as_object().into_iter().flatten() {
        services.insert(name.clone(), oracle_service(s));
    }
    for d in v["disabled"].as_array().into_iter().flatten() {
        if let Some(name) = d.as_str() {
            services.insert(
                name.to_owned(),
                Observed {
                    image: "<not started: profile not active>".to_owned(),
                    ..Observed::default()
                },
            );
        }
    }
    Ok(services)
}

fn strings(v: &Value) -> Option<Vec<String>> {
    v.as_array().map(|a| {
        a.iter()
            .map(|s| s.as_str().unwrap_or_default().to_owned())
            .collect()
    })
}

/// `uid[:gid]` with `root` as `0`.
fn normalize_user(user: &str) -> String {
    user.split(':')
        .map(|p| if p == "root" { "0" } else { p })
        .collect::<Vec<_>>()
        .join(":")
}

/// Compose's healthcheck defaults (Docker's): interval 30s, timeout 30s, retries 3.
const HC_INTERVAL: u64 = 30;
const HC_TIMEOUT: u64 = 30;
const HC_RETRIES: u64 = 3;

fn oracle_service(s: &Value) -> Observed {
    let mut ports = BTreeSet::new();
    for p in s["ports"].as_array().into_iter().flatten() {
        let target = p["target"]
            .as_u64()
            .and_then(|t| u32::try_from(t).ok())
            .unwrap_or(0);
        let proto = p["protocol"].as_str().unwrap_or("tcp").to_lowercase();
        ports.insert((target, proto));
    }
    // The loader keeps `expose` as written: PORT[-END][/PROTOCOL].
    for e in s["expose"].as_array().into_iter().flatten() {
        let e = e.as_str().unwrap_or_default();
        let (range, proto) = e.split_once('/').unwrap_or((e, "tcp"));
        let (lo, hi) = range.split_once('-').unwrap_or((range, range));
        if let (Ok(lo), Ok(hi)) = (lo.parse::<u32>(), hi.parse::<u32>()) {
            for p in lo..=hi {
                ports.insert((p, proto.to_lowercase()));
            }
        }
    }
    let healthcheck = s["healthcheck"].as_object().and_then(|h| {
        let test = strings(&h["test"]).unwrap_or_default();
        if h["disable"].as_bool() == Some(true) {
            return None;
        }
        let exec = match test.split_first() {
            Some((first, rest)) if first == "CMD" => rest.to_vec(),
            Some((first, rest)) if first == "CMD-SHELL" => {
                vec!["/bin/sh".to_owned(), "-c".to_owned(), rest.join(" ")]
            }
            _ => return None, // NONE, or no test (the image's HEALTHCHECK)
        };
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let secs = |k: &str, d: u64| h[k].as_f64().map_or(d, |f| f.ceil() as u64);
        Some(Health {
            exec,
            interval_s: secs("interval", HC_INTERVAL),
            timeout_s: secs("timeout", HC_TIMEOUT),
            retries: h["retries"].as_u64().unwrap_or(HC_RETRIES),
            start_period_s: secs("start_period", 0),
        })
    });
    Observed {
        image: s["image"].as_str().unwrap_or_default().to_owned(),
        entrypoint: strings(&s["entrypoint"]),
        // An empty command leaves the image's CMD, as no command does.
        command: strings(&s["command"]).filter(|c| !c.is_empty()),
        environment: s["environment"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect(),
        ports: ports.into_iter().collect(),
        working_dir: s["working_dir"].as_str().unwrap_or_default().to_owned(),
        user: normalize_user(s["user"].as_str().unwrap_or_default()),
        healthcheck,
    }
}

/// Kubernetes' `$(VAR)` expansion (the kubelet's, for env values, command and args): `$$` is
/// `$`, `$(NAME)` is the variable's value when defined and is kept as written otherwise.
fn k8s_expand(input: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(more) = after.strip_prefix('$') {
            out.push('$');
            rest = more;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(end) => {
                    let name = &body[..end];
                    match vars.get(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &body[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = body;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Rendered Secrets and ConfigMaps by (kind, name): key → value.
type Objects = BTreeMap<(String, String), BTreeMap<String, String>>;

fn object_data(items: &[Value]) -> Objects {
    let mut out = Objects::new();
    for o in items {
        let kind = o["kind"].as_str().unwrap_or_default();
        if kind != "Secret" && kind != "ConfigMap" {
            continue;
        }
        let name = o["metadata"]["name"].as_str().unwrap_or_default();
        let mut data = BTreeMap::new();
        for (k, v) in o["data"].as_object().into_iter().flatten() {
            let v = v.as_str().unwrap_or_default();
            let v = if kind == "Secret" {
                base64::engine::general_purpose::STANDARD
                    .decode(v)
                    .map(|b| text(&b))
                    .unwrap_or_else(|_| format!("<undecodable {v}>"))
            } else {
                v.to_owned()
            };
            data.insert(k.clone(), v);
        }
        for (k, v) in o["stringData"].as_object().into_iter().flatten() {
            data.insert(k.clone(), v.as_str().unwrap_or_default().to_owned());
        }
        out.insert((kind.to_owned(), name.to_owned()), data);
    }
    out
}

fn lookup(objects: &Objects, kind: &str, r: &Value) -> String {
    let (name, key) = (
        r["name"].as_str().unwrap_or_default(),
        r["key"].as_str().unwrap_or_default(),
    );
    objects
        .get(&(kind.to_owned(), name.to_owned()))
        .and_then(|d| d.get(key))
        .cloned()
        .unwrap_or_else(|| format!("<{kind} {name} key {key}: not rendered>"))
}

/// The environment the kubelet gives a container: `envFrom` in order, then `env` in order,
/// each `env` value expanded against the variables defined before it.
fn container_env(c: &Value, objects: &Objects) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for from in c["envFrom"].as_array().into_iter().flatten() {
        let prefix = from["prefix"].as_str().unwrap_or_default();
        for (kind, r) in [
            ("Secret", &from["secretRef"]),
            ("ConfigMap", &from["configMapRef"]),
        ] {
            let Some(name) = r["name"].as_str() else {
                continue;
            };
            match objects.get(&(kind.to_owned(), name.to_owned())) {
                Some(d) => {
                    for (k, v) in d {
                        env.insert(format!("{prefix}{k}"), v.clone());
                    }
                }
                None => {
                    env.insert(
                        format!("<envFrom {kind} {name}>"),
                        "<not rendered>".to_owned(),
                    );
                }
            }
        }
    }
    for e in c["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap_or_default().to_owned();
        let value = if let Some(v) = e["value"].as_str() {
            k8s_expand(v, &env)
        } else if e["valueFrom"]["secretKeyRef"].is_object() {
            lookup(objects, "Secret", &e["valueFrom"]["secretKeyRef"])
        } else if e["valueFrom"]["configMapKeyRef"].is_object() {
            lookup(objects, "ConfigMap", &e["valueFrom"]["configMapKeyRef"])
        } else if e["valueFrom"].is_object() {
            format!("<valueFrom {}>", e["valueFrom"])
        } else {
            String::new()
        };
        env.insert(name, value);
    }
    env
}

fn num(v: &Value, default: u64) -> u64 {
    v.as_u64().unwrap_or(default)
}

fn kompox_container(c: &Value, pod: &Value, objects: &Objects) -> Observed {
    let environment = container_env(c, objects);
    let expand = |v: &Value| {
        strings(v)
            .filter(|l| !l.is_empty())
            .map(|l| l.iter().map(|s| k8s_expand(s, &environment)).collect())
    };
    let mut ports = BTreeSet::new();
    for p in c["ports"].as_array().into_iter().flatten() {
        let port = p["containerPort"]
            .as_u64()
            .and_then(|t| u32::try_from(t).ok())
            .unwrap_or(0);
        let proto = p["protocol"].as_str().unwrap_or("TCP").to_lowercase();
        ports.insert((port, proto));
    }
    let sc = |k: &str| {
        c["securityContext"][k]
            .as_i64()
            .or_else(|| pod["securityContext"][k].as_i64())
    };
    let user = match (sc("runAsUser"), sc("runAsGroup")) {
        (Some(u), Some(g)) => format!("{u}:{g}"),
        (Some(u), None) => u.to_string(),
        (None, Some(g)) => format!("<image user>:{g}"),
        (None, None) => String::new(),
    };
    let ready = &c["readinessProbe"];
    let healthcheck = strings(&ready["exec"]["command"]).map(|exec| Health {
        exec,
        interval_s: num(&ready["periodSeconds"], 10),
        timeout_s: num(&ready["timeoutSeconds"], 1),
        retries: num(&ready["failureThreshold"], 3),
        start_period_s: num(&c["livenessProbe"]["initialDelaySeconds"], 0),
    });
    let mut environment = environment.clone();
    if pod["enableServiceLinks"] != Value::Bool(false) {
        environment.insert(
            "<service links>".to_owned(),
            "the kubelet adds *_SERVICE_HOST/*_PORT variables".to_owned(),
        );
    }
    Observed {
        image: c["image"].as_str().unwrap_or_default().to_owned(),
        entrypoint: expand(&c["command"]),
        command: expand(&c["args"]),
        environment,
        ports: ports.into_iter().collect(),
        working_dir: c["workingDir"].as_str().unwrap_or_default().to_owned(),
        user,
        healthcheck,
    }
}

/// Kompox's view: containers (and init containers) of the rendered workloads by name, or the
/// render's error.
fn run_kompox(case: &Case, project: &Path) -> Result<BTreeMap<String, Observed>, String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-kompox"));
    cmd.env_clear()
        .args([
            "render",
            "-o",
            "json",
            "--show-secrets",
            "--provider",
            "aks",
            "--region",
            "japaneast",
            "-f",
        ])
        .arg(project.join("compose.yml"));
    if let Some(app) = case.app {
        cmd.arg("--app").arg(repo().join(app));
    }
    for f in case.env_files {
        cmd.arg("--env-file").arg(project.join(f));
    }
    for (k, v) in case.env {
        cmd.env(k, v);
    }
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) => panic!("running kubectl-kompox: {e}"),
    };
    if !out.status.success() {
        return Err(text(&out.stderr).trim().to_owned());
    }
    let list: Value = match serde_json::from_slice(&out.stdout) {
        Ok(v) => v,
        Err(e) => panic!("{}: render printed no JSON ({e})", case.name),
    };
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let objects = object_data(&items);
    let mut services = BTreeMap::new();
    for o in &items {
        let pod = match o["kind"].as_str() {
            Some("Deployment" | "StatefulSet" | "Job") => &o["spec"]["template"]["spec"],
            _ => continue,
        };
        for c in ["initContainers", "containers"]
            .iter()
            .flat_map(|k| pod[*k].as_array().into_iter().flatten())
        {
            let name = c["name"].as_str().unwrap_or_default();
            if name == kompox_core::render::SUBPATH_INIT_CONTAINER {
                continue; // Kompox's own helper: creates the volumes' sub-directories
            }
            services.insert(name.to_owned(), kompox_container(c, pod, &objects));
        }
    }
    Ok(services)
}

/// The container Kompox renders for compose service `name`: the same name, or the derived
/// Kubernetes name (lowercase, `_` and `.` → `-`).
fn kompox_name(name: &str, kompox: &BTreeMap<String, Observed>) -> Option<String> {
    if kompox.contains_key(name) {
        return Some(name.to_owned());
    }
    let derived: String = name
        .chars()
        .map(|c| match c {
            '_' | '.' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    kompox.contains_key(&derived).then_some(derived)
}

/// One difference: (case, service, field) and its description.
type Diff = ((String, String, String), String);

fn compare(case: &Case, oracle: &Path) -> Vec<Diff> {
    let tmp = std::env::temp_dir().join(format!(
        "kompox-oracle-{}-{}",
        std::process::id(),
        case.name
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    copy_dir(&repo().join(case.dir), &tmp);
    if let Some(app) = case.app {
        materialize_app_files(&repo().join(app), &tmp);
    }
    let key =
        |service: &str, field: &str| (case.name.to_owned(), service.to_owned(), field.to_owned());
    let mut diffs = Vec::new();
    match (run_oracle(oracle, case, &tmp), run_kompox(case, &tmp)) {
        (Err(o), Err(k)) => {
            diffs.push((
                key("*", "load"),
                format!("    both refuse: oracle {o:?}\n    kompox {k:?}\n"),
            ));
        }
        (Err(o), Ok(_)) => {
            diffs.push((
                key("*", "load"),
                format!("    the reference loader refuses: {o}\n    Kompox renders\n"),
            ));
        }
        (Ok(_), Err(k)) => {
            diffs.push((
                key("*", "load"),
                format!(
                    "    the reference loader accepts; Kompox refuses:\n    {}\n",
                    k.replace('\n', "\n    ")
                ),
            ));
        }
        (Ok(want), Ok(got)) => {
            let mut matched = BTreeSet::new();
            for (name, w) in &want {
                let Some(g) = kompox_name(name, &got).and_then(|c| {
                    let g = got.get(&c);
                    matched.insert(c);
                    g
                }) else {
                    diffs.push((
                        key(name, "container"),
                        "    no container renders this service\n".to_owned(),
                    ));
                    continue;
                };
                for f in FIELDS {
                    if w.field(f) != g.field(f) {
                        diffs.push((key(name, f), w.diff(g, f)));
                    }
                }
            }
            for name in got.keys() {
                if !matched.contains(name) {
                    diffs.push((
                        key(name, "container"),
                        "    a container for no compose service\n".to_owned(),
                    ));
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    diffs
}

#[test]
fn kompox_runs_what_the_reference_loader_loads() {
    let Some(oracle) = oracle() else {
        return;
    };
    let mut found: BTreeMap<(String, String, String), String> = BTreeMap::new();
    for case in CASES {
        found.extend(compare(case, &oracle));
    }
    let allowed: BTreeMap<(String, String, String), &Allowed> = ALLOWED
        .iter()
        .map(|a| {
            (
                (a.case.to_owned(), a.service.to_owned(), a.field.to_owned()),
                a,
            )
        })
        .collect();
    let mut report = String::new();
    for (k, d) in &found {
        if !allowed.contains_key(k) {
            let _ = write!(report, "NEW DIFFERENCE {}/{}.{}:\n{d}", k.0, k.1, k.2);
        }
    }
    for (k, a) in &allowed {
        if !found.contains_key(k) {
            let _ = writeln!(
                report,
                "ALLOWED DIFFERENCE GONE {}/{}.{} (was: {}): remove it from ALLOWED",
                k.0, k.1, k.2, a.reason
            );
        }
    }
    for (k, d) in &found {
        if let Some(a) = allowed.get(k) {
            eprintln!("allowed {}/{}.{} ({}):\n{d}", k.0, k.1, k.2, a.reason);
            if !a.shows.is_empty() && d != a.shows {
                let _ = write!(
                    report,
                    "ALLOWED DIFFERENCE CHANGED {}/{}.{} (documented as: {}):\n  was:\n{}  now:\n{d}",
                    k.0, k.1, k.2, a.reason, a.shows
                );
            }
        }
    }
    assert!(
        report.is_empty(),
        "Kompox differs from compose-go:\n{report}"
    );
}

#[test]
fn kubernetes_expansion_as_the_kubelet_does_it() {
    let vars = BTreeMap::from([("A".to_owned(), "a".to_owned())]);
    for (name, input, want) in [
        ("defined", "x$(A)y", "xay"),
        ("undefined kept", "$(B)", "$(B)"),
        ("escaped", "$$(A)", "$(A)"),
        ("double dollar", "$$", "$"),
        ("lone dollar", "a$b", "a$b"),
        ("trailing dollar", "a$", "a$"),
        ("unterminated", "$(A", "$(A"),
    ] {
        assert_eq!(k8s_expand(input, &vars), want, "{name}");
    }
}

#[test]
fn every_case_directory_is_in_the_table() {
    let dir = repo().join("cli/tests/compose-corpus");
    let listed: BTreeSet<&str> = CASES.iter().map(|c| c.dir).collect();
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let rel = format!(
            "cli/tests/compose-corpus/{}",
            entry.file_name().to_string_lossy()
        );
        assert!(listed.contains(rel.as_str()), "{rel} is not in CASES");
    }
    for a in ALLOWED {
        assert!(
            !a.reason.is_empty(),
            "{}/{}.{}: no reason",
            a.case,
            a.service,
            a.field
        );
        assert!(
            CASES.iter().any(|c| c.name == a.case),
            "ALLOWED names no case {:?}",
            a.case
        );
    }
}

/// Command strings built from the pieces that matter to splitting and interpolation (quotes,
/// backslashes, `$` forms, `$(…)`, backquotes, shell operators, blanks, unicode), eight
/// services a project, both loaders on each project: the same projects must be refused, and
/// accepted ones must give every service the same words. Deterministic (fixed seed).
#[test]
fn generated_command_strings_split_as_compose_splits() {
    // Balanced pieces, and rarely an unbalanced one (which makes the project invalid).
    const PIECES: &[&str] = &[
        "a",
        "b c",
        "é",
        " ",
        "  ",
        "\t",
        "\n",
        "\\\\",
        "\\\"",
        "\\ ",
        "\\n",
        "$",
        "$$",
        "$X",
        "${X}",
        "${X:-d e}",
        "${U-}",
        "$1",
        ";",
        "&&",
        "|",
        ">",
        "2>&1",
        "<",
        "#",
        "=",
        "{",
        "}",
        "--flag=1",
        "''",
        "\"\"",
        "'a b'",
        "\"a $X\"",
        "\"a\\nb\"",
        "'a\\nb'",
        "$(echo a b)",
        "`id -u`",
        "\"it's\"",
        "'say \"hi\"'",
        "\"$(x)\"",
    ];
    const UNBALANCED: &[&str] = &["'", "\"", "`", "(", ")", "$(", "${", "\\"];
    const FILES: usize = 40;
    const PER_FILE: usize = 4;
    let Some(oracle) = oracle() else {
        return;
    };
    let case = Case {
        env: &[("X", "x y")],
        ..corpus("generated-commands", "")
    };
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        usize::try_from(state % n as u64).unwrap_or(0)
    };
    let (mut agreed, mut both_refused, mut report) = (0, 0, String::new());
    for f in 0..FILES {
        let mut compose = String::from("services:\n");
        let mut commands = BTreeMap::new();
        for s in 0..PER_FILE {
            let command: String = (0..1 + next(8))
                .map(|_| {
                    if next(40) == 0 {
                        UNBALANCED[next(UNBALANCED.len())]
                    } else {
                        PIECES[next(PIECES.len())]
                    }
                })
                .collect();
            let _ = write!(
                compose,
                "  s{s}:\n    image: busybox\n    command: {}\n",
                serde_json::Value::String(command.clone())
            );
            commands.insert(format!("s{s}"), command);
        }
        let dir =
            std::env::temp_dir().join(format!("kompox-oracle-{}-commands-{f}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        write(&dir.join("compose.yml"), compose.as_bytes());
        match (run_oracle(&oracle, &case, &dir), run_kompox(&case, &dir)) {
            (Err(_), Err(_)) => both_refused += 1,
            (Ok(want), Ok(got)) => {
                for (name, w) in &want {
                    let g = got.get(name).map(|g| &g.command);
                    if g == Some(&w.command) {
                        agreed += 1;
                    } else {
                        let _ = writeln!(
                            report,
                            "command {:?}:\n    oracle: {:?}\n    kompox: {:?}",
                            commands.get(name).map_or("", String::as_str),
                            w.command,
                            g
                        );
                    }
                }
            }
            (o, k) => {
                let _ = writeln!(
                    report,
                    "project {f} ({:?}):\n    oracle: {}\n    kompox: {}",
                    commands.values().collect::<Vec<_>>(),
                    o.err().unwrap_or_else(|| "accepts".to_owned()),
                    k.err().unwrap_or_else(|| "accepts".to_owned()),
                );
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    eprintln!("generated commands: {agreed} agreed, {both_refused} projects refused by both");
    assert!(
        report.is_empty(),
        "Kompox splits differently from compose-go:\n{report}"
    );
    assert!(
        agreed >= FILES * PER_FILE / 4,
        "only {agreed} commands compared"
    );
}

/// Invalid projects: the reference loader refuses them, and so must Kompox (an error, not a
/// broken object), unless the entry names the reason for the difference; the test fails when
/// a declared difference disappears too.
#[test]
fn kompox_refuses_what_the_reference_loader_refuses() {
    /// (name, service body under `services: {a: …}`, the reason when the loaders differ)
    const REFUSALS: &[(&str, &str, Option<&str>)] = &[
        (
            "assign default",
            "image: x\nenvironment: {A: \"${A:=x}\"}",
            None,
        ),
        ("unterminated brace", "image: \"x${A\"", None),
        ("required variable", "image: \"${REQ:?must be set}\"", None),
        (
            "unmatched quote in command",
            "image: x\ncommand: echo \"open",
            None,
        ),
        (
            "parenthesis in command",
            "image: x\ncommand: echo (x)",
            None,
        ),
        ("port out of range", "image: x\nports: [\"70000:80\"]", None),
        ("port not a number", "image: x\nports: [\"abc\"]", None),
        (
            "unknown protocol",
            "image: x\nports: [\"8080:80/xyz\"]",
            None,
        ),
        ("unknown dependency", "image: x\ndepends_on: [ghost]", None),
        (
            "depends on itself",
            "image: x\ndepends_on: {a: {condition: service_started}}",
            None,
        ),
        (
            "undeclared volume",
            "image: x\nvolumes: [\"undeclared:/x\"]",
            None,
        ),
        (
            "duration without unit",
            "image: x\nhealthcheck: {test: [CMD, x], interval: 10}",
            None,
        ),
        (
            "bad duration",
            "image: x\nhealthcheck: {test: [CMD, x], interval: 10q}",
            None,
        ),
        (
            "bad memory",
            "image: x\ndeploy: {resources: {limits: {memory: 12QB}}}",
            None,
        ),
        (
            "list as a variable",
            "image: x\nenvironment: {A: [1, 2]}",
            None,
        ),
        ("duplicate key", "image: x\nimage: y", None),
        (
            "missing env_file",
            "image: x\nenv_file: [./missing.env]",
            None,
        ),
        ("tmpfs a number", "image: x\ntmpfs: 5", None),
        (
            "numeric user",
            "image: x\nuser: 1000",
            Some("Kompox reads a number where compose's schema wants a string: the same user"),
        ),
        (
            "numbers in a command list",
            "image: x\ncommand: [sleep, 10]",
            Some("Kompox reads numbers in a command list as their text, as Docker would run them"),
        ),
        (
            "unknown key",
            "image: x\nunknown_key: 1",
            Some(
                "Kompox warns at services.a.unknown_key and ignores it (compose's schema refuses)",
            ),
        ),
        (
            "expose not a port",
            "image: x\nexpose: [\"abc\"]",
            Some(
                "compose-go passes expose entries on unchecked (Docker refuses the container later); Kompox refuses at once",
            ),
        ),
        (
            "build without image",
            "build: .",
            Some("Kompox deploys images and does not build them: services.a.image is required"),
        ),
        (
            "defaults nested 17 deep",
            "image: \"x${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-y}}}}}}}}}}}}}}}}}\"",
            Some(
                "Kompox refuses ${} defaults nested deeper than 16 (a work budget, \
                 core/src/compose/interpolate.rs); compose-go has no limit",
            ),
        ),
        (
            "image reference with an empty tag",
            "image: \"nginx:\"",
            Some(
                "compose-go accepts any image string at load time (Docker refuses it when it \
                 pulls); Kompox checks the reference grammar (core/src/compose/image.rs) so that \
                 `nginx:${TAG}` with TAG empty is an error naming the field, not a Pod that never \
                 starts",
            ),
        ),
        (
            "image reference in capitals",
            "image: \"Nginx\"",
            Some(
                "compose-go accepts any image string at load time; Kompox checks the reference \
                 grammar (repository names are lower-case)",
            ),
        ),
    ];
    let Some(oracle) = oracle() else {
        return;
    };
    let case = corpus("refusals", "");
    let mut report = String::new();
    for (i, (name, body, reason)) in REFUSALS.iter().enumerate() {
        let dir =
            std::env::temp_dir().join(format!("kompox-oracle-{}-refusal-{i}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let compose = format!("services:\n  a:\n    {}\n", body.replace('\n', "\n    "));
        write(&dir.join("compose.yml"), compose.as_bytes());
        let oracle_refuses = run_oracle(&oracle, &case, &dir).is_err();
        let kompox = run_kompox(&case, &dir);
        let _ = std::fs::remove_dir_all(&dir);
        match (oracle_refuses, kompox.is_err(), reason) {
            (true, true, None) => {}
            (o, k, Some(_)) if o != k => {}
            (o, k, reason) => {
                let _ = writeln!(
                    report,
                    "{name:?}: the reference loader {}, Kompox {}{}:\n{compose}",
                    if o { "refuses" } else { "accepts" },
                    if k { "refuses" } else { "accepts" },
                    match reason {
                        Some(r) => format!(" (the declared difference is gone: {r})"),
                        None => String::new(),
                    }
                );
            }
        }
    }
    assert!(report.is_empty(), "{report}");
}

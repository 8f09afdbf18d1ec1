//! One service.

use std::collections::BTreeMap;

use super::keys::Scope;
use super::model::{
    Build, Dependency, DependencyCondition, FileMount, HealthTest, Healthcheck, IdOrName, Project,
    Resources, Restart, Service, User,
};
use super::walk::{Ctx, child, index};
use super::yaml::Value;

/// Which of the two file-object kinds a service entry refers to.
#[derive(Clone, Copy)]
enum FileKind {
    Config,
    Secret,
}

/// Legacy service-level resource keys, reconciled with `deploy` at the end.
#[derive(Default)]
struct Legacy {
    cpus: Option<u64>,
    mem_limit: Option<u64>,
    mem_reservation: Option<u64>,
    scale: Option<u32>,
}

/// Walks `services.<name>`; `project` holds the top-level volumes/configs/secrets already.
pub(crate) fn service(ctx: &mut Ctx<'_>, path: &str, v: &Value, project: &Project) -> Service {
    let mut svc = Service::default();
    let entries = match v {
        Value::Map(entries) => entries.as_slice(),
        Value::Null => &[],
        other => {
            ctx.expected(path, "a mapping", other);
            return svc;
        }
    };
    let mut legacy = Legacy::default();
    let mut deploy_replicas = None;
    for (key, value) in entries {
        if key == "x-kompox" {
            svc.kompox = super::extensions::kompox_service(ctx, &child(path, key), value);
            continue;
        }
        if !ctx.dispose_key(Scope::Service, path, key) {
            continue;
        }
        let at = child(path, key);
        match key.as_str() {
            "image" => {
                svc.image = ctx.string(&at, value);
                if let Some(image) = svc.image.as_deref() {
                    if image.is_empty() {
                        ctx.error(&at, "must not be empty");
                    } else if let Err(why) = super::image::check_image_reference(image) {
                        ctx.error(&at, format!("invalid image reference {image:?}: {why}"));
                    }
                }
            }
            "build" => svc.build = build(ctx, &at, value),
            "command" => svc.command = command(ctx, &at, value),
            "entrypoint" => {
                svc.entrypoint = command(ctx, &at, value);
                if svc.entrypoint.as_ref().is_some_and(Vec::is_empty) {
                    ctx.warn(
                        &at,
                        "empty: Docker then runs the image without its ENTRYPOINT, which Kubernetes cannot do; the image's ENTRYPOINT runs (write the full entrypoint instead)",
                    );
                }
            }
            "environment" => {
                (svc.environment, svc.secret_environment) =
                    super::env::environment(ctx, &at, value);
            }
            "env_file" => svc.env_file = super::env::env_file(ctx, &at, value),
            "ports" => svc.ports = super::ports::ports(ctx, &at, value),
            "expose" => svc.expose = super::ports::expose(ctx, &at, value),
            "volumes" => {
                let mut m = super::mounts::volumes(ctx, &at, value, &project.volumes);
                svc.mounts.append(&mut m);
            }
            "tmpfs" => {
                let mut m = super::mounts::tmpfs(ctx, &at, value);
                svc.mounts.append(&mut m);
            }
            "configs" => svc.configs = file_mounts(ctx, &at, value, project, FileKind::Config),
            "secrets" => svc.secrets = file_mounts(ctx, &at, value, project, FileKind::Secret),
            "healthcheck" => svc.healthcheck = healthcheck(ctx, &at, value),
            "depends_on" => svc.depends_on = depends_on(ctx, &at, value),
            "deploy" => deploy_replicas = deploy(ctx, &at, value, &mut svc.resources),
            "cpus" => legacy.cpus = ctx.millicpus(&at, value),
            "mem_limit" => legacy.mem_limit = ctx.bytes(&at, value),
            "mem_reservation" => legacy.mem_reservation = ctx.bytes(&at, value),
            "scale" => legacy.scale = ctx.uint(&at, value),
            "user" => svc.user = user(ctx, &at, value),
            "working_dir" => {
                svc.working_dir = ctx.string(&at, value);
                if let Some(dir) = &svc.working_dir
                    && !dir.starts_with('/')
                {
                    ctx.error(&at, format!("{dir:?} must be an absolute path"));
                }
            }
            "restart" => svc.restart = restart(ctx, &at, value),
            "labels" => svc.labels = ctx.string_map(&at, value),
            "annotations" => svc.annotations = ctx.string_map(&at, value),
            "hostname" => svc.hostname = ctx.string(&at, value),
            "stdin_open" => svc.stdin_open = ctx.boolean(&at, value).unwrap_or(false),
            "tty" => svc.tty = ctx.boolean(&at, value).unwrap_or(false),
            "cap_add" => svc.cap_add = ctx.string_list(&at, value),
            "cap_drop" => svc.cap_drop = ctx.string_list(&at, value),
            "privileged" => svc.privileged = ctx.boolean(&at, value).unwrap_or(false),
            "read_only" => svc.read_only = ctx.boolean(&at, value).unwrap_or(false),
            "stop_grace_period" => svc.stop_grace_period = ctx.duration(&at, value),
            "extra_hosts" => svc.extra_hosts = extra_hosts(ctx, &at, value),
            "shm_size" => svc.shm_size = ctx.bytes(&at, value).filter(|&n| n > 0),
            "profiles" => svc.profiles = ctx.string_list(&at, value),
            "pull_policy" => svc.pull_policy = ctx.string(&at, value),
            _ => ctx.error(&at, "internal error: supported key without a handler"),
        }
    }
    reconcile_legacy(ctx, path, legacy, deploy_replicas, &mut svc);
    svc
}

/// Folds `cpus`/`mem_limit`/`mem_reservation`/`scale` into the deploy values; conflicting
/// values are an error.
fn reconcile_legacy(
    ctx: &mut Ctx<'_>,
    path: &str,
    legacy: Legacy,
    deploy_replicas: Option<u32>,
    svc: &mut Service,
) {
    let fold =
        |ctx: &mut Ctx<'_>, key: &str, other: &str, legacy: Option<u64>, slot: &mut Option<u64>| {
            if let Some(l) = legacy {
                let l = (l > 0).then_some(l);
                match slot {
                    Some(d) if Some(*d) != l => {
                        ctx.error(&child(path, key), format!("conflicts with {other}"))
                    }
                    Some(_) => {}
                    None => *slot = l,
                }
            }
        };
    fold(
        ctx,
        "cpus",
        "deploy.resources.limits.cpus",
        legacy.cpus,
        &mut svc.resources.limits.millicpus,
    );
    fold(
        ctx,
        "mem_limit",
        "deploy.resources.limits.memory",
        legacy.mem_limit,
        &mut svc.resources.limits.memory,
    );
    fold(
        ctx,
        "mem_reservation",
        "deploy.resources.reservations.memory",
        legacy.mem_reservation,
        &mut svc.resources.reservations.memory,
    );
    let replicas = match (deploy_replicas, legacy.scale) {
        (Some(d), Some(s)) if d != s => {
            ctx.error(&child(path, "scale"), "conflicts with deploy.replicas");
            Some(d)
        }
        (Some(d), _) => Some(d),
        (None, s) => s,
    };
    if let Some(n) = replicas
        && n != 1
    {
        let at = if deploy_replicas.is_some() {
            child(&child(path, "deploy"), "replicas")
        } else {
            child(path, "scale")
        };
        ctx.warn(
            &at,
            format!("{n} replicas requested; a Kompox app runs one Pod, so 1 is used"),
        );
    }
    svc.replicas = replicas;
}

fn build(ctx: &mut Ctx<'_>, path: &str, v: &Value) -> Option<Build> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(Build {
            context: Some(s.clone()),
            dockerfile: None,
        }),
        Value::Map(entries) => {
            let mut b = Build::default();
            for (key, value) in entries {
                match key.as_str() {
                    "context" => b.context = ctx.string(&child(path, key), value),
                    "dockerfile" => b.dockerfile = ctx.string(&child(path, key), value),
                    _ => {}
                }
            }
            Some(b)
        }
        other => {
            ctx.expected(path, "a build context path or a mapping", other);
            None
        }
    }
}

/// `command` / `entrypoint`: a string split as compose splits it (see `shellwords`), or a
/// list used as is.
fn command(ctx: &mut Ctx<'_>, path: &str, v: &Value) -> Option<Vec<String>> {
    match v {
        Value::Null => None,
        Value::String(s) => match super::shellwords::split(s) {
            Ok(split) => {
                if let Some(op) = split.operator {
                    ctx.warn(
                        path,
                        format!(
                            "nothing from {op:?} on is run: compose splits a command string into words and stops at a shell operator (Kompox does as compose does); to run a shell, write [\"sh\", \"-c\", \"…\"]"
                        ),
                    );
                }
                Some(split.words)
            }
            Err(e) => {
                ctx.error(path, e.to_string());
                None
            }
        },
        Value::Seq(_) => Some(ctx.string_list(path, v)),
        other => {
            ctx.expected(path, "a string or a list of strings", other);
            None
        }
    }
}

/// Service `configs` / `secrets`.
fn file_mounts(
    ctx: &mut Ctx<'_>,
    path: &str,
    v: &Value,
    project: &Project,
    kind: FileKind,
) -> Vec<FileMount> {
    let (declared, what) = match kind {
        FileKind::Config => (&project.configs, "config"),
        FileKind::Secret => (&project.secrets, "secret"),
    };
    let mut out = Vec::new();
    for (i, item) in ctx
        .seq(path, v, &format!("a list of {what}s"))
        .iter()
        .enumerate()
    {
        let at = index(path, i);
        let mut m = FileMount {
            source: String::new(),
            target: String::new(),
            uid: None,
            gid: None,
            mode: None,
        };
        let mut target = None;
        match item {
            Value::String(s) => m.source = s.clone(),
            Value::Map(entries) => {
                ctx.check_keys(&at, entries, &["source", "target", "uid", "gid", "mode"]);
                for (key, value) in entries {
                    let kat = child(&at, key);
                    match key.as_str() {
                        "source" => m.source = ctx.string(&kat, value).unwrap_or_default(),
                        "target" => target = ctx.string(&kat, value),
                        "uid" => m.uid = id_number(ctx, &kat, value),
                        "gid" => m.gid = id_number(ctx, &kat, value),
                        "mode" => m.mode = file_mode(ctx, &kat, value),
                        _ => {}
                    }
                }
                if m.source.is_empty() {
                    ctx.error(&child(&at, "source"), "required");
                    continue;
                }
            }
            other => {
                ctx.expected(&at, &format!("a {what} name or a mapping"), other);
                continue;
            }
        }
        if !declared.contains_key(&m.source) {
            ctx.error(
                &at,
                format!(
                    "{what} {:?} is not declared in the top-level {what}s",
                    m.source
                ),
            );
            continue;
        }
        m.target = match (kind, target) {
            (_, Some(t)) if t.starts_with('/') => t,
            (FileKind::Secret, Some(t)) => format!("/run/secrets/{t}"),
            (FileKind::Config, Some(t)) => format!("/{t}"),
            (FileKind::Secret, None) => format!("/run/secrets/{}", m.source),
            (FileKind::Config, None) => format!("/{}", m.source),
        };
        out.push(m);
    }
    out
}

/// A uid/gid given as a number or a numeric string.
fn id_number(ctx: &mut Ctx<'_>, path: &str, v: &Value) -> Option<u32> {
    ctx.uint(path, v)
}

/// A file mode: an integer as written (YAML `0o440` is already octal), or a string, which is
/// octal when it starts with `0` (`"0440"`, also `0440` written bare, which YAML keeps as text).
fn file_mode(ctx: &mut Ctx<'_>, path: &str, v: &Value) -> Option<u32> {
    let mode = match v {
        Value::Null => return None,
        Value::Int(i) => u32::try_from(*i).ok(),
        Value::String(s) => {
            let s = s.trim();
            if let Some(oct) = s.strip_prefix("0o").or_else(|| s.strip_prefix("0O")) {
                u32::from_str_radix(oct, 8).ok()
            } else if s.len() > 1 && s.starts_with('0') {
                u32::from_str_radix(s, 8).ok()
            } else {
                s.parse::<u32>().ok()
            }
        }
        other => {
            ctx.expected(path, "a file mode such as 0440", other);
            return None;
        }
    };
    match mode {
        Some(m) if m <= 0o7777 => Some(m),
        _ => {
            ctx.error(path, "invalid file mode (expected e.g. 0440)");
            None
        }
    }
}

/// `healthcheck`.
fn healthcheck(ctx: &mut Ctx<'_>, path: &str, v: &Value) -> Option<Healthcheck> {
    let entries = ctx.map(path, v)?;
    ctx.check_keys(
        path,
        entries,
        &[
            "test",
            "interval",
            "timeout",
            "retries",
            "start_period",
            "start_interval",
            "disable",
        ],
    );
    let mut hc = Healthcheck::default();
    for (key, value) in entries {
        let at = child(path, key);
        match key.as_str() {
            "test" => match value {
                Value::Null => {}
                Value::String(s) if s.trim().is_empty() => ctx.error(&at, "must not be empty"),
                Value::String(s) => hc.test = Some(HealthTest::Shell(s.clone())),
                Value::Seq(_) => {
                    let words = ctx.string_list(&at, value);
                    match words.split_first() {
                        None => {}
                        Some((first, rest)) => match first.as_str() {
                            "NONE" => hc.disable = true,
                            "CMD" if rest.is_empty() => {
                                ctx.error(&at, "\"CMD\" needs a command after it");
                            }
                            "CMD" => hc.test = Some(HealthTest::Cmd(rest.to_vec())),
                            "CMD-SHELL" if rest.is_empty() => {
                                ctx.error(&at, "\"CMD-SHELL\" needs a command after it");
                            }
                            "CMD-SHELL" => hc.test = Some(HealthTest::Shell(rest.join(" "))),
                            other => ctx.error(
                                &at,
                                format!("test must start with \"CMD\", \"CMD-SHELL\" or \"NONE\", found {other:?}"),
                            ),
                        },
                    }
                }
                other => ctx.expected(&at, "a string or a list", other),
            },
            "interval" => hc.interval = ctx.duration(&at, value),
            "timeout" => hc.timeout = ctx.duration(&at, value),
            "start_period" => hc.start_period = ctx.duration(&at, value),
            "start_interval" => hc.start_interval = ctx.duration(&at, value),
            "retries" => hc.retries = ctx.uint(&at, value),
            "disable" => hc.disable |= ctx.boolean(&at, value) == Some(true),
            _ => {}
        }
    }
    if hc.disable {
        hc.test = None;
    }
    Some(hc)
}

/// `depends_on`: a list of names or a map name → {condition, required, restart}.
/// Names are checked against the services later.
fn depends_on(ctx: &mut Ctx<'_>, path: &str, v: &Value) -> BTreeMap<String, Dependency> {
    let mut out = BTreeMap::new();
    match v {
        Value::Null => {}
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(name) => {
                        out.insert(name.clone(), Dependency::default());
                    }
                    other => ctx.expected(&index(path, i), "a service name", other),
                }
            }
        }
        Value::Map(entries) => {
            for (name, value) in entries {
                let at = child(path, name);
                let mut dep = Dependency::default();
                if let Some(fields) = ctx.map(&at, value) {
                    ctx.check_keys(&at, fields, &["condition", "required", "restart"]);
                    for (key, fv) in fields {
                        let kat = child(&at, key);
                        match key.as_str() {
                            "condition" => {
                                if let Some(c) = ctx.string(&kat, fv) {
                                    dep.condition = match c.as_str() {
                                        "service_started" => DependencyCondition::Started,
                                        "service_healthy" => DependencyCondition::Healthy,
                                        "service_completed_successfully" => {
                                            DependencyCondition::CompletedSuccessfully
                                        }
                                        _ => {
                                            ctx.error(
                                                &kat,
                                                format!("unknown condition {c:?} (expected service_started, service_healthy or service_completed_successfully)"),
                                            );
                                            continue;
                                        }
                                    };
                                }
                            }
                            "required" => dep.required = ctx.boolean(&kat, fv).unwrap_or(true),
                            "restart" => dep.restart = ctx.boolean(&kat, fv).unwrap_or(false),
                            _ => {}
                        }
                    }
                }
                out.insert(name.clone(), dep);
            }
        }
        other => ctx.expected(path, "a list or a mapping of service names", other),
    }
    out
}

/// `deploy`: resources go into `resources`; returns `replicas`.
fn deploy(ctx: &mut Ctx<'_>, path: &str, v: &Value, resources: &mut Resources) -> Option<u32> {
    let entries = ctx.map(path, v)?;
    let mut replicas = None;
    for (key, value) in entries {
        if !ctx.dispose_key(Scope::Deploy, path, key) {
            continue;
        }
        let at = child(path, key);
        match key.as_str() {
            "replicas" => replicas = ctx.uint(&at, value),
            "resources" => {
                let Some(res) = ctx.map(&at, value) else {
                    continue;
                };
                ctx.check_keys(&at, res, &["limits", "reservations"]);
                for (rkey, rvalue) in res {
                    let spec = match rkey.as_str() {
                        "limits" => &mut resources.limits,
                        "reservations" => &mut resources.reservations,
                        _ => continue,
                    };
                    let rat = child(&at, rkey);
                    let Some(fields) = ctx.map(&rat, rvalue) else {
                        continue;
                    };
                    for (fkey, fvalue) in fields {
                        if !ctx.dispose_key(Scope::Resources, &rat, fkey) {
                            continue;
                        }
                        let fat = child(&rat, fkey);
                        match fkey.as_str() {
                            "cpus" => {
                                spec.millicpus = ctx.millicpus(&fat, fvalue).filter(|&n| n > 0)
                            }
                            "memory" => spec.memory = ctx.bytes(&fat, fvalue).filter(|&n| n > 0),
                            _ => ctx.error(&fat, "internal error: supported key without a handler"),
                        }
                    }
                }
            }
            _ => ctx.error(&at, "internal error: supported key without a handler"),
        }
    }
    replicas
}

fn id_or_name(s: &str) -> IdOrName {
    match s.parse::<u32>() {
        Ok(n) if s.bytes().all(|b| b.is_ascii_digit()) => IdOrName::Id(n),
        _ => IdOrName::Name(s.to_owned()),
    }
}

/// `user`: `uid`, `uid:gid`, `name`, `name:group`.
fn user(ctx: &mut Ctx<'_>, path: &str, v: &Value) -> Option<User> {
    let text = ctx.scalar(path, v)?;
    let (u, g) = match text.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (text.as_str(), None),
    };
    if u.is_empty() || g.is_some_and(|g| g.is_empty() || g.contains(':')) {
        ctx.error(
            path,
            format!("invalid user {text:?} (expected \"uid[:gid]\" or \"name[:group]\")"),
        );
        return None;
    }
    Some(User {
        user: id_or_name(u),
        group: g.map(id_or_name),
    })
}

/// `restart`.
fn restart(ctx: &mut Ctx<'_>, path: &str, v: &Value) -> Option<Restart> {
    let text = ctx.string(path, v)?;
    let r = match text.as_str() {
        "no" | "" => Restart::No,
        "always" => Restart::Always,
        "unless-stopped" => Restart::UnlessStopped,
        "on-failure" => Restart::OnFailure { max_retries: None },
        other => match other.strip_prefix("on-failure:").map(str::parse::<u32>) {
            Some(Ok(n)) => Restart::OnFailure {
                max_retries: Some(n),
            },
            _ => {
                ctx.error(
                    path,
                    format!("invalid restart policy {text:?} (expected no, always, on-failure[:n] or unless-stopped)"),
                );
                return None;
            }
        },
    };
    Some(r)
}

/// `extra_hosts`: `host:ip` / `host=ip` list, or a map host → ip (or list of ips).
fn extra_hosts(ctx: &mut Ctx<'_>, path: &str, v: &Value) -> Vec<(String, String)> {
    let clean_ip = |ip: &str| -> String {
        let ip = ip.trim();
        ip.strip_prefix('[')
            .and_then(|i| i.strip_suffix(']'))
            .unwrap_or(ip)
            .to_owned()
    };
    let mut out = Vec::new();
    match v {
        Value::Null => {}
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                let at = index(path, i);
                let Some(text) = ctx.string(&at, item) else {
                    continue;
                };
                let split = text.split_once('=').or_else(|| text.split_once(':'));
                match split {
                    Some((host, ip)) if !host.trim().is_empty() && !ip.trim().is_empty() => {
                        out.push((host.trim().to_owned(), clean_ip(ip)));
                    }
                    _ => ctx.error(
                        &at,
                        format!("invalid extra host {text:?} (expected \"host=ip\")"),
                    ),
                }
            }
        }
        Value::Map(entries) => {
            for (host, value) in entries {
                let at = child(path, host);
                for ip in ctx.string_list(&at, value) {
                    out.push((host.clone(), clean_ip(&ip)));
                }
            }
        }
        other => ctx.expected(path, "a list or a mapping", other),
    }
    out
}

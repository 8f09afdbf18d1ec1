//! The top level: project name, volumes, configs, secrets, services, and the checks that
//! span services (names, depends_on).

use std::collections::{BTreeMap, BTreeSet};

use super::keys::Scope;
use super::model::{FileObjectDef, FileObjectSource, Project, VolumeDef};
use super::walk::{Ctx, child, is_resource_name, normalize_relative};
use super::yaml::Value;

/// Most services one compose file may have: they all run as containers of one Pod, and a
/// Pod of hundreds of containers is not something Kubernetes runs well.
pub const MAX_SERVICES: usize = 100;

/// Walks the whole file.
pub(crate) fn project(ctx: &mut Ctx<'_>, root: &Value) -> Project {
    let mut project = Project::default();
    let entries = match root {
        Value::Map(entries) => entries.as_slice(),
        Value::Null => &[],
        other => {
            ctx.expected("", "a mapping at the top level", other);
            return project;
        }
    };
    let get = |k: &str| entries.iter().find(|(key, _)| key == k).map(|(_, v)| v);
    // Dispose of every key first (warnings/errors for the ones not supported).
    for (key, _) in entries {
        ctx.dispose_key(Scope::TopLevel, "", key);
    }
    if let Some(v) = get("name") {
        project.name = ctx.string("name", v);
        if let Some(name) = &project.name
            && !is_project_name(name)
        {
            ctx.error(
                "name",
                format!("invalid project name {name:?} (lower-case letters, digits, '-' and '_', starting with a letter or digit)"),
            );
        }
    }
    if let Some(v) = get("volumes") {
        project.volumes = volume_defs(ctx, "volumes", v);
    }
    if let Some(v) = get("configs") {
        project.configs = file_object_defs(ctx, "configs", v, true);
    }
    if let Some(v) = get("secrets") {
        project.secrets = file_object_defs(ctx, "secrets", v, false);
    }
    match get("services") {
        None => ctx.error("services", "required"),
        Some(v) => match v {
            Value::Map(services) if services.len() > MAX_SERVICES => ctx.error(
                "services",
                format!(
                    "{} services; at most {MAX_SERVICES} (Kompox runs every service as a container of one Pod)",
                    services.len()
                ),
            ),
            Value::Map(services) => {
                let mut parsed = BTreeMap::new();
                for (name, def) in services {
                    let at = child("services", name);
                    if !is_service_name(name) {
                        ctx.error(
                            &at,
                            format!("invalid service name {name:?}: letters, digits, '.', '_' and '-' only"),
                        );
                    }
                    let svc = super::service::service(ctx, &at, def, &project);
                    parsed.insert(name.clone(), svc);
                }
                project.services = parsed;
                check_dependencies(ctx, &project);
            }
            other => ctx.expected("services", "a mapping of services", other),
        },
    }
    project
}

/// Compose service names (compose-spec: `^[a-zA-Z0-9._-]+$`); Kubernetes names are derived
/// from them ([`crate::naming::k8s_names`]).
fn is_service_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Compose project names: `[a-z0-9][a-z0-9_-]*`.
fn is_project_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// A top-level mapping of named definitions (`volumes`, `configs`, `secrets`): every name must
/// be a resource name; `def` reads one definition at its path (`None`: reported, left out).
fn named_defs<'a, T>(
    ctx: &mut Ctx<'a>,
    path: &str,
    v: &Value,
    what: &str,
    mut def: impl FnMut(&mut Ctx<'a>, &str, &Value) -> Option<T>,
) -> BTreeMap<String, T> {
    let mut out = BTreeMap::new();
    for (name, value) in ctx.map(path, v).unwrap_or_default() {
        let at = child(path, name);
        if !is_resource_name(name) {
            ctx.error(&at, format!("invalid {what} name {name:?}"));
            continue;
        }
        if let Some(d) = def(ctx, &at, value) {
            out.insert(name.clone(), d);
        }
    }
    out
}

/// Top-level `volumes`.
fn volume_defs(ctx: &mut Ctx<'_>, path: &str, v: &Value) -> BTreeMap<String, VolumeDef> {
    named_defs(ctx, path, v, "volume", volume_def)
}

fn volume_def(ctx: &mut Ctx<'_>, at: &str, def: &Value) -> Option<VolumeDef> {
    let mut vol = VolumeDef::default();
    if let Some(fields) = ctx.map(at, def) {
        ctx.check_keys(
            at,
            fields,
            &["external", "name", "driver", "driver_opts", "labels"],
        );
        let mut external_name = None;
        for (key, value) in fields {
            let kat = child(at, key);
            match key.as_str() {
                "external" => (vol.external, external_name) = external(ctx, &kat, value),
                "name" => vol.name = ctx.string(&kat, value),
                "driver" => {
                    vol.driver = ctx.string(&kat, value);
                    if vol.driver.as_deref().is_some_and(|d| d != "local") {
                        ctx.warn(&kat, "ignored: Kompox provisions volumes itself");
                    }
                }
                "driver_opts" => ctx.warn(&kat, "ignored: Kompox provisions volumes itself"),
                "labels" => vol.labels = ctx.string_map(&kat, value),
                "x-kompox" => vol.kompox = super::extensions::kompox_volume(ctx, &kat, value),
                _ => {}
            }
        }
        // The obsolete `external: {name: x}` names the volume as `name: x` does (compose-go
        // takes it so, and refuses two different names).
        if let Some(n) = external_name {
            match &vol.name {
                Some(name) if *name != n => ctx.error(
                    &child(at, "external"),
                    format!("external.name {n:?} and name {name:?} differ: give only name"),
                ),
                _ => vol.name = Some(n),
            }
        }
    }
    Some(vol)
}

/// `external: true`, or the obsolete `external: {name: …}` (true, and the name).
fn external(ctx: &mut Ctx<'_>, path: &str, v: &Value) -> (bool, Option<String>) {
    match v {
        Value::Map(fields) => {
            ctx.warn(
                path,
                "external: {name} is obsolete: use external: true and name",
            );
            let name = fields
                .iter()
                .find(|(k, _)| k == "name")
                .and_then(|(_, n)| ctx.string(&child(path, "name"), n));
            (true, name)
        }
        other => (ctx.boolean(path, other).unwrap_or(false), None),
    }
}

/// Top-level `configs` (`allow_content`) or `secrets`.
fn file_object_defs(
    ctx: &mut Ctx<'_>,
    path: &str,
    v: &Value,
    allow_content: bool,
) -> BTreeMap<String, FileObjectDef> {
    let what = if allow_content { "config" } else { "secret" };
    named_defs(ctx, path, v, what, |ctx, at, def| {
        file_object_def(ctx, at, def, allow_content)
    })
}

fn file_object_def(
    ctx: &mut Ctx<'_>,
    at: &str,
    def: &Value,
    allow_content: bool,
) -> Option<FileObjectDef> {
    let fields: &[(String, Value)] = match def {
        Value::Map(fields) => fields,
        Value::Null => &[],
        other => {
            ctx.expected(at, "a mapping", other);
            return None;
        }
    };
    let errors_before = ctx.errors.len();
    // `content` (first) is for configs only.
    const KEYS: [&str; 8] = [
        "content",
        "file",
        "environment",
        "external",
        "name",
        "labels",
        "driver",
        "template_driver",
    ];
    let known = if allow_content { &KEYS[..] } else { &KEYS[1..] };
    ctx.check_keys(at, fields, known);
    let mut sources = Vec::new();
    let mut name_field = None;
    let mut labels = BTreeMap::new();
    for (key, value) in fields {
        let kat = child(at, key);
        match key.as_str() {
            "file" => {
                if let Some(file) = ctx.string(&kat, value) {
                    if file.starts_with('/') {
                        sources.push(FileObjectSource::File(file));
                    } else {
                        match normalize_relative(&file) {
                            Some(p) => sources.push(FileObjectSource::File(p)),
                            None => {
                                ctx.error(&kat, format!("{file:?} escapes the project directory"))
                            }
                        }
                    }
                }
            }
            "content" if allow_content => {
                if let Some(c) = ctx.string(&kat, value) {
                    sources.push(FileObjectSource::Content(c));
                }
            }
            "environment" => {
                if let Some(e) = ctx.string(&kat, value) {
                    sources.push(FileObjectSource::Environment(e));
                }
            }
            "external" => {
                sources.extend(
                    external(ctx, &kat, value)
                        .0
                        .then_some(FileObjectSource::External),
                );
            }
            "name" => name_field = ctx.string(&kat, value),
            "labels" => labels = ctx.string_map(&kat, value),
            "driver" | "template_driver" => ctx.warn(&kat, "ignored"),
            _ => {}
        }
    }
    if ctx.errors.len() > errors_before {
        // A field was invalid; "needs one of" would only repeat it.
        return None;
    }
    let source = match sources.len() {
        1 => sources.pop(),
        0 => {
            let opts = if allow_content {
                "file, content, environment or external"
            } else {
                "file, environment or external"
            };
            ctx.error(at, format!("needs one of {opts}"));
            None
        }
        _ => {
            ctx.error(
                at,
                "only one of file, content, environment, external may be given",
            );
            None
        }
    };
    source.map(|source| FileObjectDef {
        source,
        name: name_field,
        labels,
    })
}

/// depends_on names must exist, and the graph must have no cycle.
fn check_dependencies(ctx: &mut Ctx<'_>, project: &Project) {
    for (name, svc) in &project.services {
        for dep in svc.depends_on.keys() {
            let at = child(&child(&child("services", name), "depends_on"), dep);
            if dep == name {
                ctx.error(&at, "a service cannot depend on itself");
            } else if !project.services.contains_key(dep) {
                ctx.error(&at, format!("unknown service {dep:?}"));
            }
        }
    }
    // Cycle detection (iterative DFS; colours: 1 = on stack, 2 = done).
    let mut state: BTreeMap<&str, u8> = BTreeMap::new();
    let mut reported = BTreeSet::new();
    for start in project.services.keys() {
        if state.contains_key(start.as_str()) {
            continue;
        }
        let mut stack: Vec<(&str, Vec<&str>)> = vec![(start.as_str(), deps_of(project, start))];
        state.insert(start.as_str(), 1);
        while let Some((node, pending)) = stack.last_mut() {
            let node = *node;
            match pending.pop() {
                None => {
                    state.insert(node, 2);
                    stack.pop();
                }
                Some(next) => match state.get(next) {
                    Some(1) => {
                        if reported.insert(next) {
                            let cycle: Vec<&str> = stack
                                .iter()
                                .map(|(n, _)| *n)
                                .skip_while(|n| *n != next)
                                .chain(std::iter::once(next))
                                .collect();
                            ctx.error(
                                &child(&child("services", next), "depends_on"),
                                format!("dependency cycle: {}", cycle.join(" -> ")),
                            );
                        }
                    }
                    Some(_) => {}
                    None => {
                        state.insert(next, 1);
                        stack.push((next, deps_of(project, next)));
                    }
                },
            }
        }
    }
}

/// Known dependencies of a service (unknown names are reported elsewhere).
fn deps_of<'p>(project: &'p Project, name: &str) -> Vec<&'p str> {
    project.depends_on(name, |d| d != name && project.services.contains_key(d))
}

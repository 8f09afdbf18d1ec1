//! `volumes` and `tmpfs` of a service.

use std::collections::BTreeMap;

use super::model::{Mount, MountSource, VolumeDef};
use super::walk::{Ctx, child, index, is_resource_name, normalize_absolute, normalize_relative};
use super::yaml::Value;

/// `services.<name>.volumes`. `declared` are the top-level volumes.
pub(crate) fn volumes(
    ctx: &mut Ctx<'_>,
    path: &str,
    v: &Value,
    declared: &BTreeMap<String, VolumeDef>,
) -> Vec<Mount> {
    let mut out = Vec::new();
    for (i, item) in ctx.seq(path, v, "a list of volumes").iter().enumerate() {
        let at = index(path, i);
        let mount = match item {
            Value::String(s) => short_volume(ctx, &at, s),
            Value::Map(entries) => long_volume(ctx, &at, entries),
            other => {
                ctx.expected(&at, "a volume (\"src:dst\") or a mapping", other);
                None
            }
        };
        if let Some(mount) = mount {
            if let MountSource::Volume { name, .. } = &mount.source
                && !declared.contains_key(name)
            {
                ctx.error(
                    &at,
                    format!("volume {name:?} is not declared in the top-level volumes"),
                );
                continue;
            }
            out.push(mount);
        }
    }
    out
}

/// Classifies a short-syntax / bind source.
fn classify_source(
    ctx: &mut Ctx<'_>,
    path: &str,
    src: &str,
    bind_only: bool,
) -> Option<MountSource> {
    if src.is_empty() {
        ctx.error(path, "empty volume source");
        return None;
    }
    if let Some(rest) = src.strip_prefix('~') {
        // `~` and `~/…` as compose expands them; `~user/…` is another user's home.
        let rel = match rest {
            "" => Some(".".to_owned()),
            r if r.starts_with('/') => normalize_relative(r.trim_start_matches('/')),
            _ => {
                ctx.error(
                    path,
                    format!(
                        "bind source {src:?}: only the own home directory (~ or ~/…) is supported"
                    ),
                );
                return None;
            }
        };
        return match rel {
            Some(p) => Some(MountSource::HomeBind { path: p }),
            None => {
                ctx.error(
                    path,
                    format!("bind source {src:?} escapes the home directory"),
                );
                None
            }
        };
    }
    if src.starts_with('/') {
        return Some(MountSource::AbsoluteBind {
            path: normalize_absolute(src),
        });
    }
    if bind_only || src == "." || src == ".." || src.starts_with("./") || src.starts_with("../") {
        return match normalize_relative(src) {
            Some(p) => Some(MountSource::RelativeBind { path: p }),
            None => {
                ctx.error(
                    path,
                    format!("bind source {src:?} escapes the project directory"),
                );
                None
            }
        };
    }
    named_volume(ctx, path, src, None)
}

/// `name` or `name/sub/dir` → a named volume with an optional normalized subpath.
fn named_volume(
    ctx: &mut Ctx<'_>,
    path: &str,
    src: &str,
    subpath: Option<String>,
) -> Option<MountSource> {
    let (name, sub) = match src.split_once('/') {
        Some((name, sub)) => (name, Some(sub)),
        None => (src, None),
    };
    if !is_resource_name(name) {
        ctx.error(path, format!("invalid volume name {name:?}"));
        return None;
    }
    let sub = match (sub, subpath) {
        (Some(_), Some(_)) => {
            ctx.error(
                path,
                "subpath given both in the source and in volume.subpath",
            );
            return None;
        }
        (Some(s), None) => Some(s.to_owned()),
        (None, s) => s,
    };
    let subpath = match sub {
        None => None,
        Some(s) => match normalize_subpath(&s) {
            Ok(p) => p,
            Err(()) => {
                ctx.error(
                    path,
                    format!("invalid volume subpath {s:?}: must stay inside the volume"),
                );
                return None;
            }
        },
    };
    Some(MountSource::Volume {
        name: name.to_owned(),
        subpath,
    })
}

/// A subpath must be relative and stay inside the volume; `.`/empty means the volume root.
fn normalize_subpath(s: &str) -> Result<Option<String>, ()> {
    if s.starts_with('/') {
        return Err(());
    }
    match normalize_relative(s) {
        None => Err(()),
        Some(p) if p == "." => Ok(None),
        Some(p) => Ok(Some(p)),
    }
}

fn target_path(ctx: &mut Ctx<'_>, path: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        Some(normalize_absolute(target))
    } else {
        ctx.error(path, format!("target {target:?} must be an absolute path"));
        None
    }
}

/// `src:dst[:opts]` or `dst`.
fn short_volume(ctx: &mut Ctx<'_>, path: &str, text: &str) -> Option<Mount> {
    let parts: Vec<&str> = text.split(':').collect();
    let (source, target, opts) = match parts.as_slice() {
        [dst] => (None, *dst, None),
        [src, dst] => (Some(*src), *dst, None),
        [src, dst, opts] => (Some(*src), *dst, Some(*opts)),
        _ => {
            ctx.error(
                path,
                format!("invalid volume {text:?} (expected \"source:target[:options]\")"),
            );
            return None;
        }
    };
    let target = target_path(ctx, path, target)?;
    let source = match source {
        None => MountSource::Anonymous,
        Some(src) => classify_source(ctx, path, src, false)?,
    };
    let mut mount = Mount {
        source,
        target,
        read_only: false,
        nocopy: false,
        create_host_path: true,
    };
    for opt in opts
        .unwrap_or_default()
        .split(',')
        .filter(|o| !o.is_empty())
    {
        match opt {
            "ro" => mount.read_only = true,
            "rw" => mount.read_only = false,
            "nocopy" => mount.nocopy = true,
            "z" | "Z" => ctx.warn(path, format!("option {opt:?} (SELinux relabel) is ignored")),
            "shared" | "slave" | "private" | "rshared" | "rslave" | "rprivate" => {
                ctx.warn(
                    path,
                    format!("option {opt:?} (bind propagation) is ignored"),
                );
            }
            "cached" | "delegated" | "consistent" => {}
            other => {
                ctx.error(path, format!("unknown volume option {other:?}"));
                return None;
            }
        }
    }
    Some(mount)
}

/// The long syntax `{type, source, target, read_only, bind, volume, tmpfs}`.
fn long_volume(ctx: &mut Ctx<'_>, path: &str, entries: &[(String, Value)]) -> Option<Mount> {
    ctx.check_keys(
        path,
        entries,
        &[
            "type",
            "source",
            "target",
            "read_only",
            "bind",
            "volume",
            "tmpfs",
            "consistency",
        ],
    );
    let get = |k: &str| entries.iter().find(|(key, _)| key == k).map(|(_, v)| v);
    let ty = match get("type") {
        Some(v) => ctx.string(&child(path, "type"), v),
        None => None,
    };
    let Some(ty) = ty else {
        ctx.error(&child(path, "type"), "required (bind, volume or tmpfs)");
        return None;
    };
    let target = match get("target").and_then(|v| ctx.string(&child(path, "target"), v)) {
        Some(t) => target_path(ctx, &child(path, "target"), &t)?,
        None => {
            ctx.error(&child(path, "target"), "required");
            return None;
        }
    };
    let source = get("source").and_then(|v| ctx.string(&child(path, "source"), v));
    let read_only = get("read_only")
        .and_then(|v| ctx.boolean(&child(path, "read_only"), v))
        .unwrap_or(false);
    let mut mount = Mount {
        source: MountSource::Anonymous,
        target,
        read_only,
        nocopy: false,
        create_host_path: true,
    };
    let src_path = child(path, "source");
    match ty.as_str() {
        "bind" => {
            let Some(src) = source else {
                ctx.error(&src_path, "required for a bind mount");
                return None;
            };
            mount.source = classify_source(ctx, &src_path, &src, true)?;
            if let Some(v) = get("bind") {
                let bpath = child(path, "bind");
                if let Some(b) = ctx.map(&bpath, v) {
                    ctx.check_keys(&bpath, b, &["propagation", "create_host_path", "selinux"]);
                    for (key, value) in b {
                        let at = child(&bpath, key);
                        match key.as_str() {
                            "create_host_path" => {
                                if let Some(c) = ctx.boolean(&at, value) {
                                    mount.create_host_path = c;
                                }
                            }
                            "propagation" | "selinux" => ctx.warn(&at, "ignored"),
                            _ => {}
                        }
                    }
                }
            }
        }
        "volume" => {
            let mut subpath = None;
            if let Some(v) = get("volume") {
                let vpath = child(path, "volume");
                if let Some(m) = ctx.map(&vpath, v) {
                    ctx.check_keys(&vpath, m, &["nocopy", "subpath", "labels"]);
                    for (key, value) in m {
                        let at = child(&vpath, key);
                        match key.as_str() {
                            "nocopy" => mount.nocopy = ctx.boolean(&at, value).unwrap_or(false),
                            "subpath" => subpath = ctx.string(&at, value),
                            _ => {}
                        }
                    }
                }
            }
            mount.source = match source {
                None => {
                    if subpath.is_some() {
                        ctx.error(&src_path, "required when volume.subpath is given");
                        return None;
                    }
                    MountSource::Anonymous
                }
                Some(src) => named_volume(ctx, &src_path, &src, subpath)?,
            };
        }
        "tmpfs" => {
            if source.is_some() {
                ctx.error(&src_path, "a tmpfs mount has no source");
                return None;
            }
            let mut size = None;
            if let Some(v) = get("tmpfs") {
                let tpath = child(path, "tmpfs");
                if let Some(m) = ctx.map(&tpath, v) {
                    ctx.check_keys(&tpath, m, &["size", "mode"]);
                    for (key, value) in m {
                        if key == "size" {
                            size = ctx.bytes(&child(&tpath, key), value).filter(|&s| s > 0);
                        }
                    }
                }
            }
            mount.source = MountSource::Tmpfs { size };
        }
        other => {
            ctx.error(
                &child(path, "type"),
                format!("unsupported mount type {other:?} (expected bind, volume or tmpfs)"),
            );
            return None;
        }
    }
    Some(mount)
}

/// `services.<name>.tmpfs`: `/run` or `/run:size=64m,mode=1777`, as a string or a list.
pub(crate) fn tmpfs(ctx: &mut Ctx<'_>, path: &str, v: &Value) -> Vec<Mount> {
    let entries: Vec<(String, &str)> = match v {
        Value::Null => Vec::new(),
        Value::String(s) => vec![(path.to_owned(), s.as_str())],
        Value::Seq(items) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) => out.push((index(path, i), s.as_str())),
                    other => ctx.expected(&index(path, i), "a path", other),
                }
            }
            out
        }
        other => {
            ctx.expected(path, "a path or a list of paths", other);
            Vec::new()
        }
    };
    let mut out = Vec::new();
    for (at, text) in entries {
        let (target, opts) = text.split_once(':').unwrap_or((text, ""));
        let Some(target) = target_path(ctx, &at, target) else {
            continue;
        };
        let mut mount = Mount {
            source: MountSource::Tmpfs { size: None },
            target,
            read_only: false,
            nocopy: false,
            create_host_path: false,
        };
        let mut ok = true;
        for opt in opts.split(',').filter(|o| !o.is_empty()) {
            match opt.split_once('=') {
                Some(("size", size)) => match super::units::parse_bytes(size) {
                    Ok(n) => {
                        mount.source = MountSource::Tmpfs {
                            size: (n > 0).then_some(n),
                        }
                    }
                    Err(e) => {
                        ctx.error(&at, e);
                        ok = false;
                    }
                },
                _ if opt == "ro" => mount.read_only = true,
                _ if opt == "rw" => mount.read_only = false,
                _ => ctx.warn(&at, format!("tmpfs option {opt:?} is ignored")),
            }
        }
        if ok {
            out.push(mount);
        }
    }
    out
}

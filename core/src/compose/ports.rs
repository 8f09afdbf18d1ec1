//! `ports` and `expose`.

use super::model::{ExposedPort, Port, Protocol};
use super::walk::{Ctx, child, index};
use super::yaml::Value;
use crate::naming::is_port_name;

/// The largest range (`8000-8099`) expanded into individual ports.
pub const MAX_PORT_RANGE: u32 = 1024;

/// `services.<name>.ports`.
pub(crate) fn ports(ctx: &mut Ctx<'_>, path: &str, v: &Value) -> Vec<Port> {
    let mut out = Vec::new();
    for (i, item) in ctx.seq(path, v, "a list of ports").iter().enumerate() {
        let at = index(path, i);
        match item {
            Value::Int(_) | Value::String(_) => {
                let text = item.scalar_text().unwrap_or_default();
                match short_port(&text) {
                    Ok(mut ports) => out.append(&mut ports),
                    Err(msg) => ctx.error(&at, msg),
                }
            }
            Value::Map(entries) => {
                if let Some(port) = long_port(ctx, &at, entries) {
                    out.push(port);
                }
            }
            other => ctx.expected(&at, "a port (\"8080:80\") or a mapping", other),
        }
    }
    out
}

fn protocol(s: &str) -> Option<Protocol> {
    match s.to_ascii_lowercase().as_str() {
        "tcp" => Some(Protocol::Tcp),
        "udp" => Some(Protocol::Udp),
        "sctp" => Some(Protocol::Sctp),
        _ => None,
    }
}

fn port_number(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 5 {
        return None;
    }
    s.parse::<u16>().ok().filter(|&p| p != 0)
}

/// `"80"` or `"8000-8002"` → (first, count).
fn port_range(s: &str) -> Option<(u16, u32)> {
    match s.split_once('-') {
        None => port_number(s).map(|p| (p, 1)),
        Some((a, b)) => {
            let (a, b) = (port_number(a)?, port_number(b)?);
            (b >= a).then(|| (a, u32::from(b - a) + 1))
        }
    }
}

/// Parses the short syntax `[[host_ip:][published]:]target[/protocol]`, ranges allowed.
fn short_port(text: &str) -> Result<Vec<Port>, String> {
    let invalid = || format!("invalid port {text:?}");
    let (spec, proto) = match text.rsplit_once('/') {
        Some((spec, p)) => (
            spec,
            protocol(p).ok_or_else(|| format!("invalid port {text:?}: unknown protocol {p:?}"))?,
        ),
        None => (text, Protocol::Tcp),
    };
    // Bracketed IPv6 host: "[::1]:8080:80".
    let (host_ip, rest) = if let Some(after) = spec.strip_prefix('[') {
        let (ip, rest) = after.split_once(']').ok_or_else(invalid)?;
        let rest = rest.strip_prefix(':').ok_or_else(invalid)?;
        (Some(ip.to_owned()), rest)
    } else {
        (None, spec)
    };
    let mut parts: Vec<&str> = rest.rsplitn(3, ':').collect();
    parts.reverse();
    let (host_ip, published, target) = match (host_ip, parts.as_slice()) {
        (None, [t]) => (None, None, *t),
        (None, [p, t]) => (None, Some(*p), *t),
        (None, [h, p, t]) => (Some((*h).to_owned()), Some(*p), *t),
        (Some(h), [p, t]) => (Some(h), Some(*p), *t),
        _ => return Err(invalid()),
    };
    if host_ip.as_deref() == Some("") {
        return Err(invalid());
    }
    let published = published.filter(|p| !p.is_empty());
    let (target_first, target_count) = port_range(target).ok_or_else(invalid)?;
    let published = match published {
        None => None,
        Some(p) => Some(port_range(p).ok_or_else(invalid)?),
    };
    if let Some((_, count)) = published
        && count != target_count
    {
        return Err(format!(
            "invalid port {text:?}: the published and target ranges differ in size"
        ));
    }
    if target_count > MAX_PORT_RANGE {
        return Err(format!(
            "invalid port {text:?}: ranges are limited to {MAX_PORT_RANGE} ports"
        ));
    }
    let mut out = Vec::new();
    for offset in 0..target_count {
        let add = |base: u16| u16::try_from(u32::from(base) + offset).ok();
        out.push(Port {
            target: add(target_first).ok_or_else(invalid)?,
            published: match published {
                Some((first, _)) => Some(add(first).ok_or_else(invalid)?),
                None => None,
            },
            host_ip: host_ip.clone(),
            protocol: proto,
            ..Port::default()
        });
    }
    Ok(out)
}

/// The long syntax `{target, published, protocol, host_ip, name, app_protocol, mode}`.
fn long_port(ctx: &mut Ctx<'_>, path: &str, entries: &[(String, Value)]) -> Option<Port> {
    ctx.check_keys(
        path,
        entries,
        &[
            "target",
            "published",
            "protocol",
            "host_ip",
            "name",
            "app_protocol",
            "mode",
        ],
    );
    let mut port = Port::default();
    let mut target = None;
    let mut ok = true;
    for (key, value) in entries {
        let at = child(path, key);
        match key.as_str() {
            "target" => match single_port(ctx, &at, value) {
                Some(p) => target = Some(p),
                None => ok = false,
            },
            "published" if !matches!(value, Value::Null) => match single_port(ctx, &at, value) {
                Some(p) => port.published = Some(p),
                None => ok = false,
            },
            "protocol" => {
                if let Some(p) = ctx.string(&at, value) {
                    match protocol(&p) {
                        Some(p) => port.protocol = p,
                        None => {
                            ctx.error(
                                &at,
                                format!("unknown protocol {p:?} (expected tcp, udp or sctp)"),
                            );
                            ok = false;
                        }
                    }
                }
            }
            "host_ip" => port.host_ip = ctx.string(&at, value),
            "name" => {
                if let Some(name) = ctx.string(&at, value) {
                    if is_port_name(&name) {
                        port.name = Some(name);
                    } else {
                        ctx.error(
                            &at,
                            format!("invalid port name {name:?} (at most 15 lower-case letters, digits or '-', with a letter)"),
                        );
                        ok = false;
                    }
                }
            }
            "app_protocol" => port.app_protocol = ctx.string(&at, value),
            "mode" => {
                if let Some(mode) = ctx.string(&at, value) {
                    if mode == "host" || mode == "ingress" {
                        port.mode = Some(mode);
                    } else {
                        ctx.error(
                            &at,
                            format!("invalid mode {mode:?} (expected host or ingress)"),
                        );
                        ok = false;
                    }
                }
            }
            _ => {}
        }
    }
    match target {
        Some(t) => port.target = t,
        None => {
            if ok {
                ctx.error(&child(path, "target"), "required");
            }
            return None;
        }
    }
    ok.then_some(port)
}

/// One port number given as an integer or a string.
fn single_port(ctx: &mut Ctx<'_>, path: &str, v: &Value) -> Option<u16> {
    let text = match v {
        Value::Int(_) | Value::String(_) => v.scalar_text().unwrap_or_default(),
        other => {
            ctx.expected(path, "a port number", other);
            return None;
        }
    };
    let p = port_number(text.trim());
    if p.is_none() {
        ctx.error(path, format!("invalid port {text:?}"));
    }
    p
}

/// `services.<name>.expose`: `3000`, `"3000"`, `"3000/udp"`, `"3000-3005"`.
pub(crate) fn expose(ctx: &mut Ctx<'_>, path: &str, v: &Value) -> Vec<ExposedPort> {
    let mut out = Vec::new();
    for (i, item) in ctx.seq(path, v, "a list of ports").iter().enumerate() {
        let at = index(path, i);
        let text = match item {
            Value::Int(_) | Value::String(_) => item.scalar_text().unwrap_or_default(),
            other => {
                ctx.expected(&at, "a port", other);
                continue;
            }
        };
        let (spec, proto) = match text.rsplit_once('/') {
            Some((spec, p)) => match protocol(p) {
                Some(proto) => (spec, proto),
                None => {
                    ctx.error(
                        &at,
                        format!("invalid port {text:?}: unknown protocol {p:?}"),
                    );
                    continue;
                }
            },
            None => (text.as_str(), Protocol::Tcp),
        };
        match port_range(spec) {
            Some((_, count)) if count > MAX_PORT_RANGE => ctx.error(
                &at,
                format!("invalid port {text:?}: ranges are limited to {MAX_PORT_RANGE} ports"),
            ),
            Some((first, count)) => {
                for offset in 0..count {
                    if let Ok(port) = u16::try_from(u32::from(first) + offset) {
                        out.push(ExposedPort {
                            port,
                            protocol: proto,
                        });
                    }
                }
            }
            None => ctx.error(&at, format!("invalid port {text:?}")),
        }
    }
    out
}

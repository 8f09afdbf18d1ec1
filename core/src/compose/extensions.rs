//! The `x-kompox` extensions: what Kompox reads beside compose's own keys, on a service
//! (`host`, `hosts`, `port`) and on a top-level volume (`size`).

use super::model::{KompoxService, KompoxVolume};
use super::walk::{Ctx, child, index};
use super::yaml::Value;

/// `volumes.<name>.x-kompox`: `{size: 20Gi}`.
pub(crate) fn kompox_volume(ctx: &mut Ctx<'_>, at: &str, v: &Value) -> KompoxVolume {
    let mut out = KompoxVolume::default();
    let Some(fields) = ctx.map(at, v) else {
        return out;
    };
    ctx.check_keys(at, fields, &["size"]);
    for (key, value) in fields {
        if key == "size" {
            let kat = child(at, key);
            if let Some(size) = ctx.scalar(&kat, value) {
                match crate::api::quantity::parse_bytes(&size) {
                    Ok(n) if n > 0 => out.size = Some(size),
                    Ok(_) => ctx.error(&kat, "must be more than 0"),
                    Err(e) => ctx.error(&kat, e.to_string()),
                }
            }
        }
    }
    out
}

/// `services.<name>.x-kompox`: `{host: a.example.com}` or `{hosts: [...], port: 8080}`.
pub(crate) fn kompox_service(ctx: &mut Ctx<'_>, at: &str, v: &Value) -> KompoxService {
    let mut out = KompoxService::default();
    let Some(fields) = ctx.map(at, v) else {
        return out;
    };
    ctx.check_keys(at, fields, &["host", "hosts", "port"]);
    let host = |ctx: &mut Ctx<'_>, kat: &str, v: &Value, out: &mut KompoxService| {
        if let Some(h) = ctx.string(kat, v) {
            if crate::naming::is_dns1123_subdomain(h.strip_prefix("*.").unwrap_or(&h)) {
                out.hosts.push(h);
            } else {
                ctx.error(
                    kat,
                    format!("{h:?} is not a host name (lower-case letters, digits, '-' and '.')"),
                );
            }
        }
    };
    for (key, value) in fields {
        let kat = child(at, key);
        match key.as_str() {
            "host" => host(ctx, &kat, value, &mut out),
            "hosts" => {
                for (i, h) in ctx
                    .seq(&kat, value, "a list of host names")
                    .iter()
                    .enumerate()
                {
                    host(ctx, &index(&kat, i), h, &mut out);
                }
            }
            "port" => {
                if let Some(p) = ctx.uint(&kat, value) {
                    match u16::try_from(p) {
                        Ok(p) if p > 0 => out.port = Some(p),
                        _ => ctx.error(&kat, format!("{p} is not a port (1-65535)")),
                    }
                }
            }
            _ => {}
        }
    }
    out
}

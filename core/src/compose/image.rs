//! Image references, checked against the grammar of the distribution project (what Docker
//! and containerd parse):
//!
//! ```text
//! reference      := name [ ":" tag ] [ "@" digest ]
//! name           := [ domain "/" ] path-component [ "/" path-component ]*   (≤ 255 bytes)
//! domain         := host [ ":" port ]         host: DNS-style components or [IPv6]
//! path-component := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
//! tag            := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
//! digest         := algorithm ":" [0-9a-fA-F]{32,}
//! ```
//!
//! compose-go accepts any string at load time (Docker refuses a bad one when it pulls);
//! Kompox refuses it when rendering, so that `nginx:${TAG}` with `TAG` empty is an error
//! naming the field rather than a Pod that never starts (declared refusal differences of the
//! compose-oracle test).

/// Longest repository name.
const MAX_NAME: usize = 255;
/// Longest tag.
const MAX_TAG: usize = 128;

/// Checks `s`; the error says what is wrong (without repeating `s`).
///
/// ```
/// use kompox_core::compose::check_image_reference;
/// assert!(check_image_reference("nginx").is_ok());
/// assert!(check_image_reference("ghcr.io/org/app:1.2@sha256:0123456789abcdef0123456789abcdef").is_ok());
/// assert_eq!(check_image_reference("nginx:").unwrap_err(), "the tag after \":\" is empty");
/// ```
///
/// # Errors
/// Why the reference is invalid.
pub fn check_image_reference(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("empty".to_owned());
    }
    if s.chars().any(char::is_whitespace) {
        return Err("contains whitespace".to_owned());
    }
    let (rest, digest) = match s.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (s, None),
    };
    if let Some(d) = digest {
        check_digest(d)?;
    }
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest.get(last_slash..).and_then(|t| t.rfind(':')) {
        Some(i) => (
            rest.get(..last_slash + i).unwrap_or_default(),
            Some(rest.get(last_slash + i + 1..).unwrap_or_default()),
        ),
        None => (rest, None),
    };
    if let Some(t) = tag {
        check_tag(t)?;
    }
    if name.is_empty() {
        return Err("the repository name is empty".to_owned());
    }
    if name.len() > MAX_NAME {
        return Err(format!(
            "the repository name is longer than {MAX_NAME} bytes"
        ));
    }
    let mut parts = name.split('/');
    let first = parts.next().unwrap_or_default();
    let more = name.contains('/');
    if !(is_path_component(first) || (more && is_domain(first))) {
        return Err(if first.bytes().any(|b| b.is_ascii_uppercase()) && !more {
            "the repository name must be lowercase".to_owned()
        } else {
            format!("invalid repository name component {first:?}")
        });
    }
    for p in parts {
        if !is_path_component(p) {
            return Err(if p.bytes().any(|b| b.is_ascii_uppercase()) {
                "the repository name must be lowercase".to_owned()
            } else {
                format!("invalid repository name component {p:?}")
            });
        }
    }
    Ok(())
}

fn check_tag(t: &str) -> Result<(), String> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = t.as_bytes();
    match bytes.first() {
        None => Err("the tag after \":\" is empty".to_owned()),
        Some(&b) if !word(b) => Err("the tag must start with a letter, digit or \"_\"".to_owned()),
        _ if bytes.len() > MAX_TAG => Err(format!("the tag is longer than {MAX_TAG} characters")),
        _ if !bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-') => {
            Err("the tag may hold only letters, digits, \"_\", \".\" and \"-\"".to_owned())
        }
        _ => Ok(()),
    }
}

fn check_digest(d: &str) -> Result<(), String> {
    let Some((alg, hex)) = d.split_once(':') else {
        return Err("the digest after \"@\" needs ALGORITHM:HEX".to_owned());
    };
    let alg_ok = !alg.is_empty()
        && alg.split(['+', '.', '_', '-']).all(|c| {
            let b = c.as_bytes();
            b.first().is_some_and(u8::is_ascii_alphabetic)
                && b.iter().all(u8::is_ascii_alphanumeric)
        });
    if !alg_ok {
        return Err("invalid digest algorithm".to_owned());
    }
    if hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("the digest needs at least 32 hexadecimal digits".to_owned());
    }
    Ok(())
}

/// `[a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*`.
fn is_path_component(p: &str) -> bool {
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = p.as_bytes();
    if !bytes.first().is_some_and(alnum) || !bytes.last().is_some_and(alnum) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if bytes.get(i).is_some_and(alnum) {
            i += 1;
            continue;
        }
        let start = i;
        while bytes.get(i).is_some_and(|b| !alnum(b)) {
            i += 1;
        }
        let sep = &bytes[start..i];
        let ok = matches!(sep, b"." | b"_" | b"__") || sep.iter().all(|&b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `host [":" port]`: DNS-style components (letters, digits, inner `-`) joined by `.`, or
/// `[IPv6]`.
fn is_domain(d: &str) -> bool {
    let (host_ok, port) = if let Some(rest) = d.strip_prefix('[') {
        let Some((inner, after)) = rest.split_once(']') else {
            return false;
        };
        let port = match after {
            "" => None,
            a => match a.strip_prefix(':') {
                Some(p) => Some(p),
                None => return false,
            },
        };
        (
            !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':'),
            port,
        )
    } else {
        let (host, port) = match d.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        };
        let ok = !host.is_empty()
            && host.split('.').all(|c| {
                let b = c.as_bytes();
                b.first().is_some_and(u8::is_ascii_alphanumeric)
                    && b.last().is_some_and(u8::is_ascii_alphanumeric)
                    && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
            });
        (ok, port)
    };
    host_ok && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid() {
        let cases: &[(&str, &str)] = &[
            ("short", "nginx"),
            ("tag", "nginx:1.27"),
            ("library", "library/nginx:latest"),
            ("registry", "ghcr.io/org/app:v1.2.3"),
            ("registry port", "localhost:5000/app"),
            (
                "registry port and tag",
                "registry.example.com:5000/team/app:2024-01_rc.1",
            ),
            ("uppercase registry", "Registry.Example.com/app"),
            ("ipv6 registry", "[::1]:5000/app:1"),
            ("separators", "my_org/my-app__x/a.b---c"),
            (
                "digest",
                "app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ),
            (
                "tag and digest",
                "app:1@sha256:0123456789abcdef0123456789abcdef",
            ),
            ("tag underscore start", "app:_x"),
            ("numeric", "123/456:789"),
        ];
        for (name, s) in cases {
            assert_eq!(check_image_reference(s), Ok(()), "case {name}: {s}");
        }
    }

    #[test]
    fn invalid() {
        let cases: &[(&str, &str, &str)] = &[
            ("empty", "", "empty"),
            ("empty tag", "nginx:", "the tag after \":\" is empty"),
            (
                "empty tag with registry",
                "r.io:5000/nginx:",
                "the tag after \":\" is empty",
            ),
            ("empty name", ":1.0", "the repository name is empty"),
            (
                "only registry",
                "ghcr.io/",
                "invalid repository name component \"\"",
            ),
            (
                "uppercase",
                "Nginx",
                "the repository name must be lowercase",
            ),
            (
                "uppercase path",
                "org/App",
                "the repository name must be lowercase",
            ),
            ("space", "nginx 1.27", "contains whitespace"),
            (
                "tag start",
                "app:-x",
                "the tag must start with a letter, digit or \"_\"",
            ),
            (
                "tag chars",
                "app:a+b",
                "the tag may hold only letters, digits, \"_\", \".\" and \"-\"",
            ),
            (
                "double slash",
                "org//app",
                "invalid repository name component \"\"",
            ),
            (
                "triple underscore",
                "a___b",
                "invalid repository name component \"a___b\"",
            ),
            (
                "dot underscore",
                "a._b",
                "invalid repository name component \"a._b\"",
            ),
            (
                "trailing separator",
                "app-",
                "invalid repository name component \"app-\"",
            ),
            (
                "bad digest",
                "app@sha256:xyz",
                "the digest needs at least 32 hexadecimal digits",
            ),
            (
                "digest without algorithm",
                "app@0123",
                "the digest after \"@\" needs ALGORITHM:HEX",
            ),
            (
                "bad port",
                "host:x/app",
                "invalid repository name component \"host:x\"",
            ),
        ];
        for (name, s, want) in cases {
            assert_eq!(
                check_image_reference(s),
                Err((*want).to_owned()),
                "case {name}: {s}"
            );
        }
        let long_tag = format!("app:{}", "a".repeat(129));
        assert!(check_image_reference(&long_tag).is_err());
        let long_name = "a".repeat(256);
        assert!(check_image_reference(&long_name).is_err());
    }
}

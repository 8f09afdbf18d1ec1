//! Names Kompox generates: app namespaces, compact IDs, short hashes, and DNS-1123 checks.
//!
//! Everything here is deterministic: the clock and the random source are the caller's
//! (`compact_id(unix_seconds, random)`), so the controller, webhook and CLI agree and tests
//! use fixed vectors.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use thiserror::Error;

pub use crate::well_known::{
    APP_ID_LABEL, DISK_LABEL, DISK_NAMESPACE_LABEL, ENV_HASH_ANNOTATION, TENANT_LABEL,
    WEBHOOK_LABEL,
};

/// Prefix of Kompox-owned namespaces (`k4x-` as `k8s-` is to Kubernetes).
pub const PREFIX: &str = "k4x";
/// Workspace used in namespace names when none is given.
pub const DEFAULT_WORKSPACE: &str = "default";
/// Length of a compact ID.
pub const COMPACT_ID_LEN: usize = 12;
/// Length of a [`short_hash`].
pub const SHORT_HASH_LEN: usize = 6;
/// Maximum length of a DNS-1123 label (namespace, most object names).
pub const MAX_LABEL_LEN: usize = 63;
/// Maximum length of a DNS-1123 subdomain.
pub const MAX_SUBDOMAIN_LEN: usize = 253;

/// Label marking objects managed by Kompox.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "kompox";

/// Value of [`WEBHOOK_LABEL`] that opts an object out.
pub const WEBHOOK_DISABLED: &str = "disabled";

const BASE36: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
/// Base36 digits needed for any 256-bit value.
const SHA256_BASE36_LEN: usize = 50;

/// Errors from name construction and validation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// Not a DNS-1123 label.
    #[error("{value:?} is not a valid DNS-1123 label: {reason}")]
    Label {
        /// The rejected text.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// Not a DNS-1123 subdomain.
    #[error("{value:?} is not a valid DNS-1123 subdomain: {reason}")]
    Subdomain {
        /// The rejected text.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// Not 12 lowercase base36 characters.
    #[error("{0:?} is not a compact ID (12 lowercase base36 characters)")]
    CompactId(String),
    /// The assembled namespace is longer than 63 characters.
    #[error(
        "namespace {namespace:?} is {len} characters long, at most 63 allowed: shorten the workspace"
    )]
    NamespaceTooLong {
        /// The assembled name.
        namespace: String,
        /// Its length.
        len: usize,
    },
    /// A named input was invalid.
    #[error("{field}: {source}")]
    Field {
        /// Which input (`workspace`, `compact id`).
        field: &'static str,
        /// The underlying problem.
        source: Box<Error>,
    },
}

/// A compact ID: 7 base36 digits of `unix_seconds` then 5 base36 digits of `random`,
/// lowercase, zero-padded, 12 characters.
///
/// Seconds wrap modulo 36^7 (after the year 4453); `random` is taken modulo 36^5.
/// IDs made in the same second sort by time first.
#[must_use]
pub fn compact_id(unix_seconds: u64, random: u64) -> String {
    let mut s = base36_fixed(unix_seconds % 36u64.pow(7), 7);
    s.push_str(&base36_fixed(random % 36u64.pow(5), 5));
    s
}

/// Whether `s` has the shape of a [`compact_id`].
#[must_use]
pub fn is_compact_id(s: &str) -> bool {
    s.len() == COMPACT_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

/// The namespace of an app: `k4x-<workspace>-app-<compact-id>`, with an empty workspace
/// meaning [`DEFAULT_WORKSPACE`].
///
/// # Errors
///
/// [`Error::Field`] when the workspace is not a DNS-1123 label or the ID is not a compact
/// ID; [`Error::NamespaceTooLong`] when the result exceeds 63 characters (the workspace may
/// be at most 42 characters).
pub fn app_namespace(workspace: &str, compact_id: &str) -> Result<String, Error> {
    let ws = if workspace.is_empty() {
        DEFAULT_WORKSPACE
    } else {
        workspace
    };
    validate_dns1123_label(ws).map_err(|e| Error::Field {
        field: "workspace",
        source: Box::new(e),
    })?;
    if !is_compact_id(compact_id) {
        return Err(Error::Field {
            field: "compact id",
            source: Box::new(Error::CompactId(compact_id.to_string())),
        });
    }
    let ns = format!("{PREFIX}-{ws}-app-{compact_id}");
    if ns.len() > MAX_LABEL_LEN {
        return Err(Error::NamespaceTooLong {
            len: ns.len(),
            namespace: ns,
        });
    }
    Ok(ns)
}

/// The 6-character short hash used in generated names (same as kompoxops): sha256 of `s`,
/// read as a big-endian integer, in lowercase base36 zero-padded to 50 digits, first 6 kept.
#[must_use]
pub fn short_hash(s: &str) -> String {
    let mut full = sha256_base36(s.as_bytes());
    full.truncate(SHORT_HASH_LEN);
    full
}

/// sha256 of `data` as a 50-digit zero-padded lowercase base36 number.
#[must_use]
pub fn sha256_base36(data: &[u8]) -> String {
    let mut n: [u8; 32] = Sha256::digest(data).into();
    let mut digits = Vec::with_capacity(SHA256_BASE36_LEN);
    for _ in 0..SHA256_BASE36_LEN {
        // n := n / 36, collecting the remainder (schoolbook division, base 256).
        let mut rem: u32 = 0;
        for byte in &mut n {
            let cur = (rem << 8) | u32::from(*byte);
            *byte = (cur / 36) as u8; // cur < 36 * 256, so the quotient fits in a byte
            rem = cur % 36;
        }
        digits.push(BASE36[rem as usize]);
    }
    digits.reverse();
    digits.into_iter().map(char::from).collect()
}

/// Checks a DNS-1123 label: 1-63 characters of `[a-z0-9-]`, starting and ending alphanumeric.
///
/// # Errors
///
/// [`Error::Label`] saying what is wrong.
pub fn validate_dns1123_label(s: &str) -> Result<(), Error> {
    label_problem(s, MAX_LABEL_LEN).map_or(Ok(()), |reason| {
        Err(Error::Label {
            value: s.to_string(),
            reason,
        })
    })
}

/// Whether `s` is a DNS-1123 label.
#[must_use]
pub fn is_dns1123_label(s: &str) -> bool {
    validate_dns1123_label(s).is_ok()
}

/// Whether `s` is a valid container or Service port name (IANA_SVC_NAME): at most 15
/// characters of `[a-z0-9-]`, at least one letter, no leading, trailing or doubled `-`.
#[must_use]
pub fn is_port_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

/// Checks a DNS-1123 subdomain: at most 253 characters, dot-separated parts that each
/// consist of `[a-z0-9-]` and start and end alphanumeric.
///
/// # Errors
///
/// [`Error::Subdomain`] saying what is wrong.
pub fn validate_dns1123_subdomain(s: &str) -> Result<(), Error> {
    let err = |reason| {
        Err(Error::Subdomain {
            value: s.to_string(),
            reason,
        })
    };
    if s.is_empty() {
        return err("must not be empty");
    }
    if s.len() > MAX_SUBDOMAIN_LEN {
        return err("must be at most 253 characters");
    }
    for part in s.split('.') {
        if let Some(reason) = label_problem(part, MAX_SUBDOMAIN_LEN) {
            return err(if part.is_empty() {
                "must not contain empty parts between dots"
            } else {
                reason
            });
        }
    }
    Ok(())
}

/// Whether `s` is a DNS-1123 subdomain.
#[must_use]
pub fn is_dns1123_subdomain(s: &str) -> bool {
    validate_dns1123_subdomain(s).is_ok()
}

/// Returns `name` if it has at most `max` characters; otherwise a prefix of it, trimmed of
/// trailing `-`/`.`, then `-` and the [`short_hash`] of the whole name, `max` characters at most.
///
/// Different long names with a common prefix get different results; a valid label stays a
/// valid label. With `max` below 8 only (a prefix of) the hash is returned.
#[must_use]
pub fn truncate_with_hash(name: &str, max: usize) -> String {
    if name.chars().count() <= max {
        return name.to_string();
    }
    let hash = short_hash(name);
    if max <= SHORT_HASH_LEN + 1 {
        return hash.chars().take(max).collect();
    }
    let keep = max - SHORT_HASH_LEN - 1;
    let prefix: String = name.chars().take(keep).collect();
    let prefix = prefix.trim_end_matches(['-', '.']);
    if prefix.is_empty() {
        hash
    } else {
        format!("{prefix}-{hash}")
    }
}

/// Turns arbitrary text (a compose service or volume name) into a DNS-1123 label of at most
/// `max` characters (capped at 63): lowercase, other characters replaced by `-`, runs of `-`
/// collapsed, ends trimmed. When that changed the text or it is too long, the short hash of
/// the original is appended so distinct inputs (`a_b`, `a-b`) stay distinct.
#[must_use]
pub fn sanitize_label(s: &str, max: usize) -> String {
    let max = max.min(MAX_LABEL_LEN);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if !(c == '-' && (out.is_empty() || out.ends_with('-'))) {
            out.push(c);
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out == s && !out.is_empty() && out.len() <= max {
        return out;
    }
    let hash = short_hash(s);
    if max <= SHORT_HASH_LEN + 1 || out.is_empty() {
        return hash.chars().take(max).collect();
    }
    let prefix: String = out.chars().take(max - SHORT_HASH_LEN - 1).collect();
    let prefix = prefix.trim_end_matches('-');
    if prefix.is_empty() {
        hash
    } else {
        format!("{prefix}-{hash}")
    }
}

/// Whether `s` can name an environment variable in a container: what Kubernetes accepts
/// (printable ASCII other than `=`, not empty).
#[must_use]
pub fn is_env_var_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'=')
}

/// Whether `s` is a compose resource name (volumes, configs, secrets):
/// `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
#[must_use]
pub fn is_compose_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The Kubernetes names of a set of compose names (services, volumes, configs, secrets):
/// compose allows `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, Kubernetes objects need DNS-1123 labels.
///
/// Each name becomes its *base*: lowercased, every character other than `[a-z0-9-]` (`_`,
/// `.`) replaced by `-`, leading and trailing `-` trimmed, at most `max` characters (capped at
/// 63; longer ones shortened with [`truncate_with_hash`]). A name that is its own base keeps
/// it; another name gets its base too unless a different name of the set has the same base:
/// then it gets `<base>-<short hash of the name>`. So `db_data` is `db-data`, and with
/// `db-data` also present, `db_data` is `db-data-<hash>` while `db-data` stays `db-data`.
///
/// The result depends only on the set (not its order), and distinct names get distinct
/// results.
#[must_use]
pub fn k8s_names<'a>(
    names: impl IntoIterator<Item = &'a str>,
    max: usize,
) -> BTreeMap<String, String> {
    let max = max.clamp(SHORT_HASH_LEN + 2, MAX_LABEL_LEN);
    let mut by_base: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for n in names {
        by_base.entry(base_label(n, max)).or_default().push(n);
    }
    let mut out = BTreeMap::new();
    for (base, mut group) in by_base {
        group.sort_unstable();
        group.dedup();
        let alone = group.len() == 1;
        for n in group {
            let k = if n == base || alone {
                base.clone()
            } else {
                let keep = max - SHORT_HASH_LEN - 1;
                let prefix: String = base.chars().take(keep).collect();
                let prefix = prefix.trim_end_matches('-');
                if prefix.is_empty() {
                    short_hash(n)
                } else {
                    format!("{prefix}-{}", short_hash(n))
                }
            };
            out.insert(n.to_owned(), k);
        }
    }
    out
}

/// The Kubernetes name of one compose name on its own (see [`k8s_names`]).
#[must_use]
pub fn k8s_name(name: &str, max: usize) -> String {
    k8s_names([name], max).remove(name).unwrap_or_default()
}

/// The base of [`k8s_names`]: a DNS-1123 label of at most `max` characters.
fn base_label(s: &str, max: usize) -> String {
    let mapped: String = s
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_matches('-');
    let base = if trimmed.is_empty() {
        short_hash(s)
    } else {
        trimmed.to_owned()
    };
    truncate_with_hash(&base, max)
}

fn label_problem(s: &str, max: usize) -> Option<&'static str> {
    let b = s.as_bytes();
    if b.is_empty() {
        return Some("must not be empty");
    }
    if b.len() > max {
        return Some(if max == MAX_LABEL_LEN {
            "must be at most 63 characters"
        } else {
            "too long"
        });
    }
    if !b
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    {
        return Some("must consist of lowercase letters, digits and '-'");
    }
    if b.first() == Some(&b'-') || b.last() == Some(&b'-') {
        return Some("must start and end with a letter or digit");
    }
    None
}

fn base36_fixed(mut n: u64, width: usize) -> String {
    let mut digits = vec![b'0'; width];
    for d in digits.iter_mut().rev() {
        *d = BASE36[(n % 36) as usize];
        n /= 36;
    }
    digits.into_iter().map(char::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use std::collections::BTreeSet;

    #[test]
    fn port_names() {
        assert!(is_port_name("http") && is_port_name("web-1"));
        for bad in ["", "1234", "a--b", "-a", "a-", "abcdefghijklmnop", "Web"] {
            assert!(!is_port_name(bad), "{bad}");
        }
    }

    #[test]
    fn compact_id_vectors() {
        // Independently computed with python3 (int → base36, zero-padded).
        for (secs, rnd, want) in [
            (0, 0, "000000000000"),
            (1_700_000_000, 0, "0s44we800000"),
            (1_700_000_000, 123_456_789, "0s44we81i3v9"),
            (1_758_844_800, u64::MAX, "0t365c04sgsf"),
            (36u64.pow(7) - 1, 35, "zzzzzzz0000z"),
            (36u64.pow(7), 36u64.pow(5), "000000000000"),
        ] {
            let id = compact_id(secs, rnd);
            assert_eq!(id, want, "compact_id({secs}, {rnd})");
            assert!(is_compact_id(&id));
        }
        assert!(!is_compact_id("0S44WE800000"));
        assert!(!is_compact_id("0s44we8"));
    }

    #[test]
    fn short_hash_vectors() {
        // python3: base36(int.from_bytes(hashlib.sha256(s).digest(), "big")).rjust(50, "0")[:6]
        for (s, want) in [
            ("", "5oaq0b"),
            ("a", "51rzzs"),
            ("hello", "14bu24"),
            ("kompox", "2pzhha"),
            ("app1", "0kspqp"),
            ("k4x-default-app-00000000000a", "2z190y"),
        ] {
            assert_eq!(short_hash(s), want, "short_hash({s:?})");
        }
        assert_eq!(
            sha256_base36(b"hello"),
            "14bu24ea7cq4jhmrgj4a3jrn1v6vem8ualnohxyeq239y1gobo"
        );
        assert_eq!(
            sha256_base36(b"app1"),
            "0kspqpixfagfkpup8pue8z5v2uq4qyy2sxulq2zta8lnqzq0lw"
        );
    }

    #[test]
    fn app_namespace_rules() {
        assert_eq!(
            app_namespace("", "0s44we81i3v9"),
            Ok("k4x-default-app-0s44we81i3v9".to_string())
        );
        assert_eq!(
            app_namespace("team-a", "0s44we81i3v9"),
            Ok("k4x-team-a-app-0s44we81i3v9".to_string())
        );
        let ws42 = "w".repeat(42);
        assert_eq!(
            app_namespace(&ws42, "0s44we81i3v9").map(|n| n.len()),
            Ok(63)
        );
        let long = app_namespace(&"w".repeat(43), "0s44we81i3v9");
        assert!(
            matches!(long, Err(Error::NamespaceTooLong { len: 64, .. })),
            "{long:?}"
        );
        let bad = app_namespace("Team_A", "0s44we81i3v9")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            bad.starts_with("workspace: \"Team_A\" is not a valid DNS-1123 label"),
            "{bad}"
        );
        let bad = app_namespace("a", "nope")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(bad.starts_with("compact id: "), "{bad}");
    }

    #[test]
    fn dns_validators() {
        for ok in ["a", "a-b", "0", "abc123", &"a".repeat(63)] {
            assert!(is_dns1123_label(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", "é", &"a".repeat(64)] {
            assert!(!is_dns1123_label(bad), "{bad}");
        }
        for ok in [
            "a.b",
            "gitea.example.com",
            "a-b.c-d",
            &format!("{}.{}", "a".repeat(70), "b"),
        ] {
            assert!(is_dns1123_subdomain(ok), "{ok}");
        }
        for bad in ["", ".a", "a.", "a..b", "A.b", "*.a", &"a".repeat(254)] {
            assert!(!is_dns1123_subdomain(bad), "{bad}");
        }
    }

    #[test]
    fn truncate_with_hash_rules() {
        assert_eq!(truncate_with_hash("short", 63), "short");
        let long = format!("{}-x", "a".repeat(70));
        let t = truncate_with_hash(&long, 63);
        assert_eq!(t.len(), 63);
        assert!(t.ends_with(&format!("-{}", short_hash(&long))));
        assert!(is_dns1123_label(&t));
        let other = truncate_with_hash(&format!("{}-y", "a".repeat(70)), 63);
        assert_ne!(t, other);
        // A cut landing on '-' is trimmed so the result stays a label.
        let dashy = format!("{}-{}", "a".repeat(55), "b".repeat(20));
        let t = truncate_with_hash(&dashy, 63);
        assert!(is_dns1123_label(&t), "{t}");
        assert_eq!(truncate_with_hash("abcdefghij", 3).len(), 3);
        assert_eq!(truncate_with_hash("abcdefghij", 0), "");
        assert_eq!(truncate_with_hash("ééééééééééé", 9).chars().count(), 9); // "éé-" + hash
    }

    #[test]
    fn sanitize_label_rules() {
        assert_eq!(sanitize_label("web", 63), "web");
        let a = sanitize_label("My_Service", 63);
        assert!(a.starts_with("my-service-") && is_dns1123_label(&a), "{a}");
        assert_ne!(sanitize_label("a_b", 63), sanitize_label("a-b", 63));
        assert!(is_dns1123_label(&sanitize_label("___", 63)));
        assert!(is_dns1123_label(&sanitize_label("", 63)));
        assert!(sanitize_label(&"x".repeat(100), 20).len() <= 20);
    }

    /// The Kubernetes names of a set of compose names: the same whatever their order, valid,
    /// distinct, and as `want` says.
    #[rstest]
    #[case::valid_name_kept(vec!["web"], vec![("web", "web".into())])]
    #[case::underscore(vec!["db_data"], vec![("db_data", "db-data".into())])]
    #[case::dot(vec!["db.local"], vec![("db.local", "db-local".into())])]
    #[case::upper_case(vec!["Web"], vec![("Web", "web".into())])]
    #[case::leading_digit_stays_a_label(vec!["1db"], vec![("1db", "1db".into())])]
    #[case::trailing_underscore_trimmed(vec!["cache_"], vec![("cache_", "cache".into())])]
    #[case::collision_the_valid_name_keeps_its_name(
        vec!["db_data", "db-data"],
        vec![
            ("db-data", "db-data".into()),
            ("db_data", format!("db-data-{}", short_hash("db_data"))),
        ]
    )]
    #[case::collision_without_a_valid_name_both_hashed(
        vec!["a_b", "a.b"],
        vec![
            ("a_b", format!("a-b-{}", short_hash("a_b"))),
            ("a.b", format!("a-b-{}", short_hash("a.b"))),
        ]
    )]
    #[case::unrelated_names_do_not_affect_each_other(
        vec!["db_data", "web_data"],
        vec![("db_data", "db-data".into()), ("web_data", "web-data".into())]
    )]
    fn k8s_names_cases(#[case] set: Vec<&str>, #[case] want: Vec<(&str, String)>) {
        let got = k8s_names(set.iter().copied(), 63);
        let rev = k8s_names(set.iter().rev().copied(), 63);
        assert_eq!(got, rev, "depends on order");
        for (n, w) in want {
            assert_eq!(got.get(n), Some(&w), "{n}");
            assert!(is_dns1123_label(&w), "{w}");
        }
        let distinct: BTreeSet<&String> = got.values().collect();
        assert_eq!(distinct.len(), got.len(), "not distinct");
    }

    #[test]
    fn k8s_name_of_a_long_name() {
        let long = format!("{}_x", "a".repeat(80));
        let k = k8s_name(&long, 40);
        assert!(k.len() <= 40 && is_dns1123_label(&k), "{k}");
        assert_eq!(k8s_name("db_data", 63), "db-data");
    }
}

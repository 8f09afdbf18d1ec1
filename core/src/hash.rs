//! Content hashes: `env_hash` over referenced Secret/ConfigMap data (rolled into a pod
//! template annotation so a change restarts the pods), and canonical JSON hashes for
//! `status.renderedHash`.
//!
//! All outputs are `sha256:<64 lowercase hex>`.
//!
//! # `env_hash` encoding (v1)
//!
//! The webhook and the controller must compute the same value from the same inputs, so the
//! encoding is fixed here:
//!
//! 1. Inputs are sorted by (kind, namespace, name, key, value) and exact duplicates removed,
//!    so neither input order nor referencing the same key twice changes the hash.
//! 2. The hash is sha256 over the domain tag `kompox-env-hash/v1\0`, the input count (u64
//!    big-endian), then per input: kind, namespace, name and key each as u64 big-endian byte
//!    length + bytes, then a presence byte — `0` for a missing optional ref (no value
//!    follows), `1` for a present value followed by its length and bytes.
//!
//! Length prefixes make `a=bc` and `ab=c` differ. A missing optional ref and a present but
//! empty value hash differently on purpose: the container sees "unset" in one case and ""
//! in the other, so creating an empty key must roll the pods. A whole object that is
//! referenced but absent is one input with key `""` and no value ([`HashInput::missing`]).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Prefix of every hash string.
pub const SHA256_PREFIX: &str = "sha256:";

const ENV_HASH_DOMAIN: &[u8] = b"kompox-env-hash/v1\0";

/// Errors from hashing.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// The value could not be turned into JSON (e.g. a map with non-string keys).
    #[error("hash_json: value is not representable as JSON: {0}")]
    Json(String),
}

/// Which kind of object a [`HashInput`] comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKind {
    /// A ConfigMap (`data` as UTF-8 bytes, `binaryData` as bytes).
    ConfigMap,
    /// A Secret (`data` decoded bytes; `stringData` as UTF-8 bytes).
    Secret,
}

impl SourceKind {
    /// `"ConfigMap"` or `"Secret"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            SourceKind::ConfigMap => "ConfigMap",
            SourceKind::Secret => "Secret",
        }
    }
}

/// One referenced value: a key of a ConfigMap or Secret, present or missing.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HashInput {
    /// Kind of the source object.
    pub kind: SourceKind,
    /// Namespace of the source object.
    pub namespace: String,
    /// Name of the source object.
    pub name: String,
    /// Key in the object; `""` for a whole object that is missing.
    pub key: String,
    /// The bytes, or `None` when the (optional) reference resolved to nothing.
    pub value: Option<Vec<u8>>,
}

impl HashInput {
    /// A key that exists with `value`.
    #[must_use]
    pub fn present(
        kind: SourceKind,
        namespace: impl Into<String>,
        name: impl Into<String>,
        key: impl Into<String>,
        value: impl Into<Vec<u8>>,
    ) -> HashInput {
        HashInput {
            kind,
            namespace: namespace.into(),
            name: name.into(),
            key: key.into(),
            value: Some(value.into()),
        }
    }

    /// An optional reference that resolved to nothing; `key` is `""` for a whole object.
    #[must_use]
    pub fn missing(
        kind: SourceKind,
        namespace: impl Into<String>,
        name: impl Into<String>,
        key: impl Into<String>,
    ) -> HashInput {
        HashInput {
            kind,
            namespace: namespace.into(),
            name: name.into(),
            key: key.into(),
            value: None,
        }
    }
}

/// The inputs for a Secret: one key (`Some(key)`, missing if absent) or all keys (`None`, as
/// `envFrom` uses). `stringData` entries override `data` like the apiserver does, so an
/// object about to be applied hashes like the stored one.
#[must_use]
pub fn secret_inputs(secret: &Secret, key: Option<&str>) -> Vec<HashInput> {
    let mut values: BTreeMap<&str, &[u8]> = BTreeMap::new();
    for (k, v) in secret.data.iter().flatten() {
        values.insert(k, &v.0);
    }
    for (k, v) in secret.string_data.iter().flatten() {
        values.insert(k, v.as_bytes());
    }
    object_inputs(SourceKind::Secret, &secret.metadata, &values, key)
}

/// The inputs for a ConfigMap: one key (`Some(key)`, missing if absent) or all keys (`None`).
/// `data` and `binaryData` keys are disjoint in a valid ConfigMap; `data` wins otherwise.
#[must_use]
pub fn config_map_inputs(config_map: &ConfigMap, key: Option<&str>) -> Vec<HashInput> {
    let mut values: BTreeMap<&str, &[u8]> = BTreeMap::new();
    for (k, v) in config_map.binary_data.iter().flatten() {
        values.insert(k, &v.0);
    }
    for (k, v) in config_map.data.iter().flatten() {
        values.insert(k, v.as_bytes());
    }
    object_inputs(SourceKind::ConfigMap, &config_map.metadata, &values, key)
}

fn object_inputs(
    kind: SourceKind,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    values: &BTreeMap<&str, &[u8]>,
    key: Option<&str>,
) -> Vec<HashInput> {
    let ns = meta.namespace.clone().unwrap_or_default();
    let name = meta.name.clone().unwrap_or_default();
    match key {
        Some(k) => vec![match values.get(k) {
            Some(v) => HashInput::present(kind, ns, name, k, *v),
            None => HashInput::missing(kind, ns, name, k),
        }],
        None => values
            .iter()
            .map(|(k, v)| HashInput::present(kind, ns.clone(), name.clone(), *k, *v))
            .collect(),
    }
}

/// The env hash of `inputs`; see the module docs for the exact encoding.
#[must_use]
pub fn env_hash(inputs: &[HashInput]) -> String {
    let mut sorted: Vec<&HashInput> = inputs.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut h = Sha256::new();
    h.update(ENV_HASH_DOMAIN);
    h.update((sorted.len() as u64).to_be_bytes());
    for i in sorted {
        for field in [
            i.kind.as_str().as_bytes(),
            i.namespace.as_bytes(),
            i.name.as_bytes(),
            i.key.as_bytes(),
        ] {
            put(&mut h, field);
        }
        match &i.value {
            None => h.update([0u8]),
            Some(v) => {
                h.update([1u8]);
                put(&mut h, v);
            }
        }
    }
    format!("{SHA256_PREFIX}{}", hex::encode(h.finalize()))
}

fn put(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

/// `sha256:<hex>` of `bytes`.
#[must_use]
pub fn hash_bytes(bytes: &[u8]) -> String {
    format!("{SHA256_PREFIX}{}", hex::encode(Sha256::digest(bytes)))
}

/// `sha256:<hex>` of the canonical JSON of `value` (object keys sorted at every level, no
/// whitespace), for `status.renderedHash`.
///
/// # Errors
///
/// [`Error::Json`] if `value` cannot be represented as JSON.
pub fn hash_json<T: Serialize + ?Sized>(value: &T) -> Result<String, Error> {
    let v = serde_json::to_value(value).map_err(|e| Error::Json(e.to_string()))?;
    Ok(hash_bytes(canonical_json_string(&v).as_bytes()))
}

/// `value` with the keys of every object in sorted order (a no-op without serde_json's
/// `preserve_order`; essential with it).
#[must_use]
pub fn canonical_json(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), canonical_json(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical_json).collect()),
        other => other.clone(),
    }
}

/// The compact serialization of [`canonical_json`]`(value)`.
#[must_use]
pub fn canonical_json_string(value: &Value) -> String {
    // Serializing a Value cannot fail (keys are strings); fall back to Display regardless.
    let c = canonical_json(value);
    serde_json::to_string(&c).unwrap_or_else(|_| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde_json::json;

    fn sec(key: &str, value: &str) -> HashInput {
        HashInput::present(SourceKind::Secret, "ns", "env", key, value)
    }

    #[test]
    fn hash_bytes_vector() {
        // python3: hashlib.sha256(b"hello").hexdigest()
        assert_eq!(
            hash_bytes(b"hello"),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
    }

    #[test]
    fn env_hash_fixed_vectors() {
        // Computed independently with python3 (struct.pack(">Q", len) prefixes). Pinned: changing the encoding must be deliberate (webhook and controller agree on it).
        assert_eq!(
            env_hash(&[]),
            "sha256:0ba8279a3fb304ba14b9413766c03e5a3fd9174a293d8dcf2f489eda333301e8"
        );
        assert_eq!(
            env_hash(&[sec("A", "1")]),
            "sha256:eaeaf4d2c402b3392dd5a642191f584e616a066883eedb48bd67fc0cbd816b07"
        );
    }

    #[test]
    fn env_hash_order_and_duplicates_do_not_matter() {
        let a = env_hash(&[sec("A", "1"), sec("B", "2")]);
        assert_eq!(a, env_hash(&[sec("B", "2"), sec("A", "1")]));
        assert_eq!(a, env_hash(&[sec("B", "2"), sec("A", "1"), sec("A", "1")]));
        assert!(a.starts_with("sha256:") && a.len() == 7 + 64);
    }

    #[test]
    fn env_hash_is_domain_separated() {
        assert_ne!(env_hash(&[sec("a", "bc")]), env_hash(&[sec("ab", "c")]));
        assert_ne!(
            env_hash(&[sec("A", "")]),
            env_hash(&[HashInput::missing(SourceKind::Secret, "ns", "env", "A")])
        );
        assert_ne!(
            env_hash(&[sec("A", "1")]),
            env_hash(&[HashInput::present(
                SourceKind::ConfigMap,
                "ns",
                "env",
                "A",
                "1"
            )])
        );
        assert_ne!(env_hash(&[sec("A", "1")]), env_hash(&[sec("A", "2")]));
        assert_ne!(
            env_hash(&[]),
            env_hash(&[HashInput::missing(SourceKind::Secret, "ns", "env", "")])
        );
    }

    #[test]
    fn object_inputs_agree_with_manual_inputs() {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some("env".into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            data: Some(
                [
                    ("A".to_string(), ByteString(b"old".to_vec())),
                    ("B".to_string(), ByteString(b"2".to_vec())),
                ]
                .into(),
            ),
            string_data: Some([("A".to_string(), "1".to_string())].into()),
            ..Default::default()
        };
        assert_eq!(
            env_hash(&secret_inputs(&secret, None)),
            env_hash(&[sec("A", "1"), sec("B", "2")])
        );
        assert_eq!(secret_inputs(&secret, Some("B")), vec![sec("B", "2")]);
        assert_eq!(
            secret_inputs(&secret, Some("C")),
            vec![HashInput::missing(SourceKind::Secret, "ns", "env", "C")]
        );
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some("cfg".into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            data: Some([("x".to_string(), "1".to_string())].into()),
            binary_data: Some([("y".to_string(), ByteString(vec![0, 1]))].into()),
            ..Default::default()
        };
        assert_eq!(
            config_map_inputs(&cm, None),
            vec![
                HashInput::present(SourceKind::ConfigMap, "ns", "cfg", "x", "1"),
                HashInput::present(SourceKind::ConfigMap, "ns", "cfg", "y", vec![0u8, 1]),
            ]
        );
    }

    #[test]
    fn hash_json_is_key_order_independent() {
        let a = hash_json(&json!({"b": 1, "a": {"y": [1, 2], "x": null}}));
        let b = hash_json(&json!({"a": {"x": null, "y": [1, 2]}, "b": 1}));
        assert_eq!(a, b);
        assert_ne!(
            a,
            hash_json(&json!({"a": {"x": null, "y": [2, 1]}, "b": 1}))
        );
        assert_eq!(
            canonical_json_string(&json!({"b": 1, "a": 2})),
            r#"{"a":2,"b":1}"#
        );
        // python3: hashlib.sha256(b'{"a":2,"b":1}').hexdigest()
        assert_eq!(
            hash_json(&json!({"b": 1, "a": 2})),
            Ok(
                "sha256:d3626ac30a87e6f7a6428233b3c68299976865fa5508e4267c5415c76af7a772"
                    .to_string()
            )
        );
        let non_string_keys: BTreeMap<(i32, i32), i32> = [((1, 2), 3)].into();
        assert!(hash_json(&non_string_keys).is_err());
    }
}

//! Making Secrets safe to show (CLI output, diffs, logs, Events).
//!
//! Keys are kept; every value in `data` and `stringData` becomes a keyed digest
//! (`hmac-sha256:<hex>`, [`crate::hash::HashKey`]) of the decoded value bound to the Secret's
//! namespace, name and key, so a value can be told to have changed between two outputs of the
//! same install, but a guess cannot be checked (`echo -n GUESS | sha256sum`) and a tenant's own
//! Secret holding the guess digests differently. The annotation
//! `kompox.dev/redacted: "true"` is added and `kubectl.kubernetes.io/last-applied-configuration`
//! (which embeds the values) is dropped. The result is for display: `data` no longer holds
//! base64, so it is not a Secret the apiserver would accept.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::core::v1::Secret;
use serde_json::{Map, Value, json};

use crate::hash::{HashKey, canonical_json_string};
pub use crate::well_known::REDACTED_ANNOTATION;

/// Domain of the digests standing for redacted values.
const REDACT_DOMAIN: &[u8] = b"kompox-redact/v1\0";

/// kubectl's client-side-apply annotation, which holds the full object including values.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The display form of a typed Secret (see the module docs).
#[must_use]
pub fn redact_secret(key: &HashKey, secret: &Secret) -> Value {
    match serde_json::to_value(secret) {
        Ok(mut v) => {
            if let Value::Object(obj) = &mut v {
                // A typed Secret serializes without kind unless it was set; make it explicit.
                obj.entry("apiVersion").or_insert_with(|| json!("v1"));
                obj.entry("kind").or_insert_with(|| json!("Secret"));
            }
            redact_secret_value(key, &v)
        }
        // Not reachable for a Secret; never fall back to anything holding values.
        Err(_) => json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"annotations": {REDACTED_ANNOTATION: "true"}},
        }),
    }
}

/// Redacts any JSON object: a `kind: Secret` object (whatever its apiVersion) is redacted,
/// a list (`items` array, e.g. `kind: List` or `SecretList`) has each item handled, anything
/// else is returned unchanged.
#[must_use]
pub fn redact_object(key: &HashKey, value: &Value) -> Value {
    let Value::Object(obj) = value else {
        return value.clone();
    };
    if obj.get("kind").and_then(Value::as_str) == Some("Secret") {
        return redact_secret_value(key, value);
    }
    match obj.get("items") {
        Some(Value::Array(items)) => {
            let mut out = obj.clone();
            out.insert(
                "items".into(),
                Value::Array(items.iter().map(|i| redact_object(key, i)).collect()),
            );
            Value::Object(out)
        }
        _ => value.clone(),
    }
}

/// [`redact_object`] over many objects (e.g. rendered manifests).
#[must_use]
pub fn redact_objects(key: &HashKey, values: &[Value]) -> Vec<Value> {
    values.iter().map(|v| redact_object(key, v)).collect()
}

/// The digest standing for `value` of key `data_key` in the Secret `namespace`/`name`.
#[must_use]
pub fn redacted_value(
    key: &HashKey,
    namespace: &str,
    name: &str,
    data_key: &str,
    value: &[u8],
) -> String {
    key.digest(
        REDACT_DOMAIN,
        &[
            namespace.as_bytes(),
            name.as_bytes(),
            data_key.as_bytes(),
            value,
        ],
    )
}

fn redact_secret_value(key: &HashKey, value: &Value) -> Value {
    let Value::Object(obj) = value else {
        return value.clone();
    };
    let meta_str = |k: &str| {
        obj.get("metadata")
            .and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let (namespace, name) = (meta_str("namespace"), meta_str("name"));
    let digest = |k: &str, v: &[u8]| redacted_value(key, namespace, name, k, v);
    let mut out = obj.clone();
    if let Some(data) = obj.get("data") {
        out.insert(
            "data".into(),
            redact_map(data, |s| STANDARD.decode(s).ok(), digest),
        );
    }
    if let Some(data) = obj.get("stringData") {
        out.insert(
            "stringData".into(),
            redact_map(data, |s| Some(s.as_bytes().to_vec()), digest),
        );
    }
    let meta = out
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    if let Value::Object(meta) = meta {
        let ann = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()));
        if !ann.is_object() {
            *ann = Value::Object(Map::new());
        }
        if let Value::Object(ann) = ann {
            ann.remove(LAST_APPLIED_ANNOTATION);
            ann.insert(REDACTED_ANNOTATION.into(), json!("true"));
        }
    }
    Value::Object(out)
}

/// Replaces every value of a map by its digest. A string is decoded by `decode` first (base64
/// for `data`); text that does not decode, and non-string values, are digested as they stand.
/// A non-object is replaced by its own digest (under the key `""`), so nothing unexpected
/// survives.
fn redact_map(
    data: &Value,
    decode: impl Fn(&str) -> Option<Vec<u8>>,
    digest: impl Fn(&str, &[u8]) -> String,
) -> Value {
    let hash_value = |k: &str, v: &Value| match v {
        Value::String(s) => digest(k, &decode(s).unwrap_or_else(|| s.as_bytes().to_vec())),
        other => digest(k, canonical_json_string(other).as_bytes()),
    };
    match data {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), json!(hash_value(k, v))))
                .collect(),
        ),
        Value::Null => Value::Null,
        other => json!(hash_value("", other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    const SECRET_VALUE: &str = "hunter2-super-secret";

    fn k() -> HashKey {
        match HashKey::new(&[b'k'; 32]) {
            Ok(k) => k,
            Err(e) => panic!("{e}"),
        }
    }

    fn sha256_hex(b: &[u8]) -> String {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(b))
    }
    const STRING_VALUE: &str = "DATABASE_URL=postgres://u:p4ss@db";

    fn secret() -> Secret {
        let last_applied = format!(
            r#"{{"stringData":{{"env":"{STRING_VALUE}"}},"data":{{"pw":"{}"}}}}"#,
            STANDARD.encode(SECRET_VALUE)
        );
        Secret {
            metadata: ObjectMeta {
                name: Some("app1-env".into()),
                namespace: Some("app1".into()),
                annotations: Some([(LAST_APPLIED_ANNOTATION.to_string(), last_applied)].into()),
                ..Default::default()
            },
            data: Some(
                [(
                    "pw".to_string(),
                    ByteString(SECRET_VALUE.as_bytes().to_vec()),
                )]
                .into(),
            ),
            string_data: Some([("env".to_string(), STRING_VALUE.to_string())].into()),
            type_: Some("Opaque".into()),
            ..Default::default()
        }
    }

    fn assert_no_leak(out: &Value) {
        let text = serde_json::to_string(out).unwrap_or_default();
        for needle in [
            SECRET_VALUE.to_string(),
            STANDARD.encode(SECRET_VALUE),
            STRING_VALUE.to_string(),
            STANDARD.encode(STRING_VALUE),
            "p4ss".to_string(),
            "hunter2".to_string(),
            sha256_hex(SECRET_VALUE.as_bytes()),
            sha256_hex(STRING_VALUE.as_bytes()),
        ] {
            assert!(!text.contains(&needle), "{needle:?} survived in {text}");
        }
        let yaml = serde_saphyr::to_string(out).unwrap_or_default();
        assert!(
            !yaml.contains("hunter2") && !yaml.contains("p4ss"),
            "{yaml}"
        );
    }

    #[test]
    fn typed_secret_is_redacted() {
        let out = redact_secret(&k(), &secret());
        assert_no_leak(&out);
        let d =
            |key: &str, v: &str| json!(redacted_value(&k(), "app1", "app1-env", key, v.as_bytes()));
        assert_eq!(out["data"]["pw"], d("pw", SECRET_VALUE));
        assert_eq!(out["stringData"]["env"], d("env", STRING_VALUE));
        // The same value elsewhere (another namespace, Secret or key) digests differently, and
        // so does the same value under another install's key.
        for other in [
            redacted_value(&k(), "app2", "app1-env", "pw", SECRET_VALUE.as_bytes()),
            redacted_value(&k(), "app1", "other", "pw", SECRET_VALUE.as_bytes()),
            redacted_value(&k(), "app1", "app1-env", "pw2", SECRET_VALUE.as_bytes()),
        ] {
            assert_ne!(out["data"]["pw"], json!(other));
        }
        let other_key = HashKey::new(&[b'o'; 32]).map_err(|e| e.to_string());
        assert_ne!(
            other_key.map(|o| redact_secret(&o, &secret())["data"]["pw"].clone()),
            Ok(out["data"]["pw"].clone())
        );
        assert_eq!(
            out["metadata"]["annotations"][REDACTED_ANNOTATION],
            json!("true")
        );
        assert!(
            out["metadata"]["annotations"]
                .get(LAST_APPLIED_ANNOTATION)
                .is_none()
        );
        assert_eq!(out["metadata"]["name"], json!("app1-env"));
        assert_eq!(out["kind"], json!("Secret"));
        assert_eq!(out["type"], json!("Opaque"));
    }

    #[test]
    fn generic_objects_and_lists() {
        let s = serde_json::to_value(secret()).unwrap_or_default();
        let mut s = s.as_object().cloned().unwrap_or_default();
        s.insert("kind".into(), json!("Secret"));
        s.insert("apiVersion".into(), json!("v1"));
        let list = json!({"apiVersion": "v1", "kind": "List", "items": [
            Value::Object(s.clone()),
            {"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "visible"}},
        ]});
        let out = redact_object(&k(), &list);
        assert_no_leak(&out);
        assert_eq!(out["items"][1]["data"]["k"], json!("visible"));
        assert_eq!(
            redact_objects(&k(), &[Value::Object(s)])[0],
            redact_secret(&k(), &secret())
        );
    }

    #[test]
    fn odd_shapes_do_not_leak_or_panic() {
        let weird = json!({"kind": "Secret", "metadata": "x", "data": {"a": "not base64 hunter2!", "b": 5, "c": {"n": "hunter2"}}, "stringData": "hunter2"});
        let out = redact_object(&k(), &weird);
        assert_no_leak(&out);
        assert_eq!(
            out["data"]["a"],
            json!(redacted_value(&k(), "", "", "a", b"not base64 hunter2!"))
        );
        assert_eq!(
            out["metadata"]["annotations"][REDACTED_ANNOTATION],
            json!("true")
        );
        assert_eq!(redact_object(&k(), &json!("scalar")), json!("scalar"));
        let no_meta = redact_object(&k(), &json!({"kind": "Secret"}));
        assert_eq!(
            no_meta["metadata"]["annotations"][REDACTED_ANNOTATION],
            json!("true")
        );
    }
}

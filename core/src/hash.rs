//! Content digests: `env_hash` over referenced Secret/ConfigMap data (rolled into a pod
//! template annotation so a change restarts the pods), the digest of rendered manifests for
//! `status.renderedHash`, and the digests that stand for Secret values in redacted output.
//!
//! # Keyed: nothing can be checked offline
//!
//! Every digest that leaves a server is an HMAC-SHA256 under the install's [`HashKey`] (a
//! random key `kubectl kompox install` keeps in a Secret only the servers read), written
//! `hmac-sha256:<64 lowercase hex>`. An unkeyed hash of a Secret value would confirm guesses
//! (`echo -n GUESS | sha256sum`); without the key nobody can compute or compare these values
//! outside the servers. Each use has its own domain tag and binds the identity of what it
//! covers (namespace, name, key), so two digests of the same value in different objects
//! differ and a tenant cannot reproduce another namespace's digest with its own Secret.
//!
//! The per-value [`Digest`]s below stay in the servers' memory (the webhook's caches); they
//! are plain SHA-256 and never leave a process.
//!
//! # `env_hash` encoding (v3)
//!
//! The webhook, the controller and the renderer must compute the same value from the same
//! inputs and the same key, so the encoding is fixed here. It is defined over per-value
//! SHA-256 digests, not over the values themselves, so a cache holding only digests
//! ([`ObjectDigests`]) computes the same hash as code holding the full objects, and Secret
//! values need not stay in memory.
//!
//! 1. Inputs are sorted by (kind, namespace, name, key, value digest) and exact duplicates
//!    removed, so neither input order nor referencing the same key twice changes the hash.
//! 2. The hash is HMAC-SHA256 under the key over the domain tag `kompox-env-hash/v3\0`, the
//!    input count (u64 big-endian), then per input: kind, namespace, name and key each as u64
//!    big-endian byte length + bytes, then a presence byte — `0` for an absent key (nothing
//!    follows), `1` followed by the 32-byte SHA-256 digest of the value.
//!
//! Length prefixes make `a=bc` and `ab=c` differ.
//!
//! # Missing references
//!
//! What counts is what the container sees:
//!
//! - A reference to a **whole object** (`envFrom`, a `secret`/`configMap` volume without
//!   `items`, a projected source without `items`) whose object does not exist contributes
//!   nothing — exactly like an existing object with no keys. In both cases the container
//!   gets no variables (an empty directory), so creating an empty object does not roll pods.
//!   This is the sense in which missing optional references "count as empty".
//! - A reference to **one key** (`secretKeyRef`, `configMapKeyRef`, an `items` entry) whose
//!   object or key does not exist is an *absent* input ([`HashInput::missing`]), which hashes
//!   differently from a present empty value: the container sees the variable unset in one
//!   case and `""` in the other, so creating the key, even empty, rolls the pods.
//!
//! Whether a reference is `optional` does not matter: a required reference that is missing
//! keeps the container from starting until the object appears, and the hash then follows the
//! same rules. [`pod_spec_env_refs`] lists the references of a pod spec and
//! [`env_hash_for_refs`] applies these rules, so every caller agrees.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;

use hmac::{Hmac, Mac as _};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, EnvFromSource, EnvVar, KeyToPath, PodSpec, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use thiserror::Error;

/// Prefix of the in-memory [`Digest`]'s `Debug` form.
pub const SHA256_PREFIX: &str = "sha256:";

/// Prefix of every keyed digest ([`HashKey`]) that leaves a server.
pub const KEYED_PREFIX: &str = "hmac-sha256:";

/// The ConfigMap kube-controller-manager publishes in every namespace with the cluster CA.
/// Every Pod with a service account token mounts it (the `kube-api-access-*` projected
/// volume), so it is not app configuration and [`pod_spec_env_refs`] leaves it out.
pub const KUBE_ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";

const ENV_HASH_DOMAIN: &[u8] = b"kompox-env-hash/v3\0";

/// Errors from hashing.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// The key material is too short to be a secret.
    #[error("hash key: {len} bytes, want at least {min} (a random key as `kubectl kompox install` writes)", min = HashKey::MIN_LEN)]
    ShortKey {
        /// Length of what was given (after trimming whitespace).
        len: usize,
    },
}

/// The per-install secret key of every digest that leaves a server (see the module docs).
/// `Debug` never shows it.
#[derive(Clone)]
pub struct HashKey(Hmac<Sha256>);

impl HashKey {
    /// Shortest key accepted, in bytes.
    pub const MIN_LEN: usize = 32;

    /// A key from exactly these bytes (at least [`HashKey::MIN_LEN`]).
    ///
    /// # Errors
    ///
    /// [`Error::ShortKey`] when there are fewer.
    pub fn new(material: &[u8]) -> Result<HashKey, Error> {
        if material.len() < Self::MIN_LEN {
            return Err(Error::ShortKey {
                len: material.len(),
            });
        }
        // HMAC takes keys of any length; the error arm cannot happen.
        Hmac::<Sha256>::new_from_slice(material)
            .map(HashKey)
            .map_err(|_| Error::ShortKey {
                len: material.len(),
            })
    }

    /// A key from the content of a key file (the hex text `kubectl kompox install` writes):
    /// leading and trailing ASCII whitespace (a trailing newline) is not part of the key.
    ///
    /// # Errors
    ///
    /// [`Error::ShortKey`] when fewer than [`HashKey::MIN_LEN`] bytes remain.
    pub fn from_file_contents(contents: &[u8]) -> Result<HashKey, Error> {
        Self::new(contents.trim_ascii())
    }

    /// HMAC-SHA256 under this key over `domain` then each field as u64 big-endian length +
    /// bytes, as `hmac-sha256:<hex>`. Every keyed digest is one of these with its own domain.
    #[must_use]
    pub fn digest(&self, domain: &[u8], fields: &[&[u8]]) -> String {
        let mut mac = self.0.clone();
        mac.update(domain);
        for f in fields {
            mac.update(&(f.len() as u64).to_be_bytes());
            mac.update(f);
        }
        keyed(mac)
    }
}

impl fmt::Debug for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashKey(<secret>)")
    }
}

fn keyed(mac: Hmac<Sha256>) -> String {
    format!("{KEYED_PREFIX}{}", hex::encode(mac.finalize().into_bytes()))
}

/// Domain of [`rendered_hash`].
const RENDERED_DOMAIN: &[u8] = b"kompox-rendered/v1\0";

/// The keyed digest of rendered objects (`status.renderedHash`): over their canonical JSON
/// ([`canonical_json_string`]), so key order does not matter.
#[must_use]
pub fn rendered_hash(key: &HashKey, objects: &Value) -> String {
    key.digest(
        RENDERED_DOMAIN,
        &[canonical_json_string(objects).as_bytes()],
    )
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

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The SHA-256 digest of one value. `Debug` prints `sha256:<hex>`, never the value (which
/// this type does not hold).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    #[must_use]
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SHA256_PREFIX}{}", hex::encode(self.0))
    }
}

/// One referenced value: a key of a ConfigMap or Secret, present (as its digest) or absent.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HashInput {
    /// Kind of the source object.
    pub kind: SourceKind,
    /// Namespace of the source object.
    pub namespace: String,
    /// Name of the source object.
    pub name: String,
    /// Key in the object.
    pub key: String,
    /// The digest of the value, or `None` when the key (or its whole object) does not exist.
    pub value: Option<Digest>,
}

impl HashInput {
    /// A key that exists with `value` (only its digest is kept).
    #[must_use]
    pub fn present(
        kind: SourceKind,
        namespace: impl Into<String>,
        name: impl Into<String>,
        key: impl Into<String>,
        value: impl AsRef<[u8]>,
    ) -> HashInput {
        HashInput::digested(kind, namespace, name, key, Digest::of(value.as_ref()))
    }

    /// A key that exists, given the digest of its value.
    #[must_use]
    pub fn digested(
        kind: SourceKind,
        namespace: impl Into<String>,
        name: impl Into<String>,
        key: impl Into<String>,
        digest: Digest,
    ) -> HashInput {
        HashInput {
            kind,
            namespace: namespace.into(),
            name: name.into(),
            key: key.into(),
            value: Some(digest),
        }
    }

    /// A referenced key that does not exist (or whose object does not exist).
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

/// The digest-only form of a Secret or ConfigMap: its identity and one [`Digest`] per key.
/// Caches keep this instead of the object so that Secret values do not stay in memory;
/// [`ObjectDigests::inputs`] yields the same [`HashInput`]s as [`secret_inputs`] /
/// [`config_map_inputs`] on the full object.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectDigests {
    /// Secret or ConfigMap.
    pub kind: SourceKind,
    /// Namespace of the object.
    pub namespace: String,
    /// Name of the object.
    pub name: String,
    /// Key → digest of its value.
    pub values: BTreeMap<String, Digest>,
}

impl ObjectDigests {
    /// Digests a Secret's values. `stringData` entries override `data` like the apiserver
    /// does, so an object about to be applied hashes like the stored one.
    #[must_use]
    pub fn from_secret(secret: &Secret) -> ObjectDigests {
        Self::new(
            SourceKind::Secret,
            &secret.metadata,
            secret.data.as_ref(),
            secret.string_data.as_ref(),
        )
    }

    /// Digests a ConfigMap's values. `data` and `binaryData` keys are disjoint in a valid
    /// ConfigMap; `data` wins otherwise.
    #[must_use]
    pub fn from_config_map(config_map: &ConfigMap) -> ObjectDigests {
        Self::new(
            SourceKind::ConfigMap,
            &config_map.metadata,
            config_map.binary_data.as_ref(),
            config_map.data.as_ref(),
        )
    }

    /// Digests `binary` then `text` values; a key in both takes its `text` value.
    fn new(
        kind: SourceKind,
        meta: &ObjectMeta,
        binary: Option<&BTreeMap<String, ByteString>>,
        text: Option<&BTreeMap<String, String>>,
    ) -> Self {
        let mut values = BTreeMap::new();
        values.extend(
            binary
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), Digest::of(&v.0))),
        );
        values.extend(
            text.into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), Digest::of(v.as_bytes()))),
        );
        ObjectDigests {
            kind,
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            values,
        }
    }

    /// The inputs for one key (`Some(key)`: present, or [`HashInput::missing`]) or for all
    /// keys (`None`, as `envFrom` uses).
    #[must_use]
    pub fn inputs(&self, key: Option<&str>) -> Vec<HashInput> {
        let (kind, ns, name) = (self.kind, &self.namespace, &self.name);
        match key {
            Some(k) => vec![match self.values.get(k) {
                Some(d) => HashInput::digested(kind, ns, name, k, *d),
                None => HashInput::missing(kind, ns, name, k),
            }],
            None => self
                .values
                .iter()
                .map(|(k, d)| HashInput::digested(kind, ns, name, k, *d))
                .collect(),
        }
    }
}

/// The inputs for a Secret: one key (`Some(key)`, missing if absent) or all keys (`None`).
/// Same as [`ObjectDigests::from_secret`]`(secret).inputs(key)`.
#[must_use]
pub fn secret_inputs(secret: &Secret, key: Option<&str>) -> Vec<HashInput> {
    ObjectDigests::from_secret(secret).inputs(key)
}

/// The inputs for a ConfigMap: one key (`Some(key)`, missing if absent) or all keys (`None`).
/// Same as [`ObjectDigests::from_config_map`]`(config_map).inputs(key)`.
#[must_use]
pub fn config_map_inputs(config_map: &ConfigMap, key: Option<&str>) -> Vec<HashInput> {
    ObjectDigests::from_config_map(config_map).inputs(key)
}

/// The inputs for a reference whose object does not exist: one absent input for a key
/// reference, none for a whole-object reference (see the module docs).
#[must_use]
pub fn missing_object_inputs(
    kind: SourceKind,
    namespace: &str,
    name: &str,
    key: Option<&str>,
) -> Vec<HashInput> {
    match key {
        Some(k) => vec![HashInput::missing(kind, namespace, name, k)],
        None => Vec::new(),
    }
}

/// A reference from a pod spec to a Secret or ConfigMap in the pod's namespace: one key, or
/// the whole object (`key: None`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EnvRef {
    /// Secret or ConfigMap.
    pub kind: SourceKind,
    /// Object name.
    pub name: String,
    /// The key, or `None` for every key of the object.
    pub key: Option<String>,
}

/// The Secret/ConfigMap references of a pod spec, sorted and without duplicates: `env`
/// (`secretKeyRef`, `configMapKeyRef`) and `envFrom` of containers, init containers and
/// ephemeral containers, and `secret`, `configMap` and `projected` volumes (with `items`,
/// only the listed keys). [`KUBE_ROOT_CA_CONFIG_MAP`] and references with an empty name are
/// left out.
#[must_use]
pub fn pod_spec_env_refs(spec: &PodSpec) -> Vec<EnvRef> {
    let mut refs = Vec::new();
    let mut push = |kind: SourceKind, name: Option<&str>, key: Option<&str>| {
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            return;
        };
        if kind == SourceKind::ConfigMap && name == KUBE_ROOT_CA_CONFIG_MAP {
            return;
        }
        refs.push(EnvRef {
            kind,
            name: name.to_owned(),
            key: key.map(str::to_owned),
        });
    };
    let mut env = |env: Option<&Vec<EnvVar>>, env_from: Option<&Vec<EnvFromSource>>| {
        for e in env.into_iter().flatten() {
            let Some(from) = &e.value_from else { continue };
            if let Some(r) = &from.secret_key_ref {
                push(SourceKind::Secret, Some(&r.name), Some(&r.key));
            }
            if let Some(r) = &from.config_map_key_ref {
                push(SourceKind::ConfigMap, Some(&r.name), Some(&r.key));
            }
        }
        for f in env_from.into_iter().flatten() {
            if let Some(r) = &f.secret_ref {
                push(SourceKind::Secret, Some(&r.name), None);
            }
            if let Some(r) = &f.config_map_ref {
                push(SourceKind::ConfigMap, Some(&r.name), None);
            }
        }
    };
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        env(c.env.as_ref(), c.env_from.as_ref());
    }
    for c in spec.ephemeral_containers.iter().flatten() {
        env(c.env.as_ref(), c.env_from.as_ref());
    }
    let mut with_items =
        |kind: SourceKind, name: Option<&str>, items: Option<&Vec<KeyToPath>>| match items {
            Some(items) if !items.is_empty() => {
                for i in items {
                    push(kind, name, Some(&i.key));
                }
            }
            _ => push(kind, name, None),
        };
    for v in spec.volumes.iter().flatten() {
        if let Some(s) = &v.secret {
            with_items(
                SourceKind::Secret,
                s.secret_name.as_deref(),
                s.items.as_ref(),
            );
        }
        if let Some(c) = &v.config_map {
            with_items(SourceKind::ConfigMap, Some(&c.name), c.items.as_ref());
        }
        for s in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(p) = &s.secret {
                with_items(SourceKind::Secret, Some(&p.name), p.items.as_ref());
            }
            if let Some(p) = &s.config_map {
                with_items(SourceKind::ConfigMap, Some(&p.name), p.items.as_ref());
            }
        }
    }
    refs.sort();
    refs.dedup();
    refs
}

/// The [`HashInput`]s of `refs` in `namespace`: `resolve(kind, name)` returns the object's
/// digests if it exists; missing objects follow the module docs' rules.
#[must_use]
pub fn env_inputs_for_refs<D>(
    namespace: &str,
    refs: &[EnvRef],
    mut resolve: impl FnMut(SourceKind, &str) -> Option<D>,
) -> Vec<HashInput>
where
    D: Deref<Target = ObjectDigests>,
{
    let mut inputs = Vec::new();
    for r in refs {
        let key = r.key.as_deref();
        match resolve(r.kind, &r.name) {
            Some(obj) => {
                // Identity comes from the reference, not from whatever the resolver returned.
                for mut i in obj.inputs(key) {
                    i.namespace = namespace.to_owned();
                    i.name.clone_from(&r.name);
                    inputs.push(i);
                }
            }
            None => inputs.extend(missing_object_inputs(r.kind, namespace, &r.name, key)),
        }
    }
    inputs
}

/// [`env_hash`] of [`env_inputs_for_refs`]: the env hash of a pod spec's references.
#[must_use]
pub fn env_hash_for_refs<D>(
    key: &HashKey,
    namespace: &str,
    refs: &[EnvRef],
    resolve: impl FnMut(SourceKind, &str) -> Option<D>,
) -> String
where
    D: Deref<Target = ObjectDigests>,
{
    env_hash(key, &env_inputs_for_refs(namespace, refs, resolve))
}

/// The env hash of `inputs`; see the module docs for the exact encoding.
#[must_use]
pub fn env_hash(key: &HashKey, inputs: &[HashInput]) -> String {
    let mut sorted: Vec<&HashInput> = inputs.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut h = key.0.clone();
    h.update(ENV_HASH_DOMAIN);
    h.update(&(sorted.len() as u64).to_be_bytes());
    for i in sorted {
        for field in [
            i.kind.as_str().as_bytes(),
            i.namespace.as_bytes(),
            i.name.as_bytes(),
            i.key.as_bytes(),
        ] {
            h.update(&(field.len() as u64).to_be_bytes());
            h.update(field);
        }
        match &i.value {
            None => h.update(&[0u8]),
            Some(d) => {
                h.update(&[1u8]);
                h.update(&d.0);
            }
        }
    }
    keyed(h)
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

    /// The key of the fixed vectors: 32 bytes `k`.
    fn k() -> HashKey {
        match HashKey::new(&[b'k'; 32]) {
            Ok(k) => k,
            Err(e) => panic!("{e}"),
        }
    }

    fn env_hash(inputs: &[HashInput]) -> String {
        super::env_hash(&k(), inputs)
    }

    fn env_hash_for_refs<D: Deref<Target = ObjectDigests>>(
        ns: &str,
        refs: &[EnvRef],
        resolve: impl FnMut(SourceKind, &str) -> Option<D>,
    ) -> String {
        super::env_hash_for_refs(&k(), ns, refs, resolve)
    }

    #[test]
    fn keys_are_checked_and_never_shown() {
        assert_eq!(
            HashKey::from_file_contents(b"  short\n").map(|_| ()),
            Err(Error::ShortKey { len: 5 })
        );
        // Raw bytes are taken as they are, whitespace included (a random key may hold any).
        assert!(HashKey::new(&[b' '; 32]).is_ok());
        let material = "0123456789abcdef0123456789abcdef";
        let key = HashKey::from_file_contents(format!("{material}\n").as_bytes())
            .map_err(|e| e.to_string());
        let Ok(key) = key else { panic!("{key:?}") };
        assert!(!format!("{key:?}").contains(material));
        // Trailing whitespace of a key file does not change the key.
        let same = HashKey::new(material.as_bytes()).map_err(|e| e.to_string());
        assert_eq!(
            same.map(|s| s.digest(b"d", &[b"x"])),
            Ok(key.digest(b"d", &[b"x"]))
        );
    }

    #[test]
    fn keyed_digest_vector_and_key_dependence() {
        // python3: hmac.new(b"k"*32, b"d" + struct.pack(">Q", 1) + b"x", "sha256").hexdigest()
        assert_eq!(
            k().digest(b"d", &[b"x"]),
            "hmac-sha256:356d63b9849efa6f9ffe7edaa46192163ef828ac8324ba1ec4783c850b4fee1b"
        );
        let other = HashKey::new(&[b'o'; 32]).map_err(|e| e.to_string());
        assert_ne!(
            other.map(|o| o.digest(b"d", &[b"x"])),
            Ok(k().digest(b"d", &[b"x"]))
        );
        // Field boundaries count.
        assert_ne!(
            k().digest(b"d", &[b"ab", b"c"]),
            k().digest(b"d", &[b"a", b"bc"])
        );
        assert_ne!(k().digest(b"d", &[b"x"]), k().digest(b"e", &[b"x"]));
    }

    #[test]
    fn env_hash_fixed_vectors() {
        // Computed independently with python3: hmac.new(b"k"*32, b"kompox-env-hash/v3\0" +
        // struct.pack(">Q", n) + per input: length-prefixed kind/ns/name/key, then b"\0" or
        // b"\1" + sha256(value), "sha256"). Pinned: changing the encoding must be deliberate
        // (webhook, controller and renderer agree).
        assert_eq!(
            env_hash(&[]),
            "hmac-sha256:d57713ac4c2f6e0b4a2ef53dd57ef707d0c1b3f9a4e76f488bf3dcb80f316e81"
        );
        assert_eq!(
            env_hash(&[sec("A", "1")]),
            "hmac-sha256:48c612667a7be34917b1ac10ad8b7de3c664523d62367bfe58fb64d40e93a76b"
        );
        assert_eq!(
            env_hash(&[
                HashInput::missing(SourceKind::Secret, "ns", "env", "A"),
                HashInput::present(SourceKind::ConfigMap, "ns", "cfg", "x", ""),
            ]),
            "hmac-sha256:282180df4f72a1b0b2fb4a4dac20f2437344071161957396d6a2a43344a9f14e"
        );
    }

    #[test]
    fn env_hash_order_and_duplicates_do_not_matter() {
        let a = env_hash(&[sec("A", "1"), sec("B", "2")]);
        assert_eq!(a, env_hash(&[sec("B", "2"), sec("A", "1")]));
        assert_eq!(a, env_hash(&[sec("B", "2"), sec("A", "1"), sec("A", "1")]));
        assert!(a.starts_with(KEYED_PREFIX) && a.len() == KEYED_PREFIX.len() + 64);
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
            env_hash(&[HashInput::missing(SourceKind::Secret, "ns", "env", "A")])
        );
    }

    #[test]
    fn digests_do_not_show_values() {
        let d = Digest::of(b"hunter2");
        let shown = format!("{d:?} {:?}", sec("pw", "hunter2"));
        assert!(!shown.contains("hunter2"), "{shown}");
        // python3: hashlib.sha256(b"hunter2").hexdigest()
        assert!(
            shown.contains(
                "sha256:f52fbd32b2b3b86ff88ef6c490628285f482af15ddcb29541f94bcf526a3f6c7"
            ),
            "{shown}"
        );
    }

    fn secret() -> Secret {
        Secret {
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
        }
    }

    #[test]
    fn object_inputs_agree_with_manual_inputs() {
        let secret = secret();
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
    fn digest_form_hashes_like_the_full_object() {
        let secret = secret();
        let digests = ObjectDigests::from_secret(&secret);
        assert_eq!(digests.values.len(), 2);
        assert_eq!(digests.values.get("A"), Some(&Digest::of(b"1")));
        for key in [None, Some("A"), Some("B"), Some("C")] {
            assert_eq!(digests.inputs(key), secret_inputs(&secret, key), "{key:?}");
        }
    }

    fn pod_spec(v: serde_json::Value) -> PodSpec {
        match serde_json::from_value(v) {
            Ok(s) => s,
            Err(e) => panic!("pod spec: {e}"),
        }
    }

    fn r(kind: SourceKind, name: &str, key: Option<&str>) -> EnvRef {
        EnvRef {
            kind,
            name: name.into(),
            key: key.map(Into::into),
        }
    }

    #[test]
    fn pod_spec_refs_cover_env_env_from_and_volumes() {
        let spec = pod_spec(json!({
            "containers": [{
                "name": "a",
                "env": [
                    {"name": "X", "valueFrom": {"secretKeyRef": {"name": "s1", "key": "k1"}}},
                    {"name": "Y", "valueFrom": {"configMapKeyRef": {"name": "c1", "key": "k2", "optional": true}}},
                    {"name": "Z", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "L", "value": "literal"},
                ],
                "envFrom": [{"secretRef": {"name": "s2"}}, {"configMapRef": {"name": "c2"}}],
            }],
            "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "s1"}}]}],
            "ephemeralContainers": [{"name": "e", "env": [
                {"name": "E", "valueFrom": {"secretKeyRef": {"name": "s5", "key": "k"}}}]}],
            "volumes": [
                {"name": "v1", "secret": {"secretName": "s3", "items": [{"key": "a", "path": "a"}]}},
                {"name": "v2", "configMap": {"name": "c3"}},
                {"name": "v3", "projected": {"sources": [
                    {"secret": {"name": "s4"}},
                    {"configMap": {"name": "c4", "items": [{"key": "b", "path": "b"}, {"key": "c", "path": "c"}]}},
                    {"serviceAccountToken": {"path": "token"}},
                ]}},
                {"name": "kube-api-access", "projected": {"sources": [
                    {"configMap": {"name": KUBE_ROOT_CA_CONFIG_MAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                ]}},
                {"name": "v4", "secret": {}},
                {"name": "v5", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "v6", "secret": {"secretName": "s2"}},
            ],
        }));
        use SourceKind::{ConfigMap as C, Secret as S};
        assert_eq!(
            pod_spec_env_refs(&spec),
            vec![
                r(C, "c1", Some("k2")),
                r(C, "c2", None),
                r(C, "c3", None),
                r(C, "c4", Some("b")),
                r(C, "c4", Some("c")),
                r(S, "s1", None),
                r(S, "s1", Some("k1")),
                r(S, "s2", None),
                r(S, "s3", Some("a")),
                r(S, "s4", None),
                r(S, "s5", Some("k")),
            ]
        );
        let none = pod_spec(json!({"containers": [{"name": "a"}],
            "volumes": [{"name": "kube-api-access", "projected": {"sources": [
                {"configMap": {"name": KUBE_ROOT_CA_CONFIG_MAP}}]}}]}));
        assert!(pod_spec_env_refs(&none).is_empty());
    }

    #[test]
    fn refs_resolve_with_missing_object_rules() {
        use SourceKind::Secret as S;
        let digests = ObjectDigests::from_secret(&secret());
        let refs = [
            r(S, "env", None),
            r(S, "env", Some("B")),
            r(S, "gone", None),
        ];
        let found = |_: SourceKind, name: &str| (name == "env").then_some(&digests);
        // The whole-object ref to "gone" contributes nothing; "B" is already among all keys.
        assert_eq!(
            env_hash_for_refs("ns", &refs, found),
            env_hash(&[sec("A", "1"), sec("B", "2")])
        );
        // A missing whole object hashes like an empty one.
        let empty = ObjectDigests {
            values: BTreeMap::new(),
            ..digests.clone()
        };
        let nothing = |_: SourceKind, _: &str| None::<&ObjectDigests>;
        assert_eq!(
            env_hash_for_refs("ns", &[r(S, "env", None)], nothing),
            env_hash_for_refs("ns", &[r(S, "env", None)], |_, _| Some(&empty))
        );
        // A missing key is absent, not empty, whether the object or only the key is missing.
        let key_ref = [r(S, "env", Some("C"))];
        let absent = env_hash(&[HashInput::missing(S, "ns", "env", "C")]);
        assert_eq!(env_hash_for_refs("ns", &key_ref, nothing), absent);
        assert_eq!(env_hash_for_refs("ns", &key_ref, found), absent);
        assert_ne!(absent, env_hash(&[sec("C", "")]));
        // The resolver's idea of the object's identity does not leak into the hash.
        let elsewhere = ObjectDigests {
            namespace: "other".into(),
            ..digests.clone()
        };
        assert_eq!(
            env_hash_for_refs("ns", &refs[..1], |_, _| Some(&elsewhere)),
            env_hash(&[sec("A", "1"), sec("B", "2")])
        );
    }

    #[test]
    fn rendered_hash_is_key_order_independent_and_keyed() {
        let a = rendered_hash(&k(), &json!({"b": 1, "a": {"y": [1, 2], "x": null}}));
        let b = rendered_hash(&k(), &json!({"a": {"x": null, "y": [1, 2]}, "b": 1}));
        assert_eq!(a, b);
        assert_ne!(
            a,
            rendered_hash(&k(), &json!({"a": {"x": null, "y": [2, 1]}, "b": 1}))
        );
        assert_eq!(
            canonical_json_string(&json!({"b": 1, "a": 2})),
            r#"{"a":2,"b":1}"#
        );
        // python3: hmac.new(b"k"*32, b"kompox-rendered/v1\0" + struct.pack(">Q", 13)
        //   + b'{"a":2,"b":1}', "sha256").hexdigest()
        assert_eq!(
            rendered_hash(&k(), &json!({"b": 1, "a": 2})),
            "hmac-sha256:c89695471188a49e27517b84089eb4f0966631ddd705c6f3794d9a1f38caa495"
        );
    }
}

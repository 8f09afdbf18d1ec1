//! YAML text → a generic, order-preserving tree.
//!
//! serde-saphyr does the YAML work (anchors, aliases, `<<` merge keys); this module only
//! chooses its options deliberately and collects the result into [`Value`], which keeps
//! mapping order and turns every scalar key into a string.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Options;
use serde_saphyr::options::{DuplicateKeyPolicy, MergeKeyPolicy, NonFiniteFloatPolicy};

/// Largest compose file accepted, in bytes. A compose file lives in a ConfigMap (at most
/// 1 MiB), so anything larger is a mistake or an attack.
pub const MAX_INPUT_BYTES: usize = 1024 * 1024;

/// Deepest nesting of sequences and mappings accepted. Real compose files stay below 10.
pub const MAX_DEPTH: usize = 32;

/// A parsed YAML node. Mapping keys are strings (scalar keys are converted), in file order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    String(String),
    Seq(Vec<Value>),
    Map(Vec<(String, Value)>),
}

impl Value {
    /// A short name of the node's kind, for "expected X, found Y" messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::String(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The scalar as text (numbers and booleans spelled out); `None` for null and collections.
    pub(crate) fn scalar_text(&self) -> Option<String> {
        match self {
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::String(s) => Some(s.clone()),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }
}

/// The serde-saphyr options used for compose files, each chosen on purpose.
fn options() -> Options {
    let budget = serde_saphyr::budget! {
        max_depth: MAX_DEPTH,
        // One compose file is one document.
        max_documents: 1,
        max_events: 400_000,
        max_nodes: 200_000,
        max_aliases: 10_000,
        max_anchors: 10_000,
        max_merge_keys: 10_000,
        max_total_scalar_bytes: 4 * MAX_INPUT_BYTES,
        max_recorded_anchor_events: 200_000,
        max_recorded_anchor_bytes: 4 * MAX_INPUT_BYTES,
    };
    serde_saphyr::options! {
        budget: budget,
        // Compose (yaml.v3) rejects duplicate keys; so do we.
        duplicate_keys: DuplicateKeyPolicy::Error,
        // `<<: *base` is how compose files share service definitions.
        merge_keys: MergeKeyPolicy::Merge,
        // Billion-laughs guard: alias replay is bounded in total and in nesting.
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 200_000,
            max_replay_stack_depth: 16,
            max_alias_expansions_per_anchor: 10_000,
        },
        // `FOO: yes` is the string "yes" (YAML 1.2 core schema, as compose reads it).
        strict_booleans: true,
        // `mode: 0440` keeps its spelling so that file modes can be read as octal, and
        // values such as `0123` or `1_000` stay the text the author wrote.
        leading_zero_numbers_as_strings: true,
        underscored_numbers_as_strings: true,
        non_finite_float_policy: NonFiniteFloatPolicy::AsString,
        // Snippets would quote input lines (which may hold secrets) into error messages.
        with_snippet: false,
        // Comments are not needed; don't retain them.
        emit_comments: false,
    }
}

/// Parses YAML text into a [`Value`]. An empty document is [`Value::Null`].
pub(crate) fn load(text: &str) -> Result<Value, String> {
    if text.len() > MAX_INPUT_BYTES {
        return Err(format!(
            "compose file is {} bytes; the limit is {MAX_INPUT_BYTES}",
            text.len()
        ));
    }
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    let value: Option<Value> =
        serde_saphyr::from_str_with_options(text, options()).map_err(|e| tidy(&e.to_string()))?;
    Ok(value.unwrap_or(Value::Null))
}

/// Drops library-specific advice from serde-saphyr messages and rewords the common budget
/// breaches.
fn tidy(message: &str) -> String {
    let message = message.replace(", set DuplicateKeyPolicy in Options if acceptable", "");
    if message.contains("budget breached: Documents") {
        return "a compose file must hold a single YAML document".to_owned();
    }
    if message.contains("budget breached: Depth") {
        return format!("nested deeper than {MAX_DEPTH} levels");
    }
    if message.contains("budget breached") {
        return format!("too large or too many aliases expanded ({message})");
    }
    message
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(i128::from(v)))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Int(i128::from(v)))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        i128::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::String(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(Key(key)) = map.next_key::<Key>()? {
            let value = map.next_value::<Value>()?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }
}

/// A mapping key: any scalar, converted to its text.
struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar mapping key")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }
    fn visit_str<E>(self, v: &str) -> Result<Key, E> {
        Ok(Key(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Key, E> {
        Ok(Key(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Key, E> {
        Err(E::custom("a mapping key must not be null"))
    }
}

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

/// Most nodes a compose file may stand for once every alias and `<<` merge key is expanded
/// (counted before anything is built, see [`expanded_size`]). The samples stay below 150
/// nodes; aliases multiply at every level of nesting, so a few hundred bytes can otherwise
/// stand for millions of nodes.
pub const MAX_EXPANDED_NODES: u64 = 20_000;

/// Most nodes `<<` merge keys may bring in, all merges together. A service template merged
/// into 20 services is a few hundred; serde-saphyr's merge expansion costs far more per node
/// than plain parsing (about 40 µs in a debug build), so nested merges of a few hundred bytes
/// would otherwise cost seconds of CPU.
pub const MAX_MERGED_NODES: u64 = 2_000;

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

    /// Nodes in the tree: a scalar is 1, a collection 1 + its children (counted as
    /// [`expanded_size`] counts them).
    pub(crate) fn nodes(&self) -> u64 {
        match self {
            Value::Seq(items) => 1 + items.iter().map(Value::nodes).sum::<u64>(),
            Value::Map(entries) => 1 + entries.iter().map(|(_, v)| 1 + v.nodes()).sum::<u64>(),
            _ => 1,
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
    // Without an anchor (`&`) nothing can be expanded and without `<<` nothing merged: the
    // text stands for no more nodes than it holds, so the tree is built at once and counted
    // (the same limit, without a second pass of the parser over every compose file).
    let expands = text.contains('&') || text.contains("<<");
    if expands {
        match expanded_size(text, MAX_EXPANDED_NODES, MAX_MERGED_NODES) {
            Err(c) if c.merged > MAX_MERGED_NODES => {
                return Err(format!(
                    "`<<` merge keys bring in more than {MAX_MERGED_NODES} nodes; merge smaller or fewer mappings"
                ));
            }
            Err(_) => return Err(too_many_nodes()),
            Ok(_) => {}
        }
    }
    let value: Option<Value> =
        serde_saphyr::from_str_with_options(text, options()).map_err(|e| tidy(&e.to_string()))?;
    let value = value.unwrap_or(Value::Null);
    if !expands && value.nodes() > MAX_EXPANDED_NODES {
        return Err(too_many_nodes());
    }
    Ok(value)
}

fn too_many_nodes() -> String {
    format!(
        "expands to more than {MAX_EXPANDED_NODES} nodes once aliases and `<<` merge keys are expanded"
    )
}

/// What [`expanded_size`] counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Expansion {
    /// Nodes with every alias expanded (a scalar is 1, a collection 1 + its children, an
    /// alias the size of its anchor).
    pub nodes: u64,
    /// Of those, nodes that `<<` merge keys bring in (the size of every merge value).
    pub merged: u64,
}

/// Counts what `text` stands for once every alias and `<<` merge key is expanded, from the
/// parser's events alone (linear in the input, nothing is built), stopping as soon as
/// `max_nodes` or `max_merged` is passed (`Err` with the counts so far). Text that does not
/// parse counts as far as it goes: the real parse reports the error.
pub(crate) fn expanded_size(
    text: &str,
    max_nodes: u64,
    max_merged: u64,
) -> Result<Expansion, Expansion> {
    use granit_parser::{Event, Parser, ScalarStyle};
    use std::collections::HashMap;

    /// An open collection.
    struct Frame {
        size: u64,
        anchor: usize,
        map: bool,
        children: u64,
        /// The next child is the value of a `<<` key.
        merge_value: bool,
    }
    let mut anchors: HashMap<usize, u64> = HashMap::new();
    let mut open: Vec<Frame> = Vec::new();
    let mut count = Expansion::default();
    let mut top: u64 = 0;
    // A finished node of `n` nodes (`merge_key`: it is a plain `<<` scalar) joins its parent.
    let mut finish = |open: &mut Vec<Frame>, n: u64, merge_key: bool| -> Result<(), Expansion> {
        match open.last_mut() {
            Some(p) => {
                p.size = p.size.saturating_add(n);
                if p.map && p.children % 2 == 0 {
                    p.merge_value = merge_key;
                } else if p.map && p.merge_value {
                    count.merged = count.merged.saturating_add(n);
                    p.merge_value = false;
                }
                p.children += 1;
                count.nodes = count.nodes.max(p.size);
            }
            None => {
                top = top.saturating_add(n);
                count.nodes = count.nodes.max(top);
            }
        }
        if count.nodes > max_nodes || count.merged > max_merged {
            Err(count)
        } else {
            Ok(())
        }
    };
    for item in Parser::new_from_str(text) {
        let Ok((event, _)) = item else {
            break;
        };
        match event {
            Event::Scalar(value, style, anchor, _) => {
                if anchor != 0 {
                    anchors.insert(anchor, 1);
                }
                finish(&mut open, 1, style == ScalarStyle::Plain && value == "<<")?;
            }
            Event::Alias(id) => {
                let n = anchors.get(&id).copied().unwrap_or(1);
                finish(&mut open, n, false)?;
            }
            Event::SequenceStart(_, anchor, _) | Event::MappingStart(_, anchor, _) => {
                open.push(Frame {
                    size: 1,
                    anchor,
                    map: matches!(event, Event::MappingStart(..)),
                    children: 0,
                    merge_value: false,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(f) = open.pop() {
                    if f.anchor != 0 {
                        anchors.insert(f.anchor, f.size);
                    }
                    finish(&mut open, f.size, false)?;
                }
            }
            _ => {}
        }
    }
    Ok(count)
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

#[cfg(test)]
mod budget_tests {
    use super::*;

    /// `levels` levels of mappings, each merging the one below `n` times (the first holds
    /// `keys` keys), then a service.
    fn merge_bomb(n: usize, levels: usize, keys: usize) -> String {
        let first: Vec<String> = (0..keys).map(|i| format!("k{i}: {i}")).collect();
        let mut out = vec![format!("x-l0: &l0 {{{}}}", first.join(", "))];
        for l in 1..=levels {
            let refs = vec![format!("*l{}", l - 1); n].join(", ");
            out.push(format!("x-l{l}: &l{l} {{<<: [{refs}], z{l}: 1}}"));
        }
        out.push("services: {web: {image: nginx}}".into());
        out.join("\n")
    }

    /// The same with sequences of aliases (no merge keys).
    fn alias_bomb(n: usize, levels: usize, keys: usize) -> String {
        let first: Vec<String> = (0..keys).map(|i| format!("k{i}: {i}")).collect();
        let mut out = vec![format!("x-l0: &l0 {{{}}}", first.join(", "))];
        for l in 1..=levels {
            let refs = vec![format!("*l{}", l - 1); n].join(", ");
            out.push(format!("x-l{l}: &l{l} [{refs}]"));
        }
        out.push("services: {web: {image: nginx}}".into());
        out.join("\n")
    }

    #[test]
    fn expansion_is_counted() {
        let cases = [
            ("plain", "a: 1\nb: [1, 2]\n".to_owned(), 7, 0),
            ("alias", "a: &x [1, 2]\nb: *x\n".to_owned(), 9, 0),
            (
                "merge",
                "a: &x {k: 1}\nb: {<<: *x, j: 2}\n".to_owned(),
                13,
                3,
            ),
            (
                "merge list",
                "a: &x {k: 1}\nb: {<<: [*x, *x]}\n".to_owned(),
                15,
                7,
            ),
            (
                "quoted << is a key",
                "a: &x {k: 1}\nb: {'<<': *x}\n".to_owned(),
                11,
                0,
            ),
        ];
        for (name, text, nodes, merged) in cases {
            assert_eq!(
                expanded_size(&text, u64::MAX, u64::MAX),
                Ok(Expansion { nodes, merged }),
                "{name}"
            );
        }
    }

    #[test]
    fn a_plain_file_over_the_node_limit_is_refused_like_an_expanded_one() {
        // No anchor and no merge key: counted on the built tree instead of by a first pass.
        let keys = usize::try_from(MAX_EXPANDED_NODES / 2).unwrap_or(usize::MAX);
        let at_limit: String = (0..keys - 1).map(|i| format!("k{i}: {i}\n")).collect();
        let over = format!("{at_limit}k{keys}: 0\n");
        assert_eq!(
            load(&at_limit).map(|v| v.nodes()),
            Ok(MAX_EXPANDED_NODES - 1)
        );
        let e = load(&over).err().unwrap_or_default();
        assert!(e.starts_with("expands to more than 20000 nodes"), "{e}");
    }

    #[test]
    fn bombs_are_refused_quickly_and_real_files_pass() {
        let cases = [
            (
                "merge bomb 8x4",
                merge_bomb(8, 4, 8),
                Some("`<<` merge keys bring in more than"),
            ),
            (
                "merge bomb 16x4",
                merge_bomb(16, 4, 16),
                Some("`<<` merge keys bring in more than"),
            ),
            (
                "alias bomb 10x6",
                alias_bomb(10, 6, 10),
                Some("expands to more than"),
            ),
            (
                "alias bomb 35x2",
                alias_bomb(35, 2, 35),
                Some("expands to more than"),
            ),
            ("small merges", merge_bomb(3, 2, 5), None),
        ];
        for (name, text, want) in cases {
            let start = std::time::Instant::now();
            let got = load(&text);
            let took = start.elapsed();
            match want {
                Some(w) => {
                    let e = got.err().unwrap_or_default();
                    assert!(e.contains(w), "{name}: {e}");
                    // Refused before serde-saphyr expands anything (well under the 100 ms the
                    // budget promises, even in a debug build on a busy machine).
                    assert!(
                        took < std::time::Duration::from_millis(100),
                        "{name}: {took:?}"
                    );
                }
                None => assert!(got.is_ok(), "{name}: {got:?}"),
            }
        }
        for s in ["gitea", "wordpress", "nextcloud", "vaultwarden", "miniflux"] {
            let path = format!("{}/../samples/{s}/compose.yml", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let tree = load(&text).map(|v| v.nodes());
            let counted = expanded_size(&text, u64::MAX, u64::MAX).map(|c| c.nodes);
            assert_eq!(
                tree,
                counted.map_err(|_| String::new()),
                "{s}: both counts agree"
            );
        }
        for s in ["gitea", "wordpress", "nextcloud", "vaultwarden", "miniflux"] {
            let path = format!("{}/../samples/{s}/compose.yml", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let count = expanded_size(&text, u64::MAX, u64::MAX);
            assert!(
                count.is_ok_and(|c| c.nodes < MAX_EXPANDED_NODES / 10 && c.merged == 0),
                "{s}: {count:?}"
            );
        }
    }
}

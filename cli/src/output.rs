//! How commands print: kubectl's tables (`table`, `age`), kubectl's `-o` forms of the get and
//! list commands ([`Output`]: `name`, `json`, `yaml`, `wide`, `jsonpath=TEMPLATE`), YAML/JSON
//! object streams, colour only on a terminal without `NO_COLOR`, and one-line messages.

use std::io::Write;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde_json::Value;

use crate::CliError;
pub use crate::jsonpath::Template;

/// Output formats of the cluster subcommands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A multi-document YAML stream.
    Yaml,
    /// A JSON `v1 List`.
    Json,
}

/// Writes `objects` as YAML documents or a JSON List.
///
/// # Errors
///
/// [`CliError::Io`].
pub fn write_objects(
    out: &mut dyn std::io::Write,
    objects: &[Value],
    format: Format,
) -> Result<(), CliError> {
    let text = match format {
        Format::Yaml => kompox_core::render::yaml_stream(objects)
            .map_err(|e| CliError::Io(format!("writing YAML: {e}")))?,
        Format::Json => {
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": objects});
            let mut s = serde_json::to_string_pretty(&list)
                .map_err(|e| CliError::Io(format!("writing JSON: {e}")))?;
            s.push('\n');
            s
        }
    };
    out.write_all(text.as_bytes())
        .map_err(|e| CliError::Io(format!("writing output: {e}")))
}

/// Rows as kubectl prints them: each column padded to its widest cell, three spaces apart.
#[must_use]
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut s = String::new();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            s.push_str(c);
            if i + 1 < r.len() {
                s.push_str(&" ".repeat(widths[i] - c.chars().count() + 3));
            }
        }
        s.push('\n');
    }
    s
}

/// kubectl's AGE column: `45s`, `12m`, `5h`, `3d` since `created`.
#[must_use]
pub fn age(created: Option<&Time>, now: k8s_openapi::jiff::Timestamp) -> String {
    let Some(t) = created else {
        return "<unknown>".into();
    };
    match (now.as_second() - t.0.as_second()).max(0) {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// kubectl's `-o`: how a get or list command prints (default: a table, or the command's own
/// summary).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// The table with more columns.
    Wide,
    /// `kind.group/name`, one line per object.
    Name,
    /// A multi-document YAML stream.
    Yaml,
    /// A JSON object, or a `v1 List` of several.
    Json,
    /// kubectl's JSONPath template (`{.items[*].metadata.name}`, `{range …}…{end}`).
    JsonPath(Template),
}

/// The `-o` values, for help texts.
pub const OUTPUT_HELP: &str = "name, json, yaml, wide or jsonpath=TEMPLATE (as kubectl)";

impl Output {
    /// Parses an `-o` value as kubectl does.
    ///
    /// # Errors
    ///
    /// A message for clap naming the value or the template's problem.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "wide" => Ok(Output::Wide),
            "name" => Ok(Output::Name),
            "yaml" => Ok(Output::Yaml),
            "json" => Ok(Output::Json),
            _ => match s.split_once('=') {
                Some(("jsonpath", t)) => Template::parse(t).map(Output::JsonPath),
                _ => Err(format!("{s:?}: expected {OUTPUT_HELP}")),
            },
        }
    }
}

/// Writes `objects` as `-o` says (not a table form): a list (`list`, as `kubectl get` of a
/// kind: JSON and JSONPath see a `v1 List`) or one object.
///
/// # Errors
///
/// [`CliError::Invalid`] for `-o wide` (no table here); [`CliError::Io`].
pub fn write_as(
    out: &mut dyn Write,
    objects: &[Value],
    output: &Output,
    list: bool,
) -> Result<(), CliError> {
    let list_value = || serde_json::json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": objects});
    let text = match output {
        Output::Wide => {
            return Err(CliError::Invalid(vec![
                "-o wide: this command prints no table; use -o yaml, json, name or jsonpath=…"
                    .to_owned(),
            ]));
        }
        Output::Yaml => {
            return write_objects(out, objects, Format::Yaml);
        }
        Output::Json if !list && objects.len() == 1 => {
            let mut s = serde_json::to_string_pretty(&objects[0])
                .map_err(|e| CliError::Io(format!("writing JSON: {e}")))?;
            s.push('\n');
            s
        }
        Output::Json => return write_objects(out, objects, Format::Json),
        Output::Name => objects.iter().map(|o| name_of(o) + "\n").collect(),
        Output::JsonPath(t) => {
            if !list && objects.len() == 1 {
                t.render(&objects[0])
            } else {
                t.render(&list_value())
            }
        }
    };
    out.write_all(text.as_bytes())
        .map_err(|e| CliError::Io(format!("writing output: {e}")))
}

/// `-o name`'s `kind.group/name` (`deployment.apps/web`, `configmap/web-compose`).
#[must_use]
pub fn name_of(o: &Value) -> String {
    let kind = o["kind"].as_str().unwrap_or_default().to_lowercase();
    let name = o["metadata"]["name"].as_str().unwrap_or_default();
    match o["apiVersion"].as_str().and_then(|v| v.split_once('/')) {
        Some((group, _)) => format!("{kind}.{group}/{name}"),
        None => format!("{kind}/{name}"),
    }
}

/// Prints `items` of kind `K` as `-o` says: a table (the `wide` columns only with `-o wide`;
/// a NAMESPACE column first with `all_namespaces`, as kubectl), else as [`write_as`] does.
/// `row` gives an item's normal and wide cells.
///
/// # Errors
///
/// [`CliError::Io`].
pub fn print_list<K>(
    out: &mut dyn Write,
    items: &[K],
    output: Option<&Output>,
    all_namespaces: bool,
    header: (&[&str], &[&str]),
    row: impl Fn(&K) -> (Vec<String>, Vec<String>),
) -> Result<(), CliError>
where
    K: kube::Resource<DynamicType = ()> + serde::Serialize,
{
    if let Some(f) = output.filter(|f| **f != Output::Wide) {
        let mut objs = Vec::with_capacity(items.len());
        for item in items {
            let mut v = serde_json::to_value(item)
                .map_err(|e| CliError::Io(format!("encoding the list: {e}")))?;
            // A list's items come without them; kubectl prints them.
            v["apiVersion"] = Value::String(K::api_version(&()).into_owned());
            v["kind"] = Value::String(K::kind(&()).into_owned());
            objs.push(v);
        }
        return write_as(out, &objs, f, true);
    }
    let wide = output == Some(&Output::Wide);
    let cells = |normal: &[&str], extra: &[&str]| -> Vec<String> {
        let extra = if wide { extra } else { &[] };
        let ns = if all_namespaces {
            &["NAMESPACE"][..]
        } else {
            &[]
        };
        ns.iter()
            .chain(normal)
            .chain(extra)
            .map(|c| (*c).to_owned())
            .collect()
    };
    let mut rows = vec![cells(header.0, header.1)];
    for item in items {
        let (normal, extra) = row(item);
        let mut cells: Vec<String> = Vec::new();
        if all_namespaces {
            cells.push(item.meta().namespace.clone().unwrap_or_default());
        }
        cells.extend(normal);
        if wide {
            cells.extend(extra);
        }
        rows.push(cells);
    }
    out.write_all(table(&rows).as_bytes())
        .map_err(|e| CliError::Io(format!("writing output: {e}")))
}

/// Whether to colour output on a stream: only on a terminal, and never with `NO_COLOR` set to
/// anything non-empty (<https://no-color.org>).
#[must_use]
pub fn use_color(terminal: bool) -> bool {
    terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A table cell: the value, or `-` when there is none.
pub fn or_dash(s: Option<String>) -> String {
    s.filter(|s| !s.is_empty()).unwrap_or_else(|| "-".into())
}

/// Writes one line of output.
///
/// # Errors
///
/// [`CliError::Io`].
pub fn line(out: &mut dyn Write, s: &str) -> Result<(), CliError> {
    writeln!(out, "{s}").map_err(|e| CliError::Io(format!("writing output: {e}")))
}

/// kubectl's READY column of a condition list: the `Ready` condition's status, else `-`.
pub fn ready_of(conds: &[Condition]) -> String {
    conds
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
        .unwrap_or_else(|| "-".into())
}

/// Asks on the terminal for `answer` (described as `what`); `false` unless it is typed back.
///
/// # Errors
///
/// [`CliError::Io`] when the terminal cannot be read.
pub async fn confirm(
    err: &mut dyn Write,
    question: &str,
    what: &str,
    answer: &str,
) -> Result<bool, CliError> {
    let _ = write!(err, "{question}\nType {what} to confirm: ");
    let _ = err.flush();
    let typed = tokio::task::spawn_blocking(|| {
        let mut s = String::new();
        std::io::stdin().read_line(&mut s).map(|_| s)
    })
    .await
    .map_err(|e| CliError::Io(format!("reading the confirmation: {e}")))?
    .map_err(|e| CliError::Io(format!("reading the confirmation: {e}")))?;
    Ok(typed.trim() == answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pads_columns_like_kubectl() {
        let rows = vec![
            vec!["NAME".to_owned(), "SIZE".to_owned(), "AGE".to_owned()],
            vec!["a-long-name".to_owned(), "1Gi".to_owned(), "5s".to_owned()],
        ];
        assert_eq!(
            table(&rows),
            "NAME          SIZE   AGE\na-long-name   1Gi    5s\n"
        );
        assert_eq!(table(&[]), "");
    }

    #[test]
    fn ages() {
        let now = k8s_openapi::jiff::Timestamp::from_second(1_000_000).unwrap_or_default();
        let at = |secs: i64| {
            Time(k8s_openapi::jiff::Timestamp::from_second(1_000_000 - secs).unwrap_or_default())
        };
        assert_eq!(age(Some(&at(5)), now), "5s");
        assert_eq!(age(Some(&at(119)), now), "119s");
        assert_eq!(age(Some(&at(600)), now), "10m");
        assert_eq!(age(Some(&at(3 * 3600)), now), "3h");
        assert_eq!(age(Some(&at(3 * 86400)), now), "3d");
        assert_eq!(age(Some(&at(-30)), now), "0s", "clock skew");
        assert_eq!(age(None, now), "<unknown>");
    }
}

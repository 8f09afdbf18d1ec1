//! How commands print: kubectl's tables (`table`, `age`), `-o yaml|json|wide` of the list
//! commands, YAML/JSON object streams, and one-line messages.

use std::io::Write;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde_json::Value;

use crate::CliError;

/// Output formats of the list commands (default: a table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    /// The table with more columns.
    Wide,
    /// The objects as a multi-document YAML stream.
    Yaml,
    /// The objects as a JSON `v1 List`.
    Json,
}

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

/// Prints `items` as a table (the `wide` columns only with `-o wide`) or as YAML/JSON.
/// `row` gives an item's normal and wide cells.
pub fn print_list<K: serde::Serialize>(
    out: &mut dyn Write,
    items: &[K],
    output: Option<ListFormat>,
    header: (&[&str], &[&str]),
    row: impl Fn(&K) -> (Vec<String>, Vec<String>),
) -> Result<(), CliError> {
    let format = match output {
        Some(ListFormat::Yaml) => Some(Format::Yaml),
        Some(ListFormat::Json) => Some(Format::Json),
        None | Some(ListFormat::Wide) => None,
    };
    if let Some(f) = format {
        let objs = items
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CliError::Io(format!("encoding the list: {e}")))?;
        return write_objects(out, &objs, f);
    }
    let wide = output == Some(ListFormat::Wide);
    let cells = |normal: &[&str], extra: &[&str]| -> Vec<String> {
        let extra = if wide { extra } else { &[] };
        normal
            .iter()
            .chain(extra)
            .map(|c| (*c).to_owned())
            .collect()
    };
    let mut rows = vec![cells(header.0, header.1)];
    for item in items {
        let (mut normal, extra) = row(item);
        if wide {
            normal.extend(extra);
        }
        rows.push(normal);
    }
    out.write_all(table(&rows).as_bytes())
        .map_err(|e| CliError::Io(format!("writing output: {e}")))
}

pub fn or_dash(s: Option<String>) -> String {
    s.filter(|s| !s.is_empty()).unwrap_or_else(|| "-".into())
}

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

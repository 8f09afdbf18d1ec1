//! `kubectl kompox diff APP`: the server's rendered objects against the live ones, exiting as
//! `kubectl diff` does.

use std::io::{IsTerminal as _, Write};

use clap::Args;
use serde_json::Value;

use crate::CliError;
use crate::kubectx;
use crate::target::{AppRef, connect, fetch_rendered};

/// Arguments of `diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub app: AppRef,
}

/// Drops what only the server sets, for comparing.
fn comparable(v: &Value) -> Value {
    let mut v = v.clone();
    kubectx::strip_server_fields(&mut v, &["ownerReferences"]);
    v
}

/// Keeps in `live` only the fields `want` has (recursively), so defaults the server added do
/// not show as differences.
fn project(want: &Value, live: &Value) -> Value {
    match (want, live) {
        (Value::Object(w), Value::Object(l)) => Value::Object(
            w.iter()
                .filter_map(|(k, wv)| l.get(k).map(|lv| (k.clone(), project(wv, lv))))
                .collect(),
        ),
        (Value::Array(w), Value::Array(l)) if w.len() == l.len() => {
            Value::Array(w.iter().zip(l).map(|(a, b)| project(a, b)).collect())
        }
        _ => live.clone(),
    }
}

/// A line diff (longest common subsequence), `-` live, `+` rendered.
#[must_use]
pub fn unified(a: &str, b: &str) -> Vec<(char, String)> {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    let (n, m) = (a.len(), b.len());
    let mut t = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            t[i][j] = if a[i] == b[j] {
                t[i + 1][j + 1] + 1
            } else {
                t[i + 1][j].max(t[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push((' ', a[i].to_owned()));
            i += 1;
            j += 1;
        } else if j < m && (i == n || t[i][j + 1] >= t[i + 1][j]) {
            out.push(('+', b[j].to_owned()));
            j += 1;
        } else {
            out.push(('-', a[i].to_owned()));
            i += 1;
        }
    }
    out
}

/// Runs `diff`: the server's rendered objects against the live ones (Secret values are
/// redacted on both sides). Exit status 0 either way; differences are printed.
///
/// # Errors
///
/// [`CliError`] when the objects cannot be read.
pub async fn run(args: &DiffArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let (client, ns) = connect(&args.app).await?;
    let list = fetch_rendered(&client, &ns, &args.app.app).await?;
    let color = crate::output::use_color(std::io::stdout().is_terminal());
    let mut changed = 0;
    for want in list["items"].as_array().cloned().unwrap_or_default() {
        let want = comparable(&want);
        let api = kubectx::api_for(&client, &want).await?;
        let name = want["metadata"]["name"].as_str().unwrap_or_default();
        let live = match api.get_opt(name).await {
            Ok(Some(l)) => {
                let l = serde_json::to_value(l).map_err(|e| CliError::Io(e.to_string()))?;
                let l = kubectx::redact(&[comparable(&l)])
                    .pop()
                    .unwrap_or(Value::Null);
                project(&want, &l)
            }
            Ok(None) => Value::Null,
            Err(e) => {
                return Err(kubectx::kube_error(
                    &format!("reading {}", kubectx::describe(&want)),
                    &e,
                ));
            }
        };
        let mut want = kubectx::redact(&[want]).pop().unwrap_or(Value::Null);
        let mut no_annotations = false;
        if let Some(a) = want["metadata"]["annotations"].as_object_mut() {
            a.remove(kompox_core::redact::REDACTED_ANNOTATION);
            no_annotations = a.is_empty();
        }
        if let (true, Some(m)) = (no_annotations, want["metadata"].as_object_mut()) {
            m.remove("annotations");
        }
        let a = if live.is_null() {
            String::new()
        } else {
            kompox_core::render::yaml_stream(&[live]).unwrap_or_default()
        };
        let b = kompox_core::render::yaml_stream(std::slice::from_ref(&want)).unwrap_or_default();
        if a == b {
            continue;
        }
        changed += 1;
        let what = kubectx::describe(&want);
        let _ = writeln!(out, "--- live {what}\n+++ rendered {what}");
        let lines = unified(&a, &b);
        let near = |i: usize| {
            lines[i.saturating_sub(3)..(i + 4).min(lines.len())]
                .iter()
                .any(|(c, _)| *c != ' ')
        };
        for (i, (c, l)) in lines.iter().enumerate() {
            if !near(i) {
                continue;
            }
            let line = format!("{c}{l}");
            let _ = match (color, *c) {
                (true, '+') => writeln!(out, "\x1b[32m{line}\x1b[0m"),
                (true, '-') => writeln!(out, "\x1b[31m{line}\x1b[0m"),
                _ => writeln!(out, "{line}"),
            };
        }
    }
    if changed == 0 {
        let _ = writeln!(
            out,
            "no differences: the live objects match the rendered ones"
        );
        Ok(())
    } else {
        Err(CliError::Differs(changed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unified_marks_changed_lines_only() {
        let d = unified("a\nb\nc\n", "a\nB\nc\n");
        assert_eq!(
            d,
            vec![
                (' ', "a".to_owned()),
                ('+', "B".to_owned()),
                ('-', "b".to_owned()),
                (' ', "c".to_owned()),
            ]
        );
        assert!(unified("x\n", "x\n").iter().all(|(c, _)| *c == ' '));
    }

    #[test]
    fn project_ignores_server_defaults() {
        let want = json!({"spec": {"replicas": 1}});
        let live = json!({"spec": {"replicas": 1, "revisionHistoryLimit": 10}, "status": {}});
        assert_eq!(project(&want, &live), want);
    }
}

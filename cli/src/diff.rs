//! `kubectl kompox diff`: what would change, exiting as `kubectl diff` does (0 the same, 1
//! differences, 2 an error).
//!
//! - `diff APP`: the server's rendered objects of the app, each sent as a server-side apply
//!   dry run (`dryRun=All`, as the controller's field manager), against the live object: the
//!   server merges, defaults and admits exactly as it would, so only real changes show.
//! - `diff -f compose.yml [--app app.yml]`: what `apply -f` would write (the compose
//!   ConfigMap, the project's Secrets and ConfigMaps, the disks, the KompoxApp), rendered on
//!   this machine and dry-run applied the same way, against the live objects.
//!
//! Each differing object is printed as a unified diff with hunk headers (`similar`), live
//! first. Secret values are never shown: a changed value shows as `<redacted: changed>`.

use std::io::{IsTerminal as _, Write};
use std::path::PathBuf;

use clap::{Args, FromArgMatches as _};
use kube::Client;
use kube::api::{Patch, PatchParams};
use serde_json::Value;

use crate::CliError;
use crate::kubectx::{self, KubeArgs};
use crate::target::{AppRef, connect, fetch_rendered};

/// The controller's field manager for app objects (what its server-side applies name).
const CONTROLLER_MANAGER: &str = "kompox";

/// Arguments of `diff`.
#[derive(Debug, Args)]
#[command(after_long_help = "Examples:
  kubectl kompox diff gitea                 # the server's rendering against the live objects
  kubectl kompox diff -f compose.yml        # what `apply -f compose.yml` would change
  kubectl kompox diff -f compose.yml --app app.yml")]
pub struct DiffArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// The KompoxApp whose server-rendered objects to compare (not needed with -f alone).
    #[arg(required_unless_present = "file")]
    pub app: Option<String>,
    /// Its namespace (default: from .kompox/state.json, else the context's namespace when the
    /// app is there, else searched).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// A compose file: without APP, compare what `apply -f` would write; with APP, only where
    /// its .kompox/state.json records the namespace.
    #[arg(short = 'f', long = "file", value_name = "COMPOSE")]
    pub file: Option<PathBuf>,
    /// With -f: the KompoxApp manifest, as `apply --app`.
    #[arg(long = "app", value_name = "APP_YAML", requires = "file")]
    pub app_file: Option<PathBuf>,
    /// With -f: the workspace, as `apply --workspace`.
    #[arg(long, requires = "file", default_value = kompox_core::naming::DEFAULT_WORKSPACE)]
    pub workspace: String,
}

/// Runs `diff`.
///
/// # Errors
///
/// [`CliError::Differs`] when objects differ (already printed); any other [`CliError`] when
/// the objects cannot be read, rendered or dry-run applied.
pub async fn run(
    args: &DiffArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CliError> {
    let color = crate::output::use_color(std::io::stdout().is_terminal());
    let changed = match (&args.app, &args.file) {
        (Some(app), _) => {
            let target = AppRef {
                kube: args.kube.clone(),
                app: app.clone(),
                namespace: args.namespace.clone(),
                file: args.file.clone(),
            };
            let (client, ns) = connect(&target).await?;
            let list = fetch_rendered(&client, &ns, app).await?;
            let objects = list["items"].as_array().cloned().unwrap_or_default();
            diff_all(&client, &objects, CONTROLLER_MANAGER, color, out).await?
        }
        (None, Some(file)) => diff_compose(args, file, color, out, err).await?,
        (None, None) => {
            return Err(CliError::Invalid(vec![
                "give APP (its rendered objects) or -f COMPOSE (what apply would change)".into(),
            ]));
        }
    };
    if changed == 0 {
        let _ = writeln!(out, "no differences: the live objects are as they would be");
        Ok(())
    } else {
        Err(CliError::Differs(changed))
    }
}

/// `diff -f`: apply's plan, dry-run applied in the namespace recorded for the project.
async fn diff_compose(
    args: &DiffArgs,
    file: &std::path::Path,
    color: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<usize, CliError> {
    let mut argv: Vec<std::ffi::OsString> = vec!["diff".into(), "-f".into(), file.into()];
    if let Some(a) = &args.app_file {
        argv.extend(["--app".into(), a.into()]);
    }
    argv.extend(["--workspace".into(), args.workspace.clone().into()]);
    let matches = <crate::apply::ApplyArgs as Args>::augment_args(clap::Command::new("diff"))
        .try_get_matches_from(argv)
        .map_err(|e| CliError::Invalid(vec![e.to_string()]))?;
    let mut apply_args = crate::apply::ApplyArgs::from_arg_matches(&matches)
        .map_err(|e| CliError::Invalid(vec![e.to_string()]))?;
    apply_args.kube = args.kube.clone();
    if !file.is_file() {
        return Err(CliError::Io(format!(
            "{}: compose file not found",
            file.display()
        )));
    }
    let plan = crate::apply::plan(&apply_args)?;
    for w in &plan.warnings {
        let _ = writeln!(err, "warning: {w}");
    }
    let name = kube::ResourceExt::name_any(&plan.app);
    let recorded = crate::state::recorded(file, &args.workspace, &name)?;
    let ns = match (&args.namespace, recorded) {
        (Some(ns), _) => ns.clone(),
        (None, Some(st)) => st.namespace,
        (None, None) => {
            // Never applied from here: everything would be new.
            let objects = crate::apply::objects(&plan, "<new namespace>")?;
            for o in &objects {
                write_diff(out, o, "", &yaml(&redacted(o)), color);
            }
            return Ok(objects.len());
        }
    };
    let (client, url) = kubectx::client(&args.kube).await?;
    kubectx::ping(&client, &url).await?;
    let mut objects = Vec::new();
    for o in crate::apply::objects(&plan, &ns)? {
        // apply leaves an inferred disk that exists as it is.
        let kept = o["kind"] == "KompoxDisk"
            && o["metadata"]["name"]
                .as_str()
                .is_some_and(|d| plan.inferred_disks.contains(d))
            && live(&client, &o).await?.is_some();
        if !kept {
            objects.push(o);
        }
    }
    diff_all(&client, &objects, &apply_args.field_manager, color, out).await
}

/// The live object, if any.
async fn live(client: &Client, obj: &Value) -> Result<Option<Value>, CliError> {
    let api = kubectx::api_for(client, obj).await?;
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    match api.get_opt(name).await {
        Ok(Some(l)) => serde_json::to_value(l)
            .map(Some)
            .map_err(|e| CliError::Io(e.to_string())),
        Ok(None) => Ok(None),
        Err(e) => Err(kubectx::kube_error(
            &format!("reading {}", kubectx::describe(obj)),
            &e,
        )),
    }
}

/// Diffs each object against the live one; returns how many differ.
async fn diff_all(
    client: &Client,
    objects: &[Value],
    manager: &str,
    color: bool,
    out: &mut dyn Write,
) -> Result<usize, CliError> {
    let mut changed = 0;
    for want in objects {
        let mut want = want.clone();
        kubectx::strip_server_fields(&mut want, &[]);
        let before = live(client, &want).await?;
        // The server's rendered Secrets come redacted: they cannot be sent, only their keys
        // compared.
        let redacted_input = want["kind"] == "Secret"
            && want["metadata"]["annotations"][kompox_core::redact::REDACTED_ANNOTATION] == "true";
        let after = if redacted_input {
            let mut w = want.clone();
            if let Some(a) = w["metadata"]["annotations"].as_object_mut() {
                a.remove(kompox_core::redact::REDACTED_ANNOTATION);
            }
            before.as_ref().map_or(w.clone(), |b| merge_keys(b, &w))
        } else {
            // The controller sends its owner reference with every object (`rendered` leaves
            // it out): keep the live one, or the dry run would show it removed.
            if let Some(refs) = before.as_ref().map(|b| &b["metadata"]["ownerReferences"])
                && !refs.is_null()
                && want["metadata"]["ownerReferences"].is_null()
            {
                want["metadata"]["ownerReferences"] = refs.clone();
            }
            dry_run(client, &want, manager).await?
        };
        let (a, b) = shown_pair(before.as_ref(), &after);
        if a == b {
            continue;
        }
        changed += 1;
        write_diff(out, &want, &a, &b, color);
    }
    Ok(changed)
}

/// The object as the server would store it: a server-side apply dry run (forcing, as the
/// applier would after `--force-conflicts`, so a conflict does not hide the change).
async fn dry_run(client: &Client, want: &Value, manager: &str) -> Result<Value, CliError> {
    let api = kubectx::api_for(client, want).await?;
    let name = want["metadata"]["name"].as_str().unwrap_or_default();
    let mut pp = PatchParams::apply(manager).force();
    pp.dry_run = true;
    match api.patch(name, &pp, &Patch::Apply(want)).await {
        Ok(o) => serde_json::to_value(o).map_err(|e| CliError::Io(e.to_string())),
        // The namespace does not exist yet: the object would be created as it is.
        Err(e) if kompox_cluster::is_not_found(&e) => Ok(want.clone()),
        Err(e) => Err(kubectx::kube_error(
            &format!("dry-run applying {}", kubectx::describe(want)),
            &e,
        )),
    }
}

/// A redacted rendered Secret against the live one: the live object with the wanted keys
/// (values kept where the key exists, so only added or removed keys show).
fn merge_keys(live: &Value, want: &Value) -> Value {
    let mut out = live.clone();
    let keys: Vec<String> = want["data"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let old = live["data"].as_object().cloned().unwrap_or_default();
    let data: serde_json::Map<String, Value> = keys
        .into_iter()
        .map(|k| {
            let v = old.get(&k).cloned().unwrap_or(Value::String(String::new()));
            (k, v)
        })
        .collect();
    out["data"] = Value::Object(data);
    out
}

/// Both sides as YAML, server fields dropped, Secret values redacted (a value that differs
/// shows as `<redacted: changed>` on the new side). An absent side is empty.
fn shown_pair(before: Option<&Value>, after: &Value) -> (String, String) {
    let mut after = after.clone();
    kubectx::strip_server_fields(&mut after, &[]);
    let Some(before) = before else {
        return (String::new(), yaml(&redacted(&after)));
    };
    let mut before = before.clone();
    kubectx::strip_server_fields(&mut before, &[]);
    if after["kind"] == "Secret" {
        for field in ["data", "stringData"] {
            let old = before[field].as_object().cloned().unwrap_or_default();
            if let Some(m) = after[field].as_object_mut() {
                for (k, v) in m.iter_mut() {
                    *v = match old.get(k) {
                        Some(o) if o == v => Value::String("<redacted>".into()),
                        Some(_) => Value::String("<redacted: changed>".into()),
                        None => Value::String("<redacted: new>".into()),
                    };
                }
            }
        }
    }
    (yaml(&redacted(&before)), yaml(&redacted(&after)))
}

/// Drops `null` members at every level (the API treats `field: null` as the field absent).
fn without_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(without_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(without_nulls),
        _ => {}
    }
}

/// Secret values replaced (values already marked are kept); `null` members dropped.
fn redacted(v: &Value) -> Value {
    let mut v = v.clone();
    without_nulls(&mut v);
    if v["kind"] == "Secret" {
        for field in ["data", "stringData"] {
            if let Some(m) = v.get_mut(field).and_then(Value::as_object_mut) {
                for x in m.values_mut() {
                    if !x.as_str().is_some_and(|s| s.starts_with("<redacted")) {
                        *x = Value::String("<redacted>".into());
                    }
                }
            }
        }
    }
    v
}

fn yaml(v: &Value) -> String {
    kompox_core::render::yaml_stream(std::slice::from_ref(v)).unwrap_or_default()
}

/// A unified diff of `a` (live) and `b` (would be) with hunk headers, three lines of context.
#[must_use]
pub fn unified(what: &str, a: &str, b: &str) -> String {
    similar::TextDiff::from_lines(a, b)
        .unified_diff()
        .context_radius(3)
        .header(&format!("live {what}"), &format!("rendered {what}"))
        .to_string()
}

fn write_diff(out: &mut dyn Write, obj: &Value, a: &str, b: &str, color: bool) {
    let text = unified(&kubectx::describe(obj), a, b);
    for line in text.lines() {
        let _ = match (color, line.chars().next()) {
            (true, Some('+')) if !line.starts_with("+++") => writeln!(out, "\x1b[32m{line}\x1b[0m"),
            (true, Some('-')) if !line.starts_with("---") => writeln!(out, "\x1b[31m{line}\x1b[0m"),
            (true, Some('@')) => writeln!(out, "\x1b[36m{line}\x1b[0m"),
            _ => writeln!(out, "{line}"),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unified_has_headers_and_hunks() {
        let a = "a\nb\nc\nd\ne\nf\ng\nh\ni\n";
        let b = "a\nb\nc\nd\nE\nf\ng\nh\ni\n";
        let d = unified("ConfigMap ns/x", a, b);
        assert_eq!(
            d,
            "--- live ConfigMap ns/x\n+++ rendered ConfigMap ns/x\n@@ -2,7 +2,7 @@\n b\n c\n d\n-e\n+E\n f\n g\n h\n"
        );
        assert_eq!(unified("x", "same\n", "same\n"), "");
    }

    #[test]
    fn secret_values_never_shown_changes_marked() {
        let before = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "resourceVersion": "1"},
            "data": {"same": "c2FtZQ==", "changed": "b2xk", "gone": "eA=="}});
        let after = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "resourceVersion": "2"},
            "data": {"same": "c2FtZQ==", "changed": "bmV3", "added": "eQ=="}});
        let (a, b) = shown_pair(Some(&before), &after);
        for t in [&a, &b] {
            for v in ["c2FtZQ==", "b2xk", "bmV3", "eA==", "eQ=="] {
                assert!(!t.contains(v), "a value shows: {t}");
            }
            assert!(!t.contains("resourceVersion"), "{t}");
        }
        assert!(b.contains("changed: \"<redacted: changed>\""), "{b}");
        assert!(b.contains("<redacted: new>") && !b.contains("gone"), "{b}");
        assert!(a.contains("gone"), "{a}");
        let (_, only) = shown_pair(None, &after);
        assert!(!only.contains("bmV3"), "{only}");
        // null is absent.
        let empty = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}});
        let nulls = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": null, "stringData": null});
        let (a, b) = shown_pair(Some(&empty), &nulls);
        assert_eq!(a, b);
    }

    #[test]
    fn rendered_secret_keys_only() {
        let live = json!({"kind": "Secret", "data": {"a": "MQ==", "b": "Mg=="}});
        let want = json!({"kind": "Secret", "data": {"a": "hmac-sha256:x", "c": "hmac-sha256:y"}});
        assert_eq!(
            merge_keys(&live, &want)["data"],
            json!({"a": "MQ==", "c": ""})
        );
    }
}

//! The Helm chart `charts/kompox`, generated from what `install` applies ([`super::objects`]),
//! so the chart cannot say something else than `manifests/` and the plugin.
//!
//! Each option is rendered once with a sentinel value; the lines holding a sentinel become
//! the template expressions of the matching value:
//!
//! | value | install flag | template |
//! |---|---|---|
//! | `image` | `--image` | the servers' `image:` |
//! | `ingress` (`traefik`/`none`) | `--ingress` | Traefik's files inside `if` |
//! | `acmeEmail` | `--acme-email` | Traefik's resolver arguments inside `with` |
//! | `watchNamespaces` | `--watch-namespaces` | the controller's `--namespace-selector` |
//! | `nodeSelector`, `tolerations` | `--node-selector`, `--toleration` | every Deployment |
//!
//! The CRDs go to `crds/` (Helm installs them first and, like `uninstall` without `--crds`,
//! never deletes them). The IngressClass `traefik` is rendered only when none exists or the
//! one there is Kompox's (Helm's `lookup`): a foreign one is never taken over.
//! Regenerate with `KOMPOX_UPDATE_GOLDEN=1 cargo test -p kubectl-kompox chart`; the e2e test
//! `packaging` compares `helm template` with `install --dry-run=client`.

use serde_json::Value;

use super::objects::{self, Ingress, MANIFESTS, Placement, Scheduling};
use crate::CliError;

/// Where the chart lives, relative to the repository root.
pub const CHART_DIR: &str = "charts/kompox";

const IMAGE: &str = "__KOMPOX_IMAGE__";
const WATCH: &str = "__KOMPOX_WATCH_NAMESPACES__";
const ACME: &str = "__KOMPOX_ACME_EMAIL__";
const NODE_SELECTOR: &str = "__KOMPOX_NODE_SELECTOR__";
const TOLERATION: &str = "__KOMPOX_TOLERATION__";

const HEADER: &str = "# Generated from manifests/ by kubectl-kompox (cli/src/install/chart.rs) — do not edit.\n# Regenerate: KOMPOX_UPDATE_GOLDEN=1 cargo test -p kubectl-kompox chart\n";

const CHART_YAML: &str = r#"apiVersion: v2
name: kompox
description: Kompox — Docker Compose apps on Kubernetes (CRDs, aggregated API server, webhook, controller, optional Traefik)
type: application
version: 0.1.0
appVersion: "0.1.0"
kubeVersion: ">=1.30.0-0"
"#;

const VALUES_YAML: &str = r#"# The image holding kompox-apiserver, kompox-webhook and kompox-controller (one image, three
# commands): `kubectl kompox install --image`.
image: ghcr.io/kompox/kompox:dev
# The ingress controller to install: traefik, or none when the cluster has one (`--ingress`).
ingress: traefik
# E-mail for Let's Encrypt: Traefik's ACME resolvers `staging` and `production` (`--acme-email`).
acmeEmail: ""
# Reconcile only the namespaces matching this label selector (`--watch-namespaces`); empty: all.
watchNamespaces: ""
# Where the servers and Traefik run (`--node-selector`, `--toleration`).
nodeSelector: {}
tolerations: []
"#;

/// The chart's files: (path under [`CHART_DIR`], content).
///
/// # Errors
///
/// [`CliError::Invalid`] if a manifest does not parse or an object does not serialize.
pub fn chart_files() -> Result<Vec<(String, String)>, CliError> {
    let placement = Placement::InCluster {
        image: IMAGE.into(),
        watch_namespaces: Some(WATCH.into()),
        scheduling: Scheduling {
            node_selector: [(NODE_SELECTOR.to_owned(), Value::String("x".into()))]
                .into_iter()
                .collect(),
            tolerations: vec![serde_json::json!({"key": TOLERATION, "operator": "Exists"})],
        },
        webhook_client_ca: None,
    };
    let ingress = Ingress::Traefik { acme_email: None };
    let mut files = vec![
        ("Chart.yaml".to_owned(), CHART_YAML.to_owned()),
        ("values.yaml".to_owned(), VALUES_YAML.to_owned()),
    ];
    for m in MANIFESTS {
        let mut text = String::from(HEADER);
        if m.traefik {
            text.push_str("{{- if eq .Values.ingress \"traefik\" }}\n");
        }
        for doc in objects::docs(&m)? {
            let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
            let name = doc["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            // The same object as install makes of it, with the sentinels.
            let one = objects::objects(&placement, &ingress)?
                .into_iter()
                .find(|o| {
                    o["kind"] == kind
                        && o["metadata"]["name"] == name
                        && o["metadata"]["namespace"] == doc["metadata"]["namespace"]
                })
                .ok_or_else(|| {
                    CliError::Invalid(vec![format!(
                        "manifests/{}: {kind} {name} not installed",
                        m.path
                    )])
                })?;
            let mut one = one;
            // Traefik's ACME arguments: one sentinel line, replaced by all of them.
            if let Some(args) = one
                .pointer_mut("/spec/template/spec/containers/0/args")
                .and_then(Value::as_array_mut)
                .filter(|_| m.traefik && kind == "Deployment")
            {
                args.push(Value::String(ACME.into()));
            }
            let yaml = serde_saphyr::to_string(&one).map_err(|e| {
                CliError::Invalid(vec![format!("manifests/{}: {kind} {name}: {e}", m.path)])
            })?;
            let body = templated(&yaml);
            text.push_str("---\n");
            if kind == "IngressClass" {
                text.push_str(&format!(
                    "{{{{- $ic := lookup \"networking.k8s.io/v1\" \"IngressClass\" \"\" {name:?} }}}}\n{{{{- if or (not $ic) (eq (dig \"metadata\" \"labels\" \"app.kubernetes.io/part-of\" \"\" $ic) \"kompox\") }}}}\n{body}{{{{- end }}}}\n"
                ));
            } else {
                text.push_str(&body);
            }
        }
        if m.traefik {
            text.push_str("{{- end }}\n");
        }
        let path = if m.path.starts_with("crds/") {
            m.path.to_owned()
        } else {
            format!("templates/{}", m.path.replace('/', "-"))
        };
        files.push((path, text));
    }
    Ok(files)
}

/// `s` as a double-quoted YAML (and template) string.
fn quoted(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// The YAML of one object with every sentinel line turned into its template.
fn templated(yaml: &str) -> String {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let indent = line.len() - line.trim_start().len();
        let pad = " ".repeat(indent);
        let next = lines.get(i + 1).copied().unwrap_or_default();
        if line.trim_start() == "nodeSelector:" && next.contains(NODE_SELECTOR) {
            out.push(format!(
                "{{{{- with .Values.nodeSelector }}}}\n{pad}nodeSelector:\n{{{{- toYaml . | nindent {} }}}}\n{{{{- end }}}}",
                indent + 2
            ));
            i += 2;
            continue;
        }
        if line.trim_start() == "tolerations:" && next.contains(TOLERATION) {
            // The sentinel entry spans the lines up to the next key at this indentation.
            let mut j = i + 1;
            while lines.get(j).is_some_and(|l| {
                let ind = l.len() - l.trim_start().len();
                ind > indent || (ind == indent && l.trim_start().starts_with("- "))
            }) {
                j += 1;
            }
            out.push(format!(
                "{{{{- with .Values.tolerations }}}}\n{pad}tolerations:\n{{{{- toYaml . | nindent {} }}}}\n{{{{- end }}}}",
                indent + 2
            ));
            i = j;
            continue;
        }
        if line.contains(IMAGE) {
            out.push(line.replace(IMAGE, "{{ .Values.image | quote }}"));
        } else if line.contains(WATCH) {
            let item = line.trim_start().trim_start_matches("- ");
            let (before, after) = item.split_once(WATCH).unwrap_or((item, ""));
            out.push(format!(
                "{{{{- with .Values.watchNamespaces }}}}\n{pad}- {{{{ printf {} . | quote }}}}\n{{{{- end }}}}",
                quoted(&format!("{before}%s{after}"))
            ));
        } else if line.contains(ACME) {
            out.push("{{- with .Values.acmeEmail }}".into());
            for arg in objects::acme_args("%s") {
                out.push(if arg.contains("%s") {
                    format!("{pad}- {{{{ printf {} . | quote }}}}", quoted(&arg))
                } else {
                    format!("{pad}- {}", quoted(&arg))
                });
            }
            out.push("{{- end }}".into());
        } else {
            out.push(line.to_owned());
        }
        i += 1;
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// `charts/kompox` is what [`chart_files`] makes of `manifests/` (and nothing else).
    #[test]
    fn chart_is_generated_from_the_manifests() -> Result<(), Box<dyn std::error::Error>> {
        let dir = repo().join(CHART_DIR);
        let files = chart_files()?;
        if std::env::var_os("KOMPOX_UPDATE_GOLDEN").is_some() {
            let _ = std::fs::remove_dir_all(dir.join("templates"));
            let _ = std::fs::remove_dir_all(dir.join("crds"));
            for (path, text) in &files {
                let p = dir.join(path);
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(p, text)?;
            }
        }
        for (path, text) in &files {
            let on_disk = std::fs::read_to_string(dir.join(path)).map_err(|e| {
                format!("{CHART_DIR}/{path}: {e} (regenerate: KOMPOX_UPDATE_GOLDEN=1)")
            })?;
            assert!(
                on_disk == *text,
                "{CHART_DIR}/{path} differs from manifests/ (regenerate: KOMPOX_UPDATE_GOLDEN=1 cargo test -p kubectl-kompox chart)"
            );
        }
        let mut listed: Vec<String> = Vec::new();
        for sub in ["templates", "crds"] {
            for e in std::fs::read_dir(dir.join(sub))? {
                listed.push(format!("{sub}/{}", e?.file_name().to_string_lossy()));
            }
        }
        listed.retain(|p| !files.iter().any(|(f, _)| f == p));
        assert!(listed.is_empty(), "files no manifest makes: {listed:?}");
        Ok(())
    }

    #[test]
    fn sentinel_lines_become_values() {
        let yaml = format!(
            "spec:\n  nodeSelector:\n    {NODE_SELECTOR}: x\n  tolerations:\n  - key: {TOLERATION}\n    operator: Exists\n  containers:\n  - image: {IMAGE}\n    args:\n    - --a\n    - --namespace-selector={WATCH}\n"
        );
        let t = templated(&yaml);
        assert!(
            t.contains(
                "{{- with .Values.nodeSelector }}\n  nodeSelector:\n{{- toYaml . | nindent 4 }}"
            ),
            "{t}"
        );
        assert!(t.contains("{{- with .Values.tolerations }}\n  tolerations:\n{{- toYaml . | nindent 4 }}\n{{- end }}\n  containers:"), "{t}");
        assert!(t.contains("- image: {{ .Values.image | quote }}"), "{t}");
        assert!(t.contains("{{- with .Values.watchNamespaces }}\n    - {{ printf \"--namespace-selector=%s\" . | quote }}\n{{- end }}"), "{t}");
        assert!(!t.contains("__KOMPOX"), "{t}");
    }
}

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
//! | `certManager` | `--cert-manager` | the objects it adds or changes, in `if`/`else` branches |
//! | `webhookClientCA` | `--webhook-client-ca` | the same; the PEM in the ConfigMap |
//!
//! The CRDs go to `crds/` (Helm installs them first and, like `uninstall` without `--crds`,
//! never deletes them). The IngressClass `traefik` is rendered only when none exists or the
//! one there is Kompox's (Helm's `lookup`): a foreign one is never taken over.
//! Regenerate with `KOMPOX_UPDATE_GOLDEN=1 cargo test -p kubectl-kompox chart`; the e2e test
//! `packaging` compares `helm template` with `install --dry-run=client`.

use serde_json::Value;

use super::objects::{self, Ingress, MANIFESTS, Part, Placement, Scheduling};
use crate::CliError;

/// Where the chart lives, relative to the repository root.
pub const CHART_DIR: &str = "charts/kompox";

const IMAGE: &str = "__KOMPOX_IMAGE__";
const WATCH: &str = "__KOMPOX_WATCH_NAMESPACES__";
const ACME: &str = "__KOMPOX_ACME_EMAIL__";
const NODE_SELECTOR: &str = "__KOMPOX_NODE_SELECTOR__";
const TOLERATION: &str = "__KOMPOX_TOLERATION__";
const CLIENT_CA: &str = "__KOMPOX_WEBHOOK_CLIENT_CA__";

const HEADER: &str = "# Generated from manifests/ by kubectl-kompox (cli/src/install/chart.rs) — do not edit.\n# Regenerate: KOMPOX_UPDATE_GOLDEN=1 cargo test -p kubectl-kompox chart\n";

/// `Chart.yaml`: the chart's version and appVersion are the plugin's (and so the servers').
fn chart_yaml() -> String {
    let v = env!("CARGO_PKG_VERSION");
    format!(
        r#"apiVersion: v2
name: kompox
description: Kompox — Docker Compose apps on Kubernetes (CRDs, aggregated API server, webhook, controller, optional Traefik)
type: application
version: {v}
appVersion: "{v}"
kubeVersion: ">=1.30.0-0"
"#
    )
}

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
# cert-manager (installed in the cluster) issues the servers' serving certificates and injects
# their CA into the APIService and the webhook configuration (`--cert-manager`); else the
# servers make and renew their own.
certManager: false
# PEM of the CA of the client certificate kube-apiserver presents to admission webhooks: the
# webhook then answers only kube-apiserver (`--webhook-client-ca`; `--set-file
# webhookClientCA=ca.crt`).
webhookClientCA: ""
"#;

/// The chart values that switch objects, or parts of them, on and off; every object is
/// rendered for each combination and the differing renderings become `if`/`else if` branches.
const TOGGLES: [&str; 2] = [".Values.certManager", ".Values.webhookClientCA"];

/// The placement of one combination of [`TOGGLES`] (bit `i` of `mask`: toggle `i` on).
fn placement(mask: usize) -> Placement {
    Placement::InCluster {
        image: IMAGE.into(),
        watch_namespaces: Some(WATCH.into()),
        scheduling: Scheduling {
            node_selector: [(NODE_SELECTOR.to_owned(), Value::String("x".into()))]
                .into_iter()
                .collect(),
            tolerations: vec![serde_json::json!({"key": TOLERATION, "operator": "Exists"})],
        },
        cert_manager: mask & 1 != 0,
        webhook_client_ca: (mask & 2 != 0).then(|| CLIENT_CA.to_owned()),
    }
}

/// The template condition that holds exactly for the combinations in `set` (`None`: all).
fn condition(set: &[bool]) -> Option<String> {
    let n = TOGGLES.len();
    if set.iter().all(|b| *b) {
        return None;
    }
    // A toggle matters when flipping it leaves the set for some combination in it.
    let relevant: Vec<usize> = (0..n)
        .filter(|i| (0..set.len()).any(|m| set[m] && !set[m ^ (1 << i)]))
        .collect();
    let mut terms: Vec<String> = Vec::new();
    for m in (0..set.len()).filter(|m| set[*m]) {
        let literals: Vec<String> = relevant
            .iter()
            .map(|i| {
                if m & (1 << i) != 0 {
                    TOGGLES[*i].to_owned()
                } else {
                    format!("(not {})", TOGGLES[*i])
                }
            })
            .collect();
        let term = match literals.as_slice() {
            [one] => one.trim_start_matches('(').trim_end_matches(')').to_owned(),
            _ => format!("and {}", literals.join(" ")),
        };
        if !terms.contains(&term) {
            terms.push(term);
        }
    }
    Some(match terms.as_slice() {
        [one] => one.clone(),
        _ => format!(
            "or {}",
            terms
                .iter()
                .map(|t| format!("({t})"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    })
}

/// The chart's files: (path under [`CHART_DIR`], content).
///
/// # Errors
///
/// [`CliError::Invalid`] if a manifest does not parse or an object does not serialize.
pub fn chart_files() -> Result<Vec<(String, String)>, CliError> {
    let ingress = Ingress::Traefik { acme_email: None };
    let variants = (0..1usize << TOGGLES.len())
        .map(|mask| objects::objects_by_file(&placement(mask), &ingress))
        .collect::<Result<Vec<_>, _>>()?;
    let mut files = vec![
        ("Chart.yaml".to_owned(), chart_yaml()),
        ("values.yaml".to_owned(), VALUES_YAML.to_owned()),
    ];
    for m in MANIFESTS {
        let mut text = String::from(HEADER);
        if m.part == Part::Traefik {
            text.push_str("{{- if eq .Values.ingress \"traefik\" }}\n");
        }
        // The objects of this file in any combination, in install's order (the combination
        // with every toggle on has them all).
        let key = |o: &Value| {
            (
                o["kind"].as_str().unwrap_or_default().to_owned(),
                o["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        };
        let mut keys = Vec::new();
        for v in variants.iter().rev() {
            for (_, o) in v.iter().filter(|(p, _)| *p == m.path) {
                if !keys.contains(&key(o)) {
                    keys.push(key(o));
                }
            }
        }
        for k in keys {
            let (kind, _, name) = &k;
            // Its rendering in each combination (`None`: not installed there).
            let mut bodies: Vec<Option<String>> = Vec::new();
            for v in &variants {
                let Some((_, one)) = v.iter().find(|(p, o)| *p == m.path && key(o) == k) else {
                    bodies.push(None);
                    continue;
                };
                let mut one = one.clone();
                // Traefik's ACME arguments: one sentinel line, replaced by all of them.
                if let Some(args) = one
                    .pointer_mut("/spec/template/spec/containers/0/args")
                    .and_then(Value::as_array_mut)
                    .filter(|_| m.part == Part::Traefik && kind == "Deployment")
                {
                    args.push(Value::String(ACME.into()));
                }
                let yaml = serde_saphyr::to_string(&one).map_err(|e| {
                    CliError::Invalid(vec![format!("manifests/{}: {kind} {name}: {e}", m.path)])
                })?;
                bodies.push(Some(templated(&yaml)));
            }
            let mut body = String::new();
            let mut seen: Vec<&String> = Vec::new();
            for b in bodies.iter().flatten() {
                if seen.contains(&b) {
                    continue;
                }
                seen.push(b);
                let set: Vec<bool> = bodies.iter().map(|x| x.as_ref() == Some(b)).collect();
                match condition(&set) {
                    None => body.push_str(b),
                    Some(c) => {
                        let word = if seen.len() == 1 { "if" } else { "else if" };
                        body.push_str(&format!("{{{{- {word} {c} }}}}\n{b}"));
                    }
                }
            }
            if bodies.iter().any(|b| bodies[0] != *b) {
                body.push_str("{{- end }}\n");
            }
            text.push_str("---\n");
            if kind == "IngressClass" {
                text.push_str(&format!(
                    "{{{{- $ic := lookup \"networking.k8s.io/v1\" \"IngressClass\" \"\" {name:?} }}}}\n{{{{- if or (not $ic) (eq (dig \"metadata\" \"labels\" \"app.kubernetes.io/part-of\" \"\" $ic) \"kompox\") }}}}\n{body}{{{{- end }}}}\n"
                ));
            } else {
                text.push_str(&body);
            }
        }
        if m.part == Part::Traefik {
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
        if line.contains(CLIENT_CA) {
            out.push(
                line.replace(&format!("{CLIENT_CA:?}"), CLIENT_CA)
                    .replace(CLIENT_CA, "{{ .Values.webhookClientCA | quote }}"),
            );
        } else if line.contains(IMAGE) {
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

//! Reading a multi-document YAML file holding a KompoxApp with its KompoxDisks and the
//! Secrets/ConfigMaps its `spec.files.mounts` name — the form samples and the CLI's `--app`
//! use. Parsing text is pure; reading the file is the caller's.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Diagnostic, Sources, Warning};
use crate::api::{API_VERSION, KompoxApp, KompoxDisk, KompoxDiskStatus};
use crate::naming::{MAX_LABEL_LEN, truncate_with_hash};

/// The objects of a multi-document YAML file, by kind. `Debug` shows names only.
#[derive(Clone, Default)]
pub struct Bundle {
    /// KompoxApps in file order.
    pub apps: Vec<KompoxApp>,
    /// KompoxDisks by name.
    pub disks: BTreeMap<String, KompoxDisk>,
    /// Secrets and ConfigMaps by name.
    pub sources: Sources,
    /// Documents skipped (other kinds).
    pub warnings: Vec<Warning>,
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle")
            .field(
                "apps",
                &self
                    .apps
                    .iter()
                    .map(|a| a.metadata.name.as_deref())
                    .collect::<Vec<_>>(),
            )
            .field("disks", &self.disks.keys().collect::<Vec<_>>())
            .field("sources", &self.sources)
            .field("warnings", &self.warnings)
            .finish()
    }
}

/// The PV name assumed for a disk that has none yet (offline rendering treats disks as
/// fresh): `kompox-<disk>`.
#[must_use]
pub fn fresh_pv_name(disk: &str) -> String {
    truncate_with_hash(&format!("kompox-{disk}"), MAX_LABEL_LEN)
}

impl Bundle {
    /// Parses a YAML stream of KompoxApp, KompoxDisk, Secret and ConfigMap documents (other
    /// kinds are skipped with a warning).
    ///
    /// # Errors
    ///
    /// Every invalid document, named `documents[i]` (0-based), with its kind and name. Messages
    /// never include Secret values.
    pub fn parse(text: &str) -> Result<Bundle, Vec<Diagnostic>> {
        let options = serde_saphyr::options! {
            // `x: y` and `on: off` are strings, as in Kubernetes manifests read by kubectl.
            strict_booleans: true,
            // `defaultMode: 0644` is octal, as kubectl reads it.
            legacy_octal_numbers: true,
            duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
            // Snippets would quote input lines (Secret data) into error messages.
            with_snippet: false,
        };
        let docs: Vec<Value> =
            serde_saphyr::from_multiple_with_options(text, options).map_err(|e| {
                vec![Diagnostic {
                    path: String::new(),
                    message: format!("invalid YAML: {e}"),
                }]
            })?;
        let mut b = Bundle::default();
        let mut errors = Vec::new();
        for (i, doc) in docs.into_iter().enumerate() {
            let path = format!("documents[{i}]");
            let mut err = |message: String| {
                errors.push(Diagnostic {
                    path: path.clone(),
                    message,
                });
            };
            if doc.is_null() {
                continue;
            }
            let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
            let api_version = doc["apiVersion"].as_str().unwrap_or_default().to_owned();
            let name = doc["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if !doc.is_object() {
                err("expected a Kubernetes object (a mapping)".to_owned());
                continue;
            }
            if kind.is_empty() {
                err("kind is required".to_owned());
                continue;
            }
            if name.is_empty() {
                err(format!("{kind}: metadata.name is required"));
                continue;
            }
            let what = format!("{kind} {name:?}");
            match (api_version.as_str(), kind.as_str()) {
                (API_VERSION, "KompoxApp") => match typed::<KompoxApp>(doc, &kind) {
                    Ok(a) => b.apps.push(a),
                    Err(m) => err(format!("{what}: {m}")),
                },
                (API_VERSION, "KompoxDisk") => match typed::<KompoxDisk>(doc, &kind) {
                    Ok(d) => {
                        if b.disks.insert(name.clone(), d).is_some() {
                            err(format!("{what}: duplicate"));
                        }
                    }
                    Err(m) => err(format!("{what}: {m}")),
                },
                ("v1", "Secret") => match typed::<Secret>(doc, &kind) {
                    Ok(s) => {
                        if b.sources.secrets.insert(name.clone(), s).is_some() {
                            err(format!("{what}: duplicate"));
                        }
                    }
                    Err(m) => err(format!("{what}: {m}")),
                },
                ("v1", "ConfigMap") => match typed::<ConfigMap>(doc, &kind) {
                    Ok(c) => {
                        if b.sources.config_maps.insert(name.clone(), c).is_some() {
                            err(format!("{what}: duplicate"));
                        }
                    }
                    Err(m) => err(format!("{what}: {m}")),
                },
                _ => b.warnings.push(Warning {
                    path,
                    message: format!("{api_version} {what} skipped: not used for rendering"),
                }),
            }
        }
        if errors.is_empty() {
            Ok(b)
        } else {
            Err(errors)
        }
    }

    /// Gives every disk without `status.pvName` the name [`fresh_pv_name`], as offline
    /// rendering assumes disks are fresh.
    pub fn assume_fresh_disks(&mut self) {
        for (name, disk) in &mut self.disks {
            let status = disk.status.get_or_insert_with(KompoxDiskStatus::default);
            if status.pv_name.as_deref().is_none_or(str::is_empty) {
                status.pv_name = Some(fresh_pv_name(name));
            }
        }
    }
}

/// Converts a document; for Secrets the serde message is replaced, as it could quote data.
fn typed<T: DeserializeOwned>(doc: Value, kind: &str) -> Result<T, String> {
    serde_json::from_value(doc).map_err(|e| {
        if kind == "Secret" {
            "invalid Secret (expected data as base64 strings, stringData as strings)".to_owned()
        } else {
            e.to_string()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_bundle() {
        let text = r#"
apiVersion: k8s.kompox.dev/v1alpha1
kind: KompoxApp
metadata: {name: app1, namespace: ns}
spec:
  compose: {configMapRef: {name: app1-compose, key: compose.yml}}
---
apiVersion: k8s.kompox.dev/v1alpha1
kind: KompoxDisk
metadata: {name: default}
spec: {size: 10Gi, zone: "1"}
---
apiVersion: v1
kind: Secret
metadata: {name: env}
stringData: {app.env: "A=1\n"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {x: y}
---
apiVersion: v1
kind: Namespace
metadata: {name: ns}
"#;
        let mut b = match Bundle::parse(text) {
            Ok(b) => b,
            Err(e) => panic!("{e:?}"),
        };
        assert_eq!(b.apps.len(), 1);
        assert_eq!(b.disks.len(), 1);
        assert!(b.sources.secrets.contains_key("env"));
        assert!(b.sources.config_maps.contains_key("cfg"));
        assert_eq!(b.warnings.len(), 1);
        assert_eq!(b.warnings[0].path, "documents[4]");
        b.assume_fresh_disks();
        assert_eq!(
            b.disks["default"]
                .status
                .as_ref()
                .and_then(|s| s.pv_name.as_deref()),
            Some("kompox-default")
        );
        assert!(!format!("{b:?}").contains("A=1"));
    }

    #[test]
    fn reports_bad_documents_without_values() {
        let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: \"not base64 hunter2!\"}\n---\nkind: ConfigMap\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n";
        let errs = Bundle::parse(text).err().unwrap_or_default();
        let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "documents[0]: Secret \"s\": invalid Secret (expected data as base64 strings, stringData as strings)",
                "documents[1]: ConfigMap: metadata.name is required",
                "documents[3]: ConfigMap \"c\": duplicate",
            ]
        );
        assert!(Bundle::parse(": : :\n  - [").is_err());
    }
}

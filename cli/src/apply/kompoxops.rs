//! `apply --kompoxops`: the `app:` section of a legacy kompoxops.yml.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kompox_core::api::{
    AppVolume, DeploymentSpec, IngressRule, IngressSpec, KompoxApp, KompoxDisk, LocalRef,
};
use kompox_core::naming;
use kompox_core::render::Warning;
use serde_json::Value;

use crate::CliError;
use crate::infer::default_name;
use crate::project::{DEFAULT_VOLUME, default_app, disk, read_text};

/// The `app:` section of a legacy kompoxops.yml.
///
/// `app.volumes[].options` become the disks' `spec.options`; `app.compose` is not read (the
/// compose file is `-f`), which a warning says.
pub(super) fn from_kompoxops(
    path: &Path,
    parsed: &kompox_core::compose::Parsed,
    compose_file: &Path,
    warnings: &mut Vec<Warning>,
) -> Result<(KompoxApp, BTreeMap<String, KompoxDisk>), CliError> {
    let text = read_text(path)?;
    let p = path.display();
    let doc: Value = serde_saphyr::from_str(&text)
        .map_err(|e| CliError::Invalid(vec![format!("{p}: invalid YAML: {e}")]))?;
    let a = &doc["app"];
    if !a.is_object() {
        return Err(CliError::Invalid(vec![format!(
            "{p}: app: missing (the app section is what kompox reads)"
        )]));
    }
    let name = match a["name"].as_str() {
        Some(n) if naming::is_dns1123_label(n) => n.to_owned(),
        Some(n) => {
            return Err(CliError::Invalid(vec![format!(
                "{p}: app.name: {n:?} is not a DNS-1123 label"
            )]));
        }
        None => default_name(Some(&parsed.project), compose_file).0,
    };
    if !a["compose"].is_null() {
        warnings.push(Warning {
            path: format!("{p}: app.compose"),
            message: format!(
                "not read: the compose file is {} (-f)",
                compose_file.display()
            ),
        });
    }
    let mut app = default_app(&name);
    app.spec.volumes.clear();
    let mut disks = BTreeMap::new();
    let mut errors = Vec::new();
    match a["volumes"].as_array() {
        Some(vols) => {
            for (i, v) in vols.iter().enumerate() {
                let Some(vn) = v["name"].as_str() else {
                    errors.push(format!("{p}: app.volumes[{i}].name: missing"));
                    continue;
                };
                if !naming::is_dns1123_label(vn) {
                    errors.push(format!(
                        "{p}: app.volumes[{i}].name: {vn:?} is not a DNS-1123 label"
                    ));
                    continue;
                }
                let mut d = disk(vn);
                if let Some(size) = scalar(&v["size"]) {
                    d.spec.size = Quantity(size);
                }
                if let Some(opts) = v["options"].as_object() {
                    for (k, o) in opts {
                        match scalar(o) {
                            Some(o) => {
                                d.spec.options.insert(k.clone(), o);
                            }
                            None => errors.push(format!(
                                "{p}: app.volumes[{i}].options.{k}: expected a string or number"
                            )),
                        }
                    }
                }
                app.spec.volumes.push(AppVolume {
                    name: vn.to_owned(),
                    disk_ref: LocalRef {
                        name: vn.to_owned(),
                    },
                });
                disks.insert(vn.to_owned(), d);
            }
        }
        None => {
            app.spec.volumes.push(AppVolume {
                name: DEFAULT_VOLUME.into(),
                disk_ref: LocalRef {
                    name: DEFAULT_VOLUME.into(),
                },
            });
            disks.insert(DEFAULT_VOLUME.into(), disk(DEFAULT_VOLUME));
        }
    }
    if let Some(zone) = scalar(&a["deployment"]["zone"]) {
        app.spec.deployment = Some(DeploymentSpec {
            zone: Some(zone.clone()),
        });
        for d in disks.values_mut() {
            d.spec.zone = Some(zone.clone());
        }
    }
    let ing = &a["ingress"];
    if ing.is_object() {
        let mut rules = Vec::new();
        for (i, r) in ing["rules"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let (Some(rn), Some(port)) = (r["name"].as_str(), r["port"].as_i64()) else {
                errors.push(format!("{p}: app.ingress.rules[{i}]: needs name and port"));
                continue;
            };
            let hosts = r["hosts"]
                .as_array()
                .map(|h| {
                    h.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let Some(port) = i32::try_from(port).ok().filter(|p| (1..=65535).contains(p)) else {
                errors.push(format!(
                    "{p}: app.ingress.rules[{i}].port: {port} is not a port (1-65535)"
                ));
                continue;
            };
            rules.push(IngressRule {
                name: rn.to_owned(),
                port,
                hosts,
            });
        }
        app.spec.ingress = Some(IngressSpec {
            class_name: Some("traefik".into()),
            cert_resolver: ing["certResolver"].as_str().map(str::to_owned),
            rules,
            ..IngressSpec::default()
        });
    }
    if errors.is_empty() {
        Ok((app, disks))
    } else {
        Err(CliError::Invalid(errors))
    }
}

/// A YAML scalar as a string (`"1"`, `1`, `true` all count), `None` for anything else.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kompoxops_scalars() {
        assert_eq!(scalar(&json!("1")), Some("1".into()));
        assert_eq!(scalar(&json!(2)), Some("2".into()));
        assert_eq!(scalar(&json!(true)), Some("true".into()));
        assert_eq!(scalar(&json!({"a": 1})), None);
        assert_eq!(scalar(&Value::Null), None);
    }
}

//! The CustomResourceDefinitions for the Kompox resources, as objects and as YAML.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube_core::CustomResourceExt;

use super::{Error, KompoxApp, KompoxDisk, KompoxSnapshot};

/// The command that regenerates `manifests/crds/kompox.yaml`.
pub const REGENERATE_COMMAND: &str = "KOMPOX_UPDATE_GOLDEN=1 cargo test -p kompox-core --test crds";

/// The three CRDs, in the order KompoxApp, KompoxDisk, KompoxSnapshot, labelled as every
/// object of the install (`app.kubernetes.io/part-of: kompox`).
#[must_use]
pub fn crds() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![KompoxApp::crd(), disk_crd(), KompoxSnapshot::crd()];
    for crd in &mut crds {
        crd.metadata.labels = Some(
            [
                ("app.kubernetes.io/part-of", "kompox"),
                ("app.kubernetes.io/component", "crds"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        );
    }
    crds
}

/// KompoxDisk's CRD with its object-level rules (they read `status`, which a rule on the spec
/// cannot see).
fn disk_crd() -> CustomResourceDefinition {
    let mut crd = KompoxDisk::crd();
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            schema
                .x_kubernetes_validations
                .get_or_insert_with(Vec::new)
                .push(super::disk::size_rule());
        }
    }
    crd
}

/// [`crds`] as one multi-document YAML string, keys sorted at every level so the output is
/// the same whatever serde_json features the build enables.
///
/// # Errors
///
/// [`Error::Yaml`] if serialization fails (it does not for these types).
pub fn crds_yaml() -> Result<String, Error> {
    let docs = crds()
        .iter()
        .map(|c| serde_json::to_value(c).map(|v| crate::hash::canonical_json(&v)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Yaml(e.to_string()))?;
    let body = serde_saphyr::to_string_multiple(&docs).map_err(|e| Error::Yaml(e.to_string()))?;
    Ok(format!(
        "# Generated from kompox-core (core/src/api) — do not edit.\n# Regenerate: {REGENERATE_COMMAND}\n{body}"
    ))
}

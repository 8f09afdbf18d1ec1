//! Types shared by the three Kompox resources: provider selection, object references,
//! and the schema helpers that keep the generated CRDs structural.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Which storage/cloud driver backs a resource.
///
/// `auto` asks the controller to detect the provider from cluster facts (see
/// [`crate::provider::detect`]); any other value is used as is.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ProviderType {
    // Detect from the cluster.
    #[default]
    Auto,
    // Azure Kubernetes Service (Azure Disk CSI).
    Aks,
    // Amazon EKS (EBS CSI).
    Eks,
    // Google GKE (PD CSI).
    Gke,
    // Oracle OKE (Block Volume CSI).
    Oke,
    // k3s; the CSI driver is taken from the cluster.
    K3s,
    // Any cluster with a generic CSI driver (hostpath.csi.k8s.io by default).
    Csi,
}

impl ProviderType {
    /// Every value, `auto` first.
    pub const ALL: [ProviderType; 7] = [
        ProviderType::Auto,
        ProviderType::Aks,
        ProviderType::Eks,
        ProviderType::Gke,
        ProviderType::Oke,
        ProviderType::K3s,
        ProviderType::Csi,
    ];

    /// The lowercase wire name (`"aks"`, ...).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ProviderType::Auto => "auto",
            ProviderType::Aks => "aks",
            ProviderType::Eks => "eks",
            ProviderType::Gke => "gke",
            ProviderType::Oke => "oke",
            ProviderType::K3s => "k3s",
            ProviderType::Csi => "csi",
        }
    }

    /// Parses the wire name; `None` for anything else (case-sensitive, like the API).
    #[must_use]
    pub fn parse(s: &str) -> Option<ProviderType> {
        ProviderType::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for ProviderType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `spec.provider` of KompoxApp and KompoxDisk.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderSpec {
    /// Provider driver: auto|aks|eks|gke|oke|k3s|csi. `auto` detects it from the cluster.
    #[serde(rename = "type", default)]
    pub type_: ProviderType,
    /// Secret in the same namespace holding cloud credentials, only when CSI alone is not enough.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<LocalRef>,
}

impl ProviderSpec {
    /// `auto` without credentials: what a resource that does not mention its provider gets.
    #[must_use]
    pub fn is_auto(&self) -> bool {
        *self == ProviderSpec::default()
    }
}

/// A reference to an object by name in the same namespace.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct LocalRef {
    /// Name of the object in the same namespace.
    pub name: String,
}

impl LocalRef {
    /// Whether the reference names nothing (an optional reference left out).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.name.is_empty()
    }
}

/// A reference to an object by name in the same namespace that may be marked optional.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct OptionalRef {
    /// Name of the object in the same namespace.
    pub name: String,
    /// When true, a missing object counts as empty instead of being an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// A reference to one key of a ConfigMap or Secret in the same namespace.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct LocalKeyRef {
    /// Name of the object in the same namespace.
    pub name: String,
    /// Key inside the object's data.
    pub key: String,
}

/// The Kubernetes quantity grammar (as emitted by kubebuilder for `resource.Quantity`).
pub const QUANTITY_PATTERN: &str = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

/// Schema for a [`k8s_openapi::apimachinery::pkg::api::resource::Quantity`] field: a string with
/// the quantity pattern (k8s-openapi's own schema is int-or-string without a type, which makes
/// `Option<Quantity>` non-structural).
pub(crate) fn quantity_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "pattern": QUANTITY_PATTERN,
        "description": "A Kubernetes quantity such as 10Gi or 500M.",
    })
}

/// Schema for a `Vec<Condition>`: a list map keyed by `type`, as Kubernetes' own conditions are,
/// so server-side apply merges entries by type.
pub(crate) fn conditions_schema(generate: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema =
        generate.subschema_for::<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>();
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["type"]),
    );
    schema.insert(
        "description".into(),
        "Standard conditions: Ready, Progressing, Degraded.".into(),
    );
    schema
}

/// Schema for an `Option<ProviderType>` that is skipped when `None`: the plain enum, without
/// the `null` member schemars would add (never sent, and not wanted in a CRD enum).
pub(crate) fn provider_type_schema(generate: &mut schemars::SchemaGenerator) -> schemars::Schema {
    generate.subschema_for::<ProviderType>()
}

//! `KompoxDisk`: a cloud (or CSI) disk bound statically to a PersistentVolume.

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::ValidationRule;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    LocalRef, ProviderSpec, ProviderType, conditions_schema, provider_type_schema, quantity_schema,
};
use super::quantity;
use super::validate::{Errors, check_keys, check_not_blank, check_provider, check_subdomain};

kompox_resource! {
    /// Desired state of a disk.
    #[kube(
        kind = "KompoxDisk",
        plural = "kompoxdisks",
        singular = "kompoxdisk",
        shortname = "kdisk",
        doc = "A disk (cloud or CSI volume) bound statically to a PersistentVolume.",
        status = "KompoxDiskStatus",
        printcolumn = r#"{"name":"READY","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
        printcolumn = r#"{"name":"ZONE","type":"string","jsonPath":".status.zone"}"#,
        printcolumn = r#"{"name":"SIZE","type":"string","jsonPath":".spec.size"}"#,
        printcolumn = r#"{"name":"HANDLE","type":"string","jsonPath":".status.handle"}"#,
        printcolumn = r#"{"name":"ATTACHED","type":"string","jsonPath":".status.attachedTo.app"}"#,
        printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    )]
    #[serde(rename_all = "camelCase")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "!(has(self.fromSnapshot) && has(self.handle))",
        "message": "fromSnapshot and handle are mutually exclusive",
    }]))]
    pub struct KompoxDiskSpec {
        /// Storage/cloud provider of the disk.
        #[serde(default)]
        pub provider: ProviderSpec,
        /// Disk size, e.g. 10Gi. It can grow (the volume is expanded through CSI), never
        /// shrink; after a growth the driver refused it can be lowered again, to a size above
        /// the volume's current one (`status.size`).
        #[schemars(schema_with = "quantity_schema")]
        pub size: Quantity,
        /// Zone of the disk ("1" or a full zone name); empty lets the provider choose.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub zone: Option<String>,
        /// Provider options, e.g. `sku: PremiumV2_LRS`.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        pub options: BTreeMap<String, String>,
        /// What happens to the cloud disk when this object is deleted.
        #[serde(default)]
        pub deletion_policy: DeletionPolicy,
        /// Create the disk from this KompoxSnapshot in the same namespace.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub from_snapshot: Option<LocalRef>,
        /// Adopt an existing volume by its provider handle instead of creating one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub handle: Option<String>,
    }
}

/// `spec.deletionPolicy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    // Keep the cloud disk (it can be adopted again through spec.handle).
    #[default]
    Orphan,
    // Delete the cloud disk with the object.
    Delete,
}

/// Observed state of a disk.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KompoxDiskStatus {
    /// Provider volume handle (e.g. an Azure Disk resource ID); the PV's csi.volumeHandle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    /// Name of the statically provisioned PersistentVolume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pv_name: Option<String>,
    /// The app volume the disk is bound to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attached_to: Option<AttachedTo>,
    /// Zone the disk lives in (node topology label value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Size of the volume: its PersistentVolume's capacity (below spec.size while it grows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "quantity_schema")]
    pub size: Option<Quantity>,
    /// StorageClass of the disk's PersistentVolume. A PVC that binds the disk names it (empty
    /// for a disk whose PersistentVolume has none), so Kubernetes can expand the volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Provider in use (detected when spec.provider.type is auto).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "provider_type_schema")]
    pub provider: Option<ProviderType>,
    /// Standard conditions: Ready, Progressing, Degraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// metadata.generation last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// `status.attachedTo`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttachedTo {
    /// KompoxApp name.
    pub app: String,
    /// Volume name in the app.
    pub volume: String,
}

/// The rule on `spec.size` (a CEL transition rule on the whole object, with the Kubernetes
/// quantity library, reported at `spec.size`): it never decreases, except back from a growth
/// the driver refused, to a size still above the volume's (`status.size`, kept by the API
/// server from the stored object on a spec update). That is the PersistentVolumeClaim rule
/// for recovering from a failed expansion, which Kompox then applies to the claim.
#[must_use]
pub(super) fn size_rule() -> ValidationRule {
    let rule = "!isQuantity(self.spec.size) || !isQuantity(oldSelf.spec.size) \
        || quantity(self.spec.size).compareTo(quantity(oldSelf.spec.size)) >= 0 \
        || (has(self.status) && has(self.status.size) && isQuantity(self.status.size) \
            && quantity(self.spec.size).compareTo(quantity(self.status.size)) > 0)";
    ValidationRule {
        rule: rule.to_owned(),
        message: Some(
            "a disk cannot shrink: spec.size must be at least its previous value, or, to retreat from a growth that failed, above the volume's current size (status.size)".into(),
        ),
        field_path: Some(".spec.size".into()),
        reason: Some("FieldValueForbidden".into()),
        ..ValidationRule::default()
    }
}

impl KompoxDiskSpec {
    /// Checks the size (a positive quantity), zone, options, and exclusive fields.
    ///
    /// # Errors
    ///
    /// [`super::Error::Invalid`] listing every problem, each naming its field.
    pub fn validate(&self) -> Result<(), super::Error> {
        let mut errs = Errors::default();
        check_provider(&mut errs, &self.provider);
        match quantity::parse_bytes(&self.size.0) {
            Ok(0) => errs.push("spec.size", "size must be greater than zero"),
            Ok(_) => {}
            Err(e) => errs.push("spec.size", e.to_string()),
        }
        check_not_blank(&mut errs, "spec.zone", self.zone.as_ref());
        check_keys(&mut errs, "spec.options", "option", self.options.keys());
        if let Some(s) = &self.from_snapshot {
            check_subdomain(&mut errs, "spec.fromSnapshot.name", &s.name);
        }
        check_not_blank(&mut errs, "spec.handle", self.handle.as_ref());
        if self.from_snapshot.is_some() && self.handle.is_some() {
            errs.push("spec", "fromSnapshot and handle are mutually exclusive");
        }
        errs.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roadmap_example_parses() {
        let yaml = r#"
provider:
  type: auto
  credentialsSecretRef: null
size: 10Gi
zone: "1"
options:
  sku: PremiumV2_LRS
deletionPolicy: Orphan
"#;
        let spec: Result<KompoxDiskSpec, _> = serde_saphyr::from_str(yaml);
        let spec = match spec {
            Ok(s) => s,
            Err(e) => panic!("parse: {e}"),
        };
        assert_eq!(spec.size.0, "10Gi");
        assert_eq!(spec.deletion_policy, DeletionPolicy::Orphan);
        assert_eq!(spec.provider.type_, ProviderType::Auto);
        assert_eq!(spec.validate(), Ok(()));
    }

    #[test]
    fn defaults_apply() {
        let spec: Result<KompoxDiskSpec, _> =
            serde_json::from_value(serde_json::json!({"size": "1Gi"}));
        let spec = match spec {
            Ok(s) => s,
            Err(e) => panic!("parse: {e}"),
        };
        assert_eq!(spec.deletion_policy, DeletionPolicy::Orphan);
        assert_eq!(spec.provider.type_, ProviderType::Auto);
    }

    #[test]
    fn validate_rejects_bad_size_and_exclusive_fields() {
        let spec = KompoxDiskSpec {
            provider: ProviderSpec::default(),
            size: Quantity("-1Gi".into()),
            zone: Some(String::new()),
            options: BTreeMap::new(),
            deletion_policy: DeletionPolicy::Delete,
            from_snapshot: Some(LocalRef {
                name: "snap".into(),
            }),
            handle: Some("/subscriptions/x".into()),
        };
        let msg = spec
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("spec.size:"), "{msg}");
        assert!(msg.contains("spec.zone: must not be empty"), "{msg}");
        assert!(
            msg.contains("spec: fromSnapshot and handle are mutually exclusive"),
            "{msg}"
        );
        let zero = KompoxDiskSpec {
            size: Quantity("0".into()),
            zone: None,
            from_snapshot: None,
            ..spec
        };
        assert_eq!(
            zero.validate().err().map(|e| e.to_string()),
            Some("spec.size: size must be greater than zero".to_string())
        );
    }
}

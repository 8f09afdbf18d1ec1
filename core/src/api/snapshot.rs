//! `KompoxSnapshot`: a point-in-time copy of a KompoxDisk.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{LocalRef, ProviderSpec, conditions_schema, quantity_schema};
use super::validate::{Errors, check_not_blank, check_provider, check_subdomain};

kompox_resource! {
    /// Desired state of a snapshot.
    #[derive(Default, Eq)]
    #[kube(
        kind = "KompoxSnapshot",
        plural = "kompoxsnapshots",
        singular = "kompoxsnapshot",
        shortname = "ksnap",
        doc = "A point-in-time snapshot of a KompoxDisk.",
        status = "KompoxSnapshotStatus",
        derive = "Default",
        printcolumn = r#"{"name":"READY","type":"boolean","jsonPath":".status.readyToUse"}"#,
        printcolumn = r#"{"name":"DISK","type":"string","jsonPath":".spec.diskRef.name"}"#,
        printcolumn = r#"{"name":"SIZE","type":"string","jsonPath":".status.restoreSize"}"#,
        printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    )]
    #[serde(rename_all = "camelCase")]
    #[schemars(extend("x-kubernetes-validations" = [
        {
            "rule": "has(self.handle) != (has(self.diskRef) && self.diskRef.name != '')",
            "message": "exactly one of diskRef or handle must be set",
        },
        {
            "rule": "has(self.handle) == has(oldSelf.handle) && (!has(self.handle) || self.handle == oldSelf.handle)",
            "message": "handle is immutable",
        },
    ]))]
    pub struct KompoxSnapshotSpec {
        /// KompoxDisk in the same namespace to snapshot. Empty when the snapshot adopts one by
        /// `handle`.
        #[serde(default, skip_serializing_if = "LocalRef::is_empty")]
        pub disk_ref: LocalRef,
        /// Adopt an existing snapshot by its provider handle (e.g. one another cluster of the
        /// same cloud account took) instead of taking one: Kompox imports it as a
        /// pre-provisioned VolumeSnapshotContent (`deletionPolicy: Retain`: deleting this
        /// object never deletes the provider's snapshot) and a VolumeSnapshot bound to it; once
        /// ready it restores like any other (`KompoxDisk` `fromSnapshot`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub handle: Option<String>,
        /// Storage/cloud provider of an adopted snapshot (its CSI driver); `auto` detects it.
        #[serde(default, skip_serializing_if = "ProviderSpec::is_auto")]
        pub provider: ProviderSpec,
    }
}

/// Observed state of a snapshot.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KompoxSnapshotStatus {
    /// VolumeSnapshot name or cloud snapshot ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_handle: Option<String>,
    /// True once the snapshot can be restored from.
    #[serde(default)]
    pub ready_to_use: bool,
    /// Minimum size of a disk restored from the snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "quantity_schema")]
    pub restore_size: Option<Quantity>,
    /// Standard conditions: Ready, Progressing, Degraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// metadata.generation last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl KompoxSnapshotSpec {
    /// Checks the disk reference.
    ///
    /// # Errors
    ///
    /// [`super::Error::Invalid`] naming the field.
    pub fn validate(&self) -> Result<(), super::Error> {
        let mut errs = Errors::default();
        match (&self.handle, self.disk_ref.is_empty()) {
            (Some(_), false) => errs.push("spec", "exactly one of diskRef or handle must be set"),
            (None, true) => errs.push("spec.diskRef.name", "required unless spec.handle is set"),
            (None, false) => check_subdomain(&mut errs, "spec.diskRef.name", &self.disk_ref.name),
            (Some(_), true) => {}
        }
        check_not_blank(&mut errs, "spec.handle", self.handle.as_ref());
        check_provider(&mut errs, &self.provider);
        errs.finish()
    }

    /// The handle of the provider snapshot this object adopts, if it adopts one.
    #[must_use]
    pub fn adopted(&self) -> Option<&str> {
        self.handle.as_deref().filter(|h| !h.trim().is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn spec(disk: &str, handle: Option<&str>) -> KompoxSnapshotSpec {
        KompoxSnapshotSpec {
            disk_ref: LocalRef { name: disk.into() },
            handle: handle.map(Into::into),
            ..Default::default()
        }
    }

    #[rstest]
    #[case::a_disk(spec("data", None), None)]
    #[case::a_handle(spec("", Some("snap-123")), None)]
    #[case::both(
        spec("data", Some("snap-123")),
        Some("spec: exactly one of diskRef or handle")
    )]
    #[case::neither(spec("", None), Some("spec.diskRef.name: required unless spec.handle"))]
    #[case::blank_handle(spec("", Some(" ")), Some("spec.handle: must not be empty"))]
    #[case::bad_disk_name(spec("Data_1", None), Some("spec.diskRef.name"))]
    fn validate_cases(#[case] s: KompoxSnapshotSpec, #[case] error: Option<&str>) {
        let got = s.validate().err().map(|e| e.to_string());
        match (error, got) {
            (None, None) => {}
            (Some(want), Some(got)) => assert!(got.contains(want), "{got}"),
            (want, got) => panic!("want {want:?}, got {got:?}"),
        }
    }

    #[test]
    fn an_adopted_snapshot_serializes_without_a_disk_ref() {
        let v = serde_json::to_value(spec("", Some("snap-1"))).unwrap_or_default();
        assert_eq!(v, serde_json::json!({"handle": "snap-1"}));
        let back: KompoxSnapshotSpec =
            serde_json::from_value(serde_json::json!({"handle": "snap-1"})).unwrap_or_default();
        assert_eq!(back.adopted(), Some("snap-1"));
        assert!(back.disk_ref.is_empty());
    }
}

//! `KompoxSnapshot`: a point-in-time copy of a KompoxDisk.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{LocalRef, conditions_schema, quantity_schema};
use super::validate::{Errors, check_subdomain};

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
    pub struct KompoxSnapshotSpec {
        /// KompoxDisk in the same namespace to snapshot.
        pub disk_ref: LocalRef,
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
        check_subdomain(&mut errs, "spec.diskRef.name", &self.disk_ref.name);
        errs.finish()
    }
}

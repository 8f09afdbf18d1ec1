//! Labels, annotations and finalizers the storage controllers put on objects.
//!
//! The `kompox.dev/*` names are defined in [`kompox_core::well_known`] and re-exported here;
//! the values of [`ROLE_LABEL`] and the upstream names the controller reads are its own.

pub use kompox_core::naming::{MANAGED_BY, MANAGED_BY_LABEL};
pub use kompox_core::well_known::{
    DISK_FINALIZER, DISK_LABEL, DISK_NAMESPACE_LABEL, DISK_UID_ANNOTATION, HANDLE_ANNOTATION,
    ROLE_LABEL, SNAPSHOT_FINALIZER, SNAPSHOT_LABEL, SNAPSHOT_NAMESPACE_LABEL,
};

/// [`ROLE_LABEL`] of the short-lived PVC that provisions a disk's volume.
pub const ROLE_PROVISION: &str = "provision";
/// [`ROLE_LABEL`] of a disk's static PV.
pub const ROLE_STATIC: &str = "static";
/// [`ROLE_LABEL`] of a static PV being handed back to the provisioner for deletion.
pub const ROLE_DELETE: &str = "delete";
/// [`ROLE_LABEL`] of the temporary PVC a detached disk is snapshotted through.
pub const ROLE_SNAPSHOT_SOURCE: &str = "snapshot-source";
/// [`ROLE_LABEL`] of the temporary PVC a detached disk grows through.
pub const ROLE_RESIZE: &str = "resize";
/// [`ROLE_LABEL`] of a Kompox-owned StorageClass.
pub const ROLE_STORAGE_CLASS: &str = "storage-class";

/// Annotation the external-provisioner reads on a PV it provisioned (and on PVs it should
/// delete).
pub const PROVISIONED_BY_ANNOTATION: &str = "pv.kubernetes.io/provisioned-by";

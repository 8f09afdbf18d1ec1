//! Labels, annotations and finalizers the storage controllers put on objects.
//!
//! `kompox.dev/disk` and `kompox.dev/disk-namespace` come from [`kompox_core::naming`]
//! ([`DISK_LABEL`], [`DISK_NAMESPACE_LABEL`]); the rest are the controller's own and defined
//! here.

pub use kompox_core::naming::{DISK_LABEL, DISK_NAMESPACE_LABEL, MANAGED_BY, MANAGED_BY_LABEL};

/// Finalizer on KompoxDisks.
pub const DISK_FINALIZER: &str = "k8s.kompox.dev/disk";
/// Finalizer on KompoxSnapshots.
pub const SNAPSHOT_FINALIZER: &str = "k8s.kompox.dev/snapshot";

/// Label naming the KompoxSnapshot behind a VolumeSnapshot or a snapshot-source PVC.
pub const SNAPSHOT_LABEL: &str = "kompox.dev/snapshot";
/// Label naming what a Kompox storage object is for; values below.
pub const ROLE_LABEL: &str = "kompox.dev/storage-role";
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

/// Annotation on the provisioning PVC: the KompoxDisk UID it provisions for (a PVC left over
/// from a deleted disk of the same name is not adopted).
pub const DISK_UID_ANNOTATION: &str = "kompox.dev/disk-uid";
/// Annotation the external-provisioner reads on a PV it provisioned (and on PVs it should
/// delete).
pub const PROVISIONED_BY_ANNOTATION: &str = "pv.kubernetes.io/provisioned-by";
/// Annotation carrying the volume handle on a static PV (redundant with `spec.csi` but read by
/// leak listings without parsing the spec).
pub const HANDLE_ANNOTATION: &str = "kompox.dev/volume-handle";

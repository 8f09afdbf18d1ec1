//! Every `kompox.dev/*` (and `k8s.kompox.dev/*`) label, annotation, finalizer and reporter
//! name, in one place. The modules that use them re-export the ones they are about
//! ([`crate::naming`], [`crate::render`], [`crate::redact`], the controller's `labels`).

// Labels on every object Kompox renders or manages.

/// Label carrying the app name on every rendered object.
pub const APP_LABEL: &str = "kompox.dev/app";
/// Annotation naming the compose service or App field an object came from.
pub const SOURCE_ANNOTATION: &str = "kompox.dev/source";

// Namespaces, disks and the webhook.

/// Label carrying the workspace (tenant) of an app namespace.
pub const TENANT_LABEL: &str = "kompox.dev/tenant";
/// Label carrying the compact ID of an app namespace.
pub const APP_ID_LABEL: &str = "kompox.dev/app-id";
/// Label naming the KompoxDisk behind a volume: set by the storage controller on the static
/// PersistentVolumes it creates, and optionally by users on a PVC (the disk is then in the
/// PVC's namespace).
pub const DISK_LABEL: &str = "kompox.dev/disk";
/// Label on Kompox static PersistentVolumes (cluster-scoped) carrying the namespace of the
/// KompoxDisk named by [`DISK_LABEL`].
pub const DISK_NAMESPACE_LABEL: &str = "kompox.dev/disk-namespace";
/// On the cluster-scoped VolumeSnapshotContent of an adopted KompoxSnapshot: its namespace
/// (beside [`SNAPSHOT_LABEL`], its name).
pub const SNAPSHOT_NAMESPACE_LABEL: &str = "kompox.dev/snapshot-namespace";
/// Object label opting a Pod, Deployment or StatefulSet out of the admission webhook when set
/// to [`crate::naming::WEBHOOK_DISABLED`] (the webhook registration's `objectSelector`).
pub const WEBHOOK_LABEL: &str = "kompox.dev/webhook";
/// Annotation holding [`crate::hash::env_hash`] of the Secrets/ConfigMaps a pod (template)
/// references; on a pod template, a new value rolls the pods.
pub const ENV_HASH_ANNOTATION: &str = "kompox.dev/env-hash";

// Redaction.

/// Annotation added to redacted Secrets.
pub const REDACTED_ANNOTATION: &str = "kompox.dev/redacted";

// The aggregated API server (attach intent, `rendered` list annotations).

/// Annotation on a KompoxDisk recording which app volume an `attach` bound it to
/// (`<app>/<volume>`), so the controller's multi-attach guard sees the intent before the
/// switch has happened.
pub const ATTACH_INTENT_ANNOTATION: &str = "kompox.dev/attach-intent";
/// List annotation: JSON array of `"path: message"` warnings from rendering.
pub const WARNINGS_ANNOTATION: &str = "kompox.dev/warnings";
/// List annotation: `status.renderedHash` the controller would record.
pub const RENDERED_HASH_ANNOTATION: &str = "kompox.dev/rendered-hash";
/// List annotation with `?validate=true`: JSON array of per-object verdicts, in item order:
/// `{"apiVersion","kind","name","allowed":bool,"code"?,"reason"?,"message"?}`.
pub const VALIDATION_ANNOTATION: &str = "kompox.dev/validation";
/// List annotation with `?validate=true`: `"true"` when every object passed the dry run.
pub const VALID_ANNOTATION: &str = "kompox.dev/valid";

// Namespace hygiene (App and Namespace annotations).

/// Namespace annotation naming the group bound to the operator Role (wins over the tenant).
pub const OPERATORS_GROUP_ANNOTATION: &str = "kompox.dev/operators-group";
/// KompoxApp annotation holding a JSON `ResourceQuotaSpec`.
pub const RESOURCE_QUOTA_ANNOTATION: &str = "kompox.dev/resource-quota";
/// KompoxApp annotation holding a JSON `LimitRangeSpec`.
pub const LIMIT_RANGE_ANNOTATION: &str = "kompox.dev/limit-range";

// Storage objects and finalizers.

/// Finalizer on KompoxDisks.
pub const DISK_FINALIZER: &str = "k8s.kompox.dev/disk";
/// Finalizer on KompoxSnapshots.
pub const SNAPSHOT_FINALIZER: &str = "k8s.kompox.dev/snapshot";
/// Label naming the KompoxSnapshot behind a VolumeSnapshot or a snapshot-source PVC.
pub const SNAPSHOT_LABEL: &str = "kompox.dev/snapshot";
/// Label naming what a Kompox storage object is for (values: the controller's `labels::ROLE_*`).
pub const ROLE_LABEL: &str = "kompox.dev/storage-role";
/// Annotation on the provisioning PVC: the KompoxDisk UID it provisions for (a PVC left over
/// from a deleted disk of the same name is not adopted).
pub const DISK_UID_ANNOTATION: &str = "kompox.dev/disk-uid";
/// Annotation carrying the volume handle on a static PV (redundant with `spec.csi` but read by
/// leak listings without parsing the spec).
pub const HANDLE_ANNOTATION: &str = "kompox.dev/volume-handle";

// Migration (`kubectl kompox migrate`).

/// On the source KompoxApp: the migration's record (JSON; no Secret value, no digest of data).
pub const MIGRATION_ANNOTATION: &str = "kompox.dev/migration";
/// On every object a migration created: the migration's id (what a resume may reuse and a
/// rollback removes).
pub const MIGRATION_ID_ANNOTATION: &str = "kompox.dev/migration-id";

// The app controller.

/// Finalizer on KompoxApps: releases disk claims once the app's Pods are gone.
pub const APP_FINALIZER: &str = "k8s.kompox.dev/app";

// Events.

/// `reportingController` of the controller's Events.
pub const REPORTING_CONTROLLER: &str = "kompox.dev/controller";

//! Kompox API types: group `k8s.kompox.dev`, version `v1alpha1`, all namespaced.
//!
//! - [`KompoxApp`] (`kapp`): a compose app, its ingress, volumes and files.
//! - [`KompoxDisk`] (`kdisk`): a disk bound statically to a PersistentVolume.
//! - [`KompoxSnapshot`] (`ksnap`): a snapshot of a disk.
//!
//! [`crds`] and [`crds_yaml`] produce the CustomResourceDefinitions; the `validate()` methods
//! on the specs check what the schema cannot express; [`condition`] holds the condition
//! vocabulary and the pure merge.

/// Declares the spec struct of a Kompox resource with what every Kompox CRD shares: the
/// derives, and the `#[kube]` group, version, scope, category, `derive = "PartialEq"` and the
/// crate paths (core depends on kube-core, not kube). The resource's own `#[kube(...)]`
/// (kind, names, status, columns) and any further derives stand inside the invocation.
macro_rules! kompox_resource {
    ($(#[$attr:meta])* $vis:vis struct $($rest:tt)*) => {
        #[derive(
            ::kube_derive::CustomResource,
            Clone,
            Debug,
            PartialEq,
            ::serde::Serialize,
            ::serde::Deserialize,
            ::schemars::JsonSchema,
        )]
        #[kube(
            group = "k8s.kompox.dev",
            version = "v1alpha1",
            namespaced,
            category = "kompox",
            derive = "PartialEq",
            crates(
                kube_core = "::kube_core",
                k8s_openapi = "::k8s_openapi",
                schemars = "::schemars",
                serde = "::serde",
                serde_json = "::serde_json"
            )
        )]
        $(#[$attr])*
        $vis struct $($rest)*
    };
}

mod app;
mod common;
pub mod condition;
mod crd;
mod disk;
pub mod quantity;
mod snapshot;
mod validate;

use std::fmt;

use thiserror::Error;

pub use app::{
    AppVolume, ComposeEnvFrom, ComposeSource, DeploymentSpec, EnvOverride, FileMount, FilesSpec,
    IngressRule, IngressSpec, InventoryEntry, KompoxApp, KompoxAppSpec, KompoxAppStatus,
    PodSecurityLevel, VolumeSwitch, VolumeSwitchPhase,
};
pub use common::{
    LocalKeyRef, LocalRef, OptionalRef, ProviderSpec, ProviderType, QUANTITY_PATTERN,
};
pub use crd::{REGENERATE_COMMAND, crds, crds_yaml};
pub use disk::{AttachedTo, DeletionPolicy, KompoxDisk, KompoxDiskSpec, KompoxDiskStatus};
pub use snapshot::{KompoxSnapshot, KompoxSnapshotSpec, KompoxSnapshotStatus};

/// API group of the Kompox resources.
pub const GROUP: &str = "k8s.kompox.dev";
/// API version of the Kompox resources.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of the Kompox resources.
pub const API_VERSION: &str = "k8s.kompox.dev/v1alpha1";

/// Errors of the API module.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// A spec failed validation; one entry per problem, each naming its field.
    #[error("{}", join(.0))]
    Invalid(Vec<FieldError>),
    /// Rendering the CRDs as YAML failed.
    #[error("rendering CRD YAML: {0}")]
    Yaml(String),
}

/// One validation problem: the field path (`spec.volumes[1].name`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path of the field, from the object root.
    pub field: String,
    /// What is wrong; never contains Secret data.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn join(errs: &[FieldError]) -> String {
    errs.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

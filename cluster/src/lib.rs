//! Kubernetes I/O shared by Kompox's servers (the aggregated API server, the controller) and
//! the CLI: everything they read from the cluster before calling the pure code in
//! `kompox-core`.
//!
//! - [`inputs`]: [`gather_inputs`] fetches what rendering a [`KompoxApp`] needs — the compose
//!   ConfigMap, the Secrets and ConfigMaps its `spec.files.mounts` name, and its KompoxDisks —
//!   into [`OwnedInputs`].
//! - [`facts`]: [`cluster_facts`] reads [`ClusterFacts`] (CSIDriver names, StorageClass
//!   provisioners, node labels and providerIDs); [`cluster_info`] resolves them into a
//!   [`ClusterInfo`] (provider and region), and [`resolve_cluster_info`] is the same decision
//!   without I/O; [`FactsCache`] keeps the facts for a time (one per process: the
//!   controller's disk and app controllers share one, the API server has one).
//! - [`access`]: delegated authentication and authorization ([`access::Reviewer`]: TokenReview,
//!   SubjectAccessReview, short caches; the `/metrics` gate of every server).
//! - [`client`]: the one kubeconfig → [`kube::Client`] of the servers, benchmarks and tests
//!   ([`client::config`] for the configuration alone).
//! - [`retry_on_conflict`]: the one read-modify-write retry loop.
//! - [`deployment_ready`]: whether a Deployment has rolled out (the controller's Ready and
//!   `apply --wait`).
//! - [`tls_secret`]: a serving certificate kept in a Secret and, when managed, issued,
//!   renewed and rotated there, its CA copied into the `caBundle` kube-apiserver trusts
//!   (the webhook's configuration, the aggregated API server's APIService).
//! - [`hash_key`]: the install's hash key, read from its Secret, created there once if absent.
//! - [`is_not_found`], [`is_conflict`], [`api_code`]: what an API error response says, for
//!   every crate that talks to the API server.
//!
//! Reads are plain GETs/LISTs with the caller's [`kube::Client`]; the only cache here is
//! [`FactsCache`] (app inputs change often and have watches in the controller).
//!
//! [`KompoxApp`]: kompox_core::api::KompoxApp
//! [`ClusterFacts`]: kompox_core::provider::ClusterFacts

#![warn(missing_docs)]

pub mod access;
pub mod client;
mod error;
pub mod facts;
pub mod hash_key;
pub mod inputs;
mod retry;
pub mod rollout;
pub mod tls_secret;

pub use client::client;
pub use error::{Error, Result, api_code, is_conflict, is_not_found};
pub use facts::{
    ClusterInfo, FactsCache, cluster_facts, cluster_info, majority_region, node_zones,
    resolve_cluster_info,
};
pub use inputs::{OwnedInputs, SourceRefs, gather_inputs, referenced_disks, referenced_sources};
pub use retry::retry_on_conflict;
pub use rollout::deployment_ready;

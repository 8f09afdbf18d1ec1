//! Provider facts read from the cluster, behind one function ([`cluster_info`]) so it can be
//! swapped for `kompox-cluster`'s once that crate lands, and the pure choice of a disk's CSI
//! driver ([`csi_driver`]).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::storage::v1::{CSIDriver, StorageClass};
use kompox_core::api::ProviderType;
use kompox_core::provider::{self, ClusterFacts, Detection, REGION_LABEL};
use kube::api::ListParams;
use kube::{Api, Client};

use crate::error::{Error, Result};

/// What the storage controllers need to know about the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterInfo {
    /// The raw facts (CSI drivers, provisioners, node labels, providerIDs).
    pub facts: ClusterFacts,
    /// The region (most common `topology.kubernetes.io/region` node label), if any.
    pub region: Option<String>,
}

impl ClusterInfo {
    /// The provider for `explicit` (auto → detected).
    #[must_use]
    pub fn resolve(&self, explicit: ProviderType) -> Detection {
        provider::resolve(explicit, &self.facts)
    }
}

/// Reads [`ClusterInfo`] with LISTs of CSIDrivers, StorageClasses and Nodes.
///
/// # Errors
///
/// [`Error::Kube`] when a list fails.
pub async fn cluster_info(client: &Client) -> Result<ClusterInfo> {
    let lp = ListParams::default();
    let drivers = Api::<CSIDriver>::all(client.clone())
        .list_metadata(&lp)
        .await
        .map_err(|e| Error::kube("listing CSIDrivers", e))?;
    let classes = Api::<StorageClass>::all(client.clone())
        .list(&lp)
        .await
        .map_err(|e| Error::kube("listing StorageClasses", e))?;
    let nodes = Api::<Node>::all(client.clone())
        .list(&lp)
        .await
        .map_err(|e| Error::kube("listing Nodes", e))?;
    let facts = ClusterFacts {
        csi_drivers: drivers
            .items
            .iter()
            .filter_map(|d| d.metadata.name.clone())
            .collect(),
        storage_class_provisioners: classes
            .items
            .iter()
            .map(|c| c.provisioner.clone())
            .collect(),
        node_labels: nodes
            .items
            .iter()
            .map(|n| n.metadata.labels.clone().unwrap_or_default())
            .collect(),
        node_provider_ids: nodes
            .items
            .iter()
            .filter_map(|n| n.spec.as_ref().and_then(|s| s.provider_id.clone()))
            .collect(),
    };
    let region = majority_region(&facts.node_labels);
    Ok(ClusterInfo { facts, region })
}

/// The most common region label value (ties: the smallest name).
#[must_use]
pub fn majority_region(node_labels: &[BTreeMap<String, String>]) -> Option<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for l in node_labels {
        if let Some(r) = l.get(REGION_LABEL).filter(|r| !r.is_empty()) {
            *counts.entry(r.as_str()).or_default() += 1;
        }
    }
    let mut best: Option<(&str, usize)> = None;
    for (r, n) in counts {
        if best.is_none_or(|(_, b)| n > b) {
            best = Some((r, n));
        }
    }
    best.map(|(r, _)| r.to_string())
}

/// The CSI driver of a disk: [`kompox_core::provider::csi_driver`], except that the generic
/// `csi` provider without an explicit `options.csiDriver` uses the CSI driver the cluster
/// actually has when the table's default (`hostpath.csi.k8s.io`) is not installed — as k3s
/// does. The local control plane runs the upstream mock CSI driver under its own name.
///
/// # Errors
///
/// The provider table's error (`auto` unresolved, no CSI driver in the cluster).
pub fn csi_driver(
    provider: ProviderType,
    options: &BTreeMap<String, String>,
    cluster_drivers: &[String],
) -> Result<String, provider::Error> {
    let chosen = provider::csi_driver(provider, options, cluster_drivers)?;
    let explicit = options
        .get(provider::CSI_DRIVER_OPTION)
        .is_some_and(|d| !d.is_empty());
    if provider == ProviderType::Csi && !explicit && !cluster_drivers.contains(&chosen) {
        return provider::csi_driver(ProviderType::K3s, options, cluster_drivers)
            .map_err(|_| provider::Error::NoCsiDriver(ProviderType::Csi));
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn csi_provider_falls_back_to_the_cluster_driver() {
        let none = BTreeMap::new();
        assert_eq!(
            csi_driver(ProviderType::Csi, &none, &s(&["mock.csi.kompox.dev"])),
            Ok("mock.csi.kompox.dev".into())
        );
        assert_eq!(
            csi_driver(
                ProviderType::Csi,
                &none,
                &s(&["x.io", provider::HOSTPATH_CSI_DRIVER])
            ),
            Ok(provider::HOSTPATH_CSI_DRIVER.into())
        );
        assert_eq!(
            csi_driver(ProviderType::Csi, &none, &[]),
            Err(provider::Error::NoCsiDriver(ProviderType::Csi))
        );
        let explicit: BTreeMap<String, String> =
            [(provider::CSI_DRIVER_OPTION.to_string(), "y.io".to_string())].into();
        assert_eq!(
            csi_driver(ProviderType::Csi, &explicit, &s(&["x.io"])),
            Ok("y.io".into())
        );
        assert_eq!(
            csi_driver(ProviderType::Aks, &none, &[]),
            Ok("disk.csi.azure.com".into())
        );
    }

    #[test]
    fn region_by_majority() {
        let l = |r: &str| -> BTreeMap<String, String> {
            [(REGION_LABEL.to_string(), r.to_string())].into()
        };
        assert_eq!(majority_region(&[l("b"), l("a"), l("b")]), Some("b".into()));
        assert_eq!(majority_region(&[l("b"), l("a")]), Some("a".into()));
        assert_eq!(majority_region(&[BTreeMap::new()]), None);
    }
}

//! Provider facts read from the cluster (through `kompox-cluster`'s [`cluster_facts`]), cached
//! briefly, and the pure choice of a disk's CSI driver ([`csi_driver`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kompox_cluster::{cluster_facts, majority_region};
use kompox_core::api::ProviderType;
use kompox_core::provider::{self, ClusterFacts, Detection, ZONE_LABEL};
use kube::Client;

use crate::error::Result;

/// What the storage controllers need to know about the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterInfo {
    /// The raw facts (CSI drivers, provisioners, node labels, providerIDs).
    pub facts: ClusterFacts,
    /// The region (most common `topology.kubernetes.io/region` node label), if any.
    pub region: Option<String>,
    /// Every `topology.kubernetes.io/zone` value on the nodes.
    pub zones: BTreeSet<String>,
}

impl ClusterInfo {
    /// Builds the info from facts (no I/O).
    #[must_use]
    pub fn from_facts(facts: ClusterFacts) -> Self {
        let region = majority_region(&facts);
        let zones = facts
            .node_labels
            .iter()
            .filter_map(|l| l.get(ZONE_LABEL).filter(|z| !z.is_empty()).cloned())
            .collect();
        Self {
            facts,
            region,
            zones,
        }
    }

    /// The provider for `explicit` (auto → detected).
    #[must_use]
    pub fn resolve(&self, explicit: ProviderType) -> Detection {
        provider::resolve(explicit, &self.facts)
    }
}

/// Reads [`ClusterInfo`] (LISTs of CSIDrivers, StorageClasses and Nodes).
///
/// # Errors
///
/// [`crate::Error::Cluster`] when a list fails.
pub async fn cluster_info(client: &Client) -> Result<ClusterInfo> {
    Ok(ClusterInfo::from_facts(cluster_facts(client).await?))
}

/// [`cluster_info`] cached for a short time: a burst of reconciles reads the cluster once.
#[derive(Debug)]
pub struct InfoCache {
    ttl: Duration,
    cached: Mutex<Option<(Instant, ClusterInfo)>>,
}

impl InfoCache {
    /// A cache keeping answers for `ttl`.
    #[must_use]
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            cached: Mutex::new(None),
        }
    }

    /// The cached info, or a fresh read.
    ///
    /// # Errors
    ///
    /// As [`cluster_info`].
    pub async fn get(&self, client: &Client) -> Result<ClusterInfo> {
        if let Some((at, info)) = self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            && at.elapsed() < self.ttl
        {
            return Ok(info.clone());
        }
        let info = cluster_info(client).await?;
        *self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((Instant::now(), info.clone()));
        Ok(info)
    }
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
    fn zones_and_region_from_node_labels() {
        let node = |z: &str| -> BTreeMap<String, String> {
            [
                (ZONE_LABEL.to_string(), z.to_string()),
                (provider::REGION_LABEL.to_string(), "japaneast".to_string()),
            ]
            .into()
        };
        let info = ClusterInfo::from_facts(ClusterFacts {
            node_labels: vec![
                node("japaneast-1"),
                node("japaneast-2"),
                node("japaneast-1"),
            ],
            ..Default::default()
        });
        assert_eq!(info.region.as_deref(), Some("japaneast"));
        assert_eq!(info.zones.len(), 2);
        assert_eq!(info.resolve(ProviderType::Auto).provider, ProviderType::Csi);
    }
}

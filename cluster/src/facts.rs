//! Cluster facts: what the provider detection and zone mapping of `kompox-core` need from
//! the cluster, read through [`cluster_facts`] and kept for a short time by the one
//! [`FactsCache`] of each process.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::storage::v1::{CSIDriver, StorageClass};
use kompox_core::api::ProviderType;
use kompox_core::provider::{ClusterFacts, REGION_LABEL, ZONE_LABEL, resolve};
use kube::Client;
use kube::api::{Api, ListParams};

use crate::error::{Error, Result};

pub use kompox_core::render::ClusterInfo;

/// Reads the facts provider detection uses: CSIDriver names, StorageClass provisioners,
/// node labels and node `spec.providerID`s.
///
/// Needs `list` on `csidrivers` and `storageclasses` (storage.k8s.io) and on `nodes`.
///
/// # Errors
///
/// [`Error::Kube`] naming the list that failed.
pub async fn cluster_facts(client: &Client) -> Result<ClusterFacts> {
    let lp = ListParams::default();
    let csi = Api::<CSIDriver>::all(client.clone());
    let sc = Api::<StorageClass>::all(client.clone());
    let nodes = Api::<Node>::all(client.clone());
    let (csi, sc, nodes) = futures::try_join!(
        async {
            csi.list(&lp)
                .await
                .map_err(Error::kube("listing CSIDrivers"))
        },
        async {
            sc.list(&lp)
                .await
                .map_err(Error::kube("listing StorageClasses"))
        },
        async { nodes.list(&lp).await.map_err(Error::kube("listing Nodes")) },
    )?;
    let mut facts = ClusterFacts {
        csi_drivers: csi
            .items
            .into_iter()
            .filter_map(|d| d.metadata.name)
            .collect(),
        storage_class_provisioners: sc.items.into_iter().map(|s| s.provisioner).collect(),
        ..ClusterFacts::default()
    };
    for node in nodes.items {
        facts
            .node_labels
            .push(node.metadata.labels.unwrap_or_default());
        if let Some(id) = node.spec.and_then(|s| s.provider_id)
            && !id.is_empty()
        {
            facts.node_provider_ids.push(id);
        }
    }
    facts.csi_drivers.sort();
    facts.storage_class_provisioners.sort();
    Ok(facts)
}

/// The most common non-empty value of the `topology.kubernetes.io/region` node label; ties
/// go to the value that sorts first, so the answer does not depend on list order.
#[must_use]
pub fn majority_region(facts: &ClusterFacts) -> Option<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for labels in &facts.node_labels {
        if let Some(r) = labels.get(REGION_LABEL).map(|r| r.trim())
            && !r.is_empty()
        {
            *counts.entry(r).or_default() += 1;
        }
    }
    let mut best: Option<(&str, usize)> = None;
    for (region, n) in counts {
        if best.is_none_or(|(_, m)| n > m) {
            best = Some((region, n));
        }
    }
    best.map(|(r, _)| r.to_owned())
}

/// Every non-empty `topology.kubernetes.io/zone` node label value.
#[must_use]
pub fn node_zones(facts: &ClusterFacts) -> BTreeSet<String> {
    facts
        .node_labels
        .iter()
        .filter_map(|l| l.get(ZONE_LABEL).filter(|z| !z.is_empty()).cloned())
        .collect()
}

/// The decision of [`cluster_info`] without I/O: `explicit` unless it is `auto` (then
/// [`kompox_core::provider::detect`]), and the [`majority_region`].
#[must_use]
pub fn resolve_cluster_info(explicit: ProviderType, facts: &ClusterFacts) -> ClusterInfo {
    ClusterInfo {
        provider: resolve(explicit, facts).provider,
        region: majority_region(facts),
    }
}

/// Reads the [`cluster_facts`] and resolves the provider (`explicit`, or detected when it is
/// `auto`) and the region.
///
/// # Errors
///
/// As [`cluster_facts`].
pub async fn cluster_info(client: &Client, explicit: ProviderType) -> Result<ClusterInfo> {
    let facts = cluster_facts(client).await?;
    Ok(resolve_cluster_info(explicit, &facts))
}

/// [`cluster_facts`] kept for a time: a burst of reconciles or requests reads the cluster
/// once. One caller reads while the others wait for its answer; a failed read is not kept.
#[derive(Debug)]
pub struct FactsCache {
    ttl: Duration,
    cached: tokio::sync::Mutex<Option<(Instant, ClusterFacts)>>,
}

/// How long cluster facts are reused by every server: a new CSI driver, StorageClass or node
/// zone is seen within this time.
pub const FACTS_TTL: Duration = Duration::from_secs(30);

impl Default for FactsCache {
    /// A cache keeping facts for [`FACTS_TTL`].
    fn default() -> Self {
        Self::new(FACTS_TTL)
    }
}

impl FactsCache {
    /// A cache keeping facts for `ttl`.
    #[must_use]
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// The facts, read with `client` when those kept are older than the TTL.
    ///
    /// # Errors
    ///
    /// As [`cluster_facts`].
    pub async fn facts(&self, client: &Client) -> Result<ClusterFacts> {
        let mut guard = self.cached.lock().await;
        if let Some((at, facts)) = guard.as_ref()
            && at.elapsed() < self.ttl
        {
            return Ok(facts.clone());
        }
        let facts = cluster_facts(client).await?;
        *guard = Some((Instant::now(), facts.clone()));
        Ok(facts)
    }

    /// [`cluster_info`] from the kept facts.
    ///
    /// # Errors
    ///
    /// As [`cluster_facts`].
    pub async fn cluster_info(
        &self,
        client: &Client,
        explicit: ProviderType,
    ) -> Result<ClusterInfo> {
        Ok(resolve_cluster_info(explicit, &self.facts(client).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn node(region: Option<&str>) -> BTreeMap<String, String> {
        region
            .map(|r| [(REGION_LABEL.to_owned(), r.to_owned())].into())
            .unwrap_or_default()
    }

    #[rstest]
    #[case::no_nodes(vec![], None)]
    #[case::no_labels(vec![None, None], None)]
    #[case::majority(vec![Some("b"), Some("a"), Some("b")], Some("b"))]
    #[case::tie_sorts(vec![Some("z"), Some("a")], Some("a"))]
    #[case::blank_ignored(vec![Some(" "), Some("west")], Some("west"))]
    fn region_is_the_most_common_label(
        #[case] regions: Vec<Option<&str>>,
        #[case] want: Option<&str>,
    ) {
        let facts = ClusterFacts {
            node_labels: regions.into_iter().map(node).collect(),
            ..ClusterFacts::default()
        };
        assert_eq!(majority_region(&facts).as_deref(), want);
    }

    #[test]
    fn zones_from_node_labels() {
        let node = |z: &str| -> BTreeMap<String, String> {
            [(ZONE_LABEL.to_owned(), z.to_owned())].into()
        };
        let facts = ClusterFacts {
            node_labels: vec![
                node("japaneast-1"),
                node("japaneast-2"),
                node("japaneast-1"),
                node(""),
                BTreeMap::new(),
            ],
            ..ClusterFacts::default()
        };
        assert_eq!(
            node_zones(&facts).into_iter().collect::<Vec<_>>(),
            ["japaneast-1", "japaneast-2"]
        );
        assert!(node_zones(&ClusterFacts::default()).is_empty());
    }

    #[test]
    fn explicit_provider_wins_and_auto_detects() {
        let facts = ClusterFacts {
            node_provider_ids: vec!["azure:///subscriptions/x/vm".into()],
            node_labels: vec![node(Some("japaneast"))],
            ..ClusterFacts::default()
        };
        assert_eq!(
            resolve_cluster_info(ProviderType::Auto, &facts),
            ClusterInfo {
                provider: ProviderType::Aks,
                region: Some("japaneast".into())
            }
        );
        assert_eq!(
            resolve_cluster_info(ProviderType::Gke, &facts).provider,
            ProviderType::Gke
        );
        assert_eq!(
            resolve_cluster_info(ProviderType::Auto, &ClusterFacts::default()),
            ClusterInfo {
                provider: ProviderType::Csi,
                region: None
            }
        );
    }
}

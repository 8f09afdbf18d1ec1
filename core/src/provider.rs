//! Per-provider data (CSI driver, StorageClass parameters, zone naming) and provider
//! auto-detection over facts the caller reads from the cluster.
//!
//! | provider | CSI driver                          | `sku` option → parameter | default      |
//! |----------|-------------------------------------|--------------------------|--------------|
//! | aks      | `disk.csi.azure.com`                | `skuName`                | Premium_LRS  |
//! | eks      | `ebs.csi.aws.com`                   | `type`                   | gp3          |
//! | gke      | `pd.csi.storage.gke.io`             | `type`                   | pd-balanced  |
//! | oke      | `blockvolume.csi.oraclecloud.com`   | —                        | —            |
//! | k3s      | taken from the cluster's CSIDrivers | —                        | —            |
//! | csi      | `hostpath.csi.k8s.io`               | —                        | —            |
//!
//! k3s's default `rancher.io/local-path` is not a CSI driver, so k3s is handled like the
//! generic csi provider with whatever CSI driver the cluster has. The option `csiDriver`
//! overrides the driver for any provider.

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;

use crate::api::ProviderType;

/// Node label holding the zone.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// Node label holding the region.
pub const REGION_LABEL: &str = "topology.kubernetes.io/region";
/// The generic CSI driver used by the `csi` provider unless overridden.
pub const HOSTPATH_CSI_DRIVER: &str = "hostpath.csi.k8s.io";
/// Disk option choosing the disk type (SKU) in a provider-neutral way.
pub const SKU_OPTION: &str = "sku";
/// Disk option overriding the CSI driver name.
pub const CSI_DRIVER_OPTION: &str = "csiDriver";

/// Errors from the provider table.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// `auto` was passed where a concrete provider is needed; resolve it first.
    #[error("provider: auto must be resolved to a concrete provider first (see provider::resolve)")]
    Unresolved,
    /// No CSI driver is known for the provider and none was found in the cluster.
    #[error("provider {0}: no CSI driver found in the cluster; set options.csiDriver")]
    NoCsiDriver(ProviderType),
    /// `spec.zone` is empty.
    #[error("zone: must not be empty")]
    EmptyZone,
    /// A zone number needs the region, and none was given.
    #[error(
        "zone {zone:?}: provider {provider} needs the region (node label topology.kubernetes.io/region) to map a zone number"
    )]
    MissingRegion {
        /// The provider.
        provider: ProviderType,
        /// The zone as given.
        zone: String,
    },
    /// The zone number cannot be mapped for this provider.
    #[error("zone {zone:?}: provider {provider} needs a full zone name here")]
    ZoneNeedsFullName {
        /// The provider.
        provider: ProviderType,
        /// The zone as given.
        zone: String,
    },
    /// The provider-neutral `sku` option and the provider's own parameter disagree.
    #[error("options.{SKU_OPTION} ({sku:?}) and options.{parameter} ({value:?}) disagree")]
    ConflictingOptions {
        /// The provider's parameter name.
        parameter: &'static str,
        /// `options.sku`.
        sku: String,
        /// `options.<parameter>`.
        value: String,
    },
}

/// Static facts about one provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// The provider.
    pub provider: ProviderType,
    /// Its CSI driver, or `None` when it comes from the cluster (k3s) or is unknown (auto).
    pub csi_driver: Option<&'static str>,
    /// StorageClass parameter the `sku` option maps to.
    pub sku_parameter: Option<&'static str>,
    /// Value of `sku_parameter` when no `sku` is given.
    pub default_sku: Option<&'static str>,
    /// `spec.providerID` prefixes of the provider's nodes.
    pub provider_id_prefixes: &'static [&'static str],
    /// How a zone number ("1") becomes a node zone label value.
    pub zone_style: ZoneStyle,
}

/// How a zone number becomes the value of [`ZONE_LABEL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneStyle {
    /// `<region>-<n>` (Azure; also the local test cluster).
    RegionDashNumber,
    /// `<region><letter>`, 1 → a (AWS: us-east-1a).
    RegionLetter,
    /// `<region>-<letter>`, 1 → a (GCP: us-central1-a).
    RegionDashLetter,
    /// Only full zone names (OCI availability domains).
    FullNameOnly,
}

const PROFILES: [Profile; 7] = [
    Profile {
        provider: ProviderType::Auto,
        csi_driver: None,
        sku_parameter: None,
        default_sku: None,
        provider_id_prefixes: &[],
        zone_style: ZoneStyle::FullNameOnly,
    },
    Profile {
        provider: ProviderType::Aks,
        csi_driver: Some("disk.csi.azure.com"),
        sku_parameter: Some("skuName"),
        default_sku: Some("Premium_LRS"),
        provider_id_prefixes: &["azure://"],
        zone_style: ZoneStyle::RegionDashNumber,
    },
    Profile {
        provider: ProviderType::Eks,
        csi_driver: Some("ebs.csi.aws.com"),
        sku_parameter: Some("type"),
        default_sku: Some("gp3"),
        provider_id_prefixes: &["aws://"],
        zone_style: ZoneStyle::RegionLetter,
    },
    Profile {
        provider: ProviderType::Gke,
        csi_driver: Some("pd.csi.storage.gke.io"),
        sku_parameter: Some("type"),
        default_sku: Some("pd-balanced"),
        provider_id_prefixes: &["gce://"],
        zone_style: ZoneStyle::RegionDashLetter,
    },
    Profile {
        provider: ProviderType::Oke,
        csi_driver: Some("blockvolume.csi.oraclecloud.com"),
        sku_parameter: None,
        default_sku: None,
        provider_id_prefixes: &["oci://", "ocid1.instance."],
        zone_style: ZoneStyle::FullNameOnly,
    },
    Profile {
        provider: ProviderType::K3s,
        csi_driver: None,
        sku_parameter: None,
        default_sku: None,
        provider_id_prefixes: &["k3s://"],
        zone_style: ZoneStyle::RegionDashNumber,
    },
    Profile {
        provider: ProviderType::Csi,
        csi_driver: Some(HOSTPATH_CSI_DRIVER),
        sku_parameter: None,
        default_sku: None,
        provider_id_prefixes: &[],
        zone_style: ZoneStyle::RegionDashNumber,
    },
];

/// The static profile of `provider`.
#[must_use]
pub fn profile(provider: ProviderType) -> &'static Profile {
    match provider {
        ProviderType::Auto => &PROFILES[0],
        ProviderType::Aks => &PROFILES[1],
        ProviderType::Eks => &PROFILES[2],
        ProviderType::Gke => &PROFILES[3],
        ProviderType::Oke => &PROFILES[4],
        ProviderType::K3s => &PROFILES[5],
        ProviderType::Csi => &PROFILES[6],
    }
}

/// The CSI driver for a disk: `options.csiDriver` if set, else the provider's driver; for
/// k3s the cluster's CSI driver (`hostpath.csi.k8s.io` if present, else the first by name
/// that is not a cloud driver).
///
/// # Errors
///
/// [`Error::Unresolved`] for `auto`; [`Error::NoCsiDriver`] for k3s without a CSI driver.
pub fn csi_driver(
    provider: ProviderType,
    options: &BTreeMap<String, String>,
    cluster_csi_drivers: &[String],
) -> Result<String, Error> {
    if provider == ProviderType::Auto {
        return Err(Error::Unresolved);
    }
    if let Some(d) = options.get(CSI_DRIVER_OPTION).filter(|d| !d.is_empty()) {
        return Ok(d.clone());
    }
    if let Some(d) = profile(provider).csi_driver {
        return Ok(d.to_string());
    }
    let cloud: BTreeSet<&str> = PROFILES
        .iter()
        .filter_map(|p| p.csi_driver)
        .filter(|d| *d != HOSTPATH_CSI_DRIVER)
        .collect();
    let mut local: Vec<&String> = cluster_csi_drivers
        .iter()
        .filter(|d| !cloud.contains(d.as_str()))
        .collect();
    local.sort();
    local
        .iter()
        .find(|d| d.as_str() == HOSTPATH_CSI_DRIVER)
        .or_else(|| local.first())
        .map(|d| (*d).clone())
        .ok_or(Error::NoCsiDriver(provider))
}

/// StorageClass parameters for a disk: the `sku` option under the provider's parameter name
/// (or its default), plus every other option as is (`sku` and `csiDriver` are Kompox's own).
///
/// # Errors
///
/// [`Error::Unresolved`] for `auto`; [`Error::ConflictingOptions`] when `sku` and the
/// provider's parameter are both given and differ.
pub fn storage_class_parameters(
    provider: ProviderType,
    options: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, Error> {
    if provider == ProviderType::Auto {
        return Err(Error::Unresolved);
    }
    let p = profile(provider);
    let mut out: BTreeMap<String, String> = options
        .iter()
        .filter(|(k, _)| k.as_str() != SKU_OPTION && k.as_str() != CSI_DRIVER_OPTION)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(param) = p.sku_parameter {
        match (options.get(SKU_OPTION), options.get(param)) {
            (Some(sku), Some(value)) if sku != value => {
                return Err(Error::ConflictingOptions {
                    parameter: param,
                    sku: sku.clone(),
                    value: value.clone(),
                });
            }
            (Some(sku), _) => {
                out.insert(param.to_string(), sku.clone());
            }
            (None, Some(_)) => {}
            (None, None) => {
                if let Some(d) = p.default_sku {
                    out.insert(param.to_string(), d.to_string());
                }
            }
        }
    }
    Ok(out)
}

/// The value of [`ZONE_LABEL`] on nodes in `zone` (as written in a spec).
///
/// A zone number (`"1"`) is mapped with the region: aks/k3s/csi `<region>-1`, eks
/// `<region>a`, gke `<region>-a`; oke needs a full name. Anything else is taken as a full
/// zone name and returned unchanged.
///
/// # Errors
///
/// [`Error::EmptyZone`], [`Error::MissingRegion`], [`Error::ZoneNeedsFullName`],
/// [`Error::Unresolved`] for `auto` with a zone number.
pub fn node_zone(
    provider: ProviderType,
    region: Option<&str>,
    zone: &str,
) -> Result<String, Error> {
    if zone.trim().is_empty() {
        return Err(Error::EmptyZone);
    }
    if !zone.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(zone.to_string());
    }
    if provider == ProviderType::Auto {
        return Err(Error::Unresolved);
    }
    let style = profile(provider).zone_style;
    let full_name = || Error::ZoneNeedsFullName {
        provider,
        zone: zone.to_string(),
    };
    if style == ZoneStyle::FullNameOnly {
        return Err(full_name());
    }
    let region = region
        .filter(|r| !r.trim().is_empty())
        .ok_or_else(|| Error::MissingRegion {
            provider,
            zone: zone.to_string(),
        })?;
    let letter = || {
        zone.parse::<u8>()
            .ok()
            .filter(|n| (1..=26).contains(n))
            .map(|n| char::from(b'a' + n - 1))
            .ok_or_else(full_name)
    };
    Ok(match style {
        ZoneStyle::RegionDashNumber => format!("{region}-{zone}"),
        ZoneStyle::RegionLetter => format!("{region}{}", letter()?),
        ZoneStyle::RegionDashLetter => format!("{region}-{}", letter()?),
        ZoneStyle::FullNameOnly => return Err(full_name()),
    })
}

/// What the caller read from the cluster for [`detect`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterFacts {
    /// Names of CSIDriver objects.
    pub csi_drivers: Vec<String>,
    /// `provisioner` of each StorageClass.
    pub storage_class_provisioners: Vec<String>,
    /// Labels of each node.
    pub node_labels: Vec<BTreeMap<String, String>>,
    /// `spec.providerID` of each node (empty strings are ignored).
    pub node_provider_ids: Vec<String>,
}

/// Why a provider was chosen (for conditions and logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    /// The spec named it.
    Explicit,
    /// Most nodes' `spec.providerID` has this prefix.
    ProviderId(String),
    /// A CSIDriver with this name exists.
    CsiDriver(String),
    /// A StorageClass uses this provisioner.
    StorageClass(String),
    /// A node carries this label.
    NodeLabel(String),
    /// Nothing matched; the generic csi provider is used.
    Fallback,
}

/// A detection result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    /// The provider (never `auto`).
    pub provider: ProviderType,
    /// Why.
    pub evidence: Evidence,
}

/// `explicit` unless it is `auto`, else [`detect`].
#[must_use]
pub fn resolve(explicit: ProviderType, facts: &ClusterFacts) -> Detection {
    if explicit == ProviderType::Auto {
        detect(facts)
    } else {
        Detection {
            provider: explicit,
            evidence: Evidence::Explicit,
        }
    }
}

/// Detects the provider, strongest evidence first: node providerIDs (majority), cloud CSI
/// drivers, StorageClass provisioners, node labels; otherwise the generic `csi`.
///
/// Zone labels are deliberately not evidence: the local test cluster labels nodes AKS-style.
#[must_use]
pub fn detect(facts: &ClusterFacts) -> Detection {
    let found = |provider, evidence| Detection { provider, evidence };

    // 1. providerID prefixes, by majority (ties go to the earlier provider).
    let mut counts: BTreeMap<ProviderType, (usize, String)> = BTreeMap::new();
    for id in facts.node_provider_ids.iter().filter(|s| !s.is_empty()) {
        if let Some((p, prefix)) = PROFILES.iter().find_map(|p| {
            p.provider_id_prefixes
                .iter()
                .find(|pre| id.starts_with(**pre))
                .map(|pre| (p.provider, *pre))
        }) {
            counts.entry(p).or_insert((0, prefix.to_string())).0 += 1;
        }
    }
    let mut best: Option<(ProviderType, usize, String)> = None;
    for (p, (n, prefix)) in counts {
        if best.as_ref().is_none_or(|b| n > b.1) {
            best = Some((p, n, prefix));
        }
    }
    if let Some((p, _, prefix)) = best {
        return found(p, Evidence::ProviderId(prefix));
    }

    // 2. Cloud CSI drivers.
    const CLOUDS: [ProviderType; 4] = [
        ProviderType::Aks,
        ProviderType::Eks,
        ProviderType::Gke,
        ProviderType::Oke,
    ];
    for p in CLOUDS {
        if let Some(d) = profile(p).csi_driver
            && facts.csi_drivers.iter().any(|c| c == d)
        {
            return found(p, Evidence::CsiDriver(d.to_string()));
        }
    }

    // 3. StorageClass provisioners (CSI and in-tree names).
    const PROVISIONERS: [(&str, ProviderType); 9] = [
        ("disk.csi.azure.com", ProviderType::Aks),
        ("kubernetes.io/azure-disk", ProviderType::Aks),
        ("ebs.csi.aws.com", ProviderType::Eks),
        ("kubernetes.io/aws-ebs", ProviderType::Eks),
        ("pd.csi.storage.gke.io", ProviderType::Gke),
        ("kubernetes.io/gce-pd", ProviderType::Gke),
        ("blockvolume.csi.oraclecloud.com", ProviderType::Oke),
        ("oracle.com/oci", ProviderType::Oke),
        ("rancher.io/local-path", ProviderType::K3s),
    ];
    for (name, p) in PROVISIONERS {
        if facts.storage_class_provisioners.iter().any(|s| s == name) {
            return found(p, Evidence::StorageClass(name.to_string()));
        }
    }

    // 4. Node labels.
    const LABELS: [(&str, Option<&str>, ProviderType); 7] = [
        ("kubernetes.azure.com/cluster", None, ProviderType::Aks),
        ("eks.amazonaws.com/nodegroup", None, ProviderType::Eks),
        ("eks.amazonaws.com/compute-type", None, ProviderType::Eks),
        ("cloud.google.com/gke-nodepool", None, ProviderType::Gke),
        ("oci.oraclecloud.com/fault-domain", None, ProviderType::Oke),
        (
            "node.kubernetes.io/instance-type",
            Some("k3s"),
            ProviderType::K3s,
        ),
        ("k3s.io/hostname", None, ProviderType::K3s),
    ];
    for (label, value, p) in LABELS {
        if facts.node_labels.iter().any(|l| {
            l.get(label)
                .is_some_and(|v| value.is_none_or(|want| v == want))
        }) {
            return found(p, Evidence::NodeLabel(label.to_string()));
        }
    }

    found(ProviderType::Csi, Evidence::Fallback)
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    /// The CSI driver a provider uses, given the drivers the cluster has.
    #[rstest]
    #[case::aks(ProviderType::Aks, &[], Ok("disk.csi.azure.com"))]
    #[case::eks(ProviderType::Eks, &[], Ok("ebs.csi.aws.com"))]
    #[case::gke(ProviderType::Gke, &[], Ok("pd.csi.storage.gke.io"))]
    #[case::oke(ProviderType::Oke, &[], Ok("blockvolume.csi.oraclecloud.com"))]
    #[case::csi_hostpath(ProviderType::Csi, &[], Ok(HOSTPATH_CSI_DRIVER))]
    #[case::csi_ignores_cluster_drivers(ProviderType::Csi, &["other.csi.io"], Ok(HOSTPATH_CSI_DRIVER))]
    #[case::k3s_first_non_cloud_driver_by_name(
        ProviderType::K3s,
        &["z.csi.io", "disk.csi.azure.com", "a.csi.io"],
        Ok("a.csi.io")
    )]
    #[case::k3s_prefers_hostpath(ProviderType::K3s, &["a.csi.io", HOSTPATH_CSI_DRIVER], Ok(HOSTPATH_CSI_DRIVER))]
    #[case::k3s_without_drivers(ProviderType::K3s, &[], Err(Error::NoCsiDriver(ProviderType::K3s)))]
    #[case::auto_unresolved(ProviderType::Auto, &[], Err(Error::Unresolved))]
    fn csi_driver_table(
        #[case] p: ProviderType,
        #[case] cluster: &[&str],
        #[case] want: Result<&str, Error>,
    ) {
        assert_eq!(
            csi_driver(p, &opts(&[]), &strings(cluster)),
            want.map(String::from)
        );
    }

    #[test]
    fn csi_driver_option_wins() {
        assert_eq!(
            csi_driver(
                ProviderType::Aks,
                &opts(&[(CSI_DRIVER_OPTION, "x.io")]),
                &[]
            ),
            Ok("x.io".into())
        );
    }

    /// StorageClass parameters from a provider and the disk's options.
    #[rstest]
    #[case::aks_default_sku(ProviderType::Aks, &[], &[("skuName", "Premium_LRS")])]
    #[case::aks_sku_and_passthrough(
        ProviderType::Aks,
        &[("sku", "PremiumV2_LRS"), ("DiskIOPSReadWrite", "3000")],
        &[("skuName", "PremiumV2_LRS"), ("DiskIOPSReadWrite", "3000")]
    )]
    #[case::aks_native_sku_name(ProviderType::Aks, &[("skuName", "StandardSSD_LRS")], &[("skuName", "StandardSSD_LRS")])]
    #[case::eks_default_type(ProviderType::Eks, &[], &[("type", "gp3")])]
    #[case::eks_sku_and_iops(ProviderType::Eks, &[("sku", "io2"), ("iops", "5000")], &[("type", "io2"), ("iops", "5000")])]
    #[case::gke_default_type(ProviderType::Gke, &[], &[("type", "pd-balanced")])]
    #[case::gke_sku(ProviderType::Gke, &[("sku", "pd-ssd")], &[("type", "pd-ssd")])]
    #[case::oke_passthrough(ProviderType::Oke, &[("vpusPerGB", "20")], &[("vpusPerGB", "20")])]
    #[case::csi_takes_none(ProviderType::Csi, &[("sku", "x"), (CSI_DRIVER_OPTION, "d")], &[])]
    #[case::k3s_takes_none(ProviderType::K3s, &[], &[])]
    fn storage_class_parameter_table(
        #[case] p: ProviderType,
        #[case] options: &[(&str, &str)],
        #[case] want: &[(&str, &str)],
    ) {
        assert_eq!(storage_class_parameters(p, &opts(options)), Ok(opts(want)));
    }

    #[test]
    fn storage_class_parameter_errors() {
        assert!(matches!(
            storage_class_parameters(ProviderType::Aks, &opts(&[("sku", "A"), ("skuName", "B")])),
            Err(Error::ConflictingOptions {
                parameter: "skuName",
                ..
            })
        ));
        assert_eq!(
            storage_class_parameters(ProviderType::Auto, &opts(&[])),
            Err(Error::Unresolved)
        );
    }

    /// The node zone label value for a provider, region and KompoxDisk zone.
    #[rstest]
    #[case::aks_number(ProviderType::Aks, Some("japaneast"), "1", "japaneast-1")]
    #[case::aks_full_name(ProviderType::Aks, Some("japaneast"), "japaneast-2", "japaneast-2")]
    #[case::csi_number(ProviderType::Csi, Some("japaneast"), "3", "japaneast-3")]
    #[case::k3s_number(ProviderType::K3s, Some("local"), "1", "local-1")]
    #[case::eks_number_to_letter(ProviderType::Eks, Some("us-east-1"), "1", "us-east-1a")]
    #[case::eks_full_name_without_region(ProviderType::Eks, None, "us-east-1b", "us-east-1b")]
    #[case::gke_number_to_letter(ProviderType::Gke, Some("us-central1"), "3", "us-central1-c")]
    #[case::oke_availability_domain(ProviderType::Oke, None, "PHX-AD-1", "PHX-AD-1")]
    #[case::auto_as_given(ProviderType::Auto, None, "zone-a", "zone-a")]
    fn node_zone_table(
        #[case] p: ProviderType,
        #[case] region: Option<&str>,
        #[case] zone: &str,
        #[case] want: &str,
    ) {
        assert_eq!(node_zone(p, region, zone), Ok(want.to_owned()));
    }

    #[test]
    fn node_zone_errors() {
        assert_eq!(
            node_zone(ProviderType::Aks, None, "1"),
            Err(Error::MissingRegion {
                provider: ProviderType::Aks,
                zone: "1".into()
            })
        );
        assert_eq!(
            node_zone(ProviderType::Aks, Some(" "), "1")
                .map_err(|e| e.to_string())
                .err()
                .map(|m| m.contains("region")),
            Some(true)
        );
        assert!(matches!(
            node_zone(ProviderType::Oke, Some("r"), "1"),
            Err(Error::ZoneNeedsFullName { .. })
        ));
        assert!(matches!(
            node_zone(ProviderType::Eks, Some("r"), "27"),
            Err(Error::ZoneNeedsFullName { .. })
        ));
        assert!(matches!(
            node_zone(ProviderType::Gke, Some("r"), "0"),
            Err(Error::ZoneNeedsFullName { .. })
        ));
        assert!(matches!(
            node_zone(ProviderType::Eks, Some("r"), "99999999999"),
            Err(Error::ZoneNeedsFullName { .. })
        ));
        assert_eq!(
            node_zone(ProviderType::Aks, Some("r"), ""),
            Err(Error::EmptyZone)
        );
        assert_eq!(
            node_zone(ProviderType::Auto, Some("r"), "1"),
            Err(Error::Unresolved)
        );
    }

    #[test]
    fn detect_table() {
        let labels = |pairs: &[(&str, &str)]| vec![opts(pairs)];
        let cases: Vec<(&str, ClusterFacts, ProviderType, Evidence)> = vec![
            (
                "empty",
                ClusterFacts::default(),
                ProviderType::Csi,
                Evidence::Fallback,
            ),
            (
                "azure providerID",
                ClusterFacts {
                    node_provider_ids: strings(&["azure:///subscriptions/x/vm-0"]),
                    ..Default::default()
                },
                ProviderType::Aks,
                Evidence::ProviderId("azure://".into()),
            ),
            (
                "providerID majority wins over CSI driver",
                ClusterFacts {
                    node_provider_ids: strings(&[
                        "k3s://a",
                        "k3s://b",
                        "aws:///us-east-1a/i-1",
                        "",
                    ]),
                    csi_drivers: strings(&["ebs.csi.aws.com"]),
                    ..Default::default()
                },
                ProviderType::K3s,
                Evidence::ProviderId("k3s://".into()),
            ),
            (
                "gce",
                ClusterFacts {
                    node_provider_ids: strings(&["gce://proj/us-central1-a/n1"]),
                    ..Default::default()
                },
                ProviderType::Gke,
                Evidence::ProviderId("gce://".into()),
            ),
            (
                "oci ocid",
                ClusterFacts {
                    node_provider_ids: strings(&["ocid1.instance.oc1.phx.abc"]),
                    ..Default::default()
                },
                ProviderType::Oke,
                Evidence::ProviderId("ocid1.instance.".into()),
            ),
            (
                "oci scheme",
                ClusterFacts {
                    node_provider_ids: strings(&["oci://x"]),
                    ..Default::default()
                },
                ProviderType::Oke,
                Evidence::ProviderId("oci://".into()),
            ),
            (
                "unknown providerID falls through to CSI driver",
                ClusterFacts {
                    node_provider_ids: strings(&["kind://docker/k/n"]),
                    csi_drivers: strings(&[HOSTPATH_CSI_DRIVER, "pd.csi.storage.gke.io"]),
                    ..Default::default()
                },
                ProviderType::Gke,
                Evidence::CsiDriver("pd.csi.storage.gke.io".into()),
            ),
            (
                "local-path storage class",
                ClusterFacts {
                    storage_class_provisioners: strings(&["rancher.io/local-path"]),
                    ..Default::default()
                },
                ProviderType::K3s,
                Evidence::StorageClass("rancher.io/local-path".into()),
            ),
            (
                "in-tree azure storage class",
                ClusterFacts {
                    storage_class_provisioners: strings(&["kubernetes.io/azure-disk"]),
                    ..Default::default()
                },
                ProviderType::Aks,
                Evidence::StorageClass("kubernetes.io/azure-disk".into()),
            ),
            (
                "eks node label",
                ClusterFacts {
                    node_labels: labels(&[("eks.amazonaws.com/nodegroup", "ng")]),
                    ..Default::default()
                },
                ProviderType::Eks,
                Evidence::NodeLabel("eks.amazonaws.com/nodegroup".into()),
            ),
            (
                "k3s instance type",
                ClusterFacts {
                    node_labels: labels(&[("node.kubernetes.io/instance-type", "k3s")]),
                    ..Default::default()
                },
                ProviderType::K3s,
                Evidence::NodeLabel("node.kubernetes.io/instance-type".into()),
            ),
            (
                "AKS-style zone labels on the local cluster are not evidence",
                ClusterFacts {
                    node_labels: labels(&[
                        (ZONE_LABEL, "japaneast-1"),
                        (REGION_LABEL, "japaneast"),
                        ("node.kubernetes.io/instance-type", "m"),
                    ]),
                    csi_drivers: strings(&[HOSTPATH_CSI_DRIVER]),
                    ..Default::default()
                },
                ProviderType::Csi,
                Evidence::Fallback,
            ),
        ];
        for (name, facts, provider, evidence) in cases {
            assert_eq!(detect(&facts), Detection { provider, evidence }, "{name}");
        }
    }

    #[test]
    fn explicit_wins() {
        let facts = ClusterFacts {
            node_provider_ids: strings(&["azure:///x"]),
            ..Default::default()
        };
        assert_eq!(
            resolve(ProviderType::Gke, &facts),
            Detection {
                provider: ProviderType::Gke,
                evidence: Evidence::Explicit
            }
        );
        assert_eq!(
            resolve(ProviderType::Auto, &facts).provider,
            ProviderType::Aks
        );
    }

    #[test]
    fn profiles_are_indexed_by_provider() {
        for p in ProviderType::ALL {
            assert_eq!(profile(p).provider, p);
        }
    }
}

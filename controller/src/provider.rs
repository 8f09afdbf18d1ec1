//! The controller's choice of a disk's CSI driver ([`csi_driver`]); the cluster facts it is
//! made from come from [`crate::Context::facts`].

use std::collections::BTreeMap;

use kompox_core::api::ProviderType;
use kompox_core::provider;

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
}

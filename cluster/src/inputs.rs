//! Gathering what rendering a KompoxApp needs from the cluster.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kompox_core::api::{KompoxApp, KompoxDisk};
use kube::api::Api;
use kube::{Client, ResourceExt as _};

use crate::error::{Error, Result};

/// The Secrets and ConfigMaps (by name, in the app's namespace) an app's spec refers to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceRefs {
    /// Secret names.
    pub secrets: BTreeSet<String>,
    /// ConfigMap names (not including the compose ConfigMap).
    pub config_maps: BTreeSet<String>,
}

/// The Secrets and ConfigMaps named by `spec.files.mounts`.
#[must_use]
pub fn referenced_sources(app: &KompoxApp) -> SourceRefs {
    let mut refs = SourceRefs::default();
    for m in app.spec.files.iter().flat_map(|f| &f.mounts) {
        if let Some(s) = &m.secret_ref {
            refs.secrets.insert(s.name.clone());
        }
        if let Some(c) = &m.config_map_ref {
            refs.config_maps.insert(c.name.clone());
        }
    }
    refs
}

/// The KompoxDisks named by `spec.volumes[].diskRef`, sorted, without duplicates.
#[must_use]
pub fn referenced_disks(app: &KompoxApp) -> Vec<String> {
    let set: BTreeSet<&str> = app
        .spec
        .volumes
        .iter()
        .map(|v| v.disk_ref.name.as_str())
        .collect();
    set.into_iter().map(str::to_owned).collect()
}

/// Everything rendering one app needs, owned. Objects that are referenced but do not exist
/// are simply absent from the maps: deciding what that means (an error naming the field,
/// or an empty input) is the renderer's job, so every caller reports it the same way.
///
/// `Debug` is not derived: `secrets` hold values.
#[derive(Clone)]
pub struct OwnedInputs {
    /// The app as read.
    pub app: KompoxApp,
    /// The compose file text (`spec.compose.configMapRef`).
    pub compose: String,
    /// The app's KompoxDisks that exist, by name.
    pub disks: BTreeMap<String, KompoxDisk>,
    /// The referenced Secrets that exist, by name.
    pub secrets: BTreeMap<String, Secret>,
    /// The referenced ConfigMaps that exist, by name.
    pub config_maps: BTreeMap<String, ConfigMap>,
    /// Variables for `${VAR}` interpolation in the compose file. Empty: Kompox does not read
    /// the process environment of any server, so a compose file renders the same everywhere.
    pub interpolation: BTreeMap<String, String>,
}

impl std::fmt::Debug for OwnedInputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedInputs")
            .field("app", &self.app.metadata.name)
            .field("compose_bytes", &self.compose.len())
            .field("disks", &self.disks.keys().collect::<Vec<_>>())
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("config_maps", &self.config_maps.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Fetches the app's compose ConfigMap, the Secrets/ConfigMaps of `spec.files.mounts`
/// ([`referenced_sources`]) and its KompoxDisks ([`referenced_disks`]), concurrently, from
/// the app's namespace.
///
/// Needs `get` on configmaps, secrets and kompoxdisks in the app's namespace.
///
/// # Errors
///
/// - [`Error::NoNamespace`] when `app` has no namespace;
/// - [`Error::ComposeConfigMapNotFound`] / [`Error::ComposeKeyNotFound`] when the compose
///   file cannot be found (nothing can be rendered without it);
/// - [`Error::Kube`] when a request fails (a missing referenced Secret, ConfigMap or disk is
///   not an error: it is left out of the result).
pub async fn gather_inputs(client: &Client, app: &KompoxApp) -> Result<OwnedInputs> {
    let ns = app.namespace().ok_or(Error::NoNamespace)?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let disks: Api<KompoxDisk> = Api::namespaced(client.clone(), &ns);
    let refs = referenced_sources(app);
    let disk_names = referenced_disks(app);
    let compose_ref = &app.spec.compose.config_map_ref;

    let compose = async {
        let cm = cms
            .get_opt(&compose_ref.name)
            .await
            .map_err(Error::kube(format!(
                "getting ConfigMap {ns}/{}",
                compose_ref.name
            )))?
            .ok_or_else(|| Error::ComposeConfigMapNotFound {
                namespace: ns.clone(),
                name: compose_ref.name.clone(),
            })?;
        cm.data
            .and_then(|mut d| d.remove(&compose_ref.key))
            .ok_or_else(|| Error::ComposeKeyNotFound {
                namespace: ns.clone(),
                name: compose_ref.name.clone(),
                key: compose_ref.key.clone(),
            })
    };
    let (compose, secrets, config_maps, disks) = futures::try_join!(
        compose,
        get_all(&secrets, &refs.secrets, &ns, "Secret"),
        get_all(&cms, &refs.config_maps, &ns, "ConfigMap"),
        get_all(&disks, &disk_names, &ns, "KompoxDisk"),
    )?;
    Ok(OwnedInputs {
        app: app.clone(),
        compose,
        disks,
        secrets,
        config_maps,
        interpolation: BTreeMap::new(),
    })
}

async fn get_all<'a, K>(
    api: &Api<K>,
    names: impl IntoIterator<Item = &'a String>,
    ns: &str,
    kind: &str,
) -> Result<BTreeMap<String, K>>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let gets = names.into_iter().map(|name| async move {
        api.get_opt(name)
            .await
            .map(|o| o.map(|o| (name.clone(), o)))
            .map_err(Error::kube(format!("getting {kind} {ns}/{name}")))
    });
    let found = futures::future::try_join_all(gets).await?;
    Ok(found.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kompox_core::api::{AppVolume, FileMount, FilesSpec, KompoxAppSpec, LocalKeyRef, LocalRef};

    #[test]
    fn refs_come_from_mounts_and_volumes() {
        let key = |n: &str| LocalKeyRef {
            name: n.into(),
            key: "k".into(),
        };
        let vol = |v: &str, d: &str| AppVolume {
            name: v.into(),
            disk_ref: LocalRef { name: d.into() },
        };
        let app = KompoxApp::new(
            "a",
            KompoxAppSpec {
                files: Some(FilesSpec {
                    mounts: vec![
                        FileMount {
                            path: "/e".into(),
                            secret_ref: Some(key("env")),
                            ..FileMount::default()
                        },
                        FileMount {
                            path: "/c".into(),
                            config_map_ref: Some(key("conf")),
                            ..FileMount::default()
                        },
                        FileMount {
                            path: "/e2".into(),
                            secret_ref: Some(key("env")),
                            ..FileMount::default()
                        },
                    ],
                }),
                volumes: vec![vol("data", "d2"), vol("db", "d1"), vol("x", "d2")],
                ..KompoxAppSpec::default()
            },
        );
        let refs = referenced_sources(&app);
        assert_eq!(refs.secrets.into_iter().collect::<Vec<_>>(), ["env"]);
        assert_eq!(refs.config_maps.into_iter().collect::<Vec<_>>(), ["conf"]);
        assert_eq!(referenced_disks(&app), ["d1", "d2"]);
    }
}

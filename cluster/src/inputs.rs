//! Gathering what rendering a KompoxApp needs from the cluster.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kompox_core::api::{KompoxApp, KompoxDisk};
use kompox_core::hash::HashKey;
use kompox_core::render::{ClusterInfo, RenderInput, Sources};
pub use kompox_core::render::{SourceRefs, referenced_disks, referenced_sources};
use kube::api::Api;
use kube::{Client, ResourceExt as _};

use crate::error::{Error, Result};

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
    /// The referenced Secrets and ConfigMaps that exist, by name.
    pub sources: Sources,
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
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

impl OwnedInputs {
    /// The renderer's view of these inputs for `cluster`, digests under the install's `key`:
    /// `kompox_core::render::render(&inputs.input(&cluster, &key))`.
    #[must_use]
    pub fn input<'a>(&'a self, cluster: &'a ClusterInfo, key: &'a HashKey) -> RenderInput<'a> {
        RenderInput {
            app: &self.app,
            compose: &self.compose,
            disks: &self.disks,
            sources: &self.sources,
            cluster,
            interpolation: &self.interpolation,
            key,
        }
    }
}

/// Fetches the app's compose ConfigMap, the Secrets/ConfigMaps of `spec.files.mounts`
/// ([`referenced_sources`]) and its KompoxDisks ([`referenced_disks`]), concurrently, from
/// the app's namespace: everything [`kompox_core::render::render`] needs but the
/// [`ClusterInfo`] (see [`crate::cluster_info`]).
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
        sources: Sources {
            secrets,
            config_maps,
        },
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

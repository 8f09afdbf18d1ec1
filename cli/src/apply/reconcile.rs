//! `apply --reconcile=client`: the plugin renders the app from the cluster's objects, as the
//! controller does, and applies the result itself.

use std::collections::BTreeMap;

use kompox_core::api::KompoxApp;
use kompox_core::render::render;
use kube::{Client, Resource as _};
use serde_json::json;

use crate::CliError;
use crate::kubectx;

/// Renders `app` from the cluster's objects (as the controller does) and server-side applies
/// the result. Returns how many objects were applied, and the generation of each Deployment
/// as applied (what its rollout must reach).
///
/// # Errors
///
/// [`CliError`] naming the render error or the object the server refused.
pub async fn client_reconcile(
    client: &Client,
    app: &KompoxApp,
) -> Result<(usize, BTreeMap<String, i64>), CliError> {
    let inputs = kompox_cluster::gather_inputs(client, app)
        .await
        .map_err(|e| CliError::Cluster(format!("gathering the app's inputs: {e}")))?;
    let cluster = kompox_cluster::cluster_info(client, app.spec.provider.type_)
        .await
        .map_err(|e| CliError::Cluster(format!("detecting the cluster's provider: {e}")))?;
    // The install's key when this user may read it (so the env hash is the webhook's),
    // else one for this run: nobody else compares these objects' digests.
    let key = match crate::install::read_hash_key(client).await {
        Ok(Some(k)) => k,
        Ok(None) | Err(_) => crate::project::run_key()?,
    };
    let rendered = render(&inputs.input(&cluster, &key))
        .map_err(|e| CliError::Invalid(e.errors.iter().map(ToString::to_string).collect()))?;
    let owner = app.controller_owner_ref(&());
    let mut n = 0;
    let mut generations = BTreeMap::new();
    for mut o in rendered.objects {
        if let Some(owner) = &owner {
            o["metadata"]["ownerReferences"] = json!([owner]);
        }
        let got = kubectx::apply(client, &o, false).await?;
        if got["kind"] == "Deployment"
            && let (Some(name), Some(generation)) = (
                got["metadata"]["name"].as_str(),
                got["metadata"]["generation"].as_i64(),
            )
        {
            generations.insert(name.to_owned(), generation);
        }
        n += 1;
    }
    Ok((n, generations))
}

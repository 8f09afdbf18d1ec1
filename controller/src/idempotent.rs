//! The idempotent API calls every reconcile step repeats: create unless it exists, delete
//! unless it is gone. Each step can run again after a restart or a lost response.

use std::fmt::Debug;

use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};
use kompox_cluster::{is_conflict, is_not_found};

/// Creates `obj` through `api`; one that already exists (a repeated step, a create race) is
/// fine. Returns whether this call created it (publish an Event only then).
///
/// # Errors
///
/// [`Error::Kube`] (`creating <what>`) for any other API failure.
pub async fn create<K>(api: &Api<K>, obj: &K, what: &str) -> Result<bool>
where
    K: Clone + DeserializeOwned + Serialize + Debug,
{
    match api.create(&PostParams::default(), obj).await {
        Ok(_) => Ok(true),
        Err(e) if is_conflict(&e) => Ok(false),
        Err(e) => Err(Error::kube(format!("creating {what}"), e)),
    }
}

/// Deletes `name` through `api` (background propagation); one already gone is fine.
///
/// # Errors
///
/// [`Error::Kube`] (`deleting <what>`) for any other API failure.
pub async fn delete<K>(api: &Api<K>, name: &str, what: &str) -> Result<()>
where
    K: Clone + DeserializeOwned + Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(Error::kube(format!("deleting {what}"), e)),
    }
}

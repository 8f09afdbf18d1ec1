//! What the handlers share: the client, the authenticator's configuration, the authorizer,
//! and small caches of cluster facts and API kinds.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use kompox_core::api::ProviderType;
use kompox_core::hash::HashKey;
use kompox_serve::{Health, Metrics};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};

use crate::api_error::ApiError;
use crate::auth::{Authorizer, SharedRequestHeaderConfig};
use kompox_cluster::{ClusterInfo, FactsCache};

/// The install's hash key and how much rendering may cost.
#[derive(Debug, Clone)]
pub struct RenderLimits {
    /// Key of every digest in `rendered` ([`kompox_core::hash`]).
    pub key: HashKey,
    /// Longest one render may take, waiting for a slot included.
    pub timeout: Duration,
    /// Renders running at once on the blocking pool.
    pub concurrency: usize,
}

/// Shared state of one server.
pub struct State {
    /// The server's own client (its service account).
    pub client: kube::Client,
    /// Authorizes requests (SubjectAccessReview in production).
    pub authorizer: Arc<dyn Authorizer>,
    /// The front-proxy configuration, `None` until loaded.
    pub request_header: SharedRequestHeaderConfig,
    /// Health endpoints.
    pub health: Health,
    /// Metrics registry.
    pub metrics: Metrics,
    /// Longest a request may take before it is answered 504.
    pub request_timeout: Duration,
    /// The install's key and the budget of rendering.
    pub render: RenderLimits,
    /// Slots for renders on the blocking pool ([`RenderLimits::concurrency`]).
    pub render_slots: Arc<tokio::sync::Semaphore>,
    /// How often one user may ask for `?validate=true`.
    pub validate_limit: crate::ratelimit::PerUserLimit,
    facts: FactsCache,
    kinds: RwLock<HashMap<GroupVersionKind, (ApiResource, bool)>>,
}

/// `?validate=true` per user: a burst of this many …
pub const VALIDATE_BURST: u32 = 5;
/// … refilled at this many a second.
pub const VALIDATE_PER_SECOND: f64 = 0.5;

impl State {
    /// A state over `client` and `authorizer`.
    #[must_use]
    pub fn new(
        client: kube::Client,
        authorizer: Arc<dyn Authorizer>,
        request_header: SharedRequestHeaderConfig,
        health: Health,
        metrics: Metrics,
        request_timeout: Duration,
        render: RenderLimits,
    ) -> Self {
        Self {
            client,
            authorizer,
            request_header,
            health,
            metrics,
            request_timeout,
            render_slots: Arc::new(tokio::sync::Semaphore::new(render.concurrency.max(1))),
            render,
            validate_limit: crate::ratelimit::PerUserLimit::new(
                VALIDATE_BURST,
                VALIDATE_PER_SECOND,
            ),
            facts: FactsCache::default(),
            kinds: RwLock::new(HashMap::new()),
        }
    }

    /// The cluster's provider (`explicit`, or detected) and region, from facts read at most
    /// [`kompox_cluster::facts::FACTS_TTL`] ago.
    ///
    /// # Errors
    ///
    /// 503 when the facts cannot be read.
    pub async fn cluster_info(&self, explicit: ProviderType) -> Result<ClusterInfo, ApiError> {
        self.facts
            .cluster_info(&self.client, explicit)
            .await
            .map_err(|e| ApiError::unavailable(format!("reading cluster facts: {e}")))
    }

    /// The API resource of a kind and whether it is namespaced, by discovery (cached).
    ///
    /// # Errors
    ///
    /// 422 naming the kind when the API does not serve it; 503 when discovery fails.
    pub async fn resource_for(
        &self,
        gvk: &GroupVersionKind,
    ) -> Result<(ApiResource, bool), ApiError> {
        if let Some(hit) = self
            .kinds
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(gvk)
        {
            return Ok(hit.clone());
        }
        let (ar, caps): (ApiResource, ApiCapabilities) =
            kube::discovery::pinned_kind(&self.client, gvk)
                .await
                .map_err(|e| {
                    ApiError::from_kube(
                        &format!("discovering {}/{} {}", gvk.group, gvk.version, gvk.kind),
                        &e,
                    )
                })?;
        let entry = (ar, caps.scope == Scope::Namespaced);
        self.kinds
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(gvk.clone(), entry.clone());
        Ok(entry)
    }
}

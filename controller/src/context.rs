//! [`Context`]: what every reconcile of every controller gets, and the policies they share
//! (error requeue, the finalizer wrapper, the object key).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kompox_cluster::FactsCache;
use kube::runtime::controller::Action;
use kube::runtime::events::Recorder;
use kube::{Api, Client};

use crate::{Backoff, Config, ControllerMetrics, Error, Result, Scope, Shutdown, error, status};

/// What every reconcile gets.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Reconcile metrics (and the `/metrics` registry).
    pub metrics: ControllerMetrics,
    /// Event recorder (reporting controller [`crate::REPORTING_CONTROLLER`]).
    pub recorder: Recorder,
    /// The process configuration.
    pub config: Arc<Config>,
    /// The namespace scope.
    pub scope: Scope,
    /// Fires when the process stops; pass `ctx.shutdown.clone().wait()` to
    /// `Controller::graceful_shutdown_on`.
    pub shutdown: Shutdown,
    /// Per-object retry backoff for `error_policy`.
    pub backoff: Backoff,
    /// The cluster facts (provider detection, region, zones), read at most every
    /// [`kompox_cluster::facts::FACTS_TTL`] for every controller.
    pub facts: FactsCache,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("config", &self.config)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// The `error_policy` of every controller: counts the error under `controller` and its
    /// category, logs it, and requeues `key` with exponential backoff (1 s … 5 min). Conflicts
    /// (someone else wrote first) retry at once after a short pause; [`Error::Waiting`] (a
    /// finalizer waiting on another component) requeues after its own delay, uncounted.
    pub fn error_action(&self, controller: &'static str, key: &str, err: &Error) -> Action {
        if let Some(retry) = err.waiting_retry() {
            tracing::debug!(controller, object = key, "{err}");
            return Action::requeue(retry);
        }
        self.metrics.error(controller, err.category());
        let delay = if err.is_conflict() {
            Duration::from_millis(200)
        } else {
            self.backoff.next(key)
        };
        tracing::warn!(controller, object = key, error = %err, retry_in = ?delay, "reconcile failed");
        Action::requeue(delay)
    }

    /// Forgets `key`'s failures after a successful reconcile.
    pub fn reconciled(&self, key: &str) {
        self.backoff.reset(key);
    }

    /// The reconcile of an object that carries `finalizer_name`: returns at once for an object
    /// outside the scope; runs `reconcile` inside kube-runtime's `finalizer()` (which adds the
    /// finalizer first, and removes it once the `Cleanup` reconcile returns `Ok`); an object
    /// gone while its finalizer was being removed is done; a success forgets the object's
    /// failures.
    ///
    /// # Errors
    ///
    /// [`Error::MissingField`] for an object without a namespace; [`Error::Finalizer`] with
    /// the reconcile's or the finalizer patch's error.
    pub async fn finalized<K, Fut>(
        &self,
        obj: Arc<K>,
        finalizer_name: &str,
        reconcile: impl FnOnce(kube::runtime::finalizer::Event<K>) -> Fut,
    ) -> Result<Action>
    where
        K: status::Namespaced + serde::Serialize,
        Fut: Future<Output = Result<Action>>,
    {
        let Some(ns) = obj.meta().namespace.clone() else {
            return Err(Error::MissingField(format!(
                "{} without namespace",
                K::kind(&())
            )));
        };
        if !self.scope.contains(&ns) {
            return Ok(Action::await_change());
        }
        let key = object_key(obj.as_ref());
        let api: Api<K> = Api::namespaced(self.client.clone(), &ns);
        let result = match kube::runtime::finalizer(&api, finalizer_name, obj, reconcile).await {
            Err(e) if error::finalizer_target_gone(&e) => Ok(Action::await_change()),
            r => r.map_err(|e| Error::Finalizer(Box::new(e))),
        };
        if result.is_ok() {
            self.reconciled(&key);
        }
        result
    }
}

/// `namespace/name` of an object: its key in logs and in the retry backoff.
pub fn object_key<K: kube::Resource>(obj: &K) -> String {
    let meta = obj.meta();
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

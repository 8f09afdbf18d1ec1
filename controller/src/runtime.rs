//! Runtime plumbing shared by every controller in the process: the watch scope, readiness,
//! shutdown, per-object retry backoff and Events.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ObjectReference};
use kompox_serve::Health;
use kube::Api;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use tokio::sync::watch;

/// Which namespaces the controllers watch (the roadmap's `watchNamespaces`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NamespaceScope {
    /// Every namespace.
    #[default]
    All,
    /// Exactly one namespace: every namespaced watch is a namespaced watch, and cluster-scoped
    /// Kompox objects (PersistentVolumes) are watched by the `kompox.dev/disk-namespace` label.
    One(String),
    /// Namespaces matching a label selector: watches are cluster-wide and objects in other
    /// namespaces are skipped at reconcile time (a reflector keeps the matching namespaces).
    Selector(String),
}

/// The live scope: [`NamespaceScope`] plus, for a selector, the store of matching namespaces.
#[derive(Clone)]
pub struct Scope {
    spec: NamespaceScope,
    namespaces: Option<Store<Namespace>>,
}

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl Scope {
    /// A scope; `namespaces` must be the reflector store of the selector's namespaces when
    /// `spec` is [`NamespaceScope::Selector`].
    #[must_use]
    pub fn new(spec: NamespaceScope, namespaces: Option<Store<Namespace>>) -> Self {
        Self { spec, namespaces }
    }

    /// The configured scope.
    #[must_use]
    pub fn spec(&self) -> &NamespaceScope {
        &self.spec
    }

    /// The API for a namespaced kind over the whole scope: namespaced for
    /// [`NamespaceScope::One`], cluster-wide otherwise.
    #[must_use]
    pub fn api<K>(&self, client: kube::Client) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        match &self.spec {
            NamespaceScope::One(ns) => Api::namespaced(client, ns),
            _ => Api::all(client),
        }
    }

    /// As [`Scope::api`] for dynamic types.
    #[must_use]
    pub fn api_with(
        &self,
        client: kube::Client,
        ar: &kube::api::ApiResource,
    ) -> Api<kube::api::DynamicObject> {
        match &self.spec {
            NamespaceScope::One(ns) => Api::namespaced_with(client, ns, ar),
            _ => Api::all_with(client, ar),
        }
    }

    /// Whether objects in `namespace` are the process's to reconcile.
    #[must_use]
    pub fn contains(&self, namespace: &str) -> bool {
        match &self.spec {
            NamespaceScope::All => true,
            NamespaceScope::One(ns) => ns == namespace,
            NamespaceScope::Selector(_) => self.namespaces.as_ref().is_some_and(|s| {
                s.get(&kube::runtime::reflector::ObjectRef::new(namespace))
                    .is_some()
            }),
        }
    }

    /// A watcher config restricting cluster-scoped Kompox objects (static PVs) to the scope:
    /// for one namespace, by the `kompox.dev/disk-namespace` label; otherwise by the
    /// presence of `base_label`.
    #[must_use]
    pub fn cluster_object_watch(&self, base_label: &str, namespace_label: &str) -> watcher::Config {
        match &self.spec {
            NamespaceScope::One(ns) => {
                watcher::Config::default().labels(&format!("{namespace_label}={ns}"))
            }
            _ => watcher::Config::default().labels(base_label),
        }
    }
}

/// Readiness across controllers: `/readyz` answers 200 once every registered part is ready.
#[derive(Clone, Debug)]
pub struct Readiness {
    health: Health,
    pending: Arc<AtomicUsize>,
}

impl Readiness {
    /// Readiness reporting into `health`.
    #[must_use]
    pub fn new(health: Health) -> Self {
        Self {
            health,
            pending: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Registers one part that must become ready (register every part before any reports).
    #[must_use = "the part stays not-ready until the token is marked ready"]
    pub fn register(&self, name: &'static str) -> ReadyToken {
        self.pending.fetch_add(1, Ordering::AcqRel);
        self.health.set_ready(false);
        ReadyToken {
            readiness: Some(self.clone()),
            name,
        }
    }

    /// Marks the process ready or not regardless of the parts (standby replicas are ready).
    pub fn force(&self, ready: bool) {
        self.health.set_ready(ready);
    }
}

/// One part's readiness; [`ReadyToken::ready`] reports it ready (once).
#[derive(Debug)]
pub struct ReadyToken {
    readiness: Option<Readiness>,
    name: &'static str,
}

impl ReadyToken {
    /// Reports this part ready; when it was the last one, `/readyz` turns 200.
    pub fn ready(&mut self) {
        if let Some(r) = self.readiness.take() {
            tracing::info!(part = self.name, "caches synced");
            if r.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
                r.health.set_ready(true);
            }
        }
    }
}

/// Reports `token` ready once `store` has synced. kube-runtime's store readiness wakes only
/// its most recent waiter (the controller's own runner waits on it too), so this re-polls
/// every 100 ms instead of relying on a wake-up.
pub fn report_when_synced<K>(store: Store<K>, mut token: ReadyToken)
where
    K: kube::runtime::reflector::Lookup + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    tokio::spawn(async move {
        loop {
            match tokio::time::timeout(Duration::from_millis(100), store.wait_until_ready()).await {
                Ok(Ok(())) => {
                    token.ready();
                    return;
                }
                Ok(Err(_)) => return, // the writer is gone: the controller stopped
                Err(_) => {}
            }
        }
    });
}

/// A clonable shutdown signal.
#[derive(Clone, Debug)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// Triggers a [`Shutdown`].
#[derive(Debug)]
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

impl Shutdown {
    /// A new signal and its trigger.
    #[must_use]
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger { tx }, Shutdown { rx })
    }

    /// Completes when shutdown was triggered (or the trigger was dropped).
    pub async fn wait(mut self) {
        let _ = self.rx.wait_for(|s| *s).await;
    }

    /// Whether shutdown was triggered.
    #[must_use]
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }
}

impl ShutdownTrigger {
    /// Starts the shutdown.
    pub fn trigger(&self) {
        let _ = self.tx.send(true);
    }
}

/// How long a controller gets to finish in-flight reconciles after shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Drives a controller future (`Controller::run(..).for_each(..)`) until it ends, or until
/// [`SHUTDOWN_GRACE`] after `shutdown` fires. The grace covers kube-runtime's graceful
/// shutdown, which waits for in-flight reconciles but never ends when shutdown comes before
/// its store first synced.
pub async fn drive(controller: impl std::future::Future<Output = ()>, shutdown: Shutdown) {
    tokio::select! {
        () = controller => {}
        () = async {
            shutdown.wait().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => tracing::warn!("controller did not stop within the shutdown grace period"),
    }
}

/// Logs what a `Controller::run` stream yields: reconcile errors are already counted and
/// logged by the error policy, so only watch/queue problems are logged here.
pub fn log_controller_result<K, E, Q>(
    controller: &'static str,
    r: Result<
        (
            kube::runtime::reflector::ObjectRef<K>,
            kube::runtime::controller::Action,
        ),
        kube::runtime::controller::Error<E, Q>,
    >,
) where
    K: kube::Resource,
    E: std::error::Error + 'static,
    Q: std::error::Error + 'static,
{
    match r {
        Ok((obj, _)) => tracing::trace!(controller, object = %obj, "reconciled"),
        Err(kube::runtime::controller::Error::ReconcilerFailed(..)) => {}
        // A trigger for an object deleted meanwhile: normal after deletions.
        Err(e @ kube::runtime::controller::Error::ObjectNotFound(..)) => {
            tracing::debug!(controller, error = %e, "controller stream");
        }
        Err(e) => tracing::warn!(controller, error = %e, "controller stream"),
    }
}

/// Per-object exponential retry backoff: 1 s, 2 s, 4 s … capped at 5 minutes, reset after a
/// successful reconcile.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

/// Smallest retry delay.
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Largest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

impl Backoff {
    /// The delay before retrying `key` after one more failure.
    pub fn next(&self, key: &str) -> Duration {
        let mut map = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let n = map.entry(key.to_string()).or_insert(0);
        let delay = backoff_delay(*n);
        *n = n.saturating_add(1);
        delay
    }

    /// Forgets `key`'s failures.
    pub fn reset(&self, key: &str) {
        let mut map = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        map.remove(key);
    }
}

/// The delay after `failures` earlier consecutive failures.
#[must_use]
pub fn backoff_delay(failures: u32) -> Duration {
    let secs = 1u64.checked_shl(failures.min(16)).unwrap_or(u64::MAX);
    Duration::from_secs(secs).clamp(BACKOFF_MIN, BACKOFF_MAX)
}

/// Publishes an Event, logging (not failing) when the API refuses it. Notes are cut to the
/// API's 1 kB limit. Callers publish only on transitions and never put Secret data in `note`.
pub async fn publish(
    recorder: &Recorder,
    regarding: &ObjectReference,
    type_: EventType,
    reason: &str,
    action: &str,
    note: impl Into<String>,
) {
    let mut note = note.into();
    if note.len() > 1000 {
        let mut end = 1000;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
    }
    let ev = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: action.to_string(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&ev, regarding).await {
        tracing::warn!(reason, error = %e, "publishing an Event failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff_delay(0), Duration::from_secs(1));
        assert_eq!(backoff_delay(1), Duration::from_secs(2));
        assert_eq!(backoff_delay(5), Duration::from_secs(32));
        assert_eq!(backoff_delay(9), BACKOFF_MAX);
        assert_eq!(backoff_delay(u32::MAX), BACKOFF_MAX);
        let b = Backoff::default();
        assert_eq!(b.next("a"), Duration::from_secs(1));
        assert_eq!(b.next("a"), Duration::from_secs(2));
        assert_eq!(b.next("b"), Duration::from_secs(1));
        b.reset("a");
        assert_eq!(b.next("a"), Duration::from_secs(1));
    }

    #[test]
    fn readiness_waits_for_every_part() {
        let h = Health::new();
        let r = Readiness::new(h.clone());
        let mut a = r.register("a");
        let mut b = r.register("b");
        a.ready();
        a.ready();
        assert!(!h.is_ready());
        b.ready();
        assert!(h.is_ready());
    }

    #[test]
    fn scope_contains() {
        assert!(Scope::new(NamespaceScope::All, None).contains("x"));
        let one = Scope::new(NamespaceScope::One("a".into()), None);
        assert!(one.contains("a"));
        assert!(!one.contains("b"));
        // A selector without a store matches nothing (fail closed).
        assert!(!Scope::new(NamespaceScope::Selector("x=y".into()), None).contains("a"));
    }
}

//! Runtime plumbing shared by every controller in the process: the watch scope, readiness,
//! shutdown, per-object retry backoff and Events.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc;
use k8s_openapi::api::core::v1::Namespace;
use kompox_serve::Health;
use kube::api::ListParams;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use tokio::sync::watch;
use tracing::Instrument as _;

use crate::{Error, Result};

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

/// The live scope: [`NamespaceScope`] plus, for a selector, the store of matching namespaces
/// and the controllers to tell when a namespace enters it.
///
/// # Namespaces entering and leaving a selector scope
///
/// One watch on the namespaces matching the selector feeds the store (membership only: name
/// and uid). A namespace **enters** when it newly matches (labels added, or created matching);
/// every controller that subscribed with [`reconcile_on_entry`] then reconciles its objects in
/// that namespace, mapped from its own cache, so nothing waits for the objects' next event. A
/// namespace **leaves** when it stops matching (labels removed): it is dropped from the store
/// and the controllers make no further writes there — a reconcile already running finishes,
/// later ones return at once. Objects there keep what they have (finalizers, status, PVs): a
/// KompoxDisk or KompoxApp deleted while its namespace is out of scope waits with its
/// finalizer until the namespace matches again (or a controller whose scope includes it runs).
#[derive(Clone)]
pub struct Scope {
    spec: NamespaceScope,
    namespaces: Option<Store<Namespace>>,
    entries: Subscribers,
}

/// The controllers to tell about namespaces entering the scope.
type Subscribers = Arc<Mutex<Vec<mpsc::UnboundedSender<Namespace>>>>;

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
        Self {
            spec,
            namespaces,
            entries: Subscribers::default(),
        }
    }

    /// The scope of `spec`; for a selector, starts the namespace watch (see [`Scope`]), which
    /// keeps `metrics`' `scope_namespaces` gauge, and returns once it has listed.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming `--namespace-selector` when the API server rejects the
    /// selector or the namespaces cannot be listed.
    pub async fn watch(
        client: &kube::Client,
        spec: &NamespaceScope,
        metrics: &crate::ControllerMetrics,
    ) -> Result<Self> {
        let NamespaceScope::Selector(selector) = spec else {
            return Ok(Self::new(spec.clone(), None));
        };
        let config_error = |e: &dyn std::fmt::Display| {
            Error::Config(format!("--namespace-selector {selector:?}: {e}"))
        };
        let api = Api::<Namespace>::all(client.clone());
        // A bad selector fails here with the API server's message, not in a retry loop.
        api.list_metadata(&ListParams::default().labels(selector).limit(1))
            .await
            .map_err(|e| config_error(&e))?;
        let (reader, writer) = reflector::store();
        let mut tracker = ScopeTracker::new(writer);
        let entries = Subscribers::default();
        let fanout = entries.clone();
        let metrics = metrics.clone();
        let members = reader.clone();
        let mut events = watcher(api, watcher::Config::default().labels(selector))
            .default_backoff()
            .modify(membership_only)
            .boxed();
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                match event {
                    Ok(event) => {
                        for ns in tracker.apply(&event) {
                            tracing::info!(namespace = %ns.name_any(), "namespace entered the scope");
                            announce(&fanout, &ns);
                        }
                        metrics.scope_namespaces(members.len());
                    }
                    Err(e) => tracing::warn!(error = %e, "namespace watch"),
                }
            }
        });
        reader
            .wait_until_ready()
            .await
            .map_err(|e| config_error(&e))?;
        Ok(Self {
            spec: spec.clone(),
            namespaces: Some(reader),
            entries,
        })
    }

    /// Namespaces as they enter a selector scope, for `Controller::watches_stream`; `None`
    /// for other scopes. Entries before the call are not replayed (a controller's own initial
    /// list covers them).
    fn entered(&self) -> Option<mpsc::UnboundedReceiver<Namespace>> {
        self.namespaces.as_ref()?;
        let (tx, rx) = mpsc::unbounded();
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(tx);
        Some(rx)
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

/// Tells every subscribed controller that `ns` entered the scope; forgets the ones that stopped.
fn announce(subscribers: &Subscribers, ns: &Namespace) {
    let mut subs = subscribers.lock().unwrap_or_else(PoisonError::into_inner);
    subs.retain(|tx| tx.unbounded_send(ns.clone()).is_ok());
}

/// Only what scope membership needs (name, uid): the store stays small and a namespace's other
/// changes are not worth keeping.
fn membership_only(ns: &mut Namespace) {
    let meta = std::mem::take(&mut ns.metadata);
    ns.metadata.name = meta.name;
    ns.metadata.uid = meta.uid;
    ns.spec = None;
    ns.status = None;
}

/// Applies the selector's namespace watch events to the scope store and tells which
/// namespaces entered the scope, each once the store has it (so a reconcile it triggers sees
/// the namespace in scope). After a re-list, the namespaces the store lacked before it.
struct ScopeTracker {
    writer: reflector::store::Writer<Namespace>,
    reader: Store<Namespace>,
    relisted: Vec<Namespace>,
}

impl ScopeTracker {
    fn new(writer: reflector::store::Writer<Namespace>) -> Self {
        Self {
            reader: writer.as_reader(),
            writer,
            relisted: Vec::new(),
        }
    }

    fn apply(&mut self, event: &watcher::Event<Namespace>) -> Vec<Namespace> {
        let known = |ns: &Namespace| {
            self.reader
                .get(&ObjectRef::from_obj(ns))
                .is_some_and(|k| k.uid() == ns.uid())
        };
        let entered = match event {
            watcher::Event::Apply(ns) if !known(ns) => vec![ns.clone()],
            watcher::Event::Init => {
                self.relisted.clear();
                Vec::new()
            }
            watcher::Event::InitApply(ns) if !known(ns) => {
                self.relisted.push(ns.clone());
                Vec::new()
            }
            watcher::Event::InitDone => std::mem::take(&mut self.relisted),
            _ => Vec::new(),
        };
        self.writer.apply_watcher_event(event);
        entered
    }
}

/// The objects of `store` in namespace `ns`.
#[must_use]
pub fn objects_in<K>(store: &Store<K>, ns: &str) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + reflector::Lookup<DynamicType = ()> + Clone + 'static,
{
    store
        .state()
        .iter()
        .filter(|o| o.meta().namespace.as_deref() == Some(ns))
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}

/// Makes `controller` reconcile its objects in a namespace as soon as the namespace enters a
/// selector scope (see [`Scope`]), mapped from the controller's own cache. A no-op for other
/// scopes.
pub fn reconcile_on_entry<K>(controller: Controller<K>, scope: &Scope) -> Controller<K>
where
    K: crate::status::Namespaced + Send + Sync + 'static,
{
    let Some(entered) = scope.entered() else {
        return controller;
    };
    let store = controller.store();
    controller.watches_stream(entered.map(Ok), move |ns: Namespace| {
        objects_in(&store, &ns.name_any())
    })
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

/// Runs `controller` with `reconcile` and `error_policy` until its stream ends, or until
/// [`SHUTDOWN_GRACE`] after `shutdown` fires, logging what the stream yields under `name`
/// ([`log_controller_result`]). The grace covers kube-runtime's graceful shutdown, which
/// waits for in-flight reconciles but never ends when shutdown comes before its store first
/// synced.
pub async fn drive<K, Ctx, Fut, E>(
    name: &'static str,
    controller: Controller<K>,
    reconcile: impl FnMut(Arc<K>, Arc<Ctx>) -> Fut,
    error_policy: impl Fn(Arc<K>, &E, Arc<Ctx>) -> kube::runtime::controller::Action,
    ctx: Arc<Ctx>,
    shutdown: Shutdown,
) where
    K: crate::status::Namespaced + Send + Sync + 'static,
    Fut: std::future::Future<Output = std::result::Result<kube::runtime::controller::Action, E>>
        + Send
        + 'static,
    E: std::error::Error + Send + 'static,
{
    let mut reconcile = reconcile;
    let traced = move |obj: Arc<K>, ctx: Arc<Ctx>| {
        let span = reconcile_span(name, obj.as_ref());
        // Created inside the span: a reconcile that instruments itself nests under it.
        let fut = span.in_scope(|| reconcile(obj, ctx));
        let record = span.clone();
        async move {
            let result = fut.await;
            if let Err(e) = &result {
                record.record("otel.status_code", "ERROR");
                record.record("error.message", tracing::field::display(e));
            }
            result
        }
        .instrument(span)
    };
    let stream = controller.run(traced, error_policy, ctx).for_each(|r| {
        log_controller_result(name, r);
        futures::future::ready(())
    });
    tokio::select! {
        () = stream => {}
        () = async {
            shutdown.wait().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => tracing::warn!(controller = name, "controller did not stop within the shutdown grace period"),
    }
}

/// The span of one reconcile (`reconcile <controller>`, the object's namespace and name; an
/// error marks it failed): the root of what a trace shows of it, kube's client requests
/// (`HTTP`, with their status) nested under it.
fn reconcile_span<K: Resource>(controller: &'static str, obj: &K) -> tracing::Span {
    // Debug: in traces, not in the info-level log lines' context.
    tracing::debug_span!(
        "reconcile",
        otel.name = format!("reconcile {controller}"),
        otel.status_code = tracing::field::Empty,
        error.message = tracing::field::Empty,
        controller,
        k8s.namespace.name = obj.meta().namespace.as_deref().unwrap_or_default(),
        k8s.object.name = obj.meta().name.as_deref().unwrap_or_default(),
    )
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

    fn ns(name: &str, uid: &str) -> Namespace {
        let mut n = Namespace::default();
        n.metadata.name = Some(name.into());
        n.metadata.uid = Some(uid.into());
        n.metadata.labels = Some([("tenant".to_string(), "a".to_string())].into());
        n
    }

    #[test]
    fn namespaces_enter_once_and_again_after_leaving() {
        use watcher::Event::{Apply, Delete, Init, InitApply, InitDone};
        let (reader, writer) = reflector::store();
        let scope = Scope::new(NamespaceScope::Selector("tenant".into()), Some(reader));
        let mut t = ScopeTracker::new(writer);
        let mut step = |e: watcher::Event<Namespace>| -> Vec<String> {
            t.apply(&e).iter().map(ResourceExt::name_any).collect()
        };
        // The first list: entries come at its end, when the store has them.
        assert!(step(Init).is_empty());
        assert!(step(InitApply(ns("a", "1"))).is_empty());
        assert!(!scope.contains("a"));
        assert_eq!(step(InitDone), ["a"]);
        assert!(scope.contains("a"));
        // An update of a namespace already in scope is no entry.
        let mut relabelled = ns("a", "1");
        relabelled.metadata.labels = Some([("tenant".into(), "b".into())].into());
        assert!(step(Apply(relabelled)).is_empty());
        // A namespace that starts matching enters; after leaving it enters again.
        assert_eq!(step(Apply(ns("b", "2"))), ["b"]);
        assert!(scope.contains("b"));
        assert!(step(Delete(ns("b", "2"))).is_empty());
        assert!(!scope.contains("b"));
        assert_eq!(step(Apply(ns("b", "2"))), ["b"]);
        // Deleted and recreated under the same name: a new namespace.
        assert_eq!(step(Apply(ns("a", "3"))), ["a"]);
        // A re-list reports only what the store lacked; what vanished meanwhile leaves.
        assert!(step(Init).is_empty());
        assert!(step(InitApply(ns("a", "3"))).is_empty());
        assert!(step(InitApply(ns("c", "4"))).is_empty());
        assert_eq!(step(InitDone), ["c"]);
        assert!(scope.contains("c") && scope.contains("a") && !scope.contains("b"));
    }

    #[test]
    fn membership_only_keeps_name_and_uid() {
        let mut n = ns("a", "1");
        n.status = Some(Default::default());
        membership_only(&mut n);
        assert_eq!(n.metadata.name.as_deref(), Some("a"));
        assert_eq!(n.metadata.uid.as_deref(), Some("1"));
        assert!(n.metadata.labels.is_none() && n.status.is_none());
    }

    #[test]
    fn entered_fans_out_to_selector_scopes_only() {
        let (reader, _writer) = reflector::store::<Namespace>();
        let scope = Scope::new(NamespaceScope::Selector("x".into()), Some(reader));
        let (Some(mut a), Some(b)) = (scope.entered(), scope.clone().entered()) else {
            panic!("a selector scope has entries");
        };
        drop(b);
        announce(&scope.entries, &ns("n", "1"));
        assert_eq!(
            a.try_recv().ok().map(|n| n.name_any()).as_deref(),
            Some("n")
        );
        let subscribers = scope.entries.lock().map(|s| s.len()).unwrap_or(0);
        assert_eq!(subscribers, 1, "the dropped subscriber is forgotten");
        assert!(Scope::new(NamespaceScope::All, None).entered().is_none());
    }

    #[test]
    fn objects_in_one_namespace() {
        use k8s_openapi::api::core::v1::ConfigMap;
        let (reader, mut writer) = reflector::store::<ConfigMap>();
        for (n, name) in [("a", "x"), ("a", "y"), ("b", "z")] {
            let mut cm = ConfigMap::default();
            cm.metadata.name = Some(name.into());
            cm.metadata.namespace = Some(n.into());
            writer.apply_watcher_event(&watcher::Event::Apply(cm));
        }
        let mut names: Vec<String> = objects_in(&reader, "a")
            .into_iter()
            .map(|r| r.name)
            .collect();
        names.sort();
        assert_eq!(names, ["x", "y"]);
        assert!(objects_in(&reader, "c").is_empty());
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

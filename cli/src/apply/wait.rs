//! `apply --wait`: watching the KompoxApp and its namespace's KompoxDisks and Deployments
//! until the app is Ready (and, without a controller, applying the rendered objects from the
//! plugin: [`super::reconcile`]).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kompox_core::api::{KompoxApp, KompoxDisk};
use kube::api::Api;
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, Resource as _, ResourceExt as _};

use super::reconcile::client_reconcile;
use super::{ApplyArgs, Reconcile};
use crate::CliError;
use crate::kubectx;
use crate::target::fetch_rendered;

/// The zone the provisioner gave a new disk (`status.zone`), waiting until it has one or is
/// Ready without one (a provider without zones).
pub(super) async fn disk_zone(
    api: &Api<KompoxDisk>,
    ns: &str,
    name: &str,
    timeout: Duration,
) -> Result<Option<String>, CliError> {
    let placed = |d: Option<&KompoxDisk>| {
        d.is_some_and(|d| {
            disk_ready(d)
                || d.status
                    .as_ref()
                    .and_then(|s| s.zone.as_deref())
                    .is_some_and(|z| !z.is_empty())
        })
    };
    let wait = kube::runtime::wait::await_condition(api.clone(), name, placed);
    match tokio::time::timeout(timeout, wait).await {
        Ok(Ok(d)) => Ok(d
            .and_then(|d| d.status)
            .and_then(|s| s.zone)
            .filter(|z| !z.is_empty())),
        Ok(Err(e)) => Err(CliError::Cluster(format!(
            "watching KompoxDisk {ns}/{name}: {e}"
        ))),
        Err(_) => Err(CliError::Timeout(format!(
            "KompoxDisk {ns}/{name} got no zone after {} (is kompox-controller running? `kubectl kompox install`); give --zone to place the disks yourself",
            kubectx::seconds(timeout)
        ))),
    }
}

/// One line per condition of the app and its disks (`who type` → `status reason message`),
/// printed when it changes.
fn condition_lines(
    app_name: &str,
    app: Option<&KompoxApp>,
    disks: &[Arc<KompoxDisk>],
) -> BTreeMap<String, String> {
    let mut lines = BTreeMap::new();
    let mut add = |who: String, conds: &[Condition]| {
        for c in conds {
            lines.insert(
                format!("{who} {}", c.type_),
                format!("{} {} {}", c.status, c.reason, c.message),
            );
        }
    };
    if let Some(a) = app {
        add(
            format!("KompoxApp {app_name}"),
            a.status
                .as_ref()
                .map(|s| s.conditions.as_slice())
                .unwrap_or_default(),
        );
    }
    for d in disks {
        add(
            format!("KompoxDisk {}", d.name_any()),
            d.status
                .as_ref()
                .map(|s| s.conditions.as_slice())
                .unwrap_or_default(),
        );
    }
    lines
}

fn disk_ready(d: &KompoxDisk) -> bool {
    d.status.as_ref().is_some_and(|s| {
        s.pv_name.as_deref().is_some_and(|p| !p.is_empty())
            && s.conditions
                .iter()
                .any(|c| c.type_ == kompox_core::api::condition::types::READY && c.status == "True")
    })
}

/// `spec.suspend: true` and the controller has held this generation at zero: `Suspended` True
/// with `observedGeneration` current. A suspended app is never Ready, so `apply` stops waiting here.
fn app_suspended(a: &KompoxApp) -> bool {
    a.spec.suspend
        && a.status.as_ref().is_some_and(|s| {
            s.observed_generation == a.meta().generation
                && s.conditions.iter().any(|c| {
                    c.type_ == kompox_core::api::condition::types::SUSPENDED && c.status == "True"
                })
        })
}

fn app_ready(a: &KompoxApp) -> bool {
    a.status
        .as_ref()
        .is_some_and(|s| s.ready && s.observed_generation == a.meta().generation)
}

/// A change seen by `apply --wait`'s watches.
enum Change {
    /// The KompoxApp (`None`: absent).
    App(Box<Option<KompoxApp>>),
    /// A KompoxDisk of the namespace.
    Disk(Box<watcher::Event<KompoxDisk>>),
    /// A Deployment of the namespace (awaited when the plugin applies the rendered objects).
    Deployment(Box<watcher::Event<Deployment>>),
}

/// `apply --wait`'s progress lines: each state under its key, printed when it changes.
struct Progress {
    start: Instant,
    /// Key (a condition, `rollout`, `workloads`) → the state last printed.
    last: BTreeMap<String, String>,
}

impl Progress {
    /// Prints `state` (as `key: state` when `labelled`) unless it is what was printed last
    /// under `key`.
    fn show(&mut self, out: &mut dyn Write, key: String, state: String, labelled: bool) {
        if self.last.get(&key) != Some(&state) {
            if labelled {
                kubectx::progress(out, self.start, &format!("{key}: {state}"));
            } else {
                kubectx::progress(out, self.start, &state);
            }
            self.last.insert(key, state);
        }
    }

    /// A readiness verdict: `Ok` prints `done` with the time taken and returns `true`; a
    /// waiting state is shown under `key`.
    fn ready(
        &mut self,
        out: &mut dyn Write,
        done: &str,
        key: &str,
        verdict: Result<(), String>,
    ) -> bool {
        match verdict {
            Ok(()) => {
                let _ = writeln!(out, "{done} ({:.1}s)", self.start.elapsed().as_secs_f32());
                true
            }
            Err(waiting) => {
                self.show(out, key.to_owned(), waiting, false);
                false
            }
        }
    }
}

/// What `apply --wait` has seen: the app, and the namespace's disks and Deployments, each
/// known once its watch has listed them.
struct Seen {
    app: Option<Option<KompoxApp>>,
    disks: (Store<KompoxDisk>, Writer<KompoxDisk>, bool),
    deployments: (Store<Deployment>, Writer<Deployment>, bool),
}

impl Seen {
    fn new() -> Self {
        let (dr, dw) = reflector::store();
        let (wr, ww) = reflector::store();
        Seen {
            app: None,
            disks: (dr, dw, false),
            deployments: (wr, ww, false),
        }
    }

    fn apply(&mut self, change: Change) {
        match change {
            Change::App(a) => self.app = Some(*a),
            Change::Disk(e) => {
                self.disks.2 |= matches!(*e, watcher::Event::InitDone);
                self.disks.1.apply_watcher_event(&e);
            }
            Change::Deployment(e) => {
                self.deployments.2 |= matches!(*e, watcher::Event::InitDone);
                self.deployments.1.apply_watcher_event(&e);
            }
        }
    }

    /// Whether every watch has listed its objects.
    fn synced(&self) -> bool {
        self.app.is_some() && self.disks.2 && self.deployments.2
    }
}

/// Waits until the app is Ready, watching the KompoxApp and the namespace's KompoxDisks and
/// Deployments (no polling): a line per condition change; after `--controller-grace` without
/// a controller (`--reconcile=auto`), or at once with `--reconcile=client`, the plugin applies
/// the rendered objects and waits for the Deployments instead.
pub(super) async fn wait_ready(
    client: &Client,
    ns: &str,
    app: &str,
    args: &ApplyArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + args.timeout;
    let grace = tokio::time::Instant::now() + args.controller_grace;
    let _ = writeln!(
        out,
        "waiting for KompoxApp {ns}/{app} to be Ready (timeout {})…",
        kubectx::seconds(args.timeout)
    );
    let config = watcher::Config::default;
    let mut changes = futures::stream::select_all([
        watcher::watch_object(Api::namespaced(client.clone(), ns), app)
            .map_ok(|a| Change::App(Box::new(a)))
            .default_backoff()
            .boxed(),
        watcher(Api::namespaced(client.clone(), ns), config())
            .map_ok(|e| Change::Disk(Box::new(e)))
            .default_backoff()
            .boxed(),
        watcher(Api::namespaced(client.clone(), ns), config())
            .map_ok(|e| Change::Deployment(Box::new(e)))
            .default_backoff()
            .boxed(),
    ]);
    let what = format!("KompoxApp {ns}/{app} and the KompoxDisks and Deployments of {ns}");
    let mut state = Seen::new();
    let mut shown = Progress {
        start,
        last: BTreeMap::new(),
    };
    let mut grace_over = false;
    let mut client_applied: Option<BTreeMap<String, i64>> = None;
    let mut rollout = Rollout::default();
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {
                let last: Vec<String> = shown.last.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                return Err(CliError::Timeout(format!(
                    "KompoxApp {ns}/{app} not Ready after {}; last conditions: {}",
                    kubectx::seconds(args.timeout),
                    if last.is_empty() {
                        "none (is kompox-controller running? `kubectl kompox install`)".to_owned()
                    } else {
                        last.join("; ")
                    }
                )));
            }
            () = tokio::time::sleep_until(grace), if !grace_over => grace_over = true,
            change = changes.next() => match change {
                Some(Ok(c)) => state.apply(c),
                Some(Err(e)) => {
                    if let Some(fatal) = kubectx::watch_error(&what, &e) {
                        return Err(fatal);
                    }
                    kubectx::progress(out, start, &format!("watch interrupted, retrying ({e})"));
                }
                None => return Err(CliError::Cluster(format!("watching {what}: the watch ended"))),
            },
        }
        if !state.synced() {
            continue;
        }
        let Some(Some(a)) = state.app.clone() else {
            return Err(CliError::Cluster(format!(
                "KompoxApp {ns}/{app} disappeared while waiting"
            )));
        };
        let disks = state.disks.0.state();
        for (k, v) in condition_lines(app, Some(&a), &disks) {
            shown.show(out, k, v, true);
        }
        if app_suspended(&a) {
            let _ = writeln!(
                out,
                "KompoxApp {ns}/{app} is suspended (spec.suspend: true): applied and held at zero replicas, not waiting for Ready; set spec.suspend to false to run it"
            );
            return Ok(());
        }
        if app_ready(&a) {
            let verdict = rollout
                .check(client, &a, &state.deployments.0.state(), out)
                .await;
            if shown.ready(
                out,
                &format!("KompoxApp {ns}/{app} is Ready"),
                "rollout",
                verdict,
            ) {
                return Ok(());
            }
            if args.reconcile != Reconcile::Client {
                continue;
            }
        }
        let observed = a
            .status
            .as_ref()
            .and_then(|s| s.observed_generation)
            .is_some();
        let use_client = match args.reconcile {
            Reconcile::Client => true,
            Reconcile::Controller => false,
            Reconcile::Auto => !observed && grace_over,
        };
        // A stateless app has no disks to wait for.
        if !use_client
            || (disks.is_empty() && !a.spec.volumes.is_empty())
            || !disks.iter().all(|d| disk_ready(d))
        {
            continue;
        }
        let applied = match &client_applied {
            Some(g) => g,
            None => {
                if args.reconcile == Reconcile::Auto {
                    let _ = writeln!(
                        out,
                        "  no controller has observed the app after {}: applying the rendered objects from the plugin (--reconcile=client)",
                        kubectx::seconds(args.controller_grace)
                    );
                }
                let (n, generations) = client_reconcile(client, &a).await?;
                kubectx::progress(out, start, &format!("applied {n} rendered objects"));
                client_applied.insert(generations)
            }
        };
        let verdict = workloads_ready(&state.deployments.0.state(), applied);
        let done = format!("KompoxApp {ns}/{app} is Ready: its Deployments are available");
        if shown.ready(out, &done, "workloads", verdict) {
            return Ok(());
        }
    }
}

/// `Ok` when every Deployment the plugin applied has rolled out the generation it applied
/// ([`kompox_cluster::deployment_ready`]), else what is missing. `applied`: name → generation
/// the apply returned (a watch may still show the object from before it).
fn workloads_ready(
    deployments: &[Arc<Deployment>],
    applied: &BTreeMap<String, i64>,
) -> Result<(), String> {
    if applied.is_empty() {
        return Err("no Deployment applied".into());
    }
    deployments_rolled_out(
        deployments,
        applied.iter().map(|(name, g)| (name.as_str(), Some(*g))),
    )
}

/// `Ok` when each named Deployment is seen (at `generation` or later, when given) and rolled
/// out ([`kompox_cluster::deployment_ready`]), else what each one still waits for.
fn deployments_rolled_out<'a>(
    deployments: &[Arc<Deployment>],
    wanted: impl Iterator<Item = (&'a str, Option<i64>)>,
) -> Result<(), String> {
    let mut waiting = Vec::new();
    for (name, generation) in wanted {
        match deployments.iter().find(|d| d.name_any() == name) {
            None => waiting.push(format!("Deployment {name}: not seen yet")),
            Some(d) => match generation {
                Some(g) if d.metadata.generation.unwrap_or(0) < g => {
                    waiting.push(format!("Deployment {name}: generation {g} not seen yet"));
                }
                _ => {
                    let (ready, why) = kompox_cluster::deployment_ready(d);
                    if !ready {
                        waiting.push(why);
                    }
                }
            },
        }
    }
    if waiting.is_empty() {
        Ok(())
    } else {
        Err(waiting.join(", "))
    }
}

/// `apply --wait`'s check that the controller's Ready is about what this apply sent.
///
/// A changed project file, `.env` or compose file changes only ConfigMaps and Secrets, so the
/// KompoxApp's generation stays and its status is Ready from before. The controller records
/// the keyed digest of what it applied (`status.renderedHash`); the `rendered` subresource
/// says which digest the cluster's current inputs render to. Ready is confirmed when the two
/// agree and every Deployment of the app has rolled out
/// ([`kompox_cluster::deployment_ready`]).
#[derive(Default)]
struct Rollout {
    /// `status.renderedHash` values already compared with `rendered`: whether they matched.
    compared: BTreeMap<String, bool>,
    /// `rendered` could not be read: the status's word is taken (said once).
    unconfirmable: bool,
}

impl Rollout {
    async fn check(
        &mut self,
        client: &Client,
        a: &KompoxApp,
        deployments: &[Arc<Deployment>],
        out: &mut dyn Write,
    ) -> Result<(), String> {
        let ns = a.namespace().unwrap_or_default();
        let name = a.name_any();
        let status = a.status.clone().unwrap_or_default();
        if !self.unconfirmable {
            let applied = status.rendered_hash.clone().unwrap_or_default();
            let matched = match self.compared.get(&applied) {
                Some(m) => *m,
                None => match fetch_rendered(client, &ns, &name).await {
                    Ok(list) => {
                        let want = list["metadata"]["annotations"]
                            [kompox_core::well_known::RENDERED_HASH_ANNOTATION]
                            .as_str()
                            .unwrap_or_default();
                        let m = !applied.is_empty() && want == applied;
                        self.compared.insert(applied, m);
                        m
                    }
                    Err(e) => {
                        let _ = writeln!(
                            out,
                            "  cannot compare with kompoxapps/{name}/rendered ({e}): Ready is the controller's word for generation {}, a changed file or variable may still be rolling out",
                            a.metadata.generation.unwrap_or_default()
                        );
                        self.unconfirmable = true;
                        true
                    }
                },
            };
            if !matched {
                return Err(format!(
                    "KompoxApp {name}: the controller has not applied the current inputs yet"
                ));
            }
        }
        deployments_rolled_out(
            deployments,
            status
                .inventory
                .iter()
                .filter(|e| e.kind == "Deployment")
                .map(|e| (e.name.as_str(), None)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    /// `apply` stops waiting only when the controller holds the current generation at zero.
    #[rstest]
    #[case::held_at_zero(true, 2, "True", true)]
    #[case::previous_generation_seen(true, 1, "True", false)]
    #[case::still_scaling_down(true, 2, "False", false)]
    #[case::resumed_with_a_stale_condition(false, 2, "True", false)]
    fn suspended_means_held_at_zero_for_this_generation(
        #[case] suspend: bool,
        #[case] observed: i64,
        #[case] condition: &str,
        #[case] want: bool,
    ) {
        let a: Result<KompoxApp, _> = serde_json::from_value(json!({
            "apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxApp",
            "metadata": {"name": "a", "generation": 2},
            "spec": {"compose": {"configMapRef": {"name": "c", "key": "compose.yml"}}, "suspend": suspend},
            "status": {"observedGeneration": observed, "ready": false, "conditions": [
                {"type": "Suspended", "status": condition, "reason": "Suspended",
                 "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
        }));
        let a = a.expect("a valid KompoxApp");
        assert_eq!(app_suspended(&a), want);
    }

    fn deployment(name: &str, generation: i64, replicas: i32, available: i32) -> Arc<Deployment> {
        let d: Result<Deployment, _> = serde_json::from_value(json!({
            "metadata": {"name": name, "generation": generation},
            "spec": {"replicas": replicas, "selector": {}, "template": {}},
            "status": {"observedGeneration": generation, "replicas": available,
                       "availableReplicas": available, "updatedReplicas": available},
        }));
        Arc::new(d.unwrap_or_default())
    }

    #[test]
    fn workloads_ready_names_what_is_missing() {
        let applied = |v: &[(&str, i64)]| -> BTreeMap<String, i64> {
            v.iter().map(|(n, g)| ((*n).to_owned(), *g)).collect()
        };
        type Case = (
            &'static str,
            Vec<Arc<Deployment>>,
            BTreeMap<String, i64>,
            Result<(), &'static str>,
        );
        let cases: [Case; 5] = [
            (
                "nothing applied",
                vec![],
                applied(&[]),
                Err("no Deployment applied"),
            ),
            (
                "applied, not seen",
                vec![],
                applied(&[("web", 1)]),
                Err("Deployment web: not seen yet"),
            ),
            (
                "the watch still shows the generation before the apply",
                vec![deployment("web", 1, 1, 1)],
                applied(&[("web", 2)]),
                Err("Deployment web: generation 2 not seen yet"),
            ),
            (
                "rolling",
                vec![deployment("web", 2, 2, 1)],
                applied(&[("web", 2)]),
                Err("Deployment web: 1 of 2 replicas updated"),
            ),
            (
                "rolled out",
                vec![deployment("web", 2, 1, 1)],
                applied(&[("web", 2)]),
                Ok(()),
            ),
        ];
        for (name, deps, applied, want) in cases {
            assert_eq!(
                workloads_ready(&deps, &applied),
                want.map_err(str::to_owned),
                "{name}"
            );
        }
    }
}

//! `kubectl kompox migrate` end to end on two local clusters: the default one and
//! `KOMPOX_CLUSTER=b` (its own control plane and mock CSI driver; the drivers' store of volumes
//! and snapshots shared, as two clusters of one cloud account and region share its disks and
//! snapshots), each with Kompox's servers from `install --local`.
//!
//! An app with a disk holding random bytes moves from a to b: the CLI is killed with SIGKILL
//! at random moments and `--resume`d until it converges; a watch on both clusters proves that
//! no Pod uses the app's disk on both sides at once; the target's volume holds the source's
//! bytes; `--rollback` gives the source back; a name clash in the target stops the migration
//! before anything changes; `--delete-source` after a second, verified migration removes the
//! source app.
//!
//! The errors: no Kompox in the target, a zone the target lacks (its nodes relabelled for the
//! case), a snapshot the provider fails (a fault injected into the CSI store) — each error names
//! the step or check and what is where, the target gets nothing, `--rollback` gives the source
//! back.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kompox_core::api::condition::{self, types};
use kompox_core::api::{KompoxApp, KompoxDisk, KompoxSnapshot};
use kompox_e2e::cli::{LocalInstall, Run, binary, kompox_async, temp_dir, with_local_install};
use kompox_e2e::controller::volume_files;
use kompox_e2e::{client_from, cluster, second_cluster, wait_until};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};
use serde_json::json;

const APP: &str = "shop";
const SECRET_VALUE: &str = "hunter2-never-printed";
const TIMEOUT: Duration = Duration::from_secs(120);
/// At most this many SIGKILLs during the migration.
const KILLS: usize = 10;

#[tokio::test]
async fn an_app_moves_with_its_data_survives_kills_rolls_back_and_deletes_its_source() -> Result<()>
{
    with_local_install("mig", |a| Box::pin(body(a))).await
}

/// Cluster b's side of the test: its admin client and the `install --local` state.
struct Target {
    client: Client,
    cache: PathBuf,
    kubeconfig: PathBuf,
    selector: String,
}

impl Target {
    async fn install(ws: &str) -> Result<Target> {
        let b = second_cluster();
        let cache = temp_dir("mig-b-cache")?;
        let selector = format!("kompox.dev/tenant={ws}");
        let kc = b.admin_kubeconfig.to_string_lossy().into_owned();
        let run = kompox_async(
            &cache,
            &[
                "install",
                "--local",
                "--kubeconfig",
                &kc,
                "--watch-namespaces",
                &selector,
            ],
        )
        .await?
        .ok()?;
        ensure!(
            run.stdout
                .contains("APIService v1alpha1.subresources.k8s.kompox.dev is Available"),
            "install --local on cluster b: {run:?}"
        );
        Ok(Target {
            client: client_from(&b.admin_kubeconfig).await?,
            cache,
            kubeconfig: b.admin_kubeconfig.clone(),
            selector,
        })
    }

    /// Deletes the workspace's namespaces in b, then stops b's servers.
    async fn teardown(self) -> Result<()> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let lp = ListParams::default().labels(&self.selector);
        for ns in api.list(&lp).await?.items {
            api.delete(&ns.name_any(), &DeleteParams::default()).await?;
        }
        wait_until("cluster b's namespaces gone", TIMEOUT, || async {
            Ok(api.list(&lp).await?.items.is_empty())
        })
        .await?;
        let kc = self.kubeconfig.to_string_lossy().into_owned();
        kompox_async(&self.cache, &["uninstall", "--local", "--kubeconfig", &kc])
            .await?
            .ok()?;
        let _ = std::fs::remove_dir_all(&self.cache);
        Ok(())
    }
}

async fn body(a: &LocalInstall) -> Result<()> {
    let b = Target::install(&a.ws).await?;
    let r = moves(a, &b).await;
    let t = b.teardown().await;
    r.and(t)
}

/// `kubectl-kompox migrate APP -n ns --to-context kompox-local-b extra…` with both clusters'
/// kubeconfigs merged, as a child process.
fn migrate_cmd(a: &LocalInstall, ns: &str, extra: &[&str]) -> Result<tokio::process::Command> {
    let kubeconfig = std::env::join_paths([
        cluster().admin_kubeconfig.clone(),
        second_cluster().admin_kubeconfig.clone(),
    ])?;
    let mut cmd = tokio::process::Command::new(binary()?);
    cmd.args([
        "migrate",
        APP,
        "-n",
        ns,
        "--to-context",
        &second_cluster().context,
    ])
    .args(extra)
    .env("KUBECONFIG", kubeconfig)
    .env("KOMPOX_CACHE", &a.cache)
    .env("KOMPOX_CSI_DATA_DIR", &cluster().csi_data_dir)
    .kill_on_drop(true);
    Ok(cmd)
}

async fn migrate(a: &LocalInstall, ns: &str, extra: &[&str]) -> Result<Run> {
    let out = migrate_cmd(a, ns, extra)?.output().await?;
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    ensure!(
        !run.stdout.contains(SECRET_VALUE) && !run.stderr.contains(SECRET_VALUE),
        "migrate printed a Secret value"
    );
    Ok(run)
}

/// The migration record on the source app, if any.
async fn record(apps: &Api<KompoxApp>) -> Result<Option<serde_json::Value>> {
    let app = apps.get(APP).await?;
    Ok(app
        .annotations()
        .get("kompox.dev/migration")
        .map(|v| serde_json::from_str(v))
        .transpose()?)
}

fn condition_true(app: &KompoxApp, type_: &str) -> bool {
    app.status.as_ref().is_some_and(|s| {
        s.observed_generation == app.metadata.generation && condition::is_true(&s.conditions, type_)
    })
}

/// Where the app's disk is, in a namespace of one cluster: the volume handle.
async fn disk_handle(client: &Client, ns: &str) -> Result<String> {
    let disks: Api<KompoxDisk> = Api::namespaced(client.clone(), ns);
    let d = disks.get("data").await?;
    d.status
        .and_then(|s| s.handle)
        .context("disk data without a handle")
}

/// A watch of the Pods using the app's PVC on both clusters: the number of moments at which
/// both sides had one.
#[derive(Default)]
struct Overlap {
    live: [BTreeMap<String, bool>; 2],
    both: Vec<String>,
    error: Option<String>,
}

fn watch_pods(client: Client, ns: &str, side: usize, state: Arc<Mutex<Overlap>>) {
    let api: Api<Pod> = Api::namespaced(client, ns);
    tokio::spawn(async move {
        let mut s = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(ev) = s.next().await {
            let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
            match ev {
                Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => {
                    let uses = p
                        .spec
                        .iter()
                        .flat_map(|sp| sp.volumes.iter().flatten())
                        .any(|v| v.persistent_volume_claim.is_some());
                    let done = matches!(
                        p.status.as_ref().and_then(|s| s.phase.as_deref()),
                        Some("Succeeded" | "Failed")
                    );
                    st.live[side].insert(p.name_any(), uses && !done);
                }
                Ok(watcher::Event::Delete(p)) => {
                    st.live[side].remove(&p.name_any());
                }
                Ok(_) => {}
                Err(e) => st.error = Some(e.to_string()),
            }
            let busy = |m: &BTreeMap<String, bool>| m.values().any(|v| *v);
            if busy(&st.live[0]) && busy(&st.live[1]) {
                let moment = format!("{:?}", st.live);
                st.both.push(moment);
            }
        }
    });
}

/// The sample app applied on cluster a, with random bytes and a nested file on its disk: its
/// namespace and its disk's volume handle.
async fn app_with_data(a: &LocalInstall) -> Result<(String, String)> {
    let project = a.dir.join(APP);
    std::fs::create_dir_all(&project)?;
    std::fs::write(
        project.join("compose.yml"),
        "services:\n  web:\n    image: nginx:1.27\n    ports: [\"8080:80\"]\n    environment:\n      TOKEN: ${TOKEN}\n    volumes:\n      - data:/usr/share/nginx/html\nvolumes:\n  data: {}\n",
    )?;
    std::fs::write(project.join(".env"), format!("TOKEN={SECRET_VALUE}\n"))?;
    let compose = project.join("compose.yml").to_string_lossy().into_owned();
    a.kompox(&["apply", "-f", &compose, "--workspace", &a.ws])
        .await?
        .ok()?;
    let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        project.join(".kompox/state.json"),
    )?)?;
    let ns = state["apps"][format!("{}/{APP}", a.ws)]["namespace"]
        .as_str()
        .context("no namespace recorded")?
        .to_owned();
    let src_handle = disk_handle(&a.client, &ns).await?;
    let dir = cluster().csi_data_dir.join("volumes").join(&src_handle);
    let blob: Vec<u8> = (0..(1 << 20)).map(|_| rand::random::<u8>()).collect();
    std::fs::write(dir.join("blob.bin"), &blob)?;
    std::fs::create_dir_all(dir.join("nested/deeper"))?;
    std::fs::write(
        dir.join("nested/deeper/notes.txt"),
        b"written before the move",
    )?;
    Ok((ns, src_handle))
}

async fn moves(a: &LocalInstall, b: &Target) -> Result<()> {
    // --- The app on cluster a, with random bytes on its disk. ---
    let (ns, src_handle) = app_with_data(a).await?;
    let src_apps: Api<KompoxApp> = Api::namespaced(a.client.clone(), &ns);
    let dst_apps: Api<KompoxApp> = Api::namespaced(b.client.clone(), &ns);
    let before = volume_files(&src_handle)?;
    a.step("app with data on cluster a");

    // --- Preflight only: nothing changes. ---
    let dry = migrate(a, &ns, &["--dry-run"]).await?;
    ensure!(
        dry.code == 0 && dry.stdout.contains("dry run: nothing changed"),
        "{dry:?}"
    );
    ensure!(
        record(&src_apps).await?.is_none(),
        "--dry-run recorded a migration"
    );
    ensure!(
        !condition_true(&src_apps.get(APP).await?, types::SUSPENDED),
        "--dry-run suspended the source"
    );

    // --- A name clash in the target stops the migration before anything changes. ---
    Api::<Namespace>::all(b.client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": ns, "labels": {"kompox.dev/tenant": a.ws}}}),
            )?,
        )
        .await?;
    let clash: KompoxApp = serde_json::from_value(json!({
        "apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxApp",
        "metadata": {"name": APP},
        "spec": {"compose": {"configMapRef": {"name": "other", "key": "compose.yml"}}, "suspend": true},
    }))?;
    dst_apps.create(&PostParams::default(), &clash).await?;
    let refused = migrate(a, &ns, &[]).await?;
    ensure!(
        refused.code == 1
            && refused.stderr.contains(&format!(
                "KompoxApp {ns}/{APP} already exists in the target"
            )),
        "a name clash must stop the migration: {refused:?}"
    );
    ensure!(
        record(&src_apps).await?.is_none(),
        "the refused migration recorded something"
    );
    kompox_e2e::delete_and_wait(&dst_apps, APP).await?;

    // --- The migration, killed at random moments, resumed until done. ---
    let overlap = Arc::new(Mutex::new(Overlap::default()));
    watch_pods(a.client.clone(), &ns, 0, overlap.clone());
    watch_pods(b.client.clone(), &ns, 1, overlap.clone());
    let mut kills = 0;
    let mut delays = Vec::new();
    while kills < KILLS {
        let rec = record(&src_apps).await?;
        if rec.as_ref().is_some_and(|r| r["step"] == "Started") {
            break;
        }
        let extra: &[&str] = if rec.is_some() { &["--resume"] } else { &[] };
        let mut child = migrate_cmd(a, &ns, extra)?
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        // A whole run takes about 3 s here: kills land anywhere from preflight to the wait
        // for the target app.
        let delay = Duration::from_millis(150 + u64::from(rand::random::<u16>() % 2500));
        delays.push(delay);
        match tokio::time::timeout(delay, child.wait()).await {
            Ok(status) => {
                // It finished before the kill: done (or failed: the final run tells why).
                let _ = status?;
                break;
            }
            Err(_) => {
                child.kill().await?;
                kills += 1;
            }
        }
        let step = record(&src_apps).await?.map(|r| r["step"].clone());
        a.step(&format!(
            "SIGKILL {kills} after {delay:?}: recorded step {step:?}"
        ));
    }
    let resumed = if record(&src_apps).await?.is_some() {
        migrate(a, &ns, &["--resume"]).await?
    } else {
        migrate(a, &ns, &[]).await?
    };
    ensure!(
        resumed.code == 0 || resumed.stderr.contains("a migration to"),
        "the last --resume must converge (kills {kills}, delays {delays:?}): {resumed:?}"
    );
    let rec = record(&src_apps)
        .await?
        .context("no record after the migration")?;
    ensure!(rec["step"] == "Started", "not done after the resume: {rec}");
    a.step(&format!("migrated after {kills} SIGKILLs"));

    // --- What is where now. ---
    let moved = dst_apps.get(APP).await?;
    ensure!(
        condition_true(&moved, types::READY),
        "target app not Ready: {:?}",
        moved.status
    );
    ensure!(!moved.spec.suspend);
    let source = src_apps.get(APP).await?;
    ensure!(
        condition_true(&source, types::SUSPENDED),
        "the source stays suspended: {:?}",
        source.status
    );
    let dst_handle = disk_handle(&b.client, &ns).await?;
    ensure!(dst_handle != src_handle, "snapshot mode copies the volume");
    ensure!(
        volume_files(&dst_handle)? == before,
        "the target volume {dst_handle} does not hold the source's bytes"
    );
    {
        let o = overlap.lock().unwrap_or_else(PoisonError::into_inner);
        ensure!(o.error.is_none(), "Pod watch: {:?}", o.error);
        ensure!(
            o.both.is_empty(),
            "Pods used the app's disks on both clusters at once: {:?}",
            o.both
        );
        ensure!(
            o.live[1].values().any(|v| *v),
            "the watch never saw the target's Pod"
        );
    }
    let dotenv = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(b.client.clone(), &ns)
        .get(&format!("{APP}-dotenv"))
        .await?;
    ensure!(
        dotenv.data.is_some_and(|d| !d.is_empty()),
        "the .env Secret was not copied"
    );

    // --- Rollback: the target loses everything, the source runs again with its data. ---
    let rolled = migrate(a, &ns, &["--rollback"]).await?.ok()?;
    ensure!(rolled.stdout.contains("rolled back"), "{rolled:?}");
    ensure!(
        dst_apps.get_opt(APP).await?.is_none(),
        "the target app survived the rollback"
    );
    // The namespace was there before (the clash above): it stays, emptied of the migration.
    let left_disks = Api::<KompoxDisk>::namespaced(b.client.clone(), &ns)
        .list(&ListParams::default())
        .await?
        .items;
    ensure!(
        left_disks.is_empty(),
        "the target kept disks: {left_disks:?}"
    );
    ensure!(
        Api::<k8s_openapi::api::core::v1::Secret>::namespaced(b.client.clone(), &ns)
            .get_opt(&format!("{APP}-dotenv"))
            .await?
            .is_none(),
        "the copied Secret survived the rollback"
    );
    let source = src_apps.get(APP).await?;
    ensure!(condition_true(&source, types::READY) && !source.spec.suspend);
    ensure!(
        record(&src_apps).await?.is_none(),
        "the record survived the rollback"
    );
    let snaps: Api<KompoxSnapshot> = Api::namespaced(a.client.clone(), &ns);
    ensure!(
        snaps.list(&ListParams::default()).await?.items.is_empty(),
        "snapshots left"
    );
    ensure!(
        volume_files(&src_handle)? == before,
        "the source's data changed"
    );

    // --- Handoff: the volume itself changes hands (no copy), and comes back on rollback. ---
    let run = migrate(a, &ns, &["--mode", "handoff"]).await?.ok()?;
    ensure!(run.stdout.contains("adopted"), "{run:?}");
    ensure!(
        disk_handle(&b.client, &ns).await? == src_handle,
        "handoff adopts the source's own volume"
    );
    ensure!(
        Api::<KompoxDisk>::namespaced(a.client.clone(), &ns)
            .get_opt("data")
            .await?
            .is_none(),
        "the source still has a KompoxDisk for the handed-off volume"
    );
    ensure!(condition_true(&dst_apps.get(APP).await?, types::READY));
    ensure!(
        volume_files(&src_handle)? == before,
        "handoff changed the data"
    );
    let rolled = migrate(a, &ns, &["--rollback"]).await?.ok()?;
    ensure!(rolled.stdout.contains("adopted back"), "{rolled:?}");
    ensure!(dst_apps.get_opt(APP).await?.is_none());
    ensure!(
        Api::<KompoxDisk>::namespaced(b.client.clone(), &ns)
            .list(&ListParams::default())
            .await?
            .items
            .is_empty(),
        "the target kept the handed-off disk"
    );
    ensure!(disk_handle(&a.client, &ns).await? == src_handle);
    ensure!(condition_true(&src_apps.get(APP).await?, types::READY));
    ensure!(
        volume_files(&src_handle)? == before,
        "the volume lost data on the way back"
    );
    {
        let o = overlap.lock().unwrap_or_else(PoisonError::into_inner);
        ensure!(
            o.both.is_empty(),
            "Pods used the app's disks on both clusters at once: {:?}",
            o.both
        );
    }

    // --- Again, in one go, deleting the source after the verified move. ---
    let run = migrate(a, &ns, &["--delete-source"]).await?.ok()?;
    ensure!(
        run.stdout.contains("identical on both sides") && run.stdout.contains("source deleted"),
        "{run:?}"
    );
    ensure!(
        src_apps.get_opt(APP).await?.is_none(),
        "the source app survived --delete-source"
    );
    ensure!(condition_true(&dst_apps.get(APP).await?, types::READY));
    let dst_handle = disk_handle(&b.client, &ns).await?;
    ensure!(
        volume_files(&dst_handle)? == before,
        "the second move lost data"
    );
    Ok(())
}

/// The benchmark of docs/performance.md ("migrate"): for 10 MiB and 1 GiB on the app's disk,
/// the downtime (the source suspended → the target Ready: every step after preflight) and
/// the copy throughput (the bytes over the snapshot, import and restore steps) against `cp -r`
/// of the same volume on the same filesystem. Run with
/// `cargo test -p kompox-e2e --test migrate -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a benchmark: prints figures, takes minutes and 4 GiB of disk"]
async fn bench_migrate_downtime_and_copy_throughput() -> Result<()> {
    with_local_install("migb", |a| {
        Box::pin(async move {
            let b = Target::install(&a.ws).await?;
            let r = bench(a).await;
            let t = b.teardown().await;
            r.and(t)
        })
    })
    .await
}

/// The durations the CLI printed for each step (`  step X done in 1.23s`).
fn step_seconds(stdout: &str) -> BTreeMap<String, f64> {
    stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("step "))
        .filter_map(|l| l.split_once(" done in "))
        .filter_map(|(step, secs)| {
            secs.trim_end_matches('s')
                .parse::<f64>()
                .ok()
                .map(|s| (step.to_owned(), s))
        })
        .collect()
}

async fn bench(a: &LocalInstall) -> Result<()> {
    const MIB: usize = 1 << 20;
    println!(
        "| data | downtime (s) | snapshot+import+restore (s) | of which snapshot / import / restore (s) | verify (s) | copy MiB/s | cp MiB/s | copy/cp |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (label, size) in [("10 MiB", 10 * MIB), ("1 GiB", 1024 * MIB)] {
        let project = a.dir.join(APP);
        std::fs::create_dir_all(&project)?;
        std::fs::write(
            project.join("compose.yml"),
            "services:\n  web:\n    image: nginx:1.27\n    volumes:\n      - data:/usr/share/nginx/html\nvolumes:\n  data: {}\n",
        )?;
        let compose = project.join("compose.yml").to_string_lossy().into_owned();
        a.kompox(&["apply", "-f", &compose, "--workspace", &a.ws])
            .await?
            .ok()?;
        let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
            project.join(".kompox/state.json"),
        )?)?;
        let ns = state["apps"][format!("{}/{APP}", a.ws)]["namespace"]
            .as_str()
            .context("no namespace recorded")?
            .to_owned();
        let handle = disk_handle(&a.client, &ns).await?;
        let vol = cluster().csi_data_dir.join("volumes").join(&handle);
        let block: Vec<u8> = (0..MIB).map(|_| rand::random::<u8>()).collect();
        {
            use std::io::Write as _;
            let mut f = std::fs::File::create(vol.join("data.bin"))?;
            for _ in 0..size / MIB {
                f.write_all(&block)?;
            }
            f.sync_all()?;
        }
        // cp of the same bytes on the same filesystem.
        let cp_dst = cluster().csi_data_dir.join(format!("bench-cp-{}", a.ws));
        let t = std::time::Instant::now();
        let cp = std::process::Command::new("cp")
            .arg("-r")
            .arg(&vol)
            .arg(&cp_dst)
            .status()?;
        let cp_secs = t.elapsed().as_secs_f64();
        ensure!(cp.success(), "cp failed");
        std::fs::remove_dir_all(&cp_dst)?;

        let run = migrate(a, &ns, &[]).await?.ok()?;
        let steps = step_seconds(&run.stdout);
        let get = |s: &str| steps.get(s).copied().unwrap_or_default();
        let downtime: f64 = steps.values().sum();
        let copy = get("Snapshotted") + get("Imported") + get("Restored");
        let mib = (size / MIB) as f64;
        let (copy_rate, cp_rate) = (mib / copy, mib / cp_secs);
        println!(
            "| {label} | {downtime:.2} | {copy:.2} | {:.2} / {:.2} / {:.2} | {:.2} | {copy_rate:.0} | {cp_rate:.0} | {:.0} % |",
            get("Snapshotted"),
            get("Imported"),
            get("Restored"),
            get("Verified"),
            100.0 * copy_rate / cp_rate
        );
        // Clean up: the target's copy and snapshots go with the rollback, the source's volume
        // with its disk (Delete).
        migrate(a, &ns, &["--rollback"]).await?.ok()?;
        let apps: Api<KompoxApp> = Api::namespaced(a.client.clone(), &ns);
        kompox_e2e::delete_and_wait(&apps, APP).await?;
        let disks: Api<KompoxDisk> = Api::namespaced(a.client.clone(), &ns);
        disks
            .patch(
                "data",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(json!({"spec": {"deletionPolicy": "Delete"}})),
            )
            .await?;
        kompox_e2e::delete_and_wait(&disks, "data").await?;
        std::fs::remove_dir_all(project.join(".kompox"))?;
    }
    Ok(())
}

/// The refusals and failures of a migration: no Kompox in the target, a zone the target lacks,
/// a snapshot the provider fails. Each error names the step (or the preflight check) and what
/// is where; the target gets nothing (not even the namespace); the source is given back.
#[tokio::test]
async fn errors_name_the_step_and_leave_nothing_half_applied_in_the_target() -> Result<()> {
    with_local_install("mige", |a| Box::pin(errors(a))).await
}

/// The target holds nothing of the migration: not even the app's namespace.
async fn target_untouched(b: &Client, ns: &str, case: &str) -> Result<()> {
    let live = Api::<Namespace>::all(b.clone()).get_opt(ns).await?;
    ensure!(
        live.is_none(),
        "{case}: the target got namespace {ns}: {live:?}"
    );
    Ok(())
}

/// Runs `body`, then puts the labels `key` of the target's nodes back as they were (also after
/// a failure).
async fn with_zone_relabelled<F>(b: &Client, zone: &str, body: F) -> Result<Run>
where
    F: Future<Output = Result<Run>>,
{
    const KEY: &str = "topology.kubernetes.io/zone";
    let nodes: Api<Node> = Api::all(b.clone());
    let inz = nodes
        .list(&ListParams::default().labels(&format!("{KEY}={zone}")))
        .await?;
    ensure!(
        !inz.items.is_empty(),
        "cluster b has no node in zone {zone}"
    );
    let label = |v: &str| json!({"metadata": {"labels": {KEY: v}}});
    let moved = format!("{zone}-elsewhere");
    for n in &inz.items {
        nodes
            .patch(
                &n.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&label(&moved)),
            )
            .await?;
    }
    let r = body.await;
    for n in &inz.items {
        nodes
            .patch(
                &n.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&label(zone)),
            )
            .await?;
    }
    r
}

/// A fault file in the shared CSI store (`csi/data/faults/<method>`), removed when dropped.
struct Fault(PathBuf);

impl Fault {
    fn inject(method: &str, text: &str) -> Result<Fault> {
        let dir = cluster().csi_data_dir.join("faults");
        std::fs::create_dir_all(&dir)?;
        let p = dir.join(method);
        std::fs::write(&p, text)?;
        Ok(Fault(p))
    }
}

impl Drop for Fault {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn errors(a: &LocalInstall) -> Result<()> {
    let (ns, _) = app_with_data(a).await?;
    let src_apps: Api<KompoxApp> = Api::namespaced(a.client.clone(), &ns);
    let b_client = client_from(&second_cluster().admin_kubeconfig).await?;
    let refused_cleanly = |run: &Run, case: &str| -> Result<()> {
        ensure!(run.code == 1, "{case}: want exit 1, got {run:?}");
        ensure!(!run.stderr.contains("panicked"), "{case}: a panic: {run:?}");
        Ok(())
    };

    // --- No Kompox in the target (its servers are not installed): preflight refuses. ---
    let run = migrate(a, &ns, &[]).await?;
    refused_cleanly(&run, "no Kompox in the target")?;
    ensure!(
        run.stderr.contains("preflight: target (")
            && (run.stderr.contains("Kompox is not installed")
                || run.stderr.contains("Kompox's API server")),
        "no Kompox in the target: the error must name the target and Kompox: {run:?}"
    );
    ensure!(
        record(&src_apps).await?.is_none(),
        "no Kompox: something was recorded"
    );
    target_untouched(&b_client, &ns, "no Kompox").await?;
    a.step("no Kompox in the target: refused by preflight");

    let b = Target::install(&a.ws).await?;
    let r = errors_with_target(a, &b, &ns, &src_apps).await;
    let t = b.teardown().await;
    r.and(t)
}

async fn errors_with_target(
    a: &LocalInstall,
    b: &Target,
    ns: &str,
    src_apps: &Api<KompoxApp>,
) -> Result<()> {
    // --- A zone the target lacks: preflight names the disk and the zone. ---
    let zone = Api::<KompoxDisk>::namespaced(a.client.clone(), ns)
        .get("data")
        .await?
        .status
        .and_then(|s| s.zone)
        .context("the source disk has no zone")?;
    let run = with_zone_relabelled(&b.client, &zone, migrate(a, ns, &[])).await?;
    ensure!(
        run.code == 1,
        "a zone the target lacks: want exit 1: {run:?}"
    );
    ensure!(
        run.stderr.contains(&format!(
            "preflight: disk data: zone {zone} is not a zone of the target's nodes"
        )),
        "a zone the target lacks: the error must name the disk and the zone: {run:?}"
    );
    ensure!(
        record(src_apps).await?.is_none(),
        "a zone the target lacks: something was recorded"
    );
    target_untouched(&b.client, ns, "a zone the target lacks").await?;
    a.step(&format!(
        "zone {zone} missing in the target: refused by preflight"
    ));

    // --- The provider fails the snapshot: the step is named, the source is suspended with
    // its not-ready snapshot, the target untouched; --rollback gives the source back. ---
    let run = {
        let _fault = Fault::inject(
            "CreateSnapshot",
            "ResourceExhausted: snapshot quota exhausted",
        )?;
        migrate(a, ns, &["--timeout", "20s"]).await?
    };
    ensure!(run.code == 1, "a failed snapshot: want exit 1: {run:?}");
    a.step(&format!("a failed snapshot; the CLI said:\n{}", run.stderr));
    let app = format!("{ns}/{APP}");
    for want in [
        format!("migrate {app}: step Snapshotted (snapshot every disk of the source app) failed"),
        "snapshot quota exhausted".to_owned(),
        format!("left: the source app {app} is suspended (last completed step: Suspended)"),
        "in the source, not ready".to_owned(),
        format!("the target ({}) is untouched", second_cluster().context),
        "--rollback` undoes".to_owned(),
    ] {
        ensure!(
            run.stderr.contains(&want),
            "a failed snapshot: the error must say {want:?}: {run:?}"
        );
    }
    let rec = record(src_apps)
        .await?
        .context("a failed snapshot: no record")?;
    ensure!(
        rec["step"] == "Suspended",
        "record after the failed snapshot: {rec}"
    );
    target_untouched(&b.client, ns, "a failed snapshot").await?;
    a.step("snapshot failed by the provider: step named, target untouched");

    let run = migrate(a, ns, &["--rollback"]).await?;
    ensure!(run.code == 0, "rollback after a failed snapshot: {run:?}");
    ensure!(
        record(src_apps).await?.is_none(),
        "rollback left the record"
    );
    let snaps: Api<KompoxSnapshot> = Api::namespaced(a.client.clone(), ns);
    wait_until(
        "the failed snapshot gone from the source",
        TIMEOUT,
        || async { Ok(snaps.list(&ListParams::default()).await?.items.is_empty()) },
    )
    .await?;
    wait_until("the source app Ready again", TIMEOUT, || async {
        let app = src_apps.get(APP).await?;
        Ok(!app.spec.suspend && condition_true(&app, types::READY))
    })
    .await?;
    target_untouched(&b.client, ns, "rollback after a failed snapshot").await?;
    a.step("rolled back after the failed snapshot: the source runs again");
    Ok(())
}

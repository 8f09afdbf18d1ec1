//! More storage controller end to end tests (see `tests/storage.rs` for the lifecycle): the
//! `--namespace-selector` scope with namespaces entering and leaving it; disks growing; an
//! Orphan disk's volume surviving the deletion of its namespace.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kompox_controller::NamespaceScope;
use kompox_core::api::condition::{self, types};
use kompox_core::api::{KompoxApp, KompoxDisk};
use kompox_e2e::apps::{apply, put_compose, small_app, wait_ready};
use kompox_e2e::controller::{
    driver_volume_capacity, driver_volumes, volume_files, write_volume_file,
};
use kompox_e2e::storage::{
    InProcessController, TIMEOUT, create_disk, delete_disks, wait_disk, wait_disk_ready,
    wait_pvc_bound, with_teardown,
};
use kompox_e2e::{
    TestNamespace, admin_client, cluster, delete_and_wait, ensure_crds, wait_for_condition,
    wait_until,
};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

/// Sets (`Some`) or removes (`None`) label `key` on namespace `ns`.
async fn label_namespace(client: &Client, ns: &str, key: &str, value: Option<&str>) -> Result<()> {
    let patch = json!({"metadata": {"labels": {key: value}}});
    Api::<Namespace>::all(client.clone())
        .patch(ns, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// Sets disk `name`'s `spec.deletionPolicy` (a spec change: the generation moves).
async fn set_policy(api: &Api<KompoxDisk>, name: &str, policy: &str) -> Result<()> {
    let patch = json!({"spec": {"deletionPolicy": policy}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// Whether the controller has never written to `d`: no finalizer, no status.
fn untouched(d: &KompoxDisk) -> bool {
    d.finalizers().is_empty() && d.status.is_none()
}

/// A controller scoped by a selector unique to this test: a disk in a namespace outside it stays
/// untouched while the controller reconciles in scope; labelling the namespace brings the disk
/// to Ready at once (nothing touches the disk); unlabelling it stops every write there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_entering_the_selector_scope_is_reconciled_at_once() -> Result<()> {
    cluster();
    ensure_crds().await?;
    let client = admin_client().await?;
    let key = "kompox.dev/e2e-scope";
    let value = format!("{:08x}", rand::random::<u32>());
    let inside = TestNamespace::create(&client, "scope-in", &[(key, &value)]).await?;
    let outside = TestNamespace::create(&client, "scope-out", &[]).await?;
    let controller =
        InProcessController::start(NamespaceScope::Selector(format!("{key}={value}"))).await?;
    let result = scope_body(&client, key, &value, &inside, &outside, &controller).await;

    // Teardown, whatever happened: bring both namespaces into scope so the finalizers run
    // (Delete policy: the volumes go), then stop the controller and drop the namespaces.
    let teardown = async {
        label_namespace(&client, &outside.name, key, Some(&value)).await?;
        for ns in [&inside, &outside] {
            let api: Api<KompoxDisk> = ns.api();
            for d in api.list(&Default::default()).await?.items {
                set_policy(&api, &d.name_any(), "Delete").await?;
            }
            delete_disks(&api).await?;
        }
        controller.stop().await?;
        inside.cleanup().await?;
        outside.cleanup().await
    }
    .await;
    with_teardown(result, teardown)
}

async fn scope_body(
    client: &Client,
    key: &str,
    value: &str,
    inside: &TestNamespace,
    outside: &TestNamespace,
    controller: &InProcessController,
) -> Result<()> {
    let spec = json!({"size": "1Gi", "deletionPolicy": "Delete"});
    let late_api: Api<KompoxDisk> = outside.api();
    let control_api: Api<KompoxDisk> = inside.api();
    ensure!(
        controller
            .metric("kompox_controller_scope_namespaces")
            .await?
            == 1.0,
        "one namespace in scope at start"
    );

    // Created first, so the controller's watch delivers it before the control disk.
    create_disk(&late_api, "late", spec.clone()).await?;
    create_disk(&control_api, "control", spec.clone()).await?;
    wait_disk_ready(&control_api, "control").await?;
    let late = late_api.get("late").await?;
    ensure!(
        untouched(&late),
        "a disk outside the scope was written to: {late:?}"
    );

    // The namespace starts matching: the disk is reconciled without any event of its own.
    let t0 = Instant::now();
    label_namespace(client, &outside.name, key, Some(value)).await?;
    let late = wait_disk_ready(&late_api, "late").await?;
    println!("namespace labelled -> disk Ready: {:?}", t0.elapsed());
    ensure!(
        late.finalizers().iter().any(|f| f == "k8s.kompox.dev/disk"),
        "no finalizer: {late:?}"
    );
    ensure!(
        late.metadata.generation == Some(1),
        "the disk's spec changed"
    );

    // The namespace stops matching: once the controller has seen it leave, a spec change there
    // is not observed, while one in scope is.
    label_namespace(client, &outside.name, key, None).await?;
    wait_until("one namespace in scope", TIMEOUT, || async {
        Ok(controller
            .metric("kompox_controller_scope_namespaces")
            .await?
            == 1.0)
    })
    .await?;
    set_policy(&late_api, "late", "Orphan").await?;
    set_policy(&control_api, "control", "Orphan").await?;
    wait_disk(&control_api, "control", |s| {
        s.observed_generation == Some(2)
    })
    .await?;
    let late = late_api.get("late").await?;
    let observed = late.status.as_ref().and_then(|s| s.observed_generation);
    ensure!(
        late.metadata.generation == Some(2) && observed == Some(1),
        "a disk whose namespace left the scope was reconciled (generation {:?}, observed {observed:?})",
        late.metadata.generation
    );

    // Back in scope: the pending change is picked up without touching the disk again, and
    // deleting it with Delete policy goes through the finalizer.
    label_namespace(client, &outside.name, key, Some(value)).await?;
    wait_for_condition(
        late_api.clone(),
        "late",
        |d: Option<&KompoxDisk>| {
            d.and_then(|d| d.status.as_ref())
                .is_some_and(|s| s.observed_generation == Some(2))
        },
        Duration::from_secs(30),
    )
    .await?;
    set_policy(&late_api, "late", "Delete").await?;
    set_policy(&control_api, "control", "Delete").await?;
    wait_disk(&late_api, "late", |s| s.observed_generation == Some(3)).await?;
    wait_disk(&control_api, "control", |s| {
        s.observed_generation == Some(3)
    })
    .await?;
    Ok(())
}

/// Bytes in a GiB.
const GI: u64 = 1 << 30;

/// Sets disk `name`'s `spec.size`.
async fn resize(api: &Api<KompoxDisk>, name: &str, size: &str) -> Result<KompoxDisk> {
    let patch = json!({"spec": {"size": size}});
    Ok(api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?)
}

/// Waits until disk `name` is Ready at `size` for its current spec; returns it.
async fn wait_grown(
    api: &Api<KompoxDisk>,
    name: &str,
    size: &str,
    generation: i64,
) -> Result<KompoxDisk> {
    let size = size.to_owned();
    wait_disk(api, name, move |s| {
        condition::is_true(&s.conditions, types::READY)
            && s.observed_generation == Some(generation)
            && s.size.as_ref().is_some_and(|q| q.0 == size)
    })
    .await
}

/// Checks that the disk's PV and the driver's volume both have `bytes`.
/// A claim whose request and capacity are both `size`.
fn pvc_sized(size: &str) -> impl Fn(Option<&PersistentVolumeClaim>) -> bool + Send + 'static {
    let size = size.to_owned();
    move |p| {
        let storage = |m: Option<&std::collections::BTreeMap<String, Quantity>>| {
            m.and_then(|m| m.get("storage")).map(|q| q.0.clone())
        };
        p.is_some_and(|p| {
            let request = p
                .spec
                .as_ref()
                .and_then(|s| s.resources.as_ref())
                .and_then(|r| storage(r.requests.as_ref()));
            let capacity = p.status.as_ref().and_then(|s| storage(s.capacity.as_ref()));
            request.as_deref() == Some(size.as_str()) && capacity.as_deref() == Some(size.as_str())
        })
    }
}

async fn assert_volume_size(client: &Client, d: &KompoxDisk, size: &str, bytes: u64) -> Result<()> {
    let st = d.status.clone().unwrap_or_default();
    let pv_name = st.pv_name.context("no status.pvName")?;
    let pv = Api::<PersistentVolume>::all(client.clone())
        .get(&pv_name)
        .await?;
    let capacity = pv
        .spec
        .and_then(|s| s.capacity)
        .and_then(|c| c.get("storage").cloned())
        .map(|q| q.0);
    ensure!(
        capacity.as_deref() == Some(size),
        "PV {pv_name} capacity {capacity:?}, want {size}"
    );
    let handle = st.handle.context("no status.handle")?;
    let driver = driver_volume_capacity(&handle)?;
    ensure!(
        driver == Some(bytes),
        "driver volume {handle}: {driver:?} bytes, want {bytes}"
    );
    Ok(())
}

/// Runs `body` in a fresh namespace with an in-process controller scoped to it, then deletes
/// what the storage tests create there (KompoxApp `web`, PVC `user-data`, every disk with the
/// `Delete` policy), also after a failure.
async fn in_namespace(
    prefix: &str,
    body: impl for<'a> FnOnce(
        &'a Client,
        &'a TestNamespace,
    ) -> futures::future::BoxFuture<'a, Result<()>>,
) -> Result<()> {
    cluster();
    ensure_crds().await?;
    let client = admin_client().await?;
    let ns = TestNamespace::create(&client, prefix, &[]).await?;
    let controller = InProcessController::start(NamespaceScope::One(ns.name.clone())).await?;
    let result = body(&client, &ns).await;
    let teardown = async {
        let apps: Api<KompoxApp> = ns.api();
        delete_and_wait(&apps, "web").await?;
        let pvcs: Api<PersistentVolumeClaim> = ns.api();
        delete_and_wait(&pvcs, "user-data").await?;
        let disks: Api<KompoxDisk> = ns.api();
        for d in disks.list(&Default::default()).await?.items {
            set_policy(&disks, &d.name_any(), "Delete").await?;
        }
        delete_disks(&disks).await?;
        controller.stop().await?;
        ns.cleanup().await
    }
    .await;
    with_teardown(result, teardown)
}

/// Creates 1Gi disks `names` with the `Delete` policy and waits until each is Ready.
async fn ready_disks(api: &Api<KompoxDisk>, names: &[&str]) -> Result<Vec<KompoxDisk>> {
    for name in names {
        create_disk(
            api,
            name,
            json!({"size": "1Gi", "deletionPolicy": "Delete"}),
        )
        .await?;
    }
    let mut ready = Vec::new();
    for name in names {
        ready.push(wait_disk_ready(api, name).await?);
    }
    Ok(ready)
}

/// Applies KompoxApp `web` (one nginx service) whose volume `data` uses disk `disk`, and waits
/// until the app is Ready and its PVC `web-data` Bound.
async fn web_app_on(client: &Client, ns: &str, disk: &str) -> Result<()> {
    let compose = "services:\n  web:\n    image: nginx:1.27\n    volumes: [\"data:/data\"]\nvolumes:\n  data: {}\n";
    put_compose(client, ns, "web-compose", compose).await?;
    let mut app = small_app("web", "web-compose");
    app["spec"]["volumes"] = json!([{"name": "data", "diskRef": {"name": disk}}]);
    apply(client, ns, &app).await?;
    wait_ready(
        &Api::<KompoxApp>::namespaced(client.clone(), ns),
        "web",
        TIMEOUT,
    )
    .await?;
    wait_pvc_bound(&Api::namespaced(client.clone(), ns), "web-data").await?;
    Ok(())
}

/// A user raises `spec.size`: a detached disk grows through a temporary PVC, a disk bound to a
/// plain PVC through that PVC (the controller raises its request), a disk used by a KompoxApp
/// through the app's PVC (the app renders the new size itself). The PVs and the CSI driver's
/// volumes reach the new sizes, the disks report Progressing `Resizing` on the way and Ready
/// with `status.size` at the end; shrinking is refused by the API server naming `spec.size`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disks_grow_detached_and_attached_and_never_shrink() -> Result<()> {
    in_namespace("grow", |client, ns| Box::pin(grow_body(client, ns))).await
}

async fn grow_body(client: &Client, ns: &TestNamespace) -> Result<()> {
    let disks: Api<KompoxDisk> = ns.api();
    let mut class = String::new();
    for d in ready_disks(&disks, &["loose", "held", "app"]).await? {
        let name = d.name_any();
        let st = d.status.unwrap_or_default();
        ensure!(
            st.size.map(|q| q.0).as_deref() == Some("1Gi"),
            "{name}: status.size"
        );
        class = st
            .storage_class_name
            .context("no status.storageClassName")?;
    }
    ensure!(class == "k4x-static", "the static PVs' class is {class}");

    // "held" is bound by a plain PVC of the class, "app" by a KompoxApp's volume.
    let held_pv = disks
        .get("held")
        .await?
        .status
        .and_then(|s| s.pv_name)
        .context("pvName")?;
    let pvcs: Api<PersistentVolumeClaim> = ns.api();
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "user-data"},
        "spec": {"storageClassName": class, "volumeName": held_pv, "accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "1Gi"}}},
    }))?;
    pvcs.create(&Default::default(), &pvc).await?;
    web_app_on(client, &ns.name, "app").await?;
    wait_pvc_bound(&pvcs, "user-data").await?;

    // Record every Progressing reason the disks go through: a watcher that has listed the
    // disks before any size changes, and that rides out watch errors.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let (synced_tx, synced_rx) = tokio::sync::oneshot::channel();
    let recorder = {
        let seen = seen.clone();
        let stream = watcher(disks.clone(), watcher::Config::default()).default_backoff();
        tokio::spawn(async move {
            let mut synced = Some(synced_tx);
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                let d = match event {
                    Ok(watcher::Event::Apply(d) | watcher::Event::InitApply(d)) => d,
                    Ok(watcher::Event::InitDone) => {
                        if let Some(tx) = synced.take() {
                            let _ = tx.send(());
                        }
                        continue;
                    }
                    Ok(_) | Err(_) => continue,
                };
                let st = d.status.clone().unwrap_or_default();
                if let Some(c) = condition::find(&st.conditions, types::PROGRESSING)
                    && c.status == "True"
                {
                    let mut s = seen
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    s.insert((d.name_any(), c.reason.clone()));
                }
            }
        })
    };
    tokio::time::timeout(TIMEOUT, synced_rx)
        .await
        .context("the disk watcher did not list the disks")?
        .context("the disk watcher stopped")?;

    let t0 = Instant::now();
    for (name, size) in [("loose", "2Gi"), ("held", "3Gi"), ("app", "2Gi")] {
        resize(&disks, name, size).await?;
    }
    for (name, size, bytes) in [
        ("loose", "2Gi", 2 * GI),
        ("held", "3Gi", 3 * GI),
        ("app", "2Gi", 2 * GI),
    ] {
        let d = wait_grown(&disks, name, size, 2).await?;
        println!(
            "{name}: spec.size raised -> Ready at {size}: {:?}",
            t0.elapsed()
        );
        assert_volume_size(client, &d, size, bytes).await?;
    }
    recorder.abort();
    let seen = seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    for name in ["loose", "held", "app"] {
        ensure!(
            seen.contains(&(name.to_owned(), "Resizing".to_owned())),
            "{name} was never Progressing/Resizing: {seen:?}"
        );
    }

    // The bound PVCs reach the new size: the request at once, the capacity when the resizer
    // records the expansion on the claim (it updates the PV first, so this may trail the disk's
    // Ready by a moment). The temporary PVC is gone and the PV free again.
    for (name, size) in [("user-data", "3Gi"), ("web-data", "2Gi")] {
        if let Err(e) = wait_for_condition(pvcs.clone(), name, pvc_sized(size), TIMEOUT).await {
            let p = pvcs.get(name).await?;
            bail!(
                "PVC {name}: want request and capacity {size}; spec {:?}, status {:?}: {e:#}",
                p.spec.and_then(|s| s.resources),
                p.status.and_then(|s| s.capacity)
            );
        }
    }
    let loose_pv = disks
        .get("loose")
        .await?
        .status
        .and_then(|s| s.pv_name)
        .context("pvName")?;
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    wait_until(
        "the resize PVC gone and loose's PV Available",
        TIMEOUT,
        || async {
            let left = pvcs
                .list(&ListParams::default().labels("kompox.dev/storage-role=resize"))
                .await?
                .items
                .len();
            let phase = pvs.get(&loose_pv).await?.status.and_then(|s| s.phase);
            Ok(left == 0 && phase.as_deref() == Some("Available"))
        },
    )
    .await?;

    // Shrinking is refused by the API server, naming the field; nothing changes.
    let err = resize(&disks, "loose", "1Gi")
        .await
        .err()
        .context("a shrink was accepted")?;
    let msg = format!("{err:#}");
    ensure!(
        msg.contains("spec.size") && msg.contains("cannot shrink"),
        "{msg}"
    );
    let d = disks.get("loose").await?;
    ensure!(
        d.spec.size.0 == "2Gi",
        "spec.size changed to {}",
        d.spec.size.0
    );
    Ok(())
}

/// Deleting a namespace never deletes an Orphan disk's data. A KompoxApp uses the disk and a
/// file is in its volume; the namespace is deleted (every object in it at once, the disk's
/// finalizer included); the driver keeps the volume and its bytes, and a disk in another
/// namespace adopts the volume by handle and sees the same files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_namespace_keeps_an_orphan_disks_volume() -> Result<()> {
    cluster();
    ensure_crds().await?;
    let client = admin_client().await?;
    let key = "kompox.dev/e2e-scope";
    let value = format!("{:08x}", rand::random::<u32>());
    let old = TestNamespace::create(&client, "nsdel-old", &[(key, &value)]).await?;
    let new = TestNamespace::create(&client, "nsdel-new", &[(key, &value)]).await?;
    let controller =
        InProcessController::start(NamespaceScope::Selector(format!("{key}={value}"))).await?;
    let old_name = old.name.clone();
    let result = namespace_deletion_body(&client, old, &new).await;

    let teardown = async {
        let disks: Api<KompoxDisk> = new.api();
        for d in disks.list(&Default::default()).await?.items {
            set_policy(&disks, &d.name_any(), "Delete").await?;
        }
        delete_disks(&disks).await?;
        controller.stop().await?;
        // The body deletes the old namespace; after a failure it may still be there.
        let namespaces: Api<Namespace> = Api::all(client.clone());
        if namespaces.get_opt(&old_name).await?.is_some() {
            namespaces
                .delete(&old_name, &DeleteParams::background())
                .await?;
        }
        new.cleanup().await
    }
    .await;
    with_teardown(result, teardown)
}

async fn namespace_deletion_body(
    client: &Client,
    old: TestNamespace,
    new: &TestNamespace,
) -> Result<()> {
    let disks: Api<KompoxDisk> = old.api();
    create_disk(&disks, "data", json!({"size": "1Gi", "zone": "1"})).await?;
    let d = wait_disk_ready(&disks, "data").await?;
    let handle = d
        .status
        .and_then(|s| s.handle)
        .context("no status.handle")?;
    write_volume_file(&handle, "repos/app.git/HEAD", b"ref: refs/heads/main\n")?;
    write_volume_file(&handle, "db.sqlite", &rand::random::<[u8; 4096]>())?;
    let kept = volume_files(&handle)?;

    web_app_on(client, &old.name, "data").await?;

    // Delete the namespace with everything in it.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let t0 = Instant::now();
    namespaces
        .delete(&old.name, &DeleteParams::background())
        .await?;
    wait_until(
        "the namespace and everything in it gone",
        Duration::from_secs(120),
        || async { Ok(namespaces.get_opt(&old.name).await?.is_none()) },
    )
    .await?;
    println!(
        "namespace with an app and its disk deleted: {:?}",
        t0.elapsed()
    );
    ensure!(
        driver_volumes()?.contains(&handle),
        "the namespace's deletion deleted Orphan volume {handle}"
    );
    ensure!(
        volume_files(&handle)? == kept,
        "volume {handle} lost its files with the namespace"
    );

    // Adopted by handle in another namespace: the same files.
    let again: Api<KompoxDisk> = new.api();
    create_disk(
        &again,
        "data",
        json!({"size": "1Gi", "zone": "1", "handle": handle}),
    )
    .await?;
    let adopted = wait_disk_ready(&again, "data").await?;
    let adopted_handle = adopted.status.and_then(|s| s.handle);
    ensure!(
        adopted_handle.as_deref() == Some(handle.as_str()),
        "adopted disk has handle {adopted_handle:?}, want {handle}"
    );
    ensure!(
        volume_files(&handle)? == kept,
        "the adopted volume {handle} does not hold the files written before"
    );
    Ok(())
}

/// A growth the driver refuses for good (the local driver, like a cloud, refuses volumes of
/// 1 TiB or more) leaves the disk Degraded `ResizeFailed` naming `spec.size`; the user can
/// then retreat to a smaller growth, above the volume's current size (lower is refused by the
/// API server), and the disk grows to that. Detached (the resize PVC) and app-bound (the
/// app's PVC) disks alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_growth_is_degraded_and_can_retreat() -> Result<()> {
    in_namespace("retreat", |client, ns| Box::pin(retreat_body(client, ns))).await
}

async fn retreat_body(client: &Client, ns: &TestNamespace) -> Result<()> {
    let disks: Api<KompoxDisk> = ns.api();
    ready_disks(&disks, &["loose", "app"]).await?;
    web_app_on(client, &ns.name, "app").await?;
    let pvcs: Api<PersistentVolumeClaim> = ns.api();

    // 2Ti: refused by the driver, reported on the disk naming the field.
    for name in ["loose", "app"] {
        resize(&disks, name, "2Ti").await?;
    }
    for name in ["loose", "app"] {
        let d = wait_disk(&disks, name, |s| {
            condition::find(&s.conditions, types::DEGRADED)
                .is_some_and(|c| c.status == "True" && c.reason == "ResizeFailed")
        })
        .await?;
        let st = d.status.unwrap_or_default();
        let msg = condition::find(&st.conditions, types::DEGRADED)
            .map(|c| c.message.clone())
            .unwrap_or_default();
        ensure!(
            msg.starts_with("spec.size: ") && msg.contains("2Ti"),
            "{name}: Degraded message {msg:?}"
        );
        ensure!(
            st.size.map(|q| q.0).as_deref() == Some("1Gi"),
            "{name}: the volume changed size"
        );
    }

    // Back to the volume's size or below: refused, naming spec.size and status.size.
    for size in ["1Gi", "512Mi"] {
        let err = resize(&disks, "loose", size)
            .await
            .err()
            .with_context(|| format!("lowering spec.size to {size} was accepted"))?;
        let msg = format!("{err:#}");
        ensure!(
            msg.contains("spec.size") && msg.contains("status.size"),
            "{msg}"
        );
    }

    // Retreat to 2Gi: the claims' requests come down, the resizer grows the volumes to 2Gi.
    let t0 = Instant::now();
    for name in ["loose", "app"] {
        resize(&disks, name, "2Gi").await?;
    }
    for name in ["loose", "app"] {
        let d = wait_grown(&disks, name, "2Gi", 3).await?;
        println!(
            "{name}: retreated from 2Ti -> Ready at 2Gi: {:?}",
            t0.elapsed()
        );
        assert_volume_size(client, &d, "2Gi", 2 * GI).await?;
        let degraded = d
            .status
            .as_ref()
            .and_then(|s| condition::find(&s.conditions, types::DEGRADED))
            .is_some_and(|c| c.status == "True");
        ensure!(!degraded, "{name} still Degraded when Ready");
    }
    wait_for_condition(pvcs.clone(), "web-data", pvc_sized("2Gi"), TIMEOUT)
        .await
        .context("the app's PVC at 2Gi")?;
    wait_until("the resize PVC gone", TIMEOUT, || async {
        Ok(pvcs
            .list(&ListParams::default().labels("kompox.dev/storage-role=resize"))
            .await?
            .items
            .is_empty())
    })
    .await?;
    Ok(())
}

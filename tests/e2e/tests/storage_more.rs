//! More storage controller end to end tests (see `tests/storage.rs` for the lifecycle): the
//! `--namespace-selector` scope with namespaces entering and leaving it.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use k8s_openapi::api::core::v1::Namespace;
use kompox_controller::NamespaceScope;
use kompox_core::api::KompoxDisk;
use kompox_e2e::storage::{
    InProcessController, TIMEOUT, create_disk, delete_disks, wait_disk, wait_disk_ready,
};
use kompox_e2e::{
    TestNamespace, admin_client, cluster, ensure_crds, wait_for_condition, wait_until,
};
use kube::api::{Api, Patch, PatchParams};
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
    match (result, teardown) {
        (Err(e), Err(t)) => Err(e.context(format!("teardown failed too: {t:#}"))),
        (r, t) => r.and(t),
    }
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

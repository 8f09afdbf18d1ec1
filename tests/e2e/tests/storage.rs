//! Storage controller end to end: KompoxDisk and KompoxSnapshot through the real CSI stack of
//! the local control plane (external-provisioner, csi-snapshotter, snapshot-controller and the
//! upstream mock CSI driver), with `kompox-controller` as a local process scoped to each test's
//! namespace and running as its ServiceAccount with `manifests/controller/rbac.yaml`.
//!
//! The mock driver runs with a data plane (`hack/cluster.sh`: `-data-dir`): each volume is a
//! directory, which the tests write and read by handle as a pod mounting the volume would
//! (there is no kubelet). So a restore is verified by content — the restored disk holds
//! exactly the bytes of snapshot time, not what was written later — as well as by the CSI call
//! chain (the driver's `CreateVolume` for the restored disk carries the snapshot's handle as
//! its content source); deletion by the directory going with the volume, and Orphan by the
//! bytes staying for the disk that adopts the volume again.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::events::v1::Event;
use kompox_controller::claim::{Claim, claim, claim_decision};
use kompox_core::api::condition::{self, reasons, types};
use kompox_core::api::{KompoxApp, KompoxDisk, KompoxSnapshot, quantity};
use kompox_e2e::apps::metric;
use kompox_e2e::controller::{
    ControllerProcess, Options, TestEnv, driver_calls, driver_snapshots, driver_volume_capacity,
    driver_volumes, finish, read_volume_file, run, scoped, volume_dir, volume_dir_exists,
    volume_files, volumes_created_in, write_volume_file,
};
use kompox_e2e::storage::{wait_disk, wait_disk_ready};
use kompox_e2e::{
    TestNamespace, admin_client, cluster, delete_all, delete_and_wait, ensure_crds,
    wait_for_condition, wait_until,
};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(60);

struct Env {
    client: Client,
    ns: TestNamespace,
    controller: ControllerProcess,
}

impl TestEnv for Env {
    async fn start(prefix: &str) -> Result<Self> {
        let (client, ns, controller) = scoped(prefix, &[]).await?;
        Ok(Self {
            client,
            ns,
            controller,
        })
    }

    /// Deletes what the test left (snapshots, PVCs, then through [`finish`] disks — via the
    /// controller, so the Delete policy reaches the driver), stops the controller and deletes
    /// the namespace.
    async fn teardown(self) -> Result<()> {
        delete_all(&self.snapshots()).await?;
        delete_all(&self.ns.api::<PersistentVolumeClaim>()).await?;
        finish(self.ns, self.controller).await
    }

    fn controller(&mut self) -> &mut ControllerProcess {
        &mut self.controller
    }
}

impl Env {
    fn disks(&self) -> Api<KompoxDisk> {
        self.ns.api()
    }

    fn snapshots(&self) -> Api<KompoxSnapshot> {
        self.ns.api()
    }

    async fn create_disk(&self, name: &str, spec: serde_json::Value) -> Result<KompoxDisk> {
        kompox_e2e::storage::create_disk(&self.disks(), name, spec).await
    }

    /// Creates a disk from raw JSON (bypassing the typed client, for schema rejections).
    async fn create_disk_raw(&self, name: &str, spec: serde_json::Value) -> Result<()> {
        let ar = kube::api::ApiResource::erase::<KompoxDisk>(&());
        let api: Api<kube::api::DynamicObject> =
            Api::namespaced_with(self.client.clone(), &self.ns.name, &ar);
        let obj: kube::api::DynamicObject = serde_json::from_value(json!({
            "apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxDisk",
            "metadata": {"name": name}, "spec": spec,
        }))?;
        api.create(&PostParams::default(), &obj).await?;
        Ok(())
    }

    async fn create_snapshot(&self, name: &str, disk: &str) -> Result<KompoxSnapshot> {
        let s: KompoxSnapshot = serde_json::from_value(json!({
            "apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxSnapshot",
            "metadata": {"name": name}, "spec": {"diskRef": {"name": disk}},
        }))?;
        Ok(self.snapshots().create(&PostParams::default(), &s).await?)
    }

    /// Events about `name` in the namespace: (reason, note).
    async fn events(&self, name: &str) -> Result<Vec<(String, String)>> {
        let evs: Api<Event> = self.ns.api();
        Ok(evs
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect())
    }

    /// Waits until an Event about `name` has `reason` and a note containing `note` (the
    /// controller publishes an Event after the status write it reports, so it may trail it).
    async fn wait_event(&self, name: &str, reason: &str, note: &str) -> Result<()> {
        wait_until(
            &format!("a {reason} Event about {name} saying {note:?}"),
            TIMEOUT,
            || async {
                let evs = self.events(name).await?;
                if evs.iter().any(|(r, n)| r == reason && n.contains(note)) {
                    return Ok(true);
                }
                bail!("events so far: {evs:?}")
            },
        )
        .await
    }
}

fn ready(conds: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]) -> bool {
    condition::is_true(conds, types::READY)
}

/// Waits for `Degraded=True` with `reason`; returns its message.
async fn wait_disk_degraded(api: &Api<KompoxDisk>, name: &str, reason: &str) -> Result<String> {
    let d = wait_for_condition(
        api.clone(),
        name,
        |d: Option<&KompoxDisk>| {
            d.and_then(|d| d.status.as_ref())
                .and_then(|s| condition::find(&s.conditions, types::DEGRADED))
                .is_some_and(|c| c.status == "True" && c.reason == reason)
        },
        TIMEOUT,
    )
    .await?
    .with_context(|| format!("KompoxDisk {name} gone"))?;
    Ok(d.status
        .and_then(|s| condition::find(&s.conditions, types::DEGRADED).map(|c| c.message.clone()))
        .unwrap_or_default())
}

async fn wait_snapshot_ready(api: &Api<KompoxSnapshot>, name: &str) -> Result<KompoxSnapshot> {
    wait_for_condition(
        api.clone(),
        name,
        |s: Option<&KompoxSnapshot>| {
            s.and_then(|s| s.status.as_ref())
                .is_some_and(|s| s.ready_to_use && ready(&s.conditions))
        },
        TIMEOUT,
    )
    .await?
    .with_context(|| format!("KompoxSnapshot {name} gone"))
}

fn handle_of(d: &KompoxDisk) -> Result<String> {
    d.status
        .as_ref()
        .and_then(|s| s.handle.clone())
        .context("no status.handle")
}

fn pv_of(d: &KompoxDisk) -> Result<String> {
    d.status
        .as_ref()
        .and_then(|s| s.pv_name.clone())
        .context("no status.pvName")
}

/// An "app" PVC bound to a disk's static PV by volumeName (what the app controller creates),
/// with the PV's StorageClass (binding needs the same one).
async fn bind_pvc(env: &Env, name: &str, pv: &str) -> Result<()> {
    let class = Api::<PersistentVolume>::all(env.client.clone())
        .get(pv)
        .await?
        .spec
        .and_then(|s| s.storage_class_name)
        .unwrap_or_default();
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {"storageClassName": class, "volumeName": pv, "accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "1Gi"}}},
    }))?;
    let pvcs: Api<PersistentVolumeClaim> = env.ns.api();
    pvcs.create(&PostParams::default(), &pvc).await?;
    wait_until(&format!("PVC {name} Bound"), TIMEOUT, || async {
        Ok(pvcs
            .get(name)
            .await?
            .status
            .and_then(|s| s.phase)
            .as_deref()
            == Some("Bound"))
    })
    .await
}

async fn pv_phase(client: &Client, pv: &str) -> Result<Option<String>> {
    Ok(Api::<PersistentVolume>::all(client.clone())
        .get_opt(pv)
        .await?
        .and_then(|p| p.status.and_then(|s| s.phase)))
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    rand::fill(&mut b[..]);
    b
}

/// Writes random files (path, size) into volume `handle`; returns what it wrote, as
/// [`volume_files`] reads a volume.
fn write_files(handle: &str, files: &[(&str, usize)]) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    for (path, size) in files {
        let bytes = random_bytes(*size);
        write_volume_file(handle, path, &bytes)?;
        out.insert((*path).to_string(), bytes);
    }
    Ok(out)
}

/// A volume's files for a failure message: "path (size)" each, in order.
fn describe(files: &BTreeMap<String, Vec<u8>>) -> String {
    let list: Vec<String> = files
        .iter()
        .map(|(p, b)| format!("{p} ({} bytes)", b.len()))
        .collect();
    format!("[{}]", list.join(", "))
}

#[tokio::test]
async fn disk_provisions_binds_releases_and_deletes_its_volume() -> Result<()> {
    run("disk", |env| {
        Box::pin(disk_provisions_binds_releases_and_deletes_its_volume_body(
            env,
        ))
    })
    .await
}

async fn disk_provisions_binds_releases_and_deletes_its_volume_body(env: &mut Env) -> Result<()> {
    let api = env.disks();
    let t0 = Instant::now();
    env.create_disk(
        "data",
        json!({"size": "1Gi", "zone": "2", "deletionPolicy": "Delete"}),
    )
    .await?;
    let d = wait_disk_ready(&api, "data").await?;
    println!("create -> Ready: {:?}", t0.elapsed());
    let st = d.status.clone().unwrap_or_default();
    let handle = handle_of(&d)?;
    let pv_name = pv_of(&d)?;
    assert_eq!(st.zone.as_deref(), Some("japaneast-2"));
    assert_eq!(st.provider.map(|p| p.as_str()), Some("csi"));
    assert_eq!(st.observed_generation, d.metadata.generation);
    assert!(
        driver_volumes()?.contains(&handle),
        "driver lacks volume {handle}"
    );
    write_volume_file(&handle, "data.bin", &random_bytes(4096))?;

    // The static PV, as the contract says.
    let pv = serde_json::to_value(
        Api::<PersistentVolume>::all(env.client.clone())
            .get(&pv_name)
            .await?,
    )?;
    assert_eq!(pv_name, format!("k4x-{}-data", env.ns.name));
    assert_eq!(pv["spec"]["csi"]["volumeHandle"], handle.as_str());
    assert_eq!(pv["spec"]["csi"]["driver"], "mock.csi.kompox.dev");
    assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
    // Kompox's class for static PVs (no provisioner, expansion allowed), recorded in status.
    assert_eq!(pv["spec"]["storageClassName"], "k4x-static");
    assert_eq!(st.storage_class_name.as_deref(), Some("k4x-static"));
    assert_eq!(pv["spec"]["capacity"]["storage"], "1Gi");
    assert_eq!(pv["metadata"]["labels"]["kompox.dev/disk"], "data");
    assert_eq!(
        pv["metadata"]["labels"]["kompox.dev/disk-namespace"],
        env.ns.name.as_str()
    );
    let expr =
        &pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0];
    assert_eq!(expr["key"], "topology.kubernetes.io/zone");
    assert_eq!(expr["values"], json!(["japaneast-2"]));
    // The provisioning PVC and the dynamic PV are gone.
    let pvcs: Api<PersistentVolumeClaim> = env.ns.api();
    wait_until("no provisioning PVC", TIMEOUT, || async {
        Ok(pvcs.list(&ListParams::default()).await?.items.is_empty())
    })
    .await?;
    let ns_label = format!("kompox.dev/disk-namespace={}", env.ns.name);
    let pvs: Api<PersistentVolume> = Api::all(env.client.clone());
    wait_until("only the static PV", TIMEOUT, || async {
        Ok(pvs
            .list(&ListParams::default().labels(&ns_label))
            .await?
            .items
            .len()
            == 1)
    })
    .await?;
    env.wait_event("data", "Provisioning", "").await?;
    env.wait_event("data", "Ready", &handle).await?;

    // An app PVC binds by volumeName; once it is deleted the PV is Available again.
    bind_pvc(env, "app-data", &pv_name).await?;
    assert_eq!(
        pv_phase(&env.client, &pv_name).await?.as_deref(),
        Some("Bound")
    );
    delete_and_wait(&pvcs, "app-data").await?;
    wait_until("PV Available again", TIMEOUT, || async {
        Ok(pv_phase(&env.client, &pv_name).await?.as_deref() == Some("Available"))
    })
    .await?;
    bind_pvc(env, "app-data-2", &pv_name).await?;

    // deletionPolicy Delete never deletes a volume under a live PVC: the disk waits for it.
    api.delete("data", &DeleteParams::default()).await?;
    wait_for_condition(
        api.clone(),
        "data",
        |d: Option<&KompoxDisk>| {
            d.and_then(|d| d.status.as_ref())
                .and_then(|s| condition::find(&s.conditions, types::PROGRESSING))
                .is_some_and(|c| c.reason == reasons::DELETING && c.message.contains("app-data-2"))
        },
        TIMEOUT,
    )
    .await?
    .context("disk deleted under a live PVC")?;
    assert!(
        driver_volumes()?.contains(&handle),
        "volume deleted under a live PVC"
    );
    delete_and_wait(&pvcs, "app-data-2").await?;

    // deletionPolicy Delete: the driver deletes the volume, and the disk goes only after it.
    wait_until("disk deleted", TIMEOUT, || async {
        Ok(api.get_opt("data").await?.is_none())
    })
    .await?;
    ensure!(
        pvs.get_opt(&pv_name).await?.is_none(),
        "disk gone before its PV"
    );
    ensure!(
        !driver_volumes()?.contains(&handle),
        "volume {handle} still in the driver"
    );
    ensure!(
        !volume_dir_exists(&handle)?,
        "volume {handle} deleted but its data left: {}",
        volume_dir(&handle)?.display()
    );
    let deleted = driver_calls("DeleteVolume")?;
    ensure!(
        deleted
            .iter()
            .any(|c| c.request["volume_id"] == handle.as_str()),
        "no successful DeleteVolume of {handle} in the driver log"
    );
    Ok(())
}

#[tokio::test]
async fn orphan_keeps_the_volume_and_spec_handle_adopts_it() -> Result<()> {
    run("orphan", |env| {
        Box::pin(orphan_keeps_the_volume_and_spec_handle_adopts_it_body(env))
    })
    .await
}

async fn orphan_keeps_the_volume_and_spec_handle_adopts_it_body(env: &mut Env) -> Result<()> {
    let api = env.disks();
    env.create_disk("keep", json!({"size": "1Gi", "zone": "1"}))
        .await?;
    let d = wait_disk_ready(&api, "keep").await?;
    let handle = handle_of(&d)?;
    let pv_name = pv_of(&d)?;
    let kept = write_files(&handle, &[("db/data.bin", 65536), ("README", 64)])?;
    delete_and_wait(&api, "keep").await?;
    env.wait_event("keep", "Orphaned", &handle).await?;
    ensure!(
        driver_volumes()?.contains(&handle),
        "orphaned volume {handle} was deleted"
    );
    ensure!(
        volume_files(&handle)? == kept,
        "orphaned volume {handle} does not hold its bytes any more"
    );
    let pvs: Api<PersistentVolume> = Api::all(env.client.clone());
    wait_until("orphaned PV object dropped", TIMEOUT, || async {
        Ok(pvs.get_opt(&pv_name).await?.is_none())
    })
    .await?;

    // Adopt it again by handle, then delete it for real.
    env.create_disk(
        "again",
        json!({"size": "1Gi", "zone": "1", "handle": handle, "deletionPolicy": "Delete"}),
    )
    .await?;
    let again = wait_disk_ready(&api, "again").await?;
    assert_eq!(handle_of(&again)?, handle);
    let pv = pvs.get(&pv_of(&again)?).await?;
    assert_eq!(
        pv.spec.and_then(|s| s.csi).map(|c| c.volume_handle),
        Some(handle.clone())
    );
    // The adopted disk's volume is the one with the bytes written before the orphaning.
    ensure!(
        volume_files(&handle_of(&again)?)? == kept,
        "the adopted disk does not see the orphaned volume's bytes"
    );
    assert_eq!(read_volume_file(&handle, "README")?, kept["README"]);
    delete_and_wait(&api, "again").await?;
    wait_until("adopted volume deleted", TIMEOUT, || async {
        Ok(!driver_volumes()?.contains(&handle))
    })
    .await?;
    ensure!(
        !volume_dir_exists(&handle)?,
        "adopted volume {handle} deleted but its data left"
    );
    Ok(())
}

async fn create_app(env: &Env, name: &str) -> Result<()> {
    let app: KompoxApp = serde_json::from_value(json!({
        "apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxApp",
        "metadata": {"name": name},
        "spec": {"compose": {"configMapRef": {"name": "compose", "key": "compose.yml"}},
                 "volumes": [{"name": "data", "diskRef": {"name": "shared"}}]},
    }))?;
    env.ns
        .api::<KompoxApp>()
        .create(&PostParams::default(), &app)
        .await?;
    Ok(())
}

#[tokio::test]
async fn second_app_gets_disk_in_use_and_a_deleted_app_releases_its_claim() -> Result<()> {
    run("inuse", |env| {
        Box::pin(second_app_gets_disk_in_use_and_a_deleted_app_releases_its_claim_body(env))
    })
    .await
}

async fn second_app_gets_disk_in_use_and_a_deleted_app_releases_its_claim_body(
    env: &mut Env,
) -> Result<()> {
    let api = env.disks();
    env.create_disk("shared", json!({"size": "1Gi", "deletionPolicy": "Delete"}))
        .await?;
    wait_disk_ready(&api, "shared").await?;
    create_app(env, "gitea").await?;
    create_app(env, "wiki").await?;
    assert_eq!(
        claim(&api, "shared", "gitea", "data").await?,
        Claim::Granted
    );
    assert_eq!(
        claim(&api, "shared", "gitea", "data").await?,
        Claim::AlreadyHeld
    );
    let refused = claim(&api, "shared", "wiki", "data").await?;
    assert_eq!(
        refused,
        Claim::HeldBy {
            app: "gitea".into(),
            volume: "data".into()
        }
    );
    assert_eq!(
        refused.in_use_message("shared").as_deref(),
        Some("disk shared is in use by app gitea volume data")
    );
    assert_eq!(
        refused
            .in_use_message("shared")
            .map(|_| reasons::DISK_IN_USE),
        Some("DiskInUse")
    );
    // Two claims racing: exactly one wins.
    let d = api.get("shared").await?;
    assert!(matches!(
        claim_decision(&d, "wiki", "data"),
        Claim::HeldBy { .. }
    ));

    // The holder goes away: the disk controller clears the stale claim, the other app gets it.
    delete_and_wait(&env.ns.api::<KompoxApp>(), "gitea").await?;
    wait_until("stale claim released", TIMEOUT, || async {
        Ok(api
            .get("shared")
            .await?
            .status
            .and_then(|s| s.attached_to)
            .is_none())
    })
    .await?;
    assert_eq!(claim(&api, "shared", "wiki", "data").await?, Claim::Granted);
    delete_and_wait(&env.ns.api::<KompoxApp>(), "wiki").await?;
    delete_and_wait(&api, "shared").await?;
    Ok(())
}

#[tokio::test]
async fn claims_race_and_only_one_wins() -> Result<()> {
    run("race", |env| {
        Box::pin(claims_race_and_only_one_wins_body(env))
    })
    .await
}

async fn claims_race_and_only_one_wins_body(env: &mut Env) -> Result<()> {
    let api = env.disks();
    env.create_disk("shared", json!({"size": "1Gi", "deletionPolicy": "Delete"}))
        .await?;
    wait_disk_ready(&api, "shared").await?;
    for a in ["a1", "a2", "a3", "a4"] {
        create_app(env, a).await?;
    }
    let results = futures::future::join_all(["a1", "a2", "a3", "a4"].map(|a| {
        let api = api.clone();
        async move { claim(&api, "shared", a, "data").await }
    }))
    .await;
    let granted = results
        .iter()
        .filter(|r| matches!(r, Ok(Claim::Granted)))
        .count();
    ensure!(granted == 1, "claims: {results:?}");
    for a in ["a1", "a2", "a3", "a4"] {
        delete_and_wait(&env.ns.api::<KompoxApp>(), a).await?;
    }
    delete_and_wait(&api, "shared").await?;
    Ok(())
}

#[tokio::test]
async fn snapshot_then_restore_from_it() -> Result<()> {
    run("snap", |env| {
        Box::pin(snapshot_then_restore_from_it_body(env))
    })
    .await
}

async fn snapshot_then_restore_from_it_body(env: &mut Env) -> Result<()> {
    let api = env.disks();
    let snaps = env.snapshots();
    let t = Instant::now();
    env.create_disk(
        "src",
        json!({"size": "2Gi", "zone": "3", "deletionPolicy": "Delete"}),
    )
    .await?;
    let src = wait_disk_ready(&api, "src").await?;
    println!("create -> Ready: {:?}", t.elapsed());
    let src_handle = handle_of(&src)?;
    let at_s1 = write_files(
        &src_handle,
        &[("data.bin", 1 << 20), ("nested/deeper/notes.txt", 100)],
    )?;

    // Detached disk: through a temporary PVC bound to the static PV.
    let t0 = Instant::now();
    env.create_snapshot("s1", "src").await?;
    let s1 = wait_snapshot_ready(&snaps, "s1").await?;
    println!("snapshot -> readyToUse: {:?}", t0.elapsed());
    // Written after s1: the restore from s1 must not have any of it.
    write_volume_file(&src_handle, "data.bin", &random_bytes(1 << 20))?;
    write_volume_file(&src_handle, "later.txt", b"after s1")?;
    ensure!(
        volume_files(&src_handle)? != at_s1,
        "the source volume's bytes did not change"
    );
    let st = s1.status.clone().unwrap_or_default();
    let snap_handle = st.snapshot_handle.clone().context("no snapshotHandle")?;
    // The driver sizes a snapshot as its source volume (CreateSnapshot size_bytes), which
    // csi-snapshotter and snapshot-controller carry to the VolumeSnapshot's restoreSize.
    let restore_size = st
        .restore_size
        .as_ref()
        .context("s1 without status.restoreSize")?;
    ensure!(
        bytes(&restore_size.0)? == 2 * GI,
        "s1 restoreSize {} is not the source disk's 2Gi",
        restore_size.0
    );
    ensure!(
        driver_snapshots()?.contains(&snap_handle),
        "driver lacks snapshot {snap_handle}"
    );
    let pvcs: Api<PersistentVolumeClaim> = env.ns.api();
    wait_until("temporary source PVC removed", TIMEOUT, || async {
        Ok(pvcs.get_opt("k4x-snapsrc-s1").await?.is_none())
    })
    .await?;
    let pv_name = pv_of(&src)?;
    wait_until("source PV Available again", TIMEOUT, || async {
        Ok(pv_phase(&env.client, &pv_name).await?.as_deref() == Some("Available"))
    })
    .await?;

    // Attached disk: through the app's PVC.
    bind_pvc(env, "app-data", &pv_name).await?;
    env.create_snapshot("s2", "src").await?;
    wait_snapshot_ready(&snaps, "s2").await?;
    let vs = Api::<kube::api::DynamicObject>::namespaced_with(
        env.client.clone(),
        &env.ns.name,
        &kompox_controller::snapshot::volume_snapshot_resource(),
    )
    .get("k4x-snap-s2")
    .await?;
    assert_eq!(
        vs.data["spec"]["source"]["persistentVolumeClaimName"],
        "app-data"
    );
    assert_eq!(
        pv_phase(&env.client, &pv_name).await?.as_deref(),
        Some("Bound")
    );

    // Restore: new disks from s1, with exactly the bytes of s1 time; the CSI chain shows the
    // snapshot as each new volume's content source. A disk is at least the snapshot's size: a
    // 1Gi spec gets the snapshot's 2Gi (the provisioner refuses less), a 3Gi spec its 3Gi.
    let t1 = Instant::now();
    env.create_disk(
        "restored",
        json!({"size": "1Gi", "fromSnapshot": {"name": "s1"}, "deletionPolicy": "Delete"}),
    )
    .await?;
    let restored = wait_disk_ready(&api, "restored").await?;
    println!(
        "restore -> Ready with the snapshot's data: {:?}",
        t1.elapsed()
    );
    let restored_handle = check_restored(env, &restored, &snap_handle, &at_s1, 2 * GI).await?;
    assert_ne!(restored_handle, src_handle);
    env.create_disk(
        "restored-larger",
        json!({"size": "3Gi", "fromSnapshot": {"name": "s1"}, "deletionPolicy": "Delete"}),
    )
    .await?;
    let larger = wait_disk_ready(&api, "restored-larger").await?;
    let larger_handle = check_restored(env, &larger, &snap_handle, &at_s1, 3 * GI).await?;

    // Adoption: the provider snapshot by its handle alone (as another cluster of the same
    // cloud account would name it) — a pre-provisioned VolumeSnapshotContent, Retain — restores
    // the same bytes. Deleting the adopting object leaves the provider's snapshot.
    let both: Result<KompoxSnapshot, _> = serde_json::from_value(json!({
        "apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxSnapshot",
        "metadata": {"name": "both"},
        "spec": {"diskRef": {"name": "src"}, "handle": snap_handle},
    }));
    let refused = snaps.create(&PostParams::default(), &both?).await;
    ensure!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("exactly one of diskRef or handle")),
        "diskRef and handle together must be refused: {refused:?}"
    );
    let adopted: KompoxSnapshot = serde_json::from_value(json!({
        "apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxSnapshot",
        "metadata": {"name": "adopted"}, "spec": {"handle": snap_handle},
    }))?;
    snaps.create(&PostParams::default(), &adopted).await?;
    let adopted = wait_snapshot_ready(&snaps, "adopted").await?;
    let ast = adopted.status.clone().unwrap_or_default();
    assert_eq!(ast.snapshot_handle.as_deref(), Some(snap_handle.as_str()));
    assert_eq!(
        ast.restore_size.as_ref().map(|q| bytes(&q.0)).transpose()?,
        Some(2 * GI),
        "the imported snapshot's restoreSize comes from the driver"
    );
    let content_name = kompox_controller::snapshot::adopted_content_name(&env.ns.name, "adopted");
    let contents = Api::<kube::api::DynamicObject>::all_with(
        env.client.clone(),
        &kompox_controller::snapshot::volume_snapshot_content_resource(),
    );
    let content = contents.get(&content_name).await?;
    assert_eq!(content.data["spec"]["deletionPolicy"], "Retain");
    assert_eq!(
        content.data["spec"]["source"]["snapshotHandle"],
        snap_handle.as_str()
    );
    env.create_disk(
        "from-adopted",
        json!({"size": "2Gi", "fromSnapshot": {"name": "adopted"}, "deletionPolicy": "Delete"}),
    )
    .await?;
    let from_adopted = wait_disk_ready(&api, "from-adopted").await?;
    let adopted_handle = check_restored(env, &from_adopted, &snap_handle, &at_s1, 2 * GI).await?;
    delete_and_wait(&snaps, "adopted").await?;
    wait_until("the adopted content removed", TIMEOUT, || async {
        Ok(contents.get_opt(&content_name).await?.is_none())
    })
    .await?;
    ensure!(
        driver_snapshots()?.contains(&snap_handle),
        "deleting the adopting KompoxSnapshot deleted the provider's snapshot {snap_handle}"
    );
    delete_and_wait(&api, "from-adopted").await?;

    // Deleting the snapshots deletes the VolumeSnapshots and the CSI snapshots.
    delete_and_wait(&snaps, "s1").await?;
    delete_and_wait(&snaps, "s2").await?;
    wait_until("CSI snapshot deleted", TIMEOUT, || async {
        Ok(!driver_snapshots()?.contains(&snap_handle))
    })
    .await?;
    delete_and_wait(&pvcs, "app-data").await?;
    delete_and_wait(&api, "restored").await?;
    delete_and_wait(&api, "restored-larger").await?;
    delete_and_wait(&api, "src").await?;
    let handles = [
        &src_handle,
        &restored_handle,
        &larger_handle,
        &adopted_handle,
    ];
    wait_until("volumes deleted", TIMEOUT, || async {
        let v = driver_volumes()?;
        Ok(handles.iter().all(|h| !v.contains(*h)))
    })
    .await?;
    for h in handles {
        ensure!(
            !volume_dir_exists(h)?,
            "volume {h} deleted but its data left"
        );
    }
    Ok(())
}

/// Bytes in a GiB.
const GI: u128 = 1 << 30;

/// The bytes of a quantity from the API.
fn bytes(q: &str) -> Result<u128> {
    quantity::parse_bytes(q).with_context(|| format!("quantity {q:?}"))
}

/// Checks a disk restored from the snapshot with handle `snap_handle`: its volume holds the
/// snapshot-time files `want`, the driver created it from that snapshot, and the volume has
/// `size` bytes in the driver and in the static PV's capacity; it has a zone. Returns the
/// volume's handle.
async fn check_restored(
    env: &Env,
    disk: &KompoxDisk,
    snap_handle: &str,
    want: &BTreeMap<String, Vec<u8>>,
    size: u128,
) -> Result<String> {
    let name = disk.name_any();
    let handle = handle_of(disk)?;
    let got = volume_files(&handle)?;
    ensure!(
        &got == want,
        "{name}: volume {handle} does not hold the bytes of snapshot time: has {}, want {}",
        describe(&got),
        describe(want)
    );
    let calls = driver_calls("CreateVolume")?;
    let call = calls
        .iter()
        .find(|c| {
            c.response["volume"]["volume_id"] == handle.as_str()
                && c.request["parameters"]["csi.storage.k8s.io/pvc/namespace"]
                    == env.ns.name.as_str()
        })
        .with_context(|| format!("{name}: no CreateVolume for volume {handle}"))?;
    ensure!(
        call.request["volume_content_source"]["Type"]["Snapshot"]["snapshot_id"] == snap_handle,
        "{name}: volume {handle} not created from snapshot {snap_handle}: {}",
        call.request
    );
    let pv_name = pv_of(disk)?;
    let pv = Api::<PersistentVolume>::all(env.client.clone())
        .get(&pv_name)
        .await?;
    let capacity = pv
        .spec
        .and_then(|s| s.capacity)
        .and_then(|c| c.get("storage").map(|q| q.0.clone()))
        .with_context(|| format!("{name}: PV {pv_name} without capacity"))?;
    let driver = driver_volume_capacity(&handle)?.map(u128::from);
    ensure!(
        driver == Some(size),
        "{name}: driver volume {handle} has {driver:?} bytes, want {size}"
    );
    ensure!(
        bytes(&capacity)? == size,
        "{name}: PV {pv_name} has capacity {capacity}, but its volume {handle} has {size} bytes"
    );
    // The restored volume lives where the driver put it: the static PV carries that zone.
    ensure!(
        disk.status.as_ref().and_then(|s| s.zone.as_ref()).is_some(),
        "{name}: restored disk without zone"
    );
    Ok(handle)
}

#[tokio::test]
async fn snapshot_without_a_class_for_the_driver_is_unsupported() -> Result<()> {
    run("nosnap", |env| {
        Box::pin(snapshot_without_a_class_for_the_driver_is_unsupported_body(
            env,
        ))
    })
    .await
}

async fn snapshot_without_a_class_for_the_driver_is_unsupported_body(env: &mut Env) -> Result<()> {
    let api = env.disks();
    // A volume of a driver without a VolumeSnapshotClass, adopted by handle (nothing to provision).
    env.create_disk(
        "foreign",
        json!({"size": "1Gi", "handle": "vol-foreign-1",
        "options": {"csiDriver": "other.csi.example.com"}}),
    )
    .await?;
    let d = wait_disk_ready(&api, "foreign").await?;
    let pv = Api::<PersistentVolume>::all(env.client.clone())
        .get(&pv_of(&d)?)
        .await?;
    assert_eq!(
        pv.spec.and_then(|s| s.csi).map(|c| c.driver).as_deref(),
        Some("other.csi.example.com")
    );
    env.create_snapshot("s", "foreign").await?;
    let s = wait_for_condition(
        env.snapshots(),
        "s",
        |s: Option<&KompoxSnapshot>| {
            s.and_then(|s| s.status.as_ref())
                .and_then(|s| condition::find(&s.conditions, types::DEGRADED))
                .is_some_and(|c| c.status == "True" && c.reason == reasons::SNAPSHOT_UNSUPPORTED)
        },
        TIMEOUT,
    )
    .await?
    .context("snapshot gone")?;
    let msg = s
        .status
        .and_then(|s| condition::find(&s.conditions, types::DEGRADED).map(|c| c.message.clone()))
        .unwrap_or_default();
    assert!(msg.contains("other.csi.example.com"), "{msg}");
    delete_and_wait(&env.snapshots(), "s").await?;
    delete_and_wait(&api, "foreign").await?; // Orphan: the foreign volume is not touched
    Ok(())
}

#[tokio::test]
async fn bad_specs_are_rejected_or_degraded_naming_the_field() -> Result<()> {
    run("bad", |env| {
        Box::pin(bad_specs_are_rejected_or_degraded_naming_the_field_body(
            env,
        ))
    })
    .await
}

async fn bad_specs_are_rejected_or_degraded_naming_the_field_body(env: &mut Env) -> Result<()> {
    let api = env.disks();
    // Rejected by the CRD schema.
    let err = env
        .create_disk_raw("p", json!({"size": "1Gi", "provider": {"type": "azure"}}))
        .await;
    let msg = format!("{:#}", err.err().context("unknown provider accepted")?);
    assert!(msg.contains("spec.provider.type"), "{msg}");
    let err = env
        .create_disk_raw(
            "x",
            json!({"size": "1Gi", "handle": "h", "fromSnapshot": {"name": "s"}}),
        )
        .await;
    assert!(err.is_err(), "fromSnapshot + handle accepted");
    let err = env.create_disk_raw("y", json!({"size": "ten"})).await;
    assert!(format!("{:#}", err.err().context("size ten accepted")?).contains("spec.size"));
    // Accepted by the schema, Degraded by the controller, nothing provisioned.
    for (name, spec, field) in [
        ("neg", json!({"size": "-1Gi"}), "spec.size"),
        ("zero", json!({"size": "0"}), "spec.size"),
        ("nozone", json!({"size": "1Gi", "zone": "9"}), "spec.zone"),
        (
            "oke",
            json!({"size": "1Gi", "zone": "1", "provider": {"type": "oke"}}),
            "spec.zone",
        ),
    ] {
        env.create_disk(name, spec.clone()).await?;
        let msg = wait_disk_degraded(&api, name, reasons::INVALID_SPEC).await?;
        assert!(msg.starts_with(field), "{spec}: {msg}");
    }
    let pvcs: Api<PersistentVolumeClaim> = env.ns.api();
    assert!(
        pvcs.list(&ListParams::default()).await?.items.is_empty(),
        "a bad disk provisioned"
    );
    // A fix makes it Ready.
    api.patch(
        "nozone",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"spec": {"zone": "1", "deletionPolicy": "Delete"}})),
    )
    .await?;
    wait_disk_ready(&api, "nozone").await?;
    for n in ["neg", "zero", "nozone", "oke"] {
        delete_and_wait(&api, n).await?;
    }
    Ok(())
}

/// Half the time: wait up to 400 ms, kill -9 the controller and start it again.
async fn maybe_kill(env: &mut Env, kills: &mut u32) -> Result<()> {
    if rand::random::<bool>() {
        tokio::time::sleep(Duration::from_millis(rand::random::<u64>() % 400)).await;
        env.controller.kill9().await?;
        *kills += 1;
        env.controller.restart().await?;
    }
    Ok(())
}

/// Kill -9 the controller at random points of 20 create/delete cycles, a third of which also
/// grow the disk (through the temporary resize PVC); it converges, the grown volumes have the
/// new size, and nothing is left behind: no PV, PVC (resize PVCs included) or volume.
#[tokio::test]
async fn kill9_during_create_delete_cycles_converges_without_leaks() -> Result<()> {
    run("chaos", |env| {
        Box::pin(kill9_during_create_delete_cycles_converges_without_leaks_body(env))
    })
    .await
}

async fn kill9_during_create_delete_cycles_converges_without_leaks_body(
    env: &mut Env,
) -> Result<()> {
    let api = env.disks();
    let pvs: Api<PersistentVolume> = Api::all(env.client.clone());
    let pvcs: Api<PersistentVolumeClaim> = env.ns.api();
    let mut kills = 0;
    let mut handles = BTreeSet::new();
    let mut ready_times = Vec::new();
    let mut grow_times = Vec::new();
    for i in 0..20u32 {
        let name = format!("c{i}");
        let spec = if i % 4 == 3 {
            json!({"size": "1Gi", "zone": "1", "deletionPolicy": "Delete"})
        } else {
            json!({"size": "1Gi", "deletionPolicy": "Delete"})
        };
        let t0 = Instant::now();
        env.create_disk(&name, spec).await?;
        maybe_kill(env, &mut kills).await?;
        let d = wait_disk_ready(&api, &name).await?;
        ready_times.push(t0.elapsed());
        let handle = handle_of(&d)?;
        handles.insert(handle.clone());
        if i % 3 == 1 {
            let t0 = Instant::now();
            api.patch(
                &name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(json!({"spec": {"size": "2Gi"}})),
            )
            .await?;
            maybe_kill(env, &mut kills).await?;
            wait_disk(&api, &name, |s| {
                ready(&s.conditions)
                    && s.observed_generation == Some(2)
                    && s.size.as_ref().is_some_and(|q| q.0 == "2Gi")
            })
            .await?;
            grow_times.push(t0.elapsed());
            let bytes = driver_volume_capacity(&handle)?;
            ensure!(
                bytes == Some(2 << 30),
                "{name} Ready at 2Gi but volume {handle} has {bytes:?} bytes"
            );
        }
        api.delete(&name, &DeleteParams::default()).await?;
        maybe_kill(env, &mut kills).await?;
        wait_until(&format!("{name} deleted"), TIMEOUT, || async {
            Ok(api.get_opt(&name).await?.is_none())
        })
        .await?;
        // deletionPolicy Delete: the finalizer holds the disk until its PVs and volume are gone.
        let selector = format!(
            "kompox.dev/disk={name},kompox.dev/disk-namespace={}",
            env.ns.name
        );
        let left = pvs
            .list(&ListParams::default().labels(&selector))
            .await?
            .items;
        ensure!(
            left.is_empty(),
            "{name} gone but PVs left: {:?}",
            left.iter().map(|p| p.name_any()).collect::<Vec<_>>()
        );
        ensure!(
            !driver_volumes()?.contains(&handle),
            "{name} gone but volume {handle} left"
        );
        ensure!(
            !volume_dir_exists(&handle)?,
            "{name} gone but the directory of volume {handle} left"
        );
    }
    env.controller.wait_ready(TIMEOUT).await?;
    println!(
        "chaos: 20 cycles, {kills} kill -9; create->Ready {ready_times:?}; 1Gi->2Gi Ready {grow_times:?}"
    );

    // Leftovers: PVs of the namespace, PVCs in it, volumes the driver made for it.
    let label = format!("kompox.dev/disk-namespace={}", env.ns.name);
    let ns = env.ns.name.clone();
    wait_until("no leftover PV, PVC, volume or volume directory", TIMEOUT, || async {
        let pv_left: Vec<String> = pvs
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|pv| {
                pv.labels().get("kompox.dev/disk-namespace") == Some(&ns)
                    || pv
                        .spec
                        .as_ref()
                        .and_then(|s| s.claim_ref.as_ref())
                        .and_then(|c| c.namespace.as_deref())
                        == Some(ns.as_str())
            })
            .map(|pv| pv.name_any())
            .collect();
        let pvc_left = pvcs.list(&ListParams::default()).await?.items.len();
        let made = volumes_created_in(&ns)?;
        let held = driver_volumes()?;
        let vol_left: Vec<&String> = made.iter().filter(|v| held.contains(*v)).collect();
        let mut dir_left = Vec::new();
        for v in &made {
            if volume_dir_exists(v)? {
                dir_left.push(v);
            }
        }
        if pv_left.is_empty() && pvc_left == 0 && vol_left.is_empty() && dir_left.is_empty() {
            return Ok(true);
        }
        println!(
            "leftovers: PVs {pv_left:?}, PVCs {pvc_left}, volumes {vol_left:?}, volume directories {dir_left:?}"
        );
        Ok(false)
    })
    .await
    .with_context(|| format!("label {label}"))?;
    let made = volumes_created_in(&env.ns.name)?;
    ensure!(
        made.len() >= 20,
        "driver log shows only {} volumes for the namespace",
        made.len()
    );
    ensure!(handles.len() == 20, "handles reused: {handles:?}");
    Ok(())
}

#[tokio::test]
async fn metrics_and_health_are_served() -> Result<()> {
    run("metrics", |env| {
        Box::pin(metrics_and_health_are_served_body(env))
    })
    .await
}

async fn metrics_and_health_are_served_body(env: &mut Env) -> Result<()> {
    env.create_disk("m", json!({"size": "1Gi", "deletionPolicy": "Delete"}))
        .await?;
    wait_disk_ready(&env.disks(), "m").await?;
    // /metrics: anonymous 401, a token without the right 403, the metrics reader's 200
    // (TokenReview + SubjectAccessReview by the controller's own ServiceAccount).
    let tokens = kompox_e2e::metrics_tokens().await?;
    let (code, body) = env.controller.get("/metrics").await?;
    assert_eq!(code, 401, "{body}");
    let (code, body) = env
        .controller
        .get_as("/metrics", Some("not-a-token"))
        .await?;
    assert_eq!(code, 401, "{body}");
    let (code, body) = env
        .controller
        .get_as("/metrics", Some(&tokens.nobody))
        .await?;
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains("system:serviceaccount:kompox-e2e-metrics:nobody")
            && body.contains(r#"cannot get path "/metrics""#),
        "{body}"
    );
    let (code, body) = env
        .controller
        .get_as("/metrics", Some(&tokens.reader))
        .await?;
    assert_eq!(code, 200);
    assert!(
        body.contains("kompox_controller_reconciles_total{controller=\"disk\"}"),
        "{body}"
    );
    assert!(
        body.contains("kompox_controller_reconcile_duration_seconds_bucket"),
        "{body}"
    );
    assert!(
        body.contains(r#"kompox_build_info{component="controller",version=""#),
        "{body}"
    );
    assert!(body.contains("kompox_controller_leader 1"), "{body}");
    // Served over TLS: when its certificate expires.
    assert!(
        body.contains(
            r#"kompox_controller_certificate_expiry_timestamp_seconds{certificate="serving"} "#
        ),
        "{body}"
    );
    assert_eq!(env.controller.get("/healthz").await?.0, 200);
    assert_eq!(env.controller.get("/readyz").await?.0, 200);
    delete_and_wait(&env.disks(), "m").await?;
    Ok(())
}

/// Two replicas on one Lease: only the holder reconciles; kill -9 it and the standby takes
/// over within the lease duration.
#[tokio::test]
async fn leader_election_fails_over() -> Result<()> {
    cluster();
    ensure_crds().await?;
    let client = admin_client().await?;
    let ns = TestNamespace::create(&client, "lease", &[]).await?;
    let lease = format!("e2e-{}", ns.name);
    let opts = Options {
        namespace: ns.name.clone(),
        lease: Some(lease.clone()),
        env: Vec::new(),
    };
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), kompox_e2e::controller::SYSTEM_NAMESPACE);
    let holder = || async {
        Ok::<_, anyhow::Error>(
            leases
                .get_opt(&lease)
                .await?
                .and_then(|l| l.spec)
                .and_then(|s| s.holder_identity)
                .filter(|h| !h.is_empty()),
        )
    };
    // `a` takes the lease before `b` starts, so `b` is the standby.
    let mut a = ControllerProcess::start(opts.clone()).await?;
    let disks: Api<KompoxDisk> = ns.api();
    let mut b: Option<ControllerProcess> = None;
    let body = async {
        wait_until("the first replica holds the lease", TIMEOUT, || async {
            Ok(holder().await?.is_some())
        })
        .await?;
        let first = holder().await?.context("no holder")?;
        b = Some(ControllerProcess::start(opts.clone()).await?);
        let mk = |name: &str| -> Result<KompoxDisk> {
            Ok(serde_json::from_value(
                json!({"apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxDisk",
                "metadata": {"name": name}, "spec": {"size": "1Gi", "deletionPolicy": "Delete"}}),
            )?)
        };
        disks.create(&PostParams::default(), &mk("l1")?).await?;
        wait_disk_ready(&disks, "l1").await?;
        // The leader gauge: 1 on the holder, 0 on the standby.
        const LEADER: &str = "kompox_controller_leader";
        ensure!(
            metric(&a, LEADER, "").await? == 1.0,
            "the holder's kompox_controller_leader"
        );
        let standby = b.as_ref().context("no standby")?;
        ensure!(
            metric(standby, LEADER, "").await? == 0.0,
            "the standby's kompox_controller_leader"
        );
        a.kill9().await?;
        let t = Instant::now();
        disks.create(&PostParams::default(), &mk("l2")?).await?;
        wait_disk_ready(&disks, "l2").await?;
        let second = holder().await?.context("no holder")?;
        println!("failover: {first} -> {second} in {:?}", t.elapsed());
        let standby = b.as_ref().context("no standby")?;
        ensure!(
            metric(standby, LEADER, "").await? == 1.0,
            "the new holder's kompox_controller_leader"
        );
        if first == second {
            bail!("holder did not change after kill -9 of the first replica (was {first})");
        }
        Ok(())
    }
    .await;
    // Teardown whatever happened: with a leader running, the disks (Delete) free their volumes.
    let teardown = async {
        if b.is_none() || !a.is_running() {
            a.restart().await?;
        }
        for d in disks.list(&ListParams::default()).await?.items {
            delete_and_wait(&disks, &d.name_any()).await?;
        }
        if let Some(b) = b {
            b.stop(Duration::from_secs(20)).await?;
        }
        a.stop(Duration::from_secs(20)).await.ok();
        leases.delete(&lease, &DeleteParams::default()).await.ok();
        ns.cleanup().await
    }
    .await;
    body.and(teardown)
}

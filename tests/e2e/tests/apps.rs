//! App controller end to end: `kompox-controller` as a local process (its ServiceAccount, the
//! RBAC of `manifests/controller/rbac.yaml`, scoped to the test's namespace) turns the Gitea
//! sample into a running app on the local control plane — kwok nodes in zones japaneast-1..3,
//! disks provisioned for real by the storage controller in the same process through the mock
//! CSI driver — and keeps it right as compose, Secrets and disks change. No Traefik runs
//! locally, so an Ingress counts as admitted once it exists (see the controller's docs).

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, Node, PersistentVolume, PersistentVolumeClaim, Pod, Secret, Service,
};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kompox_core::api::condition::{self, reasons, types};
use kompox_core::api::{KompoxApp, KompoxDisk, VolumeSwitchPhase};
use kompox_e2e::apps::{
    PodWatch, app_reconciles, apply, is_ready, load_sample, put_compose, sample_compose, small_app,
    small_compose, wait_app, wait_degraded, wait_ready,
};
use kompox_e2e::controller::{ControllerProcess, TestEnv, finish, run, scoped};
use kompox_e2e::webhook::template_hash;
use kompox_e2e::{TestNamespace, delete_all, delete_and_wait, wait_until};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(90);
const APP: &str = "gitea";
const DEPLOYMENT: &str = "gitea-app";
const CLAIM: &str = "gitea-default";
const HOLD: &str = "e2e.kompox.dev/hold";

struct Env {
    client: Client,
    ns: TestNamespace,
    controller: ControllerProcess,
}

impl TestEnv for Env {
    async fn start(prefix: &str) -> Result<Self> {
        // An app namespace as `kubectl kompox` creates it: managed by Kompox, with a tenant.
        let labels = [
            ("app.kubernetes.io/managed-by", "kompox"),
            ("kompox.dev/tenant", "team-a"),
        ];
        let (client, ns, controller) = scoped(prefix, &labels).await?;
        Ok(Self {
            client,
            ns,
            controller,
        })
    }

    /// Removes the test's hold finalizers, deletes apps (through the controller), then
    /// [`finish`]: disks, the controller, the namespace.
    async fn teardown(self) -> Result<()> {
        let pvcs: Api<PersistentVolumeClaim> = self.ns.api();
        for p in pvcs.list(&ListParams::default()).await?.items {
            if p.finalizers().iter().any(|f| f == HOLD) {
                unhold(&pvcs, &p.name_any()).await?;
            }
        }
        delete_all(&self.apps()).await?;
        finish(self.ns, self.controller).await
    }

    fn controller(&mut self) -> &mut ControllerProcess {
        &mut self.controller
    }
}

impl Env {
    fn apps(&self) -> Api<KompoxApp> {
        self.ns.api()
    }

    fn disks(&self) -> Api<KompoxDisk> {
        self.ns.api()
    }

    fn deployments(&self) -> Api<Deployment> {
        self.ns.api()
    }
}

/// Adds the test's finalizer to PVC `name`, so its deletion waits for [`unhold`].
async fn hold(pvcs: &Api<PersistentVolumeClaim>, name: &str) -> Result<()> {
    let p = pvcs.get(name).await?;
    let mut fins: Vec<String> = p.finalizers().to_vec();
    fins.push(HOLD.to_owned());
    let patch = json!({"metadata": {"finalizers": fins, "resourceVersion": p.resource_version()}});
    pvcs.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

async fn unhold(pvcs: &Api<PersistentVolumeClaim>, name: &str) -> Result<()> {
    let Some(p) = pvcs.get_opt(name).await? else {
        return Ok(());
    };
    let keep: Vec<String> = p
        .finalizers()
        .iter()
        .filter(|f| *f != HOLD)
        .cloned()
        .collect();
    let patch = json!({"metadata": {"finalizers": keep, "resourceVersion": p.resource_version()}});
    pvcs.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

fn deployment_image(d: &Deployment) -> Option<String> {
    d.spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == "gitea")
        .and_then(|c| c.image.clone())
}

/// The app's Running Pods (not being deleted).
async fn running_pods(env: &Env) -> Result<Vec<Pod>> {
    let pods: Api<Pod> = env.ns.api();
    Ok(pods
        .list(&ListParams::default().labels(&format!("kompox.dev/app={APP}")))
        .await?
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .collect())
}

/// Waits until exactly one Running Pod of the app satisfies `pred`, and returns it.
async fn wait_one_pod(env: &Env, what: &str, pred: impl Fn(&Pod) -> bool) -> Result<Pod> {
    wait_until(what, TIMEOUT, || async {
        let pods = running_pods(env).await?;
        Ok(pods.len() == 1 && pods.iter().all(&pred))
    })
    .await?;
    running_pods(env)
        .await?
        .into_iter()
        .next()
        .context("the Pod vanished")
}

fn pod_image(p: &Pod) -> Option<String> {
    p.spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == "gitea")
        .and_then(|c| c.image.clone())
}

async fn node_zone(client: &Client, pod: &Pod) -> Result<String> {
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .context("Pod not scheduled")?;
    let n = Api::<Node>::all(client.clone()).get(&node).await?;
    n.labels()
        .get("topology.kubernetes.io/zone")
        .cloned()
        .with_context(|| format!("node {node} without a zone"))
}

fn pv_of(d: &KompoxDisk) -> Result<String> {
    d.status
        .as_ref()
        .and_then(|s| s.pv_name.clone())
        .context("no status.pvName")
}

fn attached(d: &KompoxDisk) -> Option<(String, String)> {
    d.status
        .as_ref()
        .and_then(|s| s.attached_to.as_ref())
        .map(|a| (a.app.clone(), a.volume.clone()))
}

async fn wait_disk_ready(api: &Api<KompoxDisk>, name: &str) -> Result<KompoxDisk> {
    wait_until(&format!("KompoxDisk {name} Ready"), TIMEOUT, || async {
        Ok(api
            .get(name)
            .await?
            .status
            .is_some_and(|s| condition::is_true(&s.conditions, types::READY)))
    })
    .await?;
    Ok(api.get(name).await?)
}

/// Waits until PVC `name` is Bound to `pv`.
async fn wait_pvc_bound(env: &Env, name: &str, pv: &str) -> Result<()> {
    let pvcs: Api<PersistentVolumeClaim> = env.ns.api();
    wait_until(&format!("PVC {name} Bound to {pv}"), TIMEOUT, || async {
        let p = pvcs.get(name).await?;
        Ok(p.spec.and_then(|s| s.volume_name).as_deref() == Some(pv)
            && p.status.and_then(|s| s.phase).as_deref() == Some("Bound"))
    })
    .await
}

#[tokio::test]
async fn gitea_runs_follows_its_inputs_switches_disks_and_is_deleted() -> Result<()> {
    run("apps", |env| Box::pin(gitea_body(env))).await
}

async fn gitea_body(env: &mut Env) -> Result<()> {
    let client = env.client.clone();
    let ns = env.ns.name.clone();
    let apps = env.apps();
    let disks = env.disks();
    let deps = env.deployments();

    // --- The sample becomes a running app. ---
    let docs = load_sample(&client, &ns, "gitea").await?;
    let app = wait_ready(&apps, APP, TIMEOUT).await?;
    let status = app.status.clone().context("no status")?;
    assert_eq!(status.ingress_hosts, ["gitea.example.com"]);
    assert!(
        status
            .rendered_hash
            .as_deref()
            .is_some_and(|h| h.starts_with("hmac-sha256:"))
    );
    let kinds: Vec<String> = status
        .inventory
        .iter()
        .map(|e| format!("{}/{}", e.kind, e.name))
        .collect();
    for want in [
        "Deployment/gitea-app",
        "Service/gitea",
        "Service/postgres",
        "Service/gitea-app",
        "Ingress/gitea-app",
        "PersistentVolumeClaim/gitea-default",
        "Secret/gitea-gitea-env",
        "Secret/gitea-postgres-env",
        "NetworkPolicy/kompox-gitea",
        "Role/kompox-gitea-operators",
        "RoleBinding/kompox-gitea-operators",
    ] {
        ensure!(kinds.iter().any(|k| k == want), "{want} not in {kinds:?}");
    }

    let disk = disks.get("default").await?;
    let pv = pv_of(&disk)?;
    let zone = disk
        .status
        .as_ref()
        .and_then(|s| s.zone.clone())
        .context("disk without zone")?;
    assert_eq!(attached(&disk), Some((APP.into(), "default".into())));
    wait_pvc_bound(env, CLAIM, &pv).await?;

    let svcs: Api<Service> = env.ns.api();
    for headless in ["gitea", "postgres"] {
        let s = svcs.get(headless).await?;
        assert_eq!(
            s.spec.and_then(|s| s.cluster_ip).as_deref(),
            Some("None"),
            "{headless} must be headless"
        );
    }
    let ingress = env.ns.api::<Ingress>().get("gitea-app").await?;
    let rules = ingress.spec.and_then(|s| s.rules).unwrap_or_default();
    assert_eq!(rules[0].host.as_deref(), Some("gitea.example.com"));
    let dep = deps.get(DEPLOYMENT).await?;
    let owner = dep.owner_references().first().cloned().context("owner")?;
    assert_eq!(owner.kind, "KompoxApp");
    assert_eq!(owner.controller, Some(true));
    assert_eq!(Some(owner.uid), app.metadata.uid.clone());
    assert!(
        dep.metadata
            .managed_fields
            .iter()
            .flatten()
            .any(|m| m.manager.as_deref() == Some("kompox")
                && m.operation.as_deref() == Some("Apply")),
        "applied by server-side apply as field manager kompox"
    );

    let pod = wait_one_pod(env, "the Gitea Pod Running", |_| true).await?;
    assert_eq!(
        node_zone(&client, &pod).await?,
        zone,
        "Pod in the disk's zone"
    );

    // Namespace hygiene.
    let np = env.ns.api::<NetworkPolicy>().get("kompox-gitea").await?;
    let np_spec = np.spec.context("NetworkPolicy without spec")?;
    assert_eq!(np_spec.policy_types, Some(vec!["Ingress".to_string()]));
    let rb = env
        .ns
        .api::<RoleBinding>()
        .get("kompox-gitea-operators")
        .await?;
    assert_eq!(
        rb.subjects.unwrap_or_default()[0].name,
        "kompox:tenant:team-a"
    );
    env.ns.api::<Role>().get("kompox-gitea-operators").await?;

    // --- Unchanged content: a reconcile applies nothing new, the Deployment does not move. ---
    let generation = dep.metadata.generation;
    let before = app_reconciles(&env.controller).await?;
    let secrets: Api<Secret> = env.ns.api();
    secrets
        .patch(
            "gitea-env-files",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})),
        )
        .await?;
    wait_until("a reconcile after the touch", TIMEOUT, || async {
        Ok(app_reconciles(&env.controller).await? > before)
    })
    .await?;
    let app_now = wait_ready(&apps, APP, TIMEOUT).await?;
    assert_eq!(deps.get(DEPLOYMENT).await?.metadata.generation, generation);
    assert_eq!(
        app_now.status.and_then(|s| s.rendered_hash),
        status.rendered_hash,
        "same inputs, same rendered set"
    );

    // --- A new image tag in compose.yml rolls the Deployment. ---
    let compose = sample_compose("gitea")?;
    let retagged = compose.replace("gitea:1.24.6", "gitea:1.24.7");
    ensure!(
        retagged != compose,
        "the sample's tag changed; update the test"
    );
    put_compose(&client, &ns, "gitea-compose", &retagged).await?;
    let pod = wait_one_pod(env, "a Pod with the new image", |p| {
        pod_image(p).as_deref() == Some("docker.gitea.com/gitea:1.24.7")
    })
    .await?;
    wait_ready(&apps, APP, TIMEOUT).await?;
    let dep = deps.get(DEPLOYMENT).await?;
    assert_eq!(
        deployment_image(&dep).as_deref(),
        Some("docker.gitea.com/gitea:1.24.7")
    );
    let first_pod = pod.name_any();

    // --- Rotating the env Secret changes the env-hash and rolls the Deployment. ---
    let hash_before = template_hash(&dep).context("no env-hash")?;
    secrets
        .patch(
            "gitea-env-files",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"postgres.env": "POSTGRES_PASSWORD=rotated\n"}})),
        )
        .await?;
    wait_one_pod(env, "a Pod after the Secret rotation", |p| {
        p.name_any() != first_pod
    })
    .await?;
    let app_now = wait_ready(&apps, APP, TIMEOUT).await?;
    let dep = deps.get(DEPLOYMENT).await?;
    let hash_after = template_hash(&dep).context("no env-hash")?;
    assert_ne!(hash_before, hash_after, "env-hash must follow the Secret");
    let good_hash = app_now.status.and_then(|s| s.rendered_hash);

    // --- A broken compose file: Degraded naming the path, nothing applied. ---
    let live_before = deps.get(DEPLOYMENT).await?;
    let broken = retagged.replace("\"3000:3000\"", "\"notaport\"");
    ensure!(broken != retagged, "could not break the sample");
    put_compose(&client, &ns, "gitea-compose", &broken).await?;
    let msg = wait_degraded(&apps, APP, reasons::INVALID_COMPOSE, TIMEOUT).await?;
    ensure!(
        msg.contains("services.gitea.ports[0]"),
        "Degraded message names the path: {msg}"
    );
    let app_now = apps.get(APP).await?;
    let st = app_now.status.context("no status")?;
    assert!(!st.ready);
    assert_eq!(st.rendered_hash, good_hash, "the last applied set is kept");
    let live_after = deps.get(DEPLOYMENT).await?;
    assert_eq!(
        live_after.metadata.generation,
        live_before.metadata.generation
    );
    assert_eq!(
        deployment_image(&live_after),
        deployment_image(&live_before)
    );
    assert_eq!(template_hash(&live_after), template_hash(&live_before));
    put_compose(&client, &ns, "gitea-compose", &retagged).await?;
    wait_ready(&apps, APP, TIMEOUT).await?;

    // --- RWO switch to a fresh disk, with the controller killed mid-switch. ---
    apply(
        &client,
        &ns,
        &json!({
            "apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxDisk",
            "metadata": {"name": "next"}, "spec": {"size": "10Gi", "zone": "1"},
        }),
    )
    .await?;
    let next = wait_disk_ready(&disks, "next").await?;
    let next_pv = pv_of(&next)?;
    let watch = PodWatch::start(&client, &ns).await?;
    let old_pod = wait_one_pod(env, "the Pod before the switch", |_| true).await?;
    // Hold the old PVC so the switch stops in Rebind, where the controller is killed.
    let pvcs: Api<PersistentVolumeClaim> = env.ns.api();
    hold(&pvcs, CLAIM).await?;
    let mut app_doc = docs
        .iter()
        .find(|d| d["kind"] == "KompoxApp")
        .cloned()
        .context("sample without KompoxApp")?;
    app_doc["spec"]["volumes"][0]["diskRef"]["name"] = json!("next");
    apply(&client, &ns, &app_doc).await?;
    wait_app(&apps, APP, "the switch in Rebind", TIMEOUT, |a| {
        a.status
            .as_ref()
            .and_then(|s| s.volume_switch.as_ref())
            .is_some_and(|s| s.phase == VolumeSwitchPhase::Rebind)
    })
    .await?;
    // The PVC is being deleted and held: the old Pod is gone, no new one may exist.
    wait_until("the PVC to be terminating", TIMEOUT, || async {
        Ok(pvcs.get(CLAIM).await?.metadata.deletion_timestamp.is_some())
    })
    .await?;
    env.controller.kill9().await?;
    let sw = apps
        .get(APP)
        .await?
        .status
        .and_then(|s| s.volume_switch)
        .context("volumeSwitch lost")?;
    assert_eq!(
        (
            sw.from_disk.as_str(),
            sw.to_disk.as_str(),
            sw.volume.as_str()
        ),
        ("default", "next", "default")
    );
    ensure!(running_pods(env).await?.is_empty(), "no Pod during Rebind");
    assert_eq!(
        deps.get(DEPLOYMENT).await?.spec.and_then(|s| s.replicas),
        Some(0)
    );
    // The old disk stays claimed until the switch is over.
    assert_eq!(
        attached(&disks.get("default").await?),
        Some((APP.into(), "default".into()))
    );
    assert_eq!(
        attached(&disks.get("next").await?),
        Some((APP.into(), "default".into()))
    );
    env.controller.restart().await?;
    env.controller.wait_ready(TIMEOUT).await?;
    unhold(&pvcs, CLAIM).await?;
    wait_app(&apps, APP, "the switch to finish", TIMEOUT, |a| {
        a.status
            .as_ref()
            .is_some_and(|s| s.volume_switch.is_none() && is_ready(s, a.metadata.generation))
    })
    .await?;
    wait_pvc_bound(env, CLAIM, &next_pv).await?;
    let new_pod = wait_one_pod(env, "the Pod after the switch", |_| true).await?;
    ensure!(
        new_pod.name_any() != old_pod.name_any(),
        "a new Pod after the switch"
    );
    assert_eq!(
        node_zone(&client, &new_pod).await?,
        next.status
            .as_ref()
            .and_then(|s| s.zone.clone())
            .context("next without zone")?
    );
    wait_until("the old disk released", TIMEOUT, || async {
        Ok(attached(&disks.get("default").await?).is_none())
    })
    .await?;
    assert_eq!(
        attached(&disks.get("next").await?),
        Some((APP.into(), "default".into()))
    );
    let (max, at_once) = watch.max_concurrent(CLAIM);
    ensure!(
        max <= 1,
        "two Pods used PVC {CLAIM} at once: {at_once:?} (every Pod seen: {:?})",
        watch.seen()
    );
    ensure!(watch.error().is_none(), "Pod watch: {:?}", watch.error());
    drop(watch);

    // --- Deleting the app prunes everything it owns; Orphan disks stay. ---
    delete_and_wait(&apps, APP).await?;
    wait_until("owned objects garbage-collected", TIMEOUT, || async {
        Ok(deps.get_opt(DEPLOYMENT).await?.is_none()
            && svcs.list(&ListParams::default()).await?.items.is_empty()
            && env
                .ns
                .api::<Ingress>()
                .list(&ListParams::default())
                .await?
                .items
                .is_empty()
            && pvcs.list(&ListParams::default()).await?.items.is_empty()
            && env
                .ns
                .api::<NetworkPolicy>()
                .list(&ListParams::default())
                .await?
                .items
                .is_empty()
            && secrets.get_opt("gitea-gitea-env").await?.is_none())
    })
    .await?;
    ensure!(running_pods(env).await?.is_empty());
    for d in ["default", "next"] {
        let disk = disks.get(d).await?;
        assert_eq!(attached(&disk), None, "{d} released");
        let pv = pv_of(&disk)?;
        ensure!(
            Api::<PersistentVolume>::all(client.clone())
                .get_opt(&pv)
                .await?
                .is_some(),
            "PV {pv} of Orphan disk {d} kept"
        );
    }
    // The user's own objects are not the app's.
    ensure!(secrets.get_opt("gitea-env-files").await?.is_some());
    ensure!(
        env.ns
            .api::<ConfigMap>()
            .get_opt("gitea-compose")
            .await?
            .is_some()
    );
    Ok(())
}

#[tokio::test]
async fn claims_zones_and_quota_are_enforced_before_anything_is_applied() -> Result<()> {
    run("appguard", |env| Box::pin(guard_body(env))).await
}

async fn guard_body(env: &mut Env) -> Result<()> {
    let client = env.client.clone();
    let ns = env.ns.name.clone();
    let apps = env.apps();
    let disks = env.disks();
    let deps = env.deployments();
    put_compose(&client, &ns, "web", &small_compose("web")).await?;
    put_compose(&client, &ns, "web2", &small_compose("web2")).await?;
    apply(
        &client,
        &ns,
        &json!({
            "apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxDisk",
            "metadata": {"name": "shared"}, "spec": {"size": "1Gi", "zone": "1"},
        }),
    )
    .await?;
    wait_disk_ready(&disks, "shared").await?;
    let with_disk = |name: &str, zone: &str| {
        let compose = if name == "two" { "web2" } else { "web" };
        json!({
            "apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxApp",
            "metadata": {"name": name},
            "spec": {
                "compose": {"configMapRef": {"name": compose, "key": "compose.yml"}},
                "deployment": {"zone": zone},
                "volumes": [{"name": "data", "diskRef": {"name": "shared"}}],
            },
        })
    };

    // The first app claims the disk and runs.
    apply(&client, &ns, &with_disk("one", "1")).await?;
    wait_ready(&apps, "one", TIMEOUT).await?;
    assert_eq!(
        attached(&disks.get("shared").await?),
        Some(("one".into(), "data".into()))
    );

    // A second app on the same disk: DiskInUse naming the holder, nothing applied.
    apply(&client, &ns, &with_disk("two", "1")).await?;
    let msg = wait_degraded(&apps, "two", reasons::DISK_IN_USE, TIMEOUT).await?;
    ensure!(msg.contains("app one volume data"), "{msg}");
    ensure!(deps.get_opt("two-app").await?.is_none(), "two must not run");
    let pvcs: Api<PersistentVolumeClaim> = env.ns.api();
    ensure!(
        pvcs.get_opt("two-data").await?.is_none(),
        "two must bind nothing"
    );
    assert!(
        apps.get("two")
            .await?
            .status
            .is_some_and(|s| s.inventory.is_empty())
    );

    // A third app rendering a Service of the same name: it does not take the Service over.
    apply(&client, &ns, &small_app("three", "web")).await?;
    let msg = wait_degraded(&apps, "three", reasons::APPLY_FAILED, TIMEOUT).await?;
    ensure!(
        msg.contains("Service web") && msg.contains("KompoxApp one"),
        "{msg}"
    );
    let svc = env.ns.api::<Service>().get("web").await?;
    assert_eq!(
        svc.owner_references().first().map(|o| o.name.as_str()),
        Some("one")
    );
    ensure!(
        deps.get_opt("three-app").await?.is_none(),
        "three applied nothing"
    );
    delete_and_wait(&apps, "three").await?;

    // The first app moves to another zone than its disk: ZoneMismatch, live objects untouched.
    let before = deps.get("one-app").await?;
    apply(&client, &ns, &with_disk("one", "2")).await?;
    let msg = wait_degraded(&apps, "one", reasons::ZONE_MISMATCH, TIMEOUT).await?;
    ensure!(msg.contains("spec.deployment.zone"), "{msg}");
    let after = deps.get("one-app").await?;
    assert_eq!(after.metadata.generation, before.metadata.generation);
    assert_eq!(after.spec, before.spec);

    // Quota from an annotation; an invalid one is Degraded naming the annotation.
    let mut quota = with_disk("one", "1");
    quota["metadata"]["annotations"] =
        json!({"kompox.dev/resource-quota": "{\"hard\":{\"pods\":\"10\"}}"});
    apply(&client, &ns, &quota).await?;
    wait_ready(&apps, "one", TIMEOUT).await?;
    let q = env
        .ns
        .api::<k8s_openapi::api::core::v1::ResourceQuota>()
        .get("kompox-one")
        .await?;
    assert_eq!(
        q.spec
            .and_then(|s| s.hard)
            .and_then(|h| h.get("pods").map(|p| p.0.clone()))
            .as_deref(),
        Some("10")
    );
    quota["metadata"]["annotations"] = json!({"kompox.dev/resource-quota": "{oops"});
    apply(&client, &ns, &quota).await?;
    let msg = wait_degraded(&apps, "one", reasons::INVALID_SPEC, TIMEOUT).await?;
    ensure!(msg.contains("kompox.dev/resource-quota"), "{msg}");
    // Removing the annotation prunes the quota.
    apply(&client, &ns, &with_disk("one", "1")).await?;
    wait_ready(&apps, "one", TIMEOUT).await?;
    let quotas: Api<k8s_openapi::api::core::v1::ResourceQuota> = env.ns.api();
    wait_until("the quota pruned", TIMEOUT, || async {
        Ok(quotas.get_opt("kompox-one").await?.is_none())
    })
    .await?;

    // The holder goes: its Pods stop, its claim is released, the second app takes the disk.
    delete_and_wait(&apps, "one").await?;
    wait_ready(&apps, "two", TIMEOUT).await?;
    assert_eq!(
        attached(&disks.get("shared").await?),
        Some(("two".into(), "data".into()))
    );

    // The volume leaves the spec: its PVC is pruned, then the claim released.
    let mut no_volume = with_disk("two", "1");
    no_volume["spec"]["volumes"] = json!([]);
    apply(&client, &ns, &no_volume).await?;
    wait_until(
        "the volume's PVC pruned and the disk released",
        TIMEOUT,
        || async {
            Ok(pvcs.get_opt("two-data").await?.is_none()
                && attached(&disks.get("shared").await?).is_none())
        },
    )
    .await?;
    wait_ready(&apps, "two", TIMEOUT).await?;
    Ok(())
}

#[tokio::test]
async fn a_missing_compose_file_is_degraded_until_it_appears() -> Result<()> {
    run("appmissing", |env| Box::pin(missing_body(env))).await
}

async fn missing_body(env: &mut Env) -> Result<()> {
    let client = env.client.clone();
    let ns = env.ns.name.clone();
    let apps = env.apps();
    apply(&client, &ns, &small_app("late", "late-compose")).await?;
    let msg = wait_degraded(&apps, "late", reasons::REFERENCE_NOT_FOUND, TIMEOUT).await?;
    ensure!(msg.contains("spec.compose.configMapRef"), "{msg}");
    put_compose(&client, &ns, "late-compose", &small_compose("web")).await?;
    let a = wait_ready(&apps, "late", TIMEOUT).await?;
    if a.status
        .as_ref()
        .is_some_and(|s| s.ingress_hosts.is_empty())
    {
        Ok(())
    } else {
        bail!("no ingress expected: {:?}", a.status)
    }
}

#[tokio::test]
async fn a_suspended_app_runs_no_pod_and_stays_at_zero_until_resumed() -> Result<()> {
    run("appsuspend", |env| Box::pin(suspend_body(env))).await
}

/// The `Suspended` condition as (status, reason), when it describes the current generation.
fn suspended(a: &KompoxApp) -> Option<(String, String)> {
    let s = a.status.as_ref()?;
    let c = condition::find(&s.conditions, types::SUSPENDED)?;
    (s.observed_generation == a.metadata.generation).then(|| (c.status.clone(), c.reason.clone()))
}

/// Waits until the app is Suspended (True) for its current generation, and checks what that
/// promises: no Pod of the app exists, its Deployment asks for none, Ready is False.
async fn wait_suspended(env: &Env, name: &str) -> Result<KompoxApp> {
    wait_app(&env.apps(), name, "Suspended", TIMEOUT, |a| {
        suspended(a).is_some_and(|(s, _)| s == "True")
            && a.status.as_ref().is_some_and(|s| {
                condition::find(&s.conditions, types::READY)
                    .is_some_and(|c| c.reason == reasons::SUSPENDED)
            })
    })
    .await?;
    // The condition can lag a Pod that just appeared (a scale-up the controller is about to
    // take back): the Pods must be gone soon after, and stay gone.
    let pods: Api<Pod> = env.ns.api();
    let selector = format!("kompox.dev/app={name}");
    wait_until("no Pod of the suspended app", TIMEOUT, || async {
        Ok(pods
            .list(&ListParams::default().labels(&selector))
            .await?
            .items
            .is_empty())
    })
    .await?;
    let a = wait_app(&env.apps(), name, "still Suspended", TIMEOUT, |a| {
        suspended(a).is_some_and(|(s, _)| s == "True")
    })
    .await?;
    let dep = env.deployments().get(&format!("{name}-app")).await?;
    assert_eq!(dep.spec.and_then(|s| s.replicas), Some(0));
    let st = a.status.clone().context("no status")?;
    assert!(!st.ready, "a suspended app is not ready");
    let ready = condition::find(&st.conditions, types::READY).context("no Ready")?;
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", reasons::SUSPENDED)
    );
    ensure!(!condition::is_true(&st.conditions, types::PROGRESSING));
    Ok(a)
}

async fn scale(env: &Env, deployment: &str, replicas: i32) -> Result<()> {
    env.deployments()
        .patch_scale(
            deployment,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": replicas}})),
        )
        .await?;
    Ok(())
}

async fn suspend_body(env: &mut Env) -> Result<()> {
    let client = env.client.clone();
    let ns = env.ns.name.clone();
    let apps = env.apps();
    let deps = env.deployments();
    let name = "idle";
    let dep_name = "idle-app";
    put_compose(&client, &ns, "idle-compose", &small_compose("web")).await?;
    apply(
        &client,
        &ns,
        &json!({
            "apiVersion": "k8s.kompox.dev/v1alpha1", "kind": "KompoxDisk",
            "metadata": {"name": "idle-data"}, "spec": {"size": "1Gi", "zone": "1"},
        }),
    )
    .await?;
    let mut doc = small_app(name, "idle-compose");
    doc["spec"]["volumes"] = json!([{"name": "data", "diskRef": {"name": "idle-data"}}]);
    apply(&client, &ns, &doc).await?;
    let running = wait_ready(&apps, name, TIMEOUT).await?;
    ensure!(
        suspended(&running).is_none(),
        "an app never suspended has no Suspended condition"
    );
    let pods: Api<Pod> = env.ns.api();
    wait_until("the app's Pod", TIMEOUT, || async {
        Ok(!pods
            .list(&ListParams::default().labels(&format!("kompox.dev/app={name}")))
            .await?
            .items
            .is_empty())
    })
    .await?;

    // --- suspend: true scales to zero; Suspended once no Pod runs. ---
    let suspend = |on: bool| json!({"spec": {"suspend": on}});
    apps.patch(name, &PatchParams::default(), &Patch::Merge(suspend(true)))
        .await?;
    wait_suspended(env, name).await?;

    // --- Held there: someone scales the Deployment up; the controller takes it back. ---
    scale(env, dep_name, 2).await?;
    wait_until("the Deployment back at zero", TIMEOUT, || async {
        Ok(deps.get(dep_name).await?.spec.and_then(|s| s.replicas) == Some(0))
    })
    .await?;
    wait_suspended(env, name).await?;

    // --- A compose edit while suspended is applied, still at zero. ---
    put_compose(
        &client,
        &ns,
        "idle-compose",
        &small_compose("web").replace("nginx:1.27", "nginx:1.28"),
    )
    .await?;
    wait_until("the new image applied at zero", TIMEOUT, || async {
        let d = deps.get(dep_name).await?;
        let spec = d.spec.context("no spec")?;
        let image = spec
            .template
            .spec
            .and_then(|s| s.containers.first().and_then(|c| c.image.clone()));
        Ok(image.as_deref() == Some("nginx:1.28") && spec.replicas == Some(0))
    })
    .await?;
    wait_suspended(env, name).await?;

    // --- Held even when the app cannot render: the last good Deployment stays at zero. ---
    put_compose(&client, &ns, "idle-compose", "services: [not, a, map]\n").await?;
    wait_degraded(&apps, name, reasons::INVALID_COMPOSE, TIMEOUT).await?;
    scale(env, dep_name, 1).await?;
    wait_until(
        "the Deployment of a Degraded suspended app back at zero",
        TIMEOUT,
        || async { Ok(deps.get(dep_name).await?.spec.and_then(|s| s.replicas) == Some(0)) },
    )
    .await?;
    wait_app(&apps, name, "Suspended while Degraded", TIMEOUT, |a| {
        suspended(a).is_some_and(|(s, _)| s == "True")
    })
    .await?;
    put_compose(&client, &ns, "idle-compose", &small_compose("web")).await?;
    wait_suspended(env, name).await?;

    // --- suspend: false resumes: a Pod runs again, Ready, Suspended False Resumed. ---
    apps.patch(name, &PatchParams::default(), &Patch::Merge(suspend(false)))
        .await?;
    let resumed = wait_ready(&apps, name, TIMEOUT).await?;
    assert_eq!(
        suspended(&resumed),
        Some(("False".to_owned(), reasons::RESUMED.to_owned()))
    );
    wait_until("a Pod of the resumed app", TIMEOUT, || async {
        Ok(pods
            .list(&ListParams::default().labels(&format!("kompox.dev/app={name}")))
            .await?
            .items
            .iter()
            .any(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")))
    })
    .await?;
    assert_eq!(
        deps.get(dep_name).await?.spec.and_then(|s| s.replicas),
        Some(1)
    );
    Ok(())
}

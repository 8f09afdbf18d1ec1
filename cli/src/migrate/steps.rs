//! The steps of a migration against the two clusters, its rollback and the deletion of the
//! source. Every step is idempotent: it creates by fixed names (an object that exists and was
//! created by this migration is reused; one that was not is a name clash), applies, and waits.

use std::fmt::Debug;
use std::io::Write;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use k8s_openapi::api::networking::v1::Ingress;
use kompox_core::api::{KompoxApp, KompoxDisk, KompoxSnapshot, condition};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::objects::{self, DiskSource, is_ours};
use super::record::{self, snapshot_name};
use super::{Migration, verify};
use crate::CliError;
use crate::kubectx::{self, Check};

/// Names of objects, each with whether it is optional.
pub(crate) type Refs = Vec<(String, bool)>;

/// The Secrets and the ConfigMaps (the compose ConfigMap first) an app reads, each with
/// whether it is optional.
pub(crate) fn referenced(app: &KompoxApp) -> (Refs, Refs) {
    let mut secrets: Vec<(String, bool)> = Vec::new();
    let mut cms = vec![(app.spec.compose.config_map_ref.name.clone(), false)];
    let add = |list: &mut Vec<(String, bool)>, name: &str, optional: bool| {
        if !list.iter().any(|(n, _)| n == name) {
            list.push((name.to_owned(), optional));
        }
    };
    for e in &app.spec.compose.env_from {
        if let Some(r) = &e.secret_ref {
            add(&mut secrets, &r.name, r.optional == Some(true));
        }
        if let Some(r) = &e.config_map_ref {
            add(&mut cms, &r.name, r.optional == Some(true));
        }
    }
    // `secret env set` / `secret pull set`: the overrides and the image pull Secret.
    for o in &app.spec.env_overrides {
        add(&mut secrets, &o.secret_ref.name, false);
    }
    for r in &app.spec.image_pull_secrets {
        add(&mut secrets, &r.name, false);
    }
    for m in app.spec.files.iter().flat_map(|f| f.mounts.iter()) {
        if let Some(r) = &m.secret_ref {
            add(&mut secrets, &r.name, false);
        }
        if let Some(r) = &m.config_map_ref {
            add(&mut cms, &r.name, false);
        }
    }
    (secrets, cms)
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

/// The `Suspended` condition of `app` is True for its current generation.
fn is_suspended(app: &KompoxApp) -> bool {
    app.status.as_ref().is_some_and(|s| {
        s.observed_generation == app.metadata.generation
            && condition::is_true(&s.conditions, condition::types::SUSPENDED)
    })
}

pub(super) fn is_ready(app: &KompoxApp) -> bool {
    app.status.as_ref().is_some_and(|s| {
        s.ready
            && s.observed_generation == app.metadata.generation
            && condition::is_true(&s.conditions, condition::types::READY)
    })
}

pub(super) fn app_state(app: Option<&KompoxApp>, done: impl Fn(&KompoxApp) -> bool) -> Check<()> {
    match app {
        None => Err(CliError::NotFound("the KompoxApp is gone".into())),
        Some(a) if done(a) => Ok(Ok(())),
        Some(a) => Ok(Err(kubectx::conditions_summary(
            &a.status.clone().unwrap_or_default().conditions,
        ))),
    }
}

/// Creates `obj` (of `api`'s kind) unless an object of that name exists; one that exists
/// must have been created by migration `id`.
async fn create_ours<K>(api: &Api<K>, obj: &Value, id: &str) -> Result<(), CliError>
where
    K: Resource + Clone + DeserializeOwned + serde::Serialize + Debug,
{
    let what = kubectx::describe(obj);
    let typed: K = serde_json::from_value(obj.clone())
        .map_err(|e| CliError::Io(format!("building {what}: {e}")))?;
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    match api.create(&PostParams::default(), &typed).await {
        Ok(_) => Ok(()),
        Err(e) if kompox_cluster::is_conflict(&e) => {
            let live = api
                .get_metadata_opt(name)
                .await
                .map_err(|e| kubectx::kube_error(&format!("reading {what}"), &e))?;
            if live.is_some_and(|m| is_ours(m.metadata.annotations.as_ref(), id)) {
                Ok(())
            } else {
                Err(CliError::Invalid(vec![format!(
                    "{what} exists and was not created by this migration ({id})"
                )]))
            }
        }
        Err(e) => Err(kubectx::kube_error(&format!("creating {what}"), &e)),
    }
}

/// Deletes object `name` of `api` if migration `id` created it, and waits until it is gone.
pub(super) async fn delete_ours<K>(
    api: Api<K>,
    name: &str,
    id: &str,
    what: &str,
    m: &Migration<'_>,
    out: &mut dyn Write,
) -> Result<bool, CliError>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let live = api
        .get_metadata_opt(name)
        .await
        .map_err(|e| kubectx::kube_error(&format!("reading {what}"), &e))?;
    if !live.is_some_and(|l| is_ours(l.metadata.annotations.as_ref(), id)) {
        return Ok(false);
    }
    delete_and_wait(api, name, what, m, out).await?;
    Ok(true)
}

pub(super) async fn delete_and_wait<K>(
    api: Api<K>,
    name: &str,
    what: &str,
    m: &Migration<'_>,
    out: &mut dyn Write,
) -> Result<(), CliError>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    match api
        .delete(name, &kube::api::DeleteParams::background())
        .await
    {
        Ok(_) => {}
        Err(e) if kompox_cluster::is_not_found(&e) => return Ok(()),
        Err(e) => return Err(kubectx::kube_error(&format!("deleting {what}"), &e)),
    }
    kubectx::wait_deleted(api, name, what, m.args.timeout, Some(out), |o| {
        format!("finalizers: {}", o.finalizers().join(", "))
    })
    .await?;
    let _ = writeln!(out, "  deleted {what}");
    Ok(())
}

impl Migration<'_> {
    /// Names of the source Pods (not finished) that use a PVC of the app.
    async fn source_pods(&self) -> Result<Vec<String>, CliError> {
        let claims: Vec<&str> = self
            .app
            .status
            .iter()
            .flat_map(|s| s.inventory.iter())
            .filter(|e| e.kind == "PersistentVolumeClaim")
            .map(|e| e.name.as_str())
            .collect();
        let pods = self
            .src
            .api::<Pod>()
            .list(&ListParams::default())
            .await
            .map_err(|e| kubectx::kube_error(&format!("listing Pods in {}", self.src.ns), &e))?;
        Ok(pods
            .items
            .iter()
            .filter(|p| {
                let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
                !matches!(phase, Some("Succeeded" | "Failed"))
            })
            .filter(|p| {
                p.spec
                    .iter()
                    .flat_map(|s| s.volumes.iter().flatten())
                    .filter_map(|v| v.persistent_volume_claim.as_ref())
                    .any(|c| claims.contains(&c.claim_name.as_str()))
            })
            .map(ResourceExt::name_any)
            .collect())
    }

    /// No Pod of the source uses the app's disks: the condition of every later step.
    async fn no_source_writer(&self) -> Result<(), CliError> {
        let running = self.source_pods().await?;
        if running.is_empty() {
            Ok(())
        } else {
            Err(CliError::Cluster(format!(
                "Pods {} of the source still use the app's disks; the target must not start while they run",
                running.join(", ")
            )))
        }
    }

    pub(crate) async fn suspend(&mut self, out: &mut dyn Write) -> Result<(), CliError> {
        if self.record.suspended_at.is_none() {
            self.record.suspended_at = Some(now());
            self.save().await?;
        }
        let api = self.src.api::<KompoxApp>();
        let patch = json!({"spec": {"suspend": true}});
        api.patch(
            &self.args.app,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|e| kubectx::kube_error("setting spec.suspend on the source app", &e))?;
        let what = format!("KompoxApp {}/{} Suspended", self.src.ns, self.args.app);
        kubectx::wait_for(
            api.clone(),
            &self.args.app,
            &what,
            self.args.timeout,
            Some(out),
            |a| app_state(a, is_suspended),
        )
        .await?;
        if let Some(a) = api
            .get_opt(&self.args.app)
            .await
            .map_err(|e| kubectx::kube_error("reading the source app", &e))?
        {
            self.app = a;
        }
        // The condition is the controller's last word; a Pod that appeared since (a scale-up
        // by hand, which the controller takes back) is waited out, by watching it go.
        let deadline = std::time::Instant::now() + self.args.timeout;
        loop {
            let running = self.source_pods().await?;
            let Some(pod) = running.first() else { break };
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return self.no_source_writer().await;
            }
            let what = format!("source Pod {}/{pod} gone", self.src.ns);
            kubectx::wait_deleted(self.src.api::<Pod>(), pod, &what, left, Some(out), |p| {
                format!(
                    "phase {}",
                    p.status
                        .as_ref()
                        .and_then(|s| s.phase.clone())
                        .unwrap_or_default()
                )
            })
            .await?;
        }
        let _ = writeln!(out, "  source suspended: no Pod uses its disks");
        Ok(())
    }

    pub(crate) async fn snapshot(&mut self, out: &mut dyn Write) -> Result<(), CliError> {
        let api = self.src.api::<KompoxSnapshot>();
        let id = self.record.id.clone();
        for i in 0..self.record.disks.len() {
            let disk = self.record.disks[i].name.clone();
            let name = snapshot_name(&id, &disk);
            create_ours(
                &api,
                &objects::source_snapshot(&name, &self.src.ns, &disk, &id),
                &id,
            )
            .await?;
            let what = format!("KompoxSnapshot {}/{name} (source) ready", self.src.ns);
            let handle = wait_snapshot(api.clone(), &name, &what, self, out).await?;
            let _ = writeln!(out, "  disk {disk}: snapshot {handle}");
            self.record.disks[i].snapshot_handle = Some(handle);
            self.save().await?;
        }
        Ok(())
    }

    pub(crate) async fn import(&mut self, out: &mut dyn Write) -> Result<(), CliError> {
        self.target_namespace(out).await?;
        let api = self.dst.api::<KompoxSnapshot>();
        let id = self.record.id.clone();
        for d in self.record.disks.clone() {
            let handle = d.snapshot_handle.clone().ok_or_else(|| {
                CliError::Invalid(vec![format!(
                    "disk {}: no snapshot handle recorded",
                    d.name
                )])
            })?;
            let name = snapshot_name(&id, &d.name);
            create_ours(
                &api,
                &objects::imported_snapshot(&name, &self.dst.ns, &handle, &id),
                &id,
            )
            .await?;
            let what = format!("KompoxSnapshot {}/{name} (target) ready", self.dst.ns);
            wait_snapshot(api.clone(), &name, &what, self, out).await?;
            let _ = writeln!(out, "  disk {}: snapshot {handle} imported", d.name);
        }
        Ok(())
    }

    /// The target namespace: created (and recorded as created) when absent.
    async fn target_namespace(&mut self, out: &mut dyn Write) -> Result<(), CliError> {
        let api = Api::<Namespace>::all(self.dst.client.clone());
        let ns = self.dst.ns.clone();
        let live = api
            .get_metadata_opt(&ns)
            .await
            .map_err(|e| kubectx::kube_error(&format!("reading Namespace {ns}"), &e))?;
        let ours = match live {
            Some(l) => is_ours(l.metadata.annotations.as_ref(), &self.record.id),
            None => {
                let src = Api::<Namespace>::all(self.src.client.clone())
                    .get_metadata_opt(&self.src.ns)
                    .await
                    .map_err(|e| kubectx::kube_error("reading the source namespace", &e))?;
                let labels = src.and_then(|n| n.metadata.labels).unwrap_or_default();
                let obj = objects::namespace(&ns, &labels, &self.record.id);
                create_ours(&api, &obj, &self.record.id).await?;
                let _ = writeln!(out, "  namespace {ns} created in the target");
                true
            }
        };
        if ours && !self.record.created_namespace {
            self.record.created_namespace = true;
            self.save().await?;
        }
        Ok(())
    }

    pub(crate) async fn restore(&mut self, out: &mut dyn Write) -> Result<(), CliError> {
        let src = self.src.api::<KompoxDisk>();
        let dst = self.dst.api::<KompoxDisk>();
        let id = self.record.id.clone();
        for i in 0..self.record.disks.len() {
            let name = self.record.disks[i].name.clone();
            let disk = src.get(&name).await.map_err(|e| {
                kubectx::kube_error(&format!("reading KompoxDisk {}/{name}", self.src.ns), &e)
            })?;
            let snap = snapshot_name(&id, &name);
            let obj = objects::target_disk(&disk, &self.dst.ns, &id, DiskSource::Snapshot(&snap));
            create_ours(&dst, &obj, &id).await?;
            let what = format!("KompoxDisk {}/{name} (target) Ready", self.dst.ns);
            let handle = wait_disk(dst.clone(), &name, &what, self, out).await?;
            let _ = writeln!(out, "  disk {name}: restored as volume {handle}");
            self.record.disks[i].target_handle = Some(handle);
            self.save().await?;
        }
        // The imported snapshots did their work; the source keeps the provider snapshots.
        let snaps = self.dst.api::<KompoxSnapshot>();
        for d in self.record.disks.clone() {
            let name = snapshot_name(&id, &d.name);
            let what = format!("KompoxSnapshot {}/{name} (target)", self.dst.ns);
            delete_ours(snaps.clone(), &name, &id, &what, self, out).await?;
        }
        Ok(())
    }

    pub(crate) async fn verify(&mut self, out: &mut dyn Write) -> Result<(), CliError> {
        if self.args.skip_verify {
            let _ = writeln!(out, "  not verified (--skip-verify)");
            self.record.unverified = true;
            return self.save().await;
        }
        let dir = self
            .args
            .verify_data_dir
            .clone()
            .or_else(|| std::env::var_os("KOMPOX_CSI_DATA_DIR").map(Into::into))
            .ok_or_else(|| {
                CliError::Invalid(vec![
                    "cannot verify the restored disks: no CSI data directory to read them from (--verify-data-dir or $KOMPOX_CSI_DATA_DIR); --skip-verify moves without verifying".into(),
                ])
            })?;
        for d in &self.record.disks {
            let target = d.target_handle.as_deref().ok_or_else(|| {
                CliError::Invalid(vec![format!(
                    "disk {}: no restored volume recorded",
                    d.name
                )])
            })?;
            let a = verify::read_tree(&verify::volume_dir(&dir, &d.source_handle)?)?;
            let b = verify::read_tree(&verify::volume_dir(&dir, target)?)?;
            let diff = a.differences(&b)?;
            if !diff.is_empty() {
                let shown: Vec<&str> = diff.iter().take(10).map(String::as_str).collect();
                return Err(CliError::Cluster(format!(
                    "disk {}: the restored volume {target} differs from the source volume {} in {} entries: {}",
                    d.name,
                    d.source_handle,
                    diff.len(),
                    shown.join(", ")
                )));
            }
            let _ = writeln!(
                out,
                "  disk {}: {} files, {} bytes, identical on both sides",
                d.name,
                a.files(),
                a.bytes()
            );
        }
        Ok(())
    }

    pub(crate) async fn start(&mut self, out: &mut dyn Write) -> Result<(), CliError> {
        self.no_source_writer().await?;
        let id = self.record.id.clone();
        let (secrets, cms) = referenced(&self.app);
        for (name, _) in cms {
            self.copy::<ConfigMap>(&name, &id, out).await?;
        }
        for (name, _) in secrets {
            self.copy::<Secret>(&name, &id, out).await?;
        }
        let app = objects::target_app(&self.app, &self.dst.ns, &id, self.record.was_suspended);
        self.clash_free::<KompoxApp>(&self.args.app, &id).await?;
        kubectx::apply(&self.dst.client, &app, false).await?;
        let api = self.dst.api::<KompoxApp>();
        let (what, done): (String, fn(&KompoxApp) -> bool) = if self.record.was_suspended {
            (
                format!(
                    "KompoxApp {}/{} (target) Suspended",
                    self.dst.ns, self.args.app
                ),
                is_suspended,
            )
        } else {
            (
                format!("KompoxApp {}/{} (target) Ready", self.dst.ns, self.args.app),
                is_ready,
            )
        };
        kubectx::wait_for(
            api,
            &self.args.app,
            &what,
            self.args.timeout,
            Some(out),
            |a| app_state(a, done),
        )
        .await?;
        if let Some(at) = &self.record.suspended_at {
            let _ = writeln!(out, "  target app ready; source suspended since {at}");
        }
        Ok(())
    }

    /// An object of the target that exists and is not this migration's stops the step.
    async fn clash_free<K>(&self, name: &str, id: &str) -> Result<(), CliError>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
        <K as Resource>::DynamicType: Default,
    {
        let kind = K::kind(&K::DynamicType::default()).into_owned();
        let live = self
            .dst
            .api::<K>()
            .get_metadata_opt(name)
            .await
            .map_err(|e| {
                kubectx::kube_error(&format!("reading {kind} {}/{name}", self.dst.ns), &e)
            })?;
        match live {
            Some(l) if !is_ours(l.metadata.annotations.as_ref(), id) => {
                Err(CliError::Invalid(vec![format!(
                    "{kind} {}/{name} exists in the target and was not created by this migration",
                    self.dst.ns
                )]))
            }
            _ => Ok(()),
        }
    }

    /// Copies ConfigMap or Secret `name` from the source (absent there: an optional one,
    /// skipped). Values are never printed.
    async fn copy<K>(&self, name: &str, id: &str, out: &mut dyn Write) -> Result<(), CliError>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + serde::Serialize
            + Debug,
        <K as Resource>::DynamicType: Default,
    {
        let kind = K::kind(&K::DynamicType::default()).into_owned();
        let Some(obj) = self.src.api::<K>().get_opt(name).await.map_err(|e| {
            kubectx::kube_error(&format!("reading {kind} {}/{name}", self.src.ns), &e)
        })?
        else {
            return Ok(());
        };
        let mut v = serde_json::to_value(&obj)
            .map_err(|e| CliError::Io(format!("encoding {kind} {name}: {e}")))?;
        v["apiVersion"] = json!(K::api_version(&K::DynamicType::default()));
        v["kind"] = json!(kind);
        self.clash_free::<K>(name, id).await?;
        kubectx::apply(
            &self.dst.client,
            &objects::copy_of(&v, &self.dst.ns, id),
            false,
        )
        .await?;
        let _ = writeln!(out, "  {kind} {name} copied (values not shown)");
        Ok(())
    }

    /// Handoff: each source disk keeps its spec in the record, turns Orphan and is deleted —
    /// its volume stays, and nothing in the source refers to it any more.
    pub(crate) async fn release(&mut self, out: &mut dyn Write) -> Result<(), CliError> {
        let api = self.src.api::<KompoxDisk>();
        for i in 0..self.record.disks.len() {
            let name = self.record.disks[i].name.clone();
            let what = format!("KompoxDisk {}/{name} (source)", self.src.ns);
            let Some(disk) = api
                .get_opt(&name)
                .await
                .map_err(|e| kubectx::kube_error(&format!("reading {what}"), &e))?
            else {
                continue;
            };
            if self.record.disks[i].source_spec.is_none() {
                let spec = serde_json::to_value(&disk.spec)
                    .map_err(|e| CliError::Io(format!("encoding {what}: {e}")))?;
                self.record.disks[i].source_spec = Some(spec);
                self.save().await?;
            }
            let patch = json!({"spec": {"deletionPolicy": "Orphan"}});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| kubectx::kube_error(&format!("setting Orphan on {what}"), &e))?;
            delete_and_wait(api.clone(), &name, &what, self, out).await?;
            let _ = writeln!(
                out,
                "  disk {name}: released volume {} (Orphan)",
                self.record.disks[i].source_handle
            );
        }
        Ok(())
    }

    /// Handoff: the target adopts each released volume by its handle (Orphan there too).
    pub(crate) async fn adopt(&mut self, out: &mut dyn Write) -> Result<(), CliError> {
        self.target_namespace(out).await?;
        let api = self.dst.api::<KompoxDisk>();
        let id = self.record.id.clone();
        for i in 0..self.record.disks.len() {
            let d = self.record.disks[i].clone();
            let disk = recorded_disk(&d)?;
            let obj = objects::target_disk(
                &disk,
                &self.dst.ns,
                &id,
                DiskSource::Handle(&d.source_handle),
            );
            create_ours(&api, &obj, &id).await?;
            let what = format!("KompoxDisk {}/{} (target) Ready", self.dst.ns, d.name);
            let handle = wait_disk(api.clone(), &d.name, &what, self, out).await?;
            let _ = writeln!(out, "  disk {}: volume {handle} adopted", d.name);
            self.record.disks[i].target_handle = Some(handle);
            self.save().await?;
        }
        Ok(())
    }
}

/// The source disk as the record kept it (handoff), with the zone its volume is in.
fn recorded_disk(d: &record::DiskRecord) -> Result<KompoxDisk, CliError> {
    let spec = d.source_spec.clone().ok_or_else(|| {
        CliError::Invalid(vec![format!("disk {}: no source spec recorded", d.name)])
    })?;
    serde_json::from_value(json!({
        "apiVersion": kompox_core::api::API_VERSION, "kind": "KompoxDisk",
        "metadata": {"name": d.name}, "spec": spec, "status": {"zone": d.zone},
    }))
    .map_err(|e| CliError::Invalid(vec![format!("disk {}: recorded spec: {e}", d.name)]))
}

async fn wait_snapshot(
    api: Api<KompoxSnapshot>,
    name: &str,
    what: &str,
    m: &Migration<'_>,
    out: &mut dyn Write,
) -> Result<String, CliError> {
    kubectx::wait_for(api, name, what, m.args.timeout, Some(out), |s| match s {
        None => Err(CliError::NotFound(format!(
            "{what}: the KompoxSnapshot is gone"
        ))),
        Some(s) => {
            let st = s.status.clone().unwrap_or_default();
            match (st.ready_to_use, st.snapshot_handle) {
                (true, Some(h)) => Ok(Ok(h)),
                _ if condition::is_true(&st.conditions, condition::types::DEGRADED) => {
                    Err(CliError::Cluster(format!(
                        "{what}: {}",
                        kubectx::conditions_summary(&st.conditions)
                    )))
                }
                _ => Ok(Err(kubectx::conditions_summary(&st.conditions))),
            }
        }
    })
    .await
}

pub(super) async fn wait_disk(
    api: Api<KompoxDisk>,
    name: &str,
    what: &str,
    m: &Migration<'_>,
    out: &mut dyn Write,
) -> Result<String, CliError> {
    kubectx::wait_for(api, name, what, m.args.timeout, Some(out), |d| match d {
        None => Err(CliError::NotFound(format!(
            "{what}: the KompoxDisk is gone"
        ))),
        Some(d) => {
            let st = d.status.clone().unwrap_or_default();
            let ready = condition::is_true(&st.conditions, condition::types::READY)
                && st.observed_generation == d.metadata.generation;
            match (ready, st.handle) {
                (true, Some(h)) => Ok(Ok(h)),
                _ if condition::is_true(&st.conditions, condition::types::DEGRADED) => {
                    Err(CliError::Cluster(format!(
                        "{what}: {}",
                        kubectx::conditions_summary(&st.conditions)
                    )))
                }
                _ => Ok(Err(kubectx::conditions_summary(&st.conditions))),
            }
        }
    })
    .await
}

/// The DNS change to make: the app's hosts and the address the target's ingress reported.
pub(crate) async fn print_dns(m: &Migration<'_>, out: &mut dyn Write) -> Result<(), CliError> {
    let app = m
        .dst
        .api::<KompoxApp>()
        .get(&m.args.app)
        .await
        .map_err(|e| kubectx::kube_error("reading the target app", &e))?;
    let hosts = app.status.map(|s| s.ingress_hosts).unwrap_or_default();
    if hosts.is_empty() {
        return Ok(());
    }
    let ings = m
        .dst
        .api::<Ingress>()
        .list(&ListParams::default())
        .await
        .map_err(|e| kubectx::kube_error("listing the target's Ingresses", &e))?;
    let addrs: Vec<String> = ings
        .items
        .iter()
        .filter_map(|i| i.status.as_ref()?.load_balancer.as_ref()?.ingress.clone())
        .flatten()
        .filter_map(|a| a.ip.or(a.hostname))
        .filter(|a| !a.is_empty())
        .collect();
    let to = if addrs.is_empty() {
        "the target ingress controller's address (it has reported none yet)".to_owned()
    } else {
        addrs.join(", ")
    };
    let _ = writeln!(out, "DNS: point {} to {to}", hosts.join(", "));
    Ok(())
}

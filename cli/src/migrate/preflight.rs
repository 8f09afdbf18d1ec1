//! Preflight: everything a migration needs, checked without changing anything on either side.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kompox_core::api::{KompoxApp, KompoxDisk, KompoxSnapshot, condition};
use kube::api::{Api, ObjectMeta};
use kube::{Client, ResourceExt as _};

use super::objects::is_ours;
use super::record::{DiskRecord, Step, snapshot_name};
use super::{Migration, Side};
use crate::CliError;
use crate::kubectx;

/// What preflight found: the checks that passed (for the plan) and the app's disks.
pub(crate) struct Plan {
    pub(crate) checks: Vec<String>,
    pub(crate) disks: Vec<DiskRecord>,
}

/// The API group of the Kompox resources and of its aggregated API server.
const GROUP_VERSION: &str = "k8s.kompox.dev/v1alpha1";
const SUBRESOURCES: &str = "subresources.k8s.kompox.dev/v1alpha1";

impl Migration<'_> {
    /// Runs every check; all problems are reported together.
    pub(crate) async fn preflight(&self) -> Result<Plan, CliError> {
        let mut problems = Vec::new();
        let mut checks = Vec::new();
        let fresh = self.record.step == Step::Planned;
        let disks = if fresh {
            self.source_disks(&mut problems, &mut checks).await?
        } else {
            self.record.disks.clone()
        };
        self.sources_present(&mut problems, &mut checks).await?;
        for (side, who) in [(&self.src, "source"), (&self.dst, "target")] {
            kompox_installed(side, who, &mut problems, &mut checks).await;
        }
        self.same_cloud(&disks, &mut problems, &mut checks).await?;
        self.names_free(&disks, &mut problems, &mut checks).await?;
        if problems.is_empty() {
            Ok(Plan { checks, disks })
        } else {
            Err(CliError::Invalid(
                problems
                    .into_iter()
                    .map(|p| format!("preflight: {p}"))
                    .collect(),
            ))
        }
    }

    /// The app's disks: each must exist, be Ready and have a volume handle.
    async fn source_disks(
        &self,
        problems: &mut Vec<String>,
        checks: &mut Vec<String>,
    ) -> Result<Vec<DiskRecord>, CliError> {
        let api = self.src.api::<KompoxDisk>();
        let mut out = Vec::new();
        for v in &self.app.spec.volumes {
            let name = &v.disk_ref.name;
            let what = format!("volume {}: KompoxDisk {}/{name}", v.name, self.src.ns);
            let Some(d) = api
                .get_opt(name)
                .await
                .map_err(|e| kubectx::kube_error(&format!("reading {what}"), &e))?
            else {
                problems.push(format!("{what} not found"));
                continue;
            };
            let st = d.status.clone().unwrap_or_default();
            match st.handle.clone() {
                Some(h) if condition::is_true(&st.conditions, condition::types::READY) => {
                    checks.push(format!("{what} Ready, volume {h}"));
                    out.push(DiskRecord {
                        name: name.clone(),
                        source_handle: h,
                        deletion_policy: format!("{:?}", d.spec.deletion_policy),
                        zone: st.zone.clone(),
                        ..DiskRecord::default()
                    });
                }
                _ => problems.push(format!(
                    "{what} is not Ready with a volume: {}",
                    kubectx::conditions_summary(&st.conditions)
                )),
            }
        }
        Ok(out)
    }

    /// The compose ConfigMap and every Secret and ConfigMap the app reads (an optional one
    /// may be missing).
    async fn sources_present(
        &self,
        problems: &mut Vec<String>,
        checks: &mut Vec<String>,
    ) -> Result<(), CliError> {
        let (secrets, config_maps) = super::steps::referenced(&self.app);
        let cms: Api<ConfigMap> = self.src.api();
        let sec: Api<Secret> = self.src.api();
        for (name, optional) in config_maps {
            let found = cms.get_metadata_opt(&name).await.map_err(|e| {
                kubectx::kube_error(&format!("reading ConfigMap {}/{name}", self.src.ns), &e)
            })?;
            match (found, optional) {
                (Some(_), _) => checks.push(format!("ConfigMap {name} present")),
                (None, true) => checks.push(format!("ConfigMap {name} absent (optional)")),
                (None, false) => problems.push(format!(
                    "ConfigMap {}/{name}, which the app reads, not found",
                    self.src.ns
                )),
            }
        }
        for (name, optional) in secrets {
            let found = sec.get_metadata_opt(&name).await.map_err(|e| {
                kubectx::kube_error(&format!("reading Secret {}/{name}", self.src.ns), &e)
            })?;
            match (found, optional) {
                (Some(_), _) => checks.push(format!("Secret {name} present (values not read)")),
                (None, true) => checks.push(format!("Secret {name} absent (optional)")),
                (None, false) => problems.push(format!(
                    "Secret {}/{name}, which the app reads, not found",
                    self.src.ns
                )),
            }
        }
        Ok(())
    }

    /// The same provider and region on both sides, and every disk's zone among the target's.
    async fn same_cloud(
        &self,
        disks: &[DiskRecord],
        problems: &mut Vec<String>,
        checks: &mut Vec<String>,
    ) -> Result<(), CliError> {
        let facts = |c: &Client, who: &'static str| {
            let c = c.clone();
            async move {
                kompox_cluster::cluster_facts(&c)
                    .await
                    .map_err(|e| CliError::Cluster(format!("{who}: {e}")))
            }
        };
        let (sf, tf) = futures::try_join!(
            facts(&self.src.client, "source"),
            facts(&self.dst.client, "target")
        )?;
        let (si, ti) = (
            kompox_cluster::resolve_cluster_info(self.app.spec.provider.type_, &sf),
            kompox_cluster::resolve_cluster_info(self.app.spec.provider.type_, &tf),
        );
        if si.provider == ti.provider && si.region == ti.region {
            checks.push(format!(
                "provider {} and region {} on both sides",
                si.provider,
                si.region.as_deref().unwrap_or("(none)")
            ));
        } else {
            problems.push(format!(
                "provider/region differ: source {} {}, target {} {} (a snapshot handle or volume is only valid within one cloud account and region)",
                si.provider,
                si.region.as_deref().unwrap_or("(no region)"),
                ti.provider,
                ti.region.as_deref().unwrap_or("(no region)")
            ));
        }
        let zones = kompox_cluster::node_zones(&tf);
        let api = self.src.api::<KompoxDisk>();
        for d in disks {
            let Some(disk) = api.get_opt(&d.name).await.map_err(|e| {
                kubectx::kube_error(
                    &format!("reading KompoxDisk {}/{}", self.src.ns, d.name),
                    &e,
                )
            })?
            else {
                continue;
            };
            match disk.status.and_then(|s| s.zone) {
                Some(z) if zones.contains(&z) => {
                    checks.push(format!("disk {} zone {z} exists in the target", d.name));
                }
                Some(z) => problems.push(format!(
                    "disk {}: zone {z} is not a zone of the target's nodes ({})",
                    d.name,
                    zones.iter().cloned().collect::<Vec<_>>().join(", ")
                )),
                None => checks.push(format!("disk {} has no zone", d.name)),
            }
        }
        Ok(())
    }

    /// The namespace may exist; the app, disks, snapshots, compose ConfigMap, Secrets and
    /// ConfigMaps must not, unless this migration created them (a resume).
    async fn names_free(
        &self,
        disks: &[DiskRecord],
        problems: &mut Vec<String>,
        checks: &mut Vec<String>,
    ) -> Result<(), CliError> {
        let ns = &self.dst.ns;
        let id = &self.record.id;
        let existing = Api::<Namespace>::all(self.dst.client.clone())
            .get_metadata_opt(ns)
            .await
            .map_err(|e| {
                kubectx::kube_error(&format!("reading Namespace {ns} in the target"), &e)
            })?;
        if existing.is_none() {
            checks.push(format!("namespace {ns} is free in the target"));
            return Ok(());
        }
        let mut clash = |kind: &str, name: &str, meta: Option<ObjectMeta>| match meta {
            Some(m) if !is_ours(m.annotations.as_ref(), id) => problems.push(format!(
                "{kind} {ns}/{name} already exists in the target (not created by this migration)"
            )),
            _ => {}
        };
        let c = &self.dst.client;
        let meta =
            |e: kube::Error, what: String| kubectx::kube_error(&format!("reading {what}"), &e);
        let app = Api::<KompoxApp>::namespaced(c.clone(), ns);
        let name = self.app.name_any();
        clash(
            "KompoxApp",
            &name,
            app.get_metadata_opt(&name)
                .await
                .map_err(|e| meta(e, format!("KompoxApp {ns}/{name}")))?
                .map(|m| m.metadata),
        );
        let dapi = Api::<KompoxDisk>::namespaced(c.clone(), ns);
        let sapi = Api::<KompoxSnapshot>::namespaced(c.clone(), ns);
        for d in disks {
            let found = dapi
                .get_metadata_opt(&d.name)
                .await
                .map_err(|e| meta(e, format!("KompoxDisk {ns}/{}", d.name)))?;
            clash("KompoxDisk", &d.name, found.map(|m| m.metadata));
            let s = snapshot_name(id, &d.name);
            let found = sapi
                .get_metadata_opt(&s)
                .await
                .map_err(|e| meta(e, format!("KompoxSnapshot {ns}/{s}")))?;
            clash("KompoxSnapshot", &s, found.map(|m| m.metadata));
        }
        let (secrets, config_maps) = super::steps::referenced(&self.app);
        let cms = Api::<ConfigMap>::namespaced(c.clone(), ns);
        for (n, _) in config_maps {
            let found = cms
                .get_metadata_opt(&n)
                .await
                .map_err(|e| meta(e, format!("ConfigMap {ns}/{n}")))?;
            clash("ConfigMap", &n, found.map(|m| m.metadata));
        }
        let sec = Api::<Secret>::namespaced(c.clone(), ns);
        for (n, _) in secrets {
            let found = sec
                .get_metadata_opt(&n)
                .await
                .map_err(|e| meta(e, format!("Secret {ns}/{n}")))?;
            clash("Secret", &n, found.map(|m| m.metadata));
        }
        checks.push(format!(
            "namespace {ns} exists in the target; the app's names are free there"
        ));
        Ok(())
    }
}

/// Kompox's resources are served with the fields a migration uses (`KompoxApp.spec.suspend`,
/// `KompoxSnapshot.spec.handle`), and its aggregated API server answers.
async fn kompox_installed(
    side: &Side,
    who: &str,
    problems: &mut Vec<String>,
    checks: &mut Vec<String>,
) {
    let served = side
        .client
        .list_api_group_resources(GROUP_VERSION)
        .await
        .map(|l| {
            l.resources
                .iter()
                .map(|r| r.name.clone())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let missing: Vec<&str> = ["kompoxapps", "kompoxdisks", "kompoxsnapshots"]
        .into_iter()
        .filter(|r| !served.iter().any(|s| s == r))
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "{who} ({}): Kompox is not installed ({GROUP_VERSION} does not serve {}); run `kubectl kompox install` there",
            side.url,
            missing.join(", ")
        ));
        return;
    }
    let crds = Api::<CustomResourceDefinition>::all(side.client.clone());
    for (crd, field) in [
        ("kompoxapps.k8s.kompox.dev", "suspend"),
        ("kompoxsnapshots.k8s.kompox.dev", "handle"),
    ] {
        match crds.get_opt(crd).await {
            Ok(Some(c)) if has_spec_field(&c, field) => {}
            Ok(_) => problems.push(format!(
                "{who} ({}): the installed CRD {crd} has no spec.{field}: Kompox there is older than this command; upgrade it (`kubectl kompox install`)",
                side.url
            )),
            // Reading CRDs may be forbidden to an app operator: the dry runs of the steps
            // will tell.
            Err(_) => checks.push(format!("{who}: CRD {crd} not readable, version not checked")),
        }
    }
    match side.client.list_api_group_resources(SUBRESOURCES).await {
        Ok(_) => checks.push(format!(
            "{who}: Kompox installed and serving ({})",
            side.url
        )),
        Err(e) => problems.push(format!(
            "{who} ({}): Kompox's API server ({SUBRESOURCES}) does not answer: {e}",
            side.url
        )),
    }
}

fn has_spec_field(crd: &CustomResourceDefinition, field: &str) -> bool {
    crd.spec.versions.iter().any(|v| {
        v.schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .and_then(|s| s.properties.as_ref())
            .and_then(|p| p.get("spec"))
            .and_then(|s| s.properties.as_ref())
            .is_some_and(|p| p.contains_key(field))
    })
}

//! Undoing a migration (`--rollback`) and, after a completed one, deleting the source
//! (`--delete-source`).

use std::io::Write;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kompox_core::api::{KompoxApp, KompoxDisk, KompoxSnapshot};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::Migration;
use super::objects::is_ours;
use super::record::{self, snapshot_name};
use super::steps::{app_state, delete_and_wait, delete_ours, is_ready, referenced, wait_disk};
use crate::CliError;
use crate::kubectx;

impl Migration<'_> {
    /// Handoff rollback: a released source disk is created again, adopting its volume by
    /// handle with its old spec and deletionPolicy.
    async fn readopt(&self, d: &record::DiskRecord, out: &mut dyn Write) -> Result<(), CliError> {
        let api = self.src.api::<KompoxDisk>();
        let what = format!("KompoxDisk {}/{} (source)", self.src.ns, d.name);
        let live = api
            .get_metadata_opt(&d.name)
            .await
            .map_err(|e| kubectx::kube_error(&format!("reading {what}"), &e))?;
        let (Some(mut spec), None) = (d.source_spec.clone(), live) else {
            return Ok(());
        };
        if let Some(o) = spec.as_object_mut() {
            o.remove("fromSnapshot");
        }
        spec["handle"] = json!(d.source_handle);
        let obj = json!({
            "apiVersion": kompox_core::api::API_VERSION, "kind": "KompoxDisk",
            "metadata": {"name": d.name, "namespace": self.src.ns}, "spec": spec,
        });
        kubectx::apply(&self.src.client, &obj, false).await?;
        wait_disk(api, &d.name, &format!("{what} Ready"), self, out).await?;
        let _ = writeln!(
            out,
            "  disk {}: volume {} adopted back",
            d.name, d.source_handle
        );
        Ok(())
    }

    /// Undoes the recorded migration (see the module docs of [`super`]).
    pub(crate) async fn rollback(&mut self, out: &mut dyn Write) -> Result<(), CliError> {
        let id = self.record.id.clone();
        let _ = writeln!(
            out,
            "rolling back migration {id} of {}/{} (last step {})",
            self.src.ns, self.args.app, self.record.step
        );
        let (dns, sns) = (self.dst.ns.clone(), self.src.ns.clone());
        let app = self.args.app.clone();
        let what = format!("KompoxApp {dns}/{app} (target)");
        delete_ours(self.dst.api::<KompoxApp>(), &app, &id, &what, self, out).await?;
        let (secrets, cms) = referenced(&self.app);
        for (n, _) in cms {
            let what = format!("ConfigMap {dns}/{n} (target)");
            delete_ours(self.dst.api::<ConfigMap>(), &n, &id, &what, self, out).await?;
        }
        for (n, _) in secrets {
            let what = format!("Secret {dns}/{n} (target)");
            delete_ours(self.dst.api::<Secret>(), &n, &id, &what, self, out).await?;
        }
        let disks = self.record.disks.clone();
        for d in &disks {
            let snap = snapshot_name(&id, &d.name);
            let what = format!("KompoxSnapshot {dns}/{snap} (target)");
            delete_ours(
                self.dst.api::<KompoxSnapshot>(),
                &snap,
                &id,
                &what,
                self,
                out,
            )
            .await?;
            // A restored disk is a copy this migration made: its volume goes with it. An
            // adopted one (handoff) is the source's volume: Orphan, it goes back.
            let api = self.dst.api::<KompoxDisk>();
            let live = api.get_metadata_opt(&d.name).await.map_err(|e| {
                kubectx::kube_error(&format!("reading KompoxDisk {dns}/{}", d.name), &e)
            })?;
            if live.is_some_and(|l| is_ours(l.metadata.annotations.as_ref(), &id)) {
                let policy = match self.record.mode {
                    record::Mode::Snapshot => "Delete",
                    record::Mode::Handoff => "Orphan",
                };
                let patch = json!({"spec": {"deletionPolicy": policy}});
                api.patch(&d.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(|e| {
                        kubectx::kube_error(
                            &format!("setting deletionPolicy {policy} on the target disk"),
                            &e,
                        )
                    })?;
                let what = format!("KompoxDisk {dns}/{} (target)", d.name);
                delete_and_wait(api, &d.name, &what, self, out).await?;
            }
        }
        if self.record.created_namespace {
            let what = format!("Namespace {dns} (target)");
            let api = Api::<Namespace>::all(self.dst.client.clone());
            delete_ours(api, &dns, &id, &what, self, out).await?;
        }
        for d in &disks {
            let snap = snapshot_name(&id, &d.name);
            let what = format!("KompoxSnapshot {sns}/{snap} (source)");
            delete_ours(
                self.src.api::<KompoxSnapshot>(),
                &snap,
                &id,
                &what,
                self,
                out,
            )
            .await?;
            self.readopt(d, out).await?;
        }
        let api = self.src.api::<KompoxApp>();
        if !self.record.was_suspended {
            let patch = json!({"spec": {"suspend": false}});
            api.patch(&app, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| kubectx::kube_error("resuming the source app", &e))?;
        }
        self.annotate(None).await?;
        if !self.record.was_suspended {
            let what = format!("KompoxApp {sns}/{app} (source) Ready");
            kubectx::wait_for(api, &app, &what, self.args.timeout, Some(out), |a| {
                app_state(a, is_ready)
            })
            .await?;
        }
        let _ = writeln!(
            out,
            "rolled back: the source app {sns}/{app} runs as before; the target holds nothing of the migration"
        );
        Ok(())
    }

    /// After a completed migration with `--delete-source`: the source app, its disks (each by
    /// its deletionPolicy) and the migration's snapshots.
    pub(crate) async fn delete_source(&mut self, out: &mut dyn Write) -> Result<(), CliError> {
        let (sns, app) = (self.src.ns.clone(), self.args.app.clone());
        if !self.args.delete_source {
            let _ = writeln!(
                out,
                "KompoxApp {sns}/{app} was already migrated to {}; the source stays suspended (`--delete-source` deletes it, `--rollback` undoes the migration)",
                self.record.target.context
            );
            return Ok(());
        }
        if !self.record.done() {
            return Err(CliError::Invalid(vec![format!(
                "--delete-source: the migration of {sns}/{app} has not completed (last step {})",
                self.record.step
            )]));
        }
        if self.record.unverified {
            return Err(CliError::Invalid(vec![format!(
                "--delete-source: the copies of {sns}/{app} were not verified (--skip-verify); delete the source yourself once you have checked them"
            )]));
        }
        let what = format!("KompoxApp {sns}/{app} (source)");
        delete_and_wait(self.src.api::<KompoxApp>(), &app, &what, self, out).await?;
        let id = self.record.id.clone();
        for d in self.record.disks.clone() {
            let snap = snapshot_name(&id, &d.name);
            let what = format!("KompoxSnapshot {sns}/{snap} (source)");
            delete_ours(
                self.src.api::<KompoxSnapshot>(),
                &snap,
                &id,
                &what,
                self,
                out,
            )
            .await?;
            let what = format!(
                "KompoxDisk {sns}/{} (source, deletionPolicy {})",
                d.name, d.deletion_policy
            );
            delete_and_wait(self.src.api::<KompoxDisk>(), &d.name, &what, self, out).await?;
        }
        let _ = writeln!(
            out,
            "source deleted: {sns} keeps only what the app did not own (its ConfigMaps and Secrets)"
        );
        Ok(())
    }
}

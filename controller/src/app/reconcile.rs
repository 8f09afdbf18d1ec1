//! One KompoxApp reconcile (what a run shares is in [`super::run`]): the full path (gather, render, claim, switch, apply, prune, status)
//! and the cheap path taken when nothing the render depends on changed (status only, from the
//! caches). The fingerprint that decides between them is in [`super::fingerprint`], the
//! finalizer's cleanup in [`super::cleanup`], the disk claims in [`super::claims`], the switch
//! phases and the live PVCs they read in [`super::switch`], the apply waves and the ownership
//! check in [`super::apply`], readiness in [`super::conditions`].

use std::time::Instant;

use kompox_cluster::{OwnedInputs, gather_inputs, resolve_cluster_info};
use kompox_core::api::KompoxApp;
use kompox_core::api::condition::reasons;
use kompox_core::render::{ClusterInfo, render};
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use serde_json::Value;

use super::apply;
use super::conditions::{IngressAdmission, Outcome, readiness};
use super::fingerprint::{
    cached_owned_fingerprint, combine, holds_stale_claims, inputs_fingerprint, owned_fingerprint,
};
use super::hygiene;
use super::run::{AppCtx, Applied, AppliedResult, REFUSED, ROLLOUT, Replicas, Run, Step, WAIT};
use super::switch::{self, Plan, SwitchStep};
use crate::events::Note;
use crate::{Error, Result};

/// The Apply side of the finalizer: the cheap path when the fingerprint matches the last full
/// reconcile, else the full path.
///
/// # Errors
///
/// API failures (retried by the error policy).
pub async fn apply(app: &KompoxApp, actx: &AppCtx) -> Result<Action> {
    let mut run = Run::new(app, actx)?;
    let facts = actx.ctx.facts.facts(&run.client).await?;
    let cluster = resolve_cluster_info(app.spec.provider.type_, &facts);
    let inputs = inputs_fingerprint(app, &actx.stores, &cluster, &run.ns);
    let fp = combine(
        inputs,
        cached_owned_fingerprint(&run.old.inventory, &actx.stores, &run.ns),
    );
    if run.old.volume_switch.is_none()
        && !holds_stale_claims(app, &actx.stores, &run.ns)
        && let Some(hit) = actx.cached(&run.key, &run.uid, fp)
    {
        tracing::debug!("inputs unchanged: status only");
        return run.observe(&hit).await;
    }
    let started = Instant::now();
    let step = run.full(&cluster).await?;
    tracing::debug!(outcome = ?step.outcome, took = ?started.elapsed(), "full reconcile");
    let action = run.finish(step.outcome, step.requeue).await?;
    // What was applied, as the caches will see it once they catch up.
    let fp = if run.versions.is_empty() {
        fp
    } else {
        combine(
            inputs,
            owned_fingerprint(&run.status.inventory, |e| {
                run.versions.get(&(e.kind.clone(), e.name.clone())).cloned()
            }),
        )
    };
    actx.remember(
        &run.key,
        step.cache.map(|result| Applied {
            uid: run.uid.clone(),
            fingerprint: fp,
            at: Instant::now(),
            result,
        }),
    );
    Ok(action)
}

impl Run<'_> {
    /// Applies the app's operator Role and RoleBinding ([`hygiene::operator_objects`]) before
    /// its first render, so its operators can read and fix an app whose render fails from the
    /// start; once an apply inventoried them they are applied with everything else. A refusal
    /// is left for that apply to report.
    async fn operator_access(&self, facts: &hygiene::NamespaceFacts) -> Result<()> {
        let objects = hygiene::operator_objects(self.app, &self.ns, &self.label, facts);
        let inventoried = |o: &Value| {
            self.old
                .inventory
                .iter()
                .any(|e| o["kind"] == e.kind.as_str() && o["metadata"]["name"] == e.name.as_str())
        };
        if objects.iter().all(inventoried) {
            return Ok(());
        }
        let Some(owner) = apply::owner_reference(self.app) else {
            return Ok(());
        };
        for o in objects {
            let o = apply::owned(o, &self.ns, &owner);
            match apply::apply(&self.client, &self.ns, crate::FIELD_MANAGER, &o).await {
                Ok(_) => {}
                Err(apply::ApplyError::Refused(m)) => {
                    tracing::warn!(error = %m, "the operator Role could not be applied before rendering");
                }
                Err(apply::ApplyError::Failed(e)) => return Err(e),
            }
        }
        Ok(())
    }

    /// The full path.
    pub(super) async fn full(&mut self, cluster: &ClusterInfo) -> Result<Step> {
        if self.app.spec.suspend {
            self.hold_at_zero().await?;
        }
        // 1. Inputs. A missing compose file is the user's to fix; an API failure is retried.
        let inputs = match gather_inputs(&self.client, self.app).await {
            Ok(i) => i,
            Err(kompox_cluster::Error::Kube { what, source }) => {
                return Err(Error::kube(what, source));
            }
            Err(e) => return Ok(Step::degraded(reasons::REFERENCE_NOT_FOUND, e.to_string())),
        };
        if let Some(step) = disks_not_ready(self.app, &inputs) {
            return Ok(step);
        }
        // The PodSecurity labels of a Kompox app namespace come first, whether or not this app
        // renders: kube-apiserver then holds every Pod there to the level, whoever creates it.
        let facts = self.actx.namespace_facts(&self.client, &self.ns).await?;
        if facts.managed {
            self.actx
                .label_namespace(&self.client, &self.ns, self.app, &facts)
                .await?;
            self.operator_access(&facts).await?;
        }
        // 2. Render. Invalid compose, zone mismatch, missing references: nothing is applied and
        //    the live objects stay as they are. Rendering is CPU work an input can make
        //    expensive: it runs on the blocking pool, within a time budget.
        let config = &self.actx.ctx.config;
        let (key, budget, owned_cluster) = (
            config.hash_key.clone(),
            config.render_timeout,
            cluster.clone(),
        );
        let task = tokio::task::spawn_blocking(move || {
            let r = render(&inputs.input(&owned_cluster, &key));
            (r, inputs)
        });
        let (rendered, inputs) = match tokio::time::timeout(budget, task).await {
            Ok(Ok(done)) => done,
            // Only a panic in the renderer (a bug) ends the task otherwise.
            Ok(Err(e)) => {
                tracing::error!(error = %e, "the renderer failed");
                return Ok(Step::degraded(
                    reasons::INVALID_COMPOSE,
                    "the renderer failed on this app (a Kompox bug; see the controller's log)"
                        .into(),
                ));
            }
            Err(_) => {
                return Ok(Step::degraded(
                    reasons::INVALID_COMPOSE,
                    format!("rendering took longer than {budget:?}: simplify the compose file"),
                ));
            }
        };
        let rendered = match rendered {
            Ok(r) => r,
            Err(e) => {
                return Ok(Step::degraded(e.reason.condition_reason(), e.to_string()));
            }
        };
        let disks = inputs.disks.clone();
        drop(inputs);
        // 3. Namespace hygiene.
        let extra = match hygiene::objects(self.app, &self.ns, &self.label, &facts) {
            Ok(o) => o,
            Err(diags) => {
                let msg = diags.iter().map(ToString::to_string).collect::<Vec<_>>();
                return Ok(Step::degraded(reasons::INVALID_SPEC, msg.join("\n")));
            }
        };
        let Some(owner) = apply::owner_reference(self.app) else {
            return Err(Error::waiting("KompoxApp without uid", WAIT));
        };
        let objects: Vec<Value> = rendered
            .objects
            .iter()
            .cloned()
            .chain(extra)
            .map(|o| apply::owned(o, &self.ns, &owner))
            .collect();
        let typed = apply::owned_typed(rendered.deployment.clone(), &self.ns, &owner);
        // 4. Objects someone else controls are never taken over; nothing is applied then.
        let conflicts = self.ownership_conflicts(&objects).await?;
        if !conflicts.is_empty() {
            return Ok(Step {
                outcome: Outcome::Degraded(reasons::APPLY_FAILED, conflicts.join("; ")),
                requeue: REFUSED,
                cache: None,
            });
        }
        // 5. Claims: every disk is claimed for its volume before anything binds it.
        if let Some(step) = self.claim_disks(&disks).await? {
            return Ok(step);
        }
        // 6. RWO switch: decided from status.volumeSwitch and the live PVCs.
        let views = self.volume_views(&rendered.volume_claims, &disks).await?;
        let plan = switch::plan(self.old.volume_switch.as_ref(), &views);
        let mut started = false;
        match &plan {
            Plan::None => {}
            Plan::Abort => {
                if let Some(sw) = &self.old.volume_switch {
                    let note = format!(
                        "abandoned the switch of volume {} to disk {}: {}",
                        sw.volume, sw.to_disk, "the spec no longer asks for it"
                    );
                    self.publish(Note::normal("VolumeSwitchAborted", "VolumeSwitch", note))
                        .await;
                }
                self.status.volume_switch = None;
            }
            Plan::Switch(sw) => {
                started = self.old.volume_switch.is_none();
                self.status.volume_switch = Some(sw.clone());
            }
        }
        // 7. Inventory first (old ∪ new), with the switch, so a crash cannot leak or forget.
        let new_inventory = apply::inventory(&objects);
        self.status.inventory = apply::union(&self.old.inventory, &new_inventory);
        self.write().await?;
        if started && let Some(sw) = &self.status.volume_switch {
            self.publish(Note::normal(
                "VolumeSwitch",
                "VolumeSwitch",
                switch::progress_message(sw, "started"),
            ))
            .await;
        }
        // 8. Apply (through the switch's phases while one runs).
        let deployment = match self.status.volume_switch.clone() {
            Some(sw) => match self.run_switch(sw, &objects, &typed, &views).await? {
                SwitchStep::Waiting(step) => return Ok(step),
                SwitchStep::Done(d) => d.map(|d| *d),
            },
            None => match self
                .apply_all(&objects, &typed, Replicas::Rendered, None)
                .await?
            {
                Ok(d) => d,
                Err(msg) => {
                    return Ok(Step {
                        outcome: Outcome::Degraded(reasons::APPLY_FAILED, msg),
                        requeue: REFUSED,
                        cache: None,
                    });
                }
            },
        };
        // 9. Prune what earlier renders created and this one does not.
        let stale = apply::stale(&self.status.inventory, &new_inventory);
        let pruned = apply::prune(&self.client, &self.ns, &self.label, &self.uid, &stale).await?;
        self.status.inventory = new_inventory;
        if !pruned.is_empty() {
            let list: Vec<String> = pruned
                .iter()
                .map(|e| format!("{} {}", e.kind, e.name))
                .collect();
            self.publish(Note::normal(
                "Pruned",
                "Prune",
                format!("deleted {}", list.join(", ")),
            ))
            .await;
        }
        // 10. Claims no volume needs any more.
        self.release_stale_claims().await?;
        // 11. Status.
        self.status.ingress_hosts = rendered.ingress_hosts();
        if self.old.rendered_hash.as_deref() != Some(rendered.hash.as_str()) {
            let mut note = format!("applied {} objects ({})", objects.len(), rendered.hash);
            if !rendered.warnings.is_empty() {
                let w: Vec<String> = rendered.warnings.iter().map(ToString::to_string).collect();
                note.push_str(&format!("; warnings: {}", w.join("; ")));
            }
            self.publish(Note::normal("Applied", "Apply", note)).await;
        }
        self.status.rendered_hash = Some(rendered.hash.clone());
        let dep_name = Some(rendered.deployment_name().to_owned());
        let ing_name = rendered.ingress_name().map(str::to_owned);
        let generation = deployment.as_ref().and_then(|d| d.metadata.generation);
        let outcome = readiness(
            deployment.as_ref(),
            generation,
            dep_name.as_deref(),
            ing_name.as_deref(),
            // Just applied, so it exists; whether its controller reported it, the cache says
            // (its status change re-triggers the app).
            ing_name
                .as_ref()
                .map(|n| match self.actx.ctx.config.ingress_admission {
                    IngressAdmission::Existence => true,
                    a => a.admitted(
                        self.actx
                            .stores
                            .ingresses
                            .get(&ObjectRef::new(n).within(&self.ns))
                            .as_deref(),
                    ),
                }),
        );
        Ok(Step {
            outcome,
            requeue: ROLLOUT,
            cache: Some(AppliedResult::Objects {
                deployment: dep_name,
                generation,
                ingress: ing_name,
            }),
        })
    }
}

/// `Progressing` `DiskNotReady` when a referenced disk exists but has no PV yet.
fn disks_not_ready(app: &KompoxApp, inputs: &OwnedInputs) -> Option<Step> {
    let pending: Vec<String> = app
        .spec
        .volumes
        .iter()
        .filter_map(|v| inputs.disks.get(&v.disk_ref.name))
        .filter(|d| {
            d.status
                .as_ref()
                .and_then(|s| s.pv_name.as_deref())
                .is_none_or(str::is_empty)
        })
        .map(|d| d.name_any())
        .collect();
    (!pending.is_empty()).then(|| {
        Step::waiting(
            reasons::DISK_NOT_READY,
            format!(
                "waiting for KompoxDisk {} to become Ready",
                pending.join(", ")
            ),
            ROLLOUT,
        )
    })
}

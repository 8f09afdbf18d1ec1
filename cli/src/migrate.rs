//! `kubectl kompox migrate`: moves an app and its data to another cluster, verified, resumable
//! and reversible, never with two writers.
//!
//! ```text
//! kubectl kompox migrate APP [-n NS] --to-context CTX [--to-kubeconfig F] [--mode snapshot]
//!     [--dry-run] [--resume] [--rollback] [--delete-source] [--verify-data-dir DIR]
//! ```
//!
//! 1. **Preflight** ([`preflight`]), touching nothing: the app, its disks (Ready, with a
//!    handle), compose ConfigMap, Secrets and ConfigMaps in the source; Kompox installed in the
//!    target with the API this needs; the same provider and region; every disk's zone among
//!    the target's; the names free in the target. It prints the plan; `--dry-run` stops there.
//! 2. **Steps** ([`record::Mode::steps`]), each recorded on the source KompoxApp (annotation
//!    [`record::ANNOTATION`]) once done, so a killed command continues with `--resume` from
//!    the step it was in (every step is idempotent: creates by fixed names, server-side
//!    applies, waits): suspend the source until no Pod of it runs, snapshot each disk, import
//!    each snapshot by its handle in the target, restore the disks there, verify each restored
//!    volume's file tree equals the source's, then copy the compose ConfigMap, the Secrets and
//!    ConfigMaps the app reads and the KompoxApp — after checking again that no source Pod
//!    runs — and wait until it is Ready.
//! 3. The source stays suspended, with its disks and the migration's snapshots; it is deleted
//!    only with `--delete-source` after a verified success. `--rollback` removes what the
//!    target got (objects annotated [`record::CREATED_BY`] with the migration's ID), deletes
//!    the snapshots and resumes the source.
//!
//! An error names the step and says what is where; nothing the target got is left without a
//! way back (`--rollback`). No Secret value, and no digest of data, is printed or recorded.

mod objects;
mod preflight;
pub mod record;
mod steps;
mod undo;
pub mod verify;

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use kompox_core::api::KompoxApp;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt as _};
use serde_json::json;

use crate::CliError;
use crate::kubectx::{self, KubeArgs};
use record::{ANNOTATION, Mode, Record, Step};

/// Arguments of `migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The source cluster (`--kubeconfig`, `--context`).
    #[command(flatten)]
    pub kube: KubeArgs,
    /// The KompoxApp to move.
    pub app: String,
    /// Its namespace in the source (default: the kubeconfig context's namespace, else
    /// `default`). The target namespace has the same name, as `apply` names it.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// The target cluster's kubeconfig context.
    #[arg(long, value_name = "NAME")]
    pub to_context: String,
    /// The kubeconfig holding the target context (default: the source's kubeconfig).
    #[arg(long, value_name = "PATH")]
    pub to_kubeconfig: Option<PathBuf>,
    /// How the data moves: `snapshot` copies it (snapshot, import by handle, restore);
    /// `handoff` hands the volumes themselves over (same cloud account and region).
    #[arg(long, value_enum, default_value_t = Mode::Snapshot)]
    pub mode: Mode,
    /// Check and print the plan; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Continue the migration recorded on the app from its last completed step.
    #[arg(long, conflicts_with = "rollback")]
    pub resume: bool,
    /// Undo the migration recorded on the app: remove what the target got, delete the
    /// snapshots, resume the source.
    #[arg(long, conflicts_with_all = ["dry_run", "delete_source"])]
    pub rollback: bool,
    /// After a verified success, delete the source app, its disks (each by its
    /// deletionPolicy) and the migration's snapshots.
    #[arg(long)]
    pub delete_source: bool,
    /// Where the CSI driver keeps volumes as directories (`<DIR>/volumes/<handle>`), to verify
    /// the restored disks (default: `$KOMPOX_CSI_DATA_DIR`, which `hack/cluster.sh env` sets).
    #[arg(long, value_name = "DIR")]
    pub verify_data_dir: Option<PathBuf>,
    /// Move without verifying the restored disks' content (when no data directory is
    /// readable from here).
    #[arg(long)]
    pub skip_verify: bool,
    /// How long each wait may take.
    #[arg(long, default_value = "300s", value_parser = kubectx::parse_duration)]
    pub timeout: Duration,
}

/// One side of the migration.
pub(crate) struct Side {
    pub(crate) client: Client,
    pub(crate) url: String,
    pub(crate) context: String,
    pub(crate) ns: String,
}

impl Side {
    async fn connect(kube: &KubeArgs, ns: String) -> Result<Side, CliError> {
        let (client, url) = kubectx::client(kube).await?;
        kubectx::ping(&client, &url).await?;
        let kc = kubectx::kubeconfig(kube)?;
        let context = kube
            .context
            .clone()
            .or(kc.current_context)
            .unwrap_or_default();
        Ok(Side {
            client,
            url,
            context,
            ns,
        })
    }

    pub(crate) fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }
}

/// A migration under way: both sides, the source app and its record.
pub(crate) struct Migration<'a> {
    pub(crate) args: &'a MigrateArgs,
    pub(crate) src: Side,
    pub(crate) dst: Side,
    pub(crate) app: KompoxApp,
    pub(crate) record: Record,
}

/// Runs `migrate`.
///
/// # Errors
///
/// [`CliError`] naming the step that failed and what was left where.
pub async fn run(args: &MigrateArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let ns = kubectx::namespace(&args.kube, args.namespace.as_deref())?;
    let src = Side::connect(&args.kube, ns.clone()).await?;
    let to = KubeArgs {
        kubeconfig: args
            .to_kubeconfig
            .clone()
            .or_else(|| args.kube.kubeconfig.clone()),
        context: Some(args.to_context.clone()),
        // --as/--as-group act on both clusters.
        as_user: args.kube.as_user.clone(),
        as_groups: args.kube.as_groups.clone(),
    };
    let dst = Side::connect(&to, ns.clone()).await?;
    if src.url == dst.url {
        return Err(CliError::Invalid(vec![format!(
            "--to-context {}: it is the source cluster ({})",
            args.to_context, src.url
        )]));
    }
    let app = src
        .api::<KompoxApp>()
        .get_opt(&args.app)
        .await
        .map_err(|e| kubectx::kube_error(&format!("reading KompoxApp {ns}/{}", args.app), &e))?
        .ok_or_else(|| CliError::NotFound(format!("KompoxApp {ns}/{} not found", args.app)))?;
    let recorded = match app.annotations().get(ANNOTATION) {
        Some(v) => Some(Record::from_annotation(v).map_err(|e| CliError::Invalid(vec![e]))?),
        None => None,
    };
    let what = format!("KompoxApp {ns}/{}", args.app);
    let record = match (recorded, args.resume || args.rollback) {
        (None, true) => {
            return Err(CliError::NotFound(format!(
                "{what}: no migration is recorded on it (annotation {ANNOTATION}); nothing to {}",
                if args.rollback { "roll back" } else { "resume" }
            )));
        }
        (Some(r), false) if !(r.done() && args.delete_source) => {
            return Err(CliError::Invalid(vec![format!(
                "{what}: a migration to {} ({}) is recorded, last step {}: `--resume` continues it, `--rollback` undoes it",
                r.target.context, r.target.server, r.step
            )]));
        }
        (Some(r), _) => {
            if r.target.server != dst.url {
                return Err(CliError::Invalid(vec![format!(
                    "--to-context {}: the recorded migration goes to {} ({}), not {}",
                    args.to_context, r.target.context, r.target.server, dst.url
                )]));
            }
            r
        }
        (None, false) => Record {
            id: record::new_id(),
            mode: args.mode,
            target: record::TargetRef {
                server: dst.url.clone(),
                context: dst.context.clone(),
                namespace: ns.clone(),
            },
            step: Step::Planned,
            was_suspended: app.spec.suspend,
            created_namespace: false,
            suspended_at: None,
            disks: Vec::new(),
            unverified: false,
        },
    };
    let mut m = Migration {
        args,
        src,
        dst,
        app,
        record,
    };
    if args.rollback {
        return m.rollback(out).await;
    }
    if m.record.done() {
        return m.delete_source(out).await;
    }
    let plan = m.preflight().await?;
    m.print_plan(&plan, out);
    if args.dry_run {
        let _ = writeln!(out, "dry run: nothing changed");
        return Ok(());
    }
    if m.record.step == Step::Planned && m.record.disks.is_empty() {
        m.record.disks = plan.disks;
        m.save().await?;
    }
    let started = Instant::now();
    for step in m.record.remaining() {
        let _ = writeln!(out, "step {step}: {}", step.describe());
        let at = Instant::now();
        if let Err(e) = m.run_step(step, out).await {
            return Err(m.failed(step, &e));
        }
        let _ = writeln!(
            out,
            "  step {step} done in {:.2}s",
            at.elapsed().as_secs_f64()
        );
        m.record.step = step;
        m.save().await?;
    }
    m.report(started, out).await?;
    if args.delete_source {
        m.delete_source(out).await?;
    }
    Ok(())
}

impl Migration<'_> {
    /// Writes the record on the source app.
    pub(crate) async fn save(&self) -> Result<(), CliError> {
        let value = self
            .record
            .to_annotation()
            .map_err(|e| CliError::Io(format!("encoding the migration record: {e}")))?;
        self.annotate(Some(value)).await
    }

    /// Sets (or with `None` removes) the record annotation on the source app.
    pub(crate) async fn annotate(&self, value: Option<String>) -> Result<(), CliError> {
        let patch = json!({"metadata": {"annotations": {ANNOTATION: value}}});
        self.src
            .api::<KompoxApp>()
            .patch(
                &self.args.app,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(|e| {
                kubectx::kube_error(
                    &format!(
                        "recording the migration on KompoxApp {}/{}",
                        self.src.ns, self.args.app
                    ),
                    &e,
                )
            })?;
        Ok(())
    }

    async fn run_step(&mut self, step: Step, out: &mut dyn Write) -> Result<(), CliError> {
        match step {
            Step::Planned => Ok(()),
            Step::Suspended => self.suspend(out).await,
            Step::Snapshotted => self.snapshot(out).await,
            Step::Imported => self.import(out).await,
            Step::Restored => self.restore(out).await,
            Step::Verified => self.verify(out).await,
            Step::Released => self.release(out).await,
            Step::Adopted => self.adopt(out).await,
            Step::Started => self.start(out).await,
        }
    }

    /// The error of a failed step: what failed, and what is where now.
    fn failed(&self, step: Step, e: &CliError) -> CliError {
        let app = format!("{}/{}", self.src.ns, self.args.app);
        let mut lines = vec![format!(
            "migrate {app}: step {step} ({}) failed: {e}",
            step.describe()
        )];
        let done = self.record.step;
        let snapshots = self
            .record
            .disks
            .iter()
            .map(|d| record::snapshot_name(&self.record.id, &d.name))
            .collect::<Vec<_>>()
            .join(", ");
        lines.push(format!(
            "left: the source app {app} {} (last completed step: {done}); {}",
            if done >= Step::Suspended {
                "is suspended"
            } else {
                "runs as before"
            },
            match (done >= Step::Snapshotted, step == Step::Snapshotted) {
                (true, _) => format!("snapshots {snapshots} in the source"),
                (false, true) => format!("KompoxSnapshots {snapshots} in the source, not ready"),
                (false, false) => "no snapshot yet".to_owned(),
            }
        ));
        // The target gets its first object (the namespace, the imported snapshots, the
        // adopted disks) in the step after the source's last one.
        if step <= Step::Snapshotted || step == Step::Released {
            lines.push(format!(
                "the target ({}) is untouched",
                self.record.target.context
            ));
        } else {
            lines.push(format!(
                "the target ({}, namespace {}) holds only objects annotated {}={} (none is Ready yet)",
                self.record.target.context,
                self.record.target.namespace,
                record::CREATED_BY,
                self.record.id
            ));
        }
        lines.push(format!(
            "`kubectl kompox migrate {} -n {} --to-context {} --resume` continues, `--rollback` undoes",
            self.args.app, self.src.ns, self.args.to_context
        ));
        CliError::Cluster(lines.join("\n"))
    }

    fn print_plan(&self, plan: &preflight::Plan, out: &mut dyn Write) {
        let _ = writeln!(
            out,
            "migrate KompoxApp {}/{} ({}) to {} ({}), namespace {}, mode {}, migration {}",
            self.src.ns,
            self.args.app,
            self.src.url,
            self.dst.context,
            self.dst.url,
            self.dst.ns,
            self.record.mode.as_str(),
            self.record.id
        );
        for line in &plan.checks {
            let _ = writeln!(out, "  ok: {line}");
        }
        for step in self.record.remaining() {
            let _ = writeln!(out, "  plan: {step}: {}", step.describe());
        }
    }

    async fn report(&self, started: Instant, out: &mut dyn Write) -> Result<(), CliError> {
        let _ = writeln!(
            out,
            "migrated KompoxApp {}/{} to {} in {} (the source stays suspended; `--delete-source` deletes it)",
            self.src.ns,
            self.args.app,
            self.dst.context,
            kubectx::seconds(Duration::from_millis(
                u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
            ))
        );
        steps::print_dns(self, out).await
    }
}

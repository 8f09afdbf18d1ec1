//! `kubectl kompox snapshot list|create|restore`: KompoxSnapshots.

use std::io::Write;

use clap::{Args, Subcommand};
use kompox_core::api::{DeletionPolicy, KompoxDisk, KompoxSnapshot, KompoxSnapshotSpec, LocalRef};
use kube::ResourceExt as _;
use kube::api::Api;

use crate::CliError;
use crate::disk::{new_disk, wait_disk_ready};
use crate::kubectx::{self, no_controller_yet};
use crate::output::{age, line, or_dash, print_list};
use crate::target::{ListArgs, Target, WaitArgs, create, get_in, ns_client};

/// `snapshot` subcommands.
#[derive(Debug, Subcommand)]
pub enum SnapshotCmd {
    /// List the KompoxSnapshots of a namespace.
    List(ListArgs),
    /// Snapshot a disk into KompoxSnapshot NAME and wait until it is ready to use.
    Create(SnapshotCreateArgs),
    /// Restore KompoxSnapshot NAME into a new disk (`--to`) and wait until it is Ready.
    Restore(RestoreArgs),
}

/// Arguments of `snapshot create`.
#[derive(Debug, Args)]
pub struct SnapshotCreateArgs {
    #[command(flatten)]
    pub target: Target,
    /// The KompoxDisk to snapshot.
    #[arg(long)]
    pub disk: String,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// Arguments of `snapshot restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub target: Target,
    /// Name of the new disk.
    #[arg(long = "to")]
    pub disk: String,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// Runs a `snapshot` subcommand.
///
/// # Errors
///
/// [`CliError`] with the server's reason, or a timeout naming the last condition.
pub async fn run(cmd: &SnapshotCmd, out: &mut dyn Write) -> Result<(), CliError> {
    match cmd {
        SnapshotCmd::List(a) => {
            let ss: Vec<KompoxSnapshot> = a.items().await?;
            let now = k8s_openapi::jiff::Timestamp::now();
            print_list(
                out,
                &ss,
                a.output.as_ref(),
                a.all_namespaces,
                (
                    &["NAME", "DISK", "READY", "AGE"],
                    &["RESTORE-SIZE", "HANDLE"],
                ),
                |s| {
                    let st = s.status.clone().unwrap_or_default();
                    (
                        vec![
                            s.name_any(),
                            s.spec.disk_ref.name.clone(),
                            st.ready_to_use.to_string(),
                            age(s.metadata.creation_timestamp.as_ref(), now),
                        ],
                        vec![
                            or_dash(st.restore_size.map(|q| q.0)),
                            or_dash(st.snapshot_handle),
                        ],
                    )
                },
            )
        }
        SnapshotCmd::Create(a) => {
            let (ns, name) = (&a.target.ns()?, &a.target.name);
            let client = ns_client(&a.target.kube, ns).await?;
            let api: Api<KompoxSnapshot> = Api::namespaced(client, ns);
            let mut s = KompoxSnapshot::new(
                name,
                KompoxSnapshotSpec {
                    disk_ref: LocalRef {
                        name: a.disk.clone(),
                    },
                    ..KompoxSnapshotSpec::default()
                },
            );
            s.metadata.namespace = Some(ns.clone());
            let what = format!("kompoxsnapshot {ns}/{name}");
            let created = format!("{what} created from disk {}", a.disk);
            create(&api, &s, &what, &created, true, out).await?;
            if !a.wait.wait {
                return Ok(());
            }
            let awaited = format!("KompoxSnapshot {ns}/{name} ready to use");
            kubectx::wait_for(api, name, &awaited, a.wait.timeout, Some(&mut *out), |s| {
                let Some(s) = s else {
                    return Err(CliError::NotFound(format!(
                        "KompoxSnapshot {ns}/{name} was deleted while waiting for it"
                    )));
                };
                let st = s.status.clone().unwrap_or_default();
                Ok(if st.ready_to_use {
                    Ok(())
                } else {
                    Err(no_controller_yet(&st.conditions))
                })
            })
            .await?;
            line(out, &format!("{what} is ready to use"))
        }
        SnapshotCmd::Restore(a) => {
            let (ns, from, to) = (&a.target.ns()?, &a.target.name, &a.disk);
            let client = ns_client(&a.target.kube, ns).await?;
            let snap: KompoxSnapshot = get_in(&client, ns, from).await?;
            let disks: Api<KompoxDisk> = Api::namespaced(client.clone(), ns);
            let src = disks.get_opt(&snap.spec.disk_ref.name).await.ok().flatten();
            let size = src
                .as_ref()
                .map_or_else(|| "10Gi".to_owned(), |d| d.spec.size.0.clone());
            let zone = src.as_ref().and_then(|d| d.spec.zone.clone());
            let d = new_disk(to, ns, size, zone, DeletionPolicy::Orphan, Some(from));
            let what = format!("kompoxdisk {ns}/{to}");
            let created = format!("{what} created from snapshot {from}");
            create(&disks, &d, &what, &created, true, out).await?;
            if a.wait.wait {
                wait_disk_ready(&disks, ns, to, a.wait.timeout, out).await?;
            }
            Ok(())
        }
    }
}

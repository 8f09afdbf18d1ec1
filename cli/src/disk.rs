//! `kubectl kompox disk list|create|attach|detach|resize|delete`: KompoxDisks.

use std::io::{IsTerminal as _, Write};

use clap::{Args, Subcommand};
use kompox_cluster::{is_conflict, is_not_found};
use kompox_core::api::condition::{self, reasons, types};
use kompox_core::api::{
    DeletionPolicy, KompoxApp, KompoxDisk, KompoxDiskSpec, LocalRef, ProviderSpec,
};
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams};
use serde_json::json;

use crate::CliError;
use crate::kubectx::{self, no_controller_yet};
use crate::output::{age, confirm, line, or_dash, print_list, ready_of};
use crate::project::{Size, parse_size};
use crate::target::{ListArgs, SUBRESOURCES, Target, WaitArgs, create, get_in, list_in, ns_client};

/// `disk` subcommands.
#[derive(Debug, Subcommand)]
pub enum DiskCmd {
    /// List the KompoxDisks of a namespace.
    List(ListArgs),
    /// Create KompoxDisk NAME (fresh, or from a snapshot) and wait until it is Ready.
    Create(DiskCreateArgs),
    /// Attach KompoxDisk NAME to an app volume (the `attach` subresource).
    Attach(AttachArgs),
    /// Detach KompoxDisk NAME from an app volume (the `detach` subresource).
    Detach(AttachArgs),
    /// Grow KompoxDisk NAME to --size and wait until its volume has that size.
    #[command(after_long_help = DISK_RESIZE_HELP)]
    Resize(DiskResizeArgs),
    /// Delete KompoxDisk NAME unless an app uses it, and wait until it is gone.
    #[command(after_long_help = DISK_DELETE_HELP)]
    Delete(DiskDeleteArgs),
}

/// Shown by `disk delete --help`.
pub const DISK_DELETE_HELP: &str = "\
A disk an app uses (its spec.volumes names it, or status.attachedTo names an existing app) is
not deleted: detach it first with `kubectl kompox disk detach`.

A disk with deletionPolicy Delete takes its volume and the data on it along: on a terminal the
command asks for the disk's name to confirm, otherwise it needs --yes. With deletionPolicy
Orphan the volume is kept and can be adopted again through spec.handle.";

/// Shown by `disk resize --help`.
pub const DISK_RESIZE_HELP: &str = "\
The volume is expanded through the CSI driver (the PVC that binds it, or a temporary one while
no app uses it); the disk is Progressing (Resizing) meanwhile and Ready at the new size after.
A disk never shrinks: a size below spec.size is refused by the API server. If the driver
refuses the size (Degraded, ResizeFailed), the command says so; spec.size may then be lowered
again, to a size above the volume's current one (status.size).";

/// Arguments of `disk create`.
#[derive(Debug, Args)]
pub struct DiskCreateArgs {
    #[command(flatten)]
    pub target: Target,
    /// Size, e.g. 10Gi.
    #[arg(long, default_value = "10Gi")]
    pub size: String,
    /// Zone (a number such as "1" or a zone label value).
    #[arg(long)]
    pub zone: Option<String>,
    /// Restore from this KompoxSnapshot.
    #[arg(long, value_name = "SNAPSHOT")]
    pub from_snapshot: Option<String>,
    /// What deleting the KompoxDisk does to the volume: Orphan (keep it) or Delete.
    #[arg(long, default_value = "Orphan", value_parser = parse_deletion_policy)]
    pub deletion_policy: DeletionPolicy,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// Arguments of `disk resize`.
#[derive(Debug, Args)]
pub struct DiskResizeArgs {
    #[command(flatten)]
    pub target: Target,
    /// The new size, e.g. 20Gi.
    #[arg(long, value_parser = parse_size)]
    pub size: Size,
    #[command(flatten)]
    pub wait: WaitArgs,
}

fn parse_deletion_policy(s: &str) -> Result<DeletionPolicy, String> {
    match s {
        "Orphan" => Ok(DeletionPolicy::Orphan),
        "Delete" => Ok(DeletionPolicy::Delete),
        _ => Err(format!("{s:?}: expected Orphan or Delete")),
    }
}

/// Arguments of `disk attach|detach`.
#[derive(Debug, Args)]
pub struct AttachArgs {
    #[command(flatten)]
    pub target: Target,
    /// The KompoxApp.
    #[arg(long)]
    pub app: String,
    /// The app's volume.
    #[arg(long)]
    pub volume: String,
}

/// Arguments of `disk delete`.
#[derive(Debug, Args)]
pub struct DiskDeleteArgs {
    #[command(flatten)]
    pub target: Target,
    /// Confirm deleting a disk whose deletionPolicy Delete destroys its volume.
    #[arg(short = 'y', long)]
    pub yes: bool,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// Waits (watching) until disk `name` is Ready, printing its conditions as they change.
pub(crate) async fn wait_disk_ready(
    api: &Api<KompoxDisk>,
    ns: &str,
    name: &str,
    timeout: std::time::Duration,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let what = format!("KompoxDisk {ns}/{name} Ready");
    kubectx::wait_for(api.clone(), name, &what, timeout, Some(&mut *out), |d| {
        let Some(d) = d else {
            return Err(CliError::NotFound(format!(
                "KompoxDisk {ns}/{name} was deleted while waiting for it to be Ready"
            )));
        };
        let conds = d
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        Ok(if ready_of(conds) == "True" {
            Ok(())
        } else {
            Err(no_controller_yet(conds))
        })
    })
    .await?;
    line(out, &format!("kompoxdisk {ns}/{name} is Ready"))
}

pub(crate) fn new_disk(
    name: &str,
    ns: &str,
    size: String,
    zone: Option<String>,
    policy: DeletionPolicy,
    from_snapshot: Option<&str>,
) -> KompoxDisk {
    let mut d = KompoxDisk::new(
        name,
        KompoxDiskSpec {
            provider: ProviderSpec::default(),
            size: k8s_openapi::apimachinery::pkg::api::resource::Quantity(size),
            zone,
            options: Default::default(),
            deletion_policy: policy,
            from_snapshot: from_snapshot.map(|name| LocalRef { name: name.into() }),
            handle: None,
        },
    );
    d.metadata.namespace = Some(ns.to_owned());
    d
}

/// Runs a `disk` subcommand; `err` gets the confirmation prompt of `delete`.
///
/// # Errors
///
/// [`CliError`] with the server's reason, a refusal naming what holds the disk, or a timeout
/// naming the last conditions.
pub async fn run(cmd: &DiskCmd, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), CliError> {
    match cmd {
        DiskCmd::List(a) => {
            let ds: Vec<KompoxDisk> = a.items().await?;
            let now = k8s_openapi::jiff::Timestamp::now();
            print_list(
                out,
                &ds,
                a.output.as_ref(),
                a.all_namespaces,
                (
                    &[
                        "NAME",
                        "SIZE",
                        "ZONE",
                        "READY",
                        "ATTACHED-TO",
                        "FROM-SNAPSHOT",
                        "AGE",
                    ],
                    &["VOLUME-SIZE", "DELETION-POLICY", "PV", "HANDLE"],
                ),
                |d| {
                    let s = d.status.clone().unwrap_or_default();
                    (
                        vec![
                            d.name_any(),
                            d.spec.size.0.clone(),
                            or_dash(s.zone.or(d.spec.zone.clone())),
                            ready_of(&s.conditions),
                            or_dash(s.attached_to.map(|x| format!("{}/{}", x.app, x.volume))),
                            or_dash(d.spec.from_snapshot.clone().map(|r| r.name)),
                            age(d.metadata.creation_timestamp.as_ref(), now),
                        ],
                        vec![
                            or_dash(s.size.map(|q| q.0)),
                            format!("{:?}", d.spec.deletion_policy),
                            or_dash(s.pv_name),
                            or_dash(s.handle.or(d.spec.handle.clone())),
                        ],
                    )
                },
            )
        }
        DiskCmd::Create(a) => {
            let (ns, name) = (&a.target.ns()?, &a.target.name);
            let client = ns_client(&a.target.kube, ns).await?;
            let api: Api<KompoxDisk> = Api::namespaced(client, ns);
            let d = new_disk(
                name,
                ns,
                a.size.clone(),
                a.zone.clone(),
                a.deletion_policy,
                a.from_snapshot.as_deref(),
            );
            let what = format!("kompoxdisk {ns}/{name}");
            let from = a
                .from_snapshot
                .as_ref()
                .map(|s| format!(" from snapshot {s}"))
                .unwrap_or_default();
            create(
                &api,
                &d,
                &what,
                &format!("{what} created{from}"),
                false,
                out,
            )
            .await?;
            if a.wait.wait {
                wait_disk_ready(&api, ns, name, a.wait.timeout, out).await?;
            }
            Ok(())
        }
        DiskCmd::Attach(a) | DiskCmd::Detach(a) => {
            let (verb, prep) = if matches!(cmd, DiskCmd::Attach(_)) {
                ("attach", "to")
            } else {
                ("detach", "from")
            };
            let (ns, name) = (&a.target.ns()?, &a.target.name);
            let client = ns_client(&a.target.kube, ns).await?;
            let body = serde_json::to_vec(&json!({"app": a.app, "volume": a.volume}))
                .map_err(|e| CliError::Io(e.to_string()))?;
            let req = http::Request::post(format!(
                "{SUBRESOURCES}/namespaces/{ns}/kompoxdisks/{name}/{verb}"
            ))
            .header("content-type", "application/json")
            .body(body)
            .map_err(|e| CliError::Io(e.to_string()))?;
            client
                .request_text(req)
                .await
                .map_err(|e| kubectx::kube_error(&format!("{verb} kompoxdisk {ns}/{name}"), &e))?;
            line(
                out,
                &format!(
                    "kompoxdisk {ns}/{name} {verb}ed {prep} {}/{}",
                    a.app, a.volume
                ),
            )
        }
        DiskCmd::Resize(a) => resize_disk(a, out).await,
        DiskCmd::Delete(a) => delete_disk(a, out, err).await,
    }
}

/// `disk resize`: sets `spec.size`, then waits until the controller has seen that generation
/// and reports Ready with a volume of at least that size, or Degraded `ResizeFailed`.
async fn resize_disk(a: &DiskResizeArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let (ns, name) = (&a.target.ns()?, &a.target.name);
    let client = ns_client(&a.target.kube, ns).await?;
    let api: Api<KompoxDisk> = Api::namespaced(client, ns);
    let what = format!("kompoxdisk {ns}/{name}");
    let size = &a.size.text;
    let patch = json!({"spec": {"size": size}});
    let d = api
        .patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .map_err(|e| kubectx::kube_error(&format!("resizing {what}"), &e))?;
    line(out, &format!("{what} spec.size set to {size}"))?;
    if !a.wait.wait {
        return Ok(());
    }
    let generation = d.metadata.generation.unwrap_or_default();
    let awaited = format!("{what} Ready at {size}");
    kubectx::wait_for(api, name, &awaited, a.wait.timeout, Some(&mut *out), |d| {
        let Some(d) = d else {
            return Err(CliError::NotFound(format!(
                "{what} was deleted while waiting for it to grow"
            )));
        };
        let st = d.status.clone().unwrap_or_default();
        if st.observed_generation.unwrap_or_default() < generation {
            return Ok(Err(format!(
                "the controller has not seen generation {generation} yet"
            )));
        }
        if let Some(c) = condition::find(&st.conditions, types::DEGRADED)
            .filter(|c| c.status == "True" && c.reason == reasons::RESIZE_FAILED)
        {
            return Err(CliError::Cluster(format!(
                "{what} cannot grow to {size}: {}",
                c.message
            )));
        }
        let have = st
            .size
            .as_ref()
            .and_then(|q| kompox_core::api::quantity::parse_bytes(&q.0).ok())
            .unwrap_or(0);
        Ok(
            if condition::is_true(&st.conditions, types::READY) && have >= a.size.bytes {
                Ok(())
            } else {
                Err(kubectx::conditions_summary(&st.conditions))
            },
        )
    })
    .await?;
    line(out, &format!("{what} is Ready at {size}"))
}

/// The app volumes that hold disk `d`: volumes of existing apps naming it, and its
/// `status.attachedTo` while that app exists (a stale one the controller clears).
fn disk_users(d: &KompoxDisk, apps: &[KompoxApp]) -> Vec<(String, String)> {
    let name = d.name_any();
    let mut users: Vec<(String, String)> = apps
        .iter()
        .flat_map(|app| {
            app.spec
                .volumes
                .iter()
                .filter(|v| v.disk_ref.name == name)
                .map(|v| (app.name_any(), v.name.clone()))
        })
        .collect();
    if let Some(at) = d.status.as_ref().and_then(|s| s.attached_to.as_ref())
        && apps.iter().any(|app| app.name_any() == at.app)
        && !users.iter().any(|(a, v)| *a == at.app && *v == at.volume)
    {
        users.push((at.app.clone(), at.volume.clone()));
    }
    users
}

/// `disk delete`: refuses a disk in use, asks before destroying a volume, deletes with a
/// resourceVersion precondition (so nothing attached it since the check) and waits until the
/// controller's finalizer let it go.
async fn delete_disk(
    a: &DiskDeleteArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CliError> {
    let (ns, name) = (&a.target.ns()?, &a.target.name);
    let client = ns_client(&a.target.kube, ns).await?;
    let api: Api<KompoxDisk> = Api::namespaced(client.clone(), ns);
    let d: KompoxDisk = get_in(&client, ns, name).await?;
    let apps: Vec<KompoxApp> = list_in(&client, ns).await?;
    let users = disk_users(&d, &apps);
    if !users.is_empty() {
        let mut lines = vec![format!(
            "KompoxDisk {ns}/{name} is in use by {}: not deleted",
            users
                .iter()
                .map(|(app, vol)| format!("KompoxApp {app} volume {vol}"))
                .collect::<Vec<_>>()
                .join(", ")
        )];
        lines.extend(users.iter().map(|(app, vol)| {
            format!("detach it first: kubectl kompox disk detach {name} -n {ns} --app {app} --volume {vol}")
        }));
        return Err(CliError::Invalid(lines));
    }
    let handle = or_dash(d.status.as_ref().and_then(|s| s.handle.clone()));
    if d.spec.deletion_policy == DeletionPolicy::Delete && !a.yes {
        let question = format!(
            "KompoxDisk {ns}/{name} has deletionPolicy Delete: deleting it destroys volume {handle} and its data."
        );
        let confirmed = std::io::stdin().is_terminal()
            && confirm(err, &question, "the disk's name", name).await?;
        if !confirmed {
            return Err(CliError::Invalid(vec![format!(
                "{question} Not deleted: give --yes to confirm"
            )]));
        }
    }
    let dp = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: d.metadata.uid.clone(),
            resource_version: d.metadata.resource_version.clone(),
        }),
        ..DeleteParams::background()
    };
    match api.delete(name, &dp).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {
            return Err(CliError::NotFound(format!(
                "KompoxDisk {ns}/{name}: not found"
            )));
        }
        Err(e) if is_conflict(&e) => {
            return Err(CliError::Cluster(format!(
                "KompoxDisk {ns}/{name} changed while it was checked (an attach?); not deleted, try again"
            )));
        }
        Err(e) => {
            return Err(kubectx::kube_error(
                &format!("deleting KompoxDisk {ns}/{name}"),
                &e,
            ));
        }
    }
    line(out, &format!("kompoxdisk {ns}/{name} deletion requested"))?;
    if a.wait.wait {
        kubectx::wait_deleted(
            api,
            name,
            &format!("KompoxDisk {ns}/{name} deleted"),
            a.wait.timeout,
            Some(&mut *out),
            |d| {
                no_controller_yet(
                    d.status
                        .as_ref()
                        .map(|s| s.conditions.as_slice())
                        .unwrap_or_default(),
                )
            },
        )
        .await?;
    }
    let kept = match d.spec.deletion_policy {
        DeletionPolicy::Orphan => format!(
            " (deletionPolicy Orphan: volume {handle} kept; adopt it again with spec.handle)"
        ),
        DeletionPolicy::Delete => format!(" (deletionPolicy Delete: volume {handle} deleted)"),
    };
    if a.wait.wait {
        line(out, &format!("kompoxdisk {ns}/{name} deleted{kept}"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app_with(name: &str, volumes: &[(&str, &str)]) -> KompoxApp {
        let mut a = crate::project::default_app(name);
        a.spec.volumes = volumes
            .iter()
            .map(|(v, d)| kompox_core::api::AppVolume {
                name: (*v).to_owned(),
                disk_ref: LocalRef {
                    name: (*d).to_owned(),
                },
            })
            .collect();
        a
    }

    #[test]
    fn disk_users_from_app_specs_and_a_live_holder() {
        let mut d = crate::project::disk("data");
        let apps = vec![
            app_with("web", &[("default", "data"), ("logs", "other")]),
            app_with("wiki", &[("default", "wiki-disk")]),
        ];
        assert_eq!(
            disk_users(&d, &apps),
            vec![("web".to_owned(), "default".to_owned())]
        );
        // status.attachedTo of an existing app counts, of a deleted app not.
        for (holder, users) in [("wiki", 2), ("gone", 1)] {
            d.status = Some(kompox_core::api::KompoxDiskStatus {
                attached_to: Some(kompox_core::api::AttachedTo {
                    app: holder.into(),
                    volume: "old".into(),
                }),
                ..Default::default()
            });
            assert_eq!(disk_users(&d, &apps).len(), users, "{holder}");
        }
        assert!(disk_users(&crate::project::disk("free"), &apps).is_empty());
    }

    #[test]
    fn deletion_policy_flag() {
        assert_eq!(parse_deletion_policy("Delete"), Ok(DeletionPolicy::Delete));
        assert_eq!(parse_deletion_policy("Orphan"), Ok(DeletionPolicy::Orphan));
        assert!(parse_deletion_policy("delete").is_err());
    }
}

//! `kubectl kompox delete APP`: the app and what it owns — the KompoxApp (the Deployments,
//! Services, claims … it rendered go with it, by owner reference), the compose ConfigMap and
//! the Secrets/ConfigMaps `apply` uploaded for it, and its KompoxDisks, which follow their
//! deletionPolicy (Delete: the volume and its data go too). `--delete-namespace` deletes the
//! app's namespace instead, with everything in it.
//!
//! Everything is checked before anything is deleted: a disk another app also uses is kept
//! (and said); destroying data (a disk with deletionPolicy Delete, or the namespace) is asked
//! for on a terminal (type the app's name) and needs `--yes` otherwise.

use std::collections::BTreeSet;
use std::io::{IsTerminal as _, Write};

use clap::Args;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kompox_cluster::is_not_found;
use kompox_core::api::{DeletionPolicy, KompoxApp, KompoxDisk};
use kube::api::{Api, DeleteParams, Preconditions};
use kube::{Client, Resource, ResourceExt as _};
use serde::de::DeserializeOwned;

use crate::CliError;
use crate::kubectx;
use crate::output::{confirm, line};
use crate::state::{read_state, state_path, write_state};
use crate::target::{AppRef, WaitArgs, connect, get_in, list_in};

/// Arguments of `delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub app: AppRef,
    /// Delete the app's whole namespace (everything in it, its disks by their
    /// deletionPolicy) and forget it in .kompox/state.json (with -f).
    #[arg(long)]
    pub delete_namespace: bool,
    /// Confirm destroying data (a disk with deletionPolicy Delete, or the namespace).
    #[arg(short = 'y', long)]
    pub yes: bool,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// What `delete` removes, decided before anything is deleted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Disks of the app no other app uses.
    pub disks: Vec<String>,
    /// Disks another app also uses: kept (disk, app).
    pub shared: Vec<(String, String)>,
    /// The app's ConfigMaps and Secrets no other app references.
    pub config_maps: BTreeSet<String>,
    pub secrets: BTreeSet<String>,
}

/// The ConfigMaps and Secrets `app` reads: the compose ConfigMap, the render's sources
/// (`spec.compose.envFrom`, `spec.envOverrides`, `spec.files.mounts`) and
/// `spec.imagePullSecrets`.
fn inputs(app: &KompoxApp) -> (BTreeSet<String>, BTreeSet<String>) {
    let refs = kompox_core::render::referenced_sources(app);
    let mut cms = refs.config_maps;
    cms.insert(app.spec.compose.config_map_ref.name.clone());
    let mut secrets = refs.secrets;
    secrets.extend(app.spec.image_pull_secrets.iter().map(|r| r.name.clone()));
    (cms, secrets)
}

/// What deleting `app` removes, given the other apps of its namespace.
#[must_use]
pub fn plan(app: &KompoxApp, others: &[KompoxApp]) -> Plan {
    let mut p = Plan::default();
    for v in &app.spec.volumes {
        let d = &v.disk_ref.name;
        if p.disks.contains(d) || p.shared.iter().any(|(s, _)| s == d) {
            continue;
        }
        match others
            .iter()
            .find(|o| o.spec.volumes.iter().any(|w| w.disk_ref.name == *d))
        {
            Some(o) => p.shared.push((d.clone(), o.name_any())),
            None => p.disks.push(d.clone()),
        }
    }
    let (cms, secrets) = inputs(app);
    let (mut other_cms, mut other_secrets) = (BTreeSet::new(), BTreeSet::new());
    for o in others {
        let (c, s) = inputs(o);
        other_cms.extend(c);
        other_secrets.extend(s);
    }
    p.config_maps = cms.difference(&other_cms).cloned().collect();
    p.secrets = secrets.difference(&other_secrets).cloned().collect();
    p
}

/// Whether a server-side apply wrote the object (as `apply` does), rather than someone's
/// `kubectl create`: only those inputs are the app's to delete.
fn applied<K: Resource>(o: &K) -> bool {
    o.meta()
        .managed_fields
        .iter()
        .flatten()
        .any(|m| m.operation.as_deref() == Some("Apply"))
}

/// Runs `delete`.
///
/// # Errors
///
/// [`CliError`] naming the app, a refusal to destroy data without `--yes`, or what the
/// cluster refused; nothing is deleted when a check fails.
pub async fn run(
    args: &DeleteArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CliError> {
    let (client, ns) = connect(&args.app).await?;
    let name = &args.app.app;
    let app: KompoxApp = get_in(&client, &ns, name).await?;
    let all: Vec<KompoxApp> = list_in(&client, &ns).await?;
    let others: Vec<KompoxApp> = all.into_iter().filter(|a| a.name_any() != *name).collect();
    let disks: Vec<KompoxDisk> = list_in(&client, &ns).await?;
    let p = plan(&app, &others);
    let destroyed: Vec<String> = if args.delete_namespace {
        disks
            .iter()
            .filter(|d| d.spec.deletion_policy == DeletionPolicy::Delete)
            .map(kube::ResourceExt::name_any)
            .collect()
    } else {
        disks
            .iter()
            .filter(|d| {
                p.disks.contains(&d.name_any()) && d.spec.deletion_policy == DeletionPolicy::Delete
            })
            .map(kube::ResourceExt::name_any)
            .collect()
    };
    if args.delete_namespace && !others.is_empty() {
        return Err(CliError::Invalid(vec![format!(
            "namespace {ns} also holds KompoxApp {}: not deleted; delete the app alone (without --delete-namespace)",
            others
                .iter()
                .map(kube::ResourceExt::name_any)
                .collect::<Vec<_>>()
                .join(", ")
        )]));
    }
    if (args.delete_namespace || !destroyed.is_empty()) && !args.yes {
        let mut question = if args.delete_namespace {
            format!("Deleting namespace {ns} deletes everything in it")
        } else {
            format!("Deleting KompoxApp {ns}/{name} deletes its disks")
        };
        if !destroyed.is_empty() {
            question.push_str(&format!(
                "; the volumes of KompoxDisk {} (deletionPolicy Delete) and their data are destroyed",
                destroyed.join(", ")
            ));
        }
        question.push('.');
        let confirmed = std::io::stdin().is_terminal()
            && confirm(err, &question, "the app's name", name).await?;
        if !confirmed {
            return Err(CliError::Invalid(vec![format!(
                "{question} Nothing deleted: give --yes to confirm"
            )]));
        }
    }
    if args.delete_namespace {
        return delete_namespace(&client, &ns, args, out).await;
    }
    // The app first: the controller stops rendering it and its objects go by owner reference;
    // its disks are then free to go.
    let apps: Api<KompoxApp> = Api::namespaced(client.clone(), &ns);
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: app.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    delete_one(&apps, name, &dp, &format!("KompoxApp {ns}/{name}")).await?;
    line(out, &format!("kompoxapp {ns}/{name} deleted"))?;
    if args.wait.wait {
        kubectx::wait_deleted(
            apps,
            name,
            &format!("KompoxApp {ns}/{name} deleted"),
            args.wait.timeout,
            Some(&mut *out),
            |_| "finalizers pending".to_owned(),
        )
        .await?;
    }
    let disk_api: Api<KompoxDisk> = Api::namespaced(client.clone(), &ns);
    for d in &p.disks {
        let Some(disk) = disks.iter().find(|x| x.name_any() == *d) else {
            continue;
        };
        delete_one(
            &disk_api,
            d,
            &DeleteParams::background(),
            &format!("KompoxDisk {ns}/{d}"),
        )
        .await?;
        let how = match disk.spec.deletion_policy {
            DeletionPolicy::Delete => "its volume is deleted (deletionPolicy Delete)",
            DeletionPolicy::Orphan => {
                "its volume is kept (deletionPolicy Orphan; adopt it again with spec.handle)"
            }
        };
        line(out, &format!("kompoxdisk {ns}/{d} deleted: {how}"))?;
    }
    for (d, other) in &p.shared {
        line(
            out,
            &format!("kompoxdisk {ns}/{d} kept: KompoxApp {other} uses it too"),
        )?;
    }
    inputs_gone::<ConfigMap>(&client, &ns, &p.config_maps, "configmap", out).await?;
    inputs_gone::<Secret>(&client, &ns, &p.secrets, "secret", out).await?;
    if args.wait.wait {
        for d in &p.disks {
            kubectx::wait_deleted(
                disk_api.clone(),
                d,
                &format!("KompoxDisk {ns}/{d} deleted"),
                args.wait.timeout,
                Some(&mut *out),
                |d| {
                    kubectx::no_controller_yet(
                        d.status
                            .as_ref()
                            .map(|s| s.conditions.as_slice())
                            .unwrap_or_default(),
                    )
                },
            )
            .await?;
        }
    }
    Ok(())
}

/// Deletes the app's inputs that `apply` server-side applied (others are someone else's).
async fn inputs_gone<K>(
    client: &Client,
    ns: &str,
    names: &BTreeSet<String>,
    kind: &str,
    out: &mut dyn Write,
) -> Result<(), CliError>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    for n in names {
        let obj = match api.get_opt(n).await {
            Ok(Some(o)) => o,
            Ok(None) => continue,
            Err(e) => return Err(kubectx::kube_error(&format!("reading {kind} {ns}/{n}"), &e)),
        };
        if !applied(&obj) {
            line(out, &format!("{kind} {ns}/{n} kept: not written by apply"))?;
            continue;
        }
        delete_one(
            &api,
            n,
            &DeleteParams::background(),
            &format!("{kind} {ns}/{n}"),
        )
        .await?;
        line(out, &format!("{kind} {ns}/{n} deleted"))?;
    }
    Ok(())
}

async fn delete_one<K>(
    api: &Api<K>,
    name: &str,
    dp: &DeleteParams,
    what: &str,
) -> Result<(), CliError>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, dp).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(kubectx::kube_error(&format!("deleting {what}"), &e)),
    }
}

/// `--delete-namespace`: the namespace (its objects and disks go with it, each disk by its
/// deletionPolicy through the controller's finalizer), and its record in the state file.
async fn delete_namespace(
    client: &Client,
    ns: &str,
    args: &DeleteArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let api: Api<Namespace> = Api::all(client.clone());
    delete_one(
        &api,
        ns,
        &DeleteParams::background(),
        &format!("namespace {ns}"),
    )
    .await?;
    line(out, &format!("namespace {ns} deletion requested"))?;
    if let Some(compose) = &args.app.file {
        let path = state_path(compose);
        let mut state = read_state(&path)?;
        let before = state.apps.len();
        state.apps.retain(|_, e| e.namespace != ns);
        if state.apps.len() != before {
            write_state(&path, &state)?;
            line(
                out,
                &format!("{}: namespace {ns} forgotten", path.display()),
            )?;
        }
    }
    if args.wait.wait {
        kubectx::wait_deleted(
            api,
            ns,
            &format!("namespace {ns} deleted"),
            args.wait.timeout,
            Some(&mut *out),
            |n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.phase.clone())
                    .unwrap_or_default()
            },
        )
        .await?;
        line(out, &format!("namespace {ns} deleted"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kompox_core::api::{AppVolume, LocalRef};
    use rstest::rstest;

    fn app(name: &str, disks: &[&str]) -> KompoxApp {
        let mut a = crate::project::default_app(name);
        a.spec.volumes = disks
            .iter()
            .map(|d| AppVolume {
                name: (*d).to_owned(),
                disk_ref: LocalRef {
                    name: (*d).to_owned(),
                },
            })
            .collect();
        a
    }

    #[rstest]
    #[case::alone(&["data"], &[], &["data"], &[])]
    #[case::shared_disk_kept(&["data", "logs"], &[("wiki", &["logs"][..])], &["data"], &[("logs", "wiki")])]
    #[case::no_disks(&[], &[("wiki", &["x"][..])], &[], &[])]
    fn disks_another_app_uses_are_kept(
        #[case] mine: &[&str],
        #[case] others: &[(&str, &[&str])],
        #[case] deleted: &[&str],
        #[case] kept: &[(&str, &str)],
    ) {
        let others: Vec<KompoxApp> = others.iter().map(|(n, d)| app(n, d)).collect();
        let p = plan(&app("web", mine), &others);
        assert_eq!(p.disks, deleted);
        let kept: Vec<(String, String)> = kept
            .iter()
            .map(|(d, a)| ((*d).to_owned(), (*a).to_owned()))
            .collect();
        assert_eq!(p.shared, kept);
    }

    #[test]
    fn inputs_another_app_reads_are_kept() {
        let web = app("web", &[]);
        let mut wiki = app("wiki", &[]);
        wiki.spec.compose.config_map_ref.name = "web-compose".into();
        assert!(plan(&web, &[]).config_maps.contains("web-compose"));
        assert!(plan(&web, &[wiki]).config_maps.is_empty());
    }
}

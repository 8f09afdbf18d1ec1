//! The multi-attach guard: a KompoxDisk is bound to at most one app volume.
//!
//! [`claim_decision`] is the pure rule; [`claim`] and [`release`] apply it to the cluster with a
//! status merge patch carrying the disk's `resourceVersion` as a precondition, so two app
//! reconciles racing for one disk cannot both win (the loser re-reads and sees `HeldBy`).

use kompox_core::api::{AttachedTo, KompoxDisk};
use kube::Api;
use kube::api::{Patch, PatchParams};

use crate::error::{Error, Result};
use kompox_cluster::{is_conflict, retry_on_conflict};

/// The outcome of claiming a disk for one app volume.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Claim {
    /// The disk is free: the caller may take it (write `status.attachedTo`).
    Granted,
    /// The disk is already bound to exactly this app volume: nothing to do.
    AlreadyHeld,
    /// The disk is bound to another app volume: the claimant must not bind it and reports
    /// `Degraded` reason `DiskInUse` naming the holder.
    HeldBy {
        /// The holding KompoxApp.
        app: String,
        /// The holding volume name in that app.
        volume: String,
    },
}

impl Claim {
    /// The `DiskInUse` message for a refused claim (`None` unless [`Claim::HeldBy`]).
    #[must_use]
    pub fn in_use_message(&self, disk: &str) -> Option<String> {
        match self {
            Claim::HeldBy { app, volume } => Some(format!(
                "disk {disk} is in use by app {app} volume {volume}"
            )),
            _ => None,
        }
    }
}

/// Decides whether `app`'s volume `volume` may bind `disk`, from `disk.status.attachedTo`.
pub fn claim_decision(disk: &KompoxDisk, app: &str, volume: &str) -> Claim {
    match disk.status.as_ref().and_then(|s| s.attached_to.as_ref()) {
        None => Claim::Granted,
        Some(a) if a.app == app && a.volume == volume => Claim::AlreadyHeld,
        Some(a) => Claim::HeldBy {
            app: a.app.clone(),
            volume: a.volume.clone(),
        },
    }
}

/// Tries at most this many times when the disk changes under a claim or release.
const ATTEMPTS: usize = 5;

/// Claims `disk_name` for `app`/`volume`: re-reads the disk, decides with [`claim_decision`]
/// and, when granted, writes `status.attachedTo` with the read `resourceVersion` as a
/// precondition (a conflict re-reads and decides again).
///
/// # Errors
///
/// [`Error::Kube`] when the disk cannot be read (including 404) or patched;
/// [`Error::Contended`] when it kept changing for every attempt.
pub async fn claim(
    api: &Api<KompoxDisk>,
    disk_name: &str,
    app: &str,
    volume: &str,
) -> Result<Claim> {
    retry_on_conflict(ATTEMPTS, || async move {
        let disk = api
            .get_status(disk_name)
            .await
            .map_err(|e| Error::kube(format!("reading KompoxDisk {disk_name}"), e))?;
        let decision = claim_decision(&disk, app, volume);
        if decision != Claim::Granted {
            return Ok(Ok(decision));
        }
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": disk.metadata.resource_version},
            "status": {"attachedTo": AttachedTo { app: app.into(), volume: volume.into() }},
        });
        match api
            .patch_status(disk_name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(Ok(Claim::Granted)),
            Err(e) if is_conflict(&e) => Ok(Err(())),
            Err(e) => Err(Error::kube(format!("claiming KompoxDisk {disk_name}"), e)),
        }
    })
    .await?
    .map_err(|()| Error::Contended(format!("claiming KompoxDisk {disk_name}")))
}

/// Releases `disk_name` if (and only if) it is held by `app`/`volume`; returns whether it was.
/// A missing disk counts as released.
///
/// # Errors
///
/// [`Error::Kube`] when the disk cannot be read or patched; [`Error::Contended`] when it
/// kept changing.
pub async fn release(
    api: &Api<KompoxDisk>,
    disk_name: &str,
    app: &str,
    volume: &str,
) -> Result<bool> {
    retry_on_conflict(ATTEMPTS, || async move {
        let Some(disk) = api
            .get_opt(disk_name)
            .await
            .map_err(|e| Error::kube(format!("reading KompoxDisk {disk_name}"), e))?
        else {
            return Ok(Ok(false));
        };
        if claim_decision(&disk, app, volume) != Claim::AlreadyHeld {
            return Ok(Ok(false));
        }
        match clear_attached(api, &disk).await {
            Ok(()) => Ok(Ok(true)),
            Err(Error::Kube { source, .. }) if is_conflict(&source) => Ok(Err(())),
            Err(e) => Err(e),
        }
    })
    .await?
    .map_err(|()| Error::Contended(format!("releasing KompoxDisk {disk_name}")))
}

/// Clears `status.attachedTo` of `disk` if it is unchanged since it was read.
pub(crate) async fn clear_attached(api: &Api<KompoxDisk>, disk: &KompoxDisk) -> Result<()> {
    let name = disk.metadata.name.clone().unwrap_or_default();
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": disk.metadata.resource_version},
        "status": {"attachedTo": null},
    });
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|e| Error::kube(format!("releasing KompoxDisk {name}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use kompox_core::api::{KompoxDiskSpec, KompoxDiskStatus};
    use rstest::rstest;

    fn disk(attached: Option<(&str, &str)>) -> KompoxDisk {
        let spec: KompoxDiskSpec = match serde_json::from_value(serde_json::json!({"size": "1Gi"}))
        {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        let mut d = KompoxDisk::new("data", spec);
        d.spec.size = Quantity("1Gi".into());
        d.status = Some(KompoxDiskStatus {
            attached_to: attached.map(|(app, volume)| AttachedTo {
                app: app.into(),
                volume: volume.into(),
            }),
            ..Default::default()
        });
        d
    }

    fn held_by(a: &str, v: &str) -> Claim {
        Claim::HeldBy {
            app: a.into(),
            volume: v.into(),
        }
    }

    fn no_status() -> KompoxDisk {
        let mut d = disk(None);
        d.status = None;
        d
    }

    #[rstest]
    #[case::free(disk(None), "gitea", "data", Claim::Granted)]
    #[case::no_status(no_status(), "gitea", "data", Claim::Granted)]
    #[case::same_holder(disk(Some(("gitea", "data"))), "gitea", "data", Claim::AlreadyHeld)]
    #[case::other_app(disk(Some(("gitea", "data"))), "wiki", "data", held_by("gitea", "data"))]
    #[case::same_app_other_volume(
        disk(Some(("gitea", "data"))),
        "gitea",
        "db",
        held_by("gitea", "data")
    )]
    fn decision(#[case] d: KompoxDisk, #[case] app: &str, #[case] vol: &str, #[case] want: Claim) {
        assert_eq!(claim_decision(&d, app, vol), want);
    }

    #[test]
    fn in_use_message_names_the_holder() {
        let c = Claim::HeldBy {
            app: "gitea".into(),
            volume: "data".into(),
        };
        assert_eq!(
            c.in_use_message("main").as_deref(),
            Some("disk main is in use by app gitea volume data")
        );
        assert_eq!(Claim::Granted.in_use_message("main"), None);
    }
}

//! What a migration records on the source KompoxApp (annotation [`ANNOTATION`]), the steps in
//! their order, and the names of what it creates: pure, so `--resume` and `--rollback` decide
//! from the record alone.

use serde::{Deserialize, Serialize};

/// The annotation on the source KompoxApp holding the [`Record`] (JSON), and the one on every
/// object a migration created holding its [`Record::id`].
pub use kompox_core::well_known::{
    MIGRATION_ANNOTATION as ANNOTATION, MIGRATION_ID_ANNOTATION as CREATED_BY,
};

/// How the data moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Snapshot every disk, import the snapshots by handle in the target, restore new disks
    /// there (a copy: the source's volumes stay as they are).
    Snapshot,
    /// No copy (same cloud account and region): the source lets go of its volumes (Orphan)
    /// and the target adopts them by handle.
    Handoff,
}

impl Mode {
    /// The wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Snapshot => "snapshot",
            Mode::Handoff => "handoff",
        }
    }

    /// The steps of this mode, in order.
    #[must_use]
    pub const fn steps(self) -> &'static [Step] {
        match self {
            Mode::Snapshot => &[
                Step::Suspended,
                Step::Snapshotted,
                Step::Imported,
                Step::Restored,
                Step::Verified,
                Step::Started,
            ],
            Mode::Handoff => &[
                Step::Suspended,
                Step::Released,
                Step::Adopted,
                Step::Started,
            ],
        }
    }
}

/// A step of a migration; the record holds the last one completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Step {
    /// Preflight passed, nothing done yet.
    Planned,
    /// The source app is suspended and no Pod of it runs.
    Suspended,
    /// Every disk of the source app has a ready snapshot.
    Snapshotted,
    /// The target imported each snapshot by its handle.
    Imported,
    /// The target restored each disk from its imported snapshot.
    Restored,
    /// Each restored disk holds the source disk's files, byte for byte.
    Verified,
    /// Handoff: the source's disks let go of their volumes (Orphan, deleted).
    Released,
    /// Handoff: the target adopted each volume by handle.
    Adopted,
    /// The target has the compose ConfigMap, the Secrets and the KompoxApp, and it is Ready.
    Started,
}

impl Step {
    /// What the step does, for the plan and for errors.
    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            Step::Planned => "preflight",
            Step::Suspended => "suspend the source app (spec.suspend) until no Pod of it runs",
            Step::Snapshotted => "snapshot every disk of the source app",
            Step::Imported => "import each snapshot by its handle in the target",
            Step::Restored => "restore each disk in the target from its imported snapshot",
            Step::Verified => {
                "verify each restored disk holds the source disk's files, byte for byte"
            }
            Step::Released => {
                "release the source's disks (deletionPolicy Orphan, then delete the KompoxDisks: the volumes stay)"
            }
            Step::Adopted => "adopt each volume by its handle in the target",
            Step::Started => {
                "copy the compose ConfigMap, Secrets, ConfigMaps and the KompoxApp; wait until Ready"
            }
        }
    }

    /// Whether the step may not run twice: its effect cannot be checked or undone by
    /// repeating it. Every other step is idempotent (creates by fixed names, server-side
    /// applies, waits), so a killed run repeats it on `--resume`.
    #[must_use]
    pub const fn destructive(self) -> bool {
        matches!(self, Step::Released)
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

/// Where the app goes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    /// The target API server's URL.
    pub server: String,
    /// The kubeconfig context used.
    pub context: String,
    /// The app's namespace there.
    pub namespace: String,
}

/// One disk of the app, as the migration found and moved it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiskRecord {
    /// The KompoxDisk's name (the same in the target).
    pub name: String,
    /// The source volume's handle.
    pub source_handle: String,
    /// The source disk's `spec.deletionPolicy` before the migration.
    pub deletion_policy: String,
    /// The provider snapshot's handle (snapshot mode, once taken).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_handle: Option<String>,
    /// The target volume's handle (once restored or adopted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_handle: Option<String>,
    /// Handoff: the source KompoxDisk's spec and zone, kept before it is deleted, so that a
    /// rollback can adopt the volume back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_spec: Option<serde_json::Value>,
    /// The zone the source volume is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

/// The migration's state, on the source app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// Random, fixed for the migration: part of every name it creates.
    pub id: String,
    /// The mode.
    pub mode: Mode,
    /// Where to.
    pub target: TargetRef,
    /// The last step completed.
    pub step: Step,
    /// The source app's `spec.suspend` before the migration (a rollback puts it back).
    pub was_suspended: bool,
    /// Whether the migration created the target namespace (a rollback deletes it then).
    #[serde(default)]
    pub created_namespace: bool,
    /// When the source was suspended (RFC 3339): the start of the downtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended_at: Option<String>,
    /// The app's disks.
    #[serde(default)]
    pub disks: Vec<DiskRecord>,
    /// The copies were not verified (`--skip-verify`): `--delete-source` refuses then.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unverified: bool,
}

impl Record {
    /// The steps still to run, in order.
    #[must_use]
    pub fn remaining(&self) -> Vec<Step> {
        self.mode
            .steps()
            .iter()
            .copied()
            .filter(|s| *s > self.step)
            .collect()
    }

    /// Whether every step is done.
    #[must_use]
    pub fn done(&self) -> bool {
        self.remaining().is_empty()
    }

    /// The record as the annotation's value.
    ///
    /// # Errors
    ///
    /// Never in practice (plain data).
    pub fn to_annotation(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// The record from the annotation's value.
    ///
    /// # Errors
    ///
    /// A message naming the annotation when it does not parse.
    pub fn from_annotation(value: &str) -> Result<Record, String> {
        serde_json::from_str(value).map_err(|e| {
            format!("annotation {ANNOTATION}: not a migration record ({e}); remove it by hand if no migration runs")
        })
    }

    /// The disk named `name`.
    pub fn disk_mut(&mut self, name: &str) -> Option<&mut DiskRecord> {
        self.disks.iter_mut().find(|d| d.name == name)
    }
}

/// The KompoxSnapshot that carries disk `disk` across (the same name on both sides), at most
/// 253 characters.
#[must_use]
pub fn snapshot_name(id: &str, disk: &str) -> String {
    kompox_core::naming::truncate_with_hash(&format!("{disk}-migrate-{id}"), 253)
}

/// A fresh migration ID: 8 lowercase hex digits.
#[must_use]
pub fn new_id() -> String {
    format!("{:08x}", rand::random::<u32>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn record(mode: Mode, step: Step) -> Record {
        Record {
            id: "0badcafe".into(),
            mode,
            target: TargetRef::default(),
            step,
            was_suspended: false,
            created_namespace: false,
            suspended_at: None,
            disks: vec![],
            unverified: false,
        }
    }

    #[rstest]
    #[case::fresh_snapshot(Mode::Snapshot, Step::Planned, &[Step::Suspended, Step::Snapshotted, Step::Imported, Step::Restored, Step::Verified, Step::Started])]
    #[case::killed_after_the_snapshots(Mode::Snapshot, Step::Snapshotted, &[Step::Imported, Step::Restored, Step::Verified, Step::Started])]
    #[case::snapshot_done(Mode::Snapshot, Step::Started, &[])]
    #[case::fresh_handoff(Mode::Handoff, Step::Planned, &[Step::Suspended, Step::Released, Step::Adopted, Step::Started])]
    #[case::handoff_released_never_again(Mode::Handoff, Step::Released, &[Step::Adopted, Step::Started])]
    fn remaining_steps(#[case] mode: Mode, #[case] at: Step, #[case] want: &[Step]) {
        assert_eq!(record(mode, at).remaining(), want);
    }

    #[test]
    fn the_record_round_trips_through_its_annotation() {
        let mut r = record(Mode::Snapshot, Step::Imported);
        r.disks.push(DiskRecord {
            name: "data".into(),
            source_handle: "12".into(),
            deletion_policy: "Orphan".into(),
            snapshot_handle: Some("4".into()),
            ..DiskRecord::default()
        });
        let text = r.to_annotation().unwrap_or_default();
        assert!(text.contains("\"step\":\"Imported\""), "{text}");
        assert_eq!(Record::from_annotation(&text), Ok(r));
        let bad = Record::from_annotation("{").err().unwrap_or_default();
        assert!(bad.starts_with("annotation kompox.dev/migration:"), "{bad}");
    }

    #[test]
    fn names_are_bounded_and_only_the_release_is_destructive() {
        assert_eq!(snapshot_name("0badcafe", "data"), "data-migrate-0badcafe");
        assert!(snapshot_name("0badcafe", &"d".repeat(253)).len() <= 253);
        assert_eq!(new_id().len(), 8);
        let destructive: Vec<Step> = Mode::Handoff
            .steps()
            .iter()
            .chain(Mode::Snapshot.steps())
            .copied()
            .filter(|s| s.destructive())
            .collect();
        assert_eq!(destructive, [Step::Released]);
    }
}

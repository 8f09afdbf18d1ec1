//! Condition types, reasons and a pure merge.
//!
//! Every Kompox resource reports `Ready`, `Progressing` and `Degraded`. [`merge`] moves
//! `lastTransitionTime` only when a condition's status flips, so re-reconciling with the
//! same outcome leaves the status byte-for-byte equal (and server-side apply a no-op).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Condition type names.
pub mod types {
    /// The resource is fully reconciled and usable.
    pub const READY: &str = "Ready";
    /// The controller is working towards the desired state.
    pub const PROGRESSING: &str = "Progressing";
    /// The desired state cannot be reached without a change by the user.
    pub const DEGRADED: &str = "Degraded";
    /// A KompoxApp with `spec.suspend: true` runs no Pod (True), or still does (False,
    /// `Suspending`); False with `Resumed` after `spec.suspend` went back to false.
    pub const SUSPENDED: &str = "Suspended";
}

/// Reasons used across Kompox (CamelCase, as the API requires).
pub mod reasons {
    /// Everything is applied and observed healthy.
    pub const RECONCILED: &str = "Reconciled";
    /// A disk or snapshot is being created.
    pub const PROVISIONING: &str = "Provisioning";
    /// Rendered objects are being applied / rolled out.
    pub const APPLYING: &str = "Applying";
    /// Applying objects to the cluster failed.
    pub const APPLY_FAILED: &str = "ApplyFailed";
    /// The compose file could not be read or converted.
    pub const INVALID_COMPOSE: &str = "InvalidCompose";
    /// The spec failed validation.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// A referenced ConfigMap, Secret, disk or snapshot does not exist.
    pub const REFERENCE_NOT_FOUND: &str = "ReferenceNotFound";
    /// The rendered Pod breaks the app's Pod Security level (`spec.podSecurity`).
    pub const POD_SECURITY_VIOLATION: &str = "PodSecurityViolation";
    /// Disk and deployment zones disagree.
    pub const ZONE_MISMATCH: &str = "ZoneMismatch";
    /// The disk is bound to another app volume.
    pub const DISK_IN_USE: &str = "DiskInUse";
    /// A referenced disk exists but is not Ready yet.
    pub const DISK_NOT_READY: &str = "DiskNotReady";
    /// The cluster has no way to snapshot this disk.
    pub const SNAPSHOT_UNSUPPORTED: &str = "SnapshotUnsupported";
    /// The snapshot is being taken.
    pub const SNAPSHOT_PENDING: &str = "SnapshotPending";
    /// The provider could not be detected or is not supported for this operation.
    pub const PROVIDER_UNSUPPORTED: &str = "ProviderUnsupported";
    /// A provider (cloud/CSI) call failed.
    pub const PROVIDER_ERROR: &str = "ProviderError";
    /// An RWO volume is being switched to another disk.
    pub const VOLUME_SWITCHING: &str = "VolumeSwitching";
    /// A disk's volume is being expanded to `spec.size`.
    pub const RESIZING: &str = "Resizing";
    /// A disk's volume cannot be expanded to `spec.size`.
    pub const RESIZE_FAILED: &str = "ResizeFailed";
    /// The app is held at zero replicas (`spec.suspend: true`) and no Pod of it runs.
    pub const SUSPENDED: &str = "Suspended";
    /// The app is being scaled to zero (`spec.suspend: true`) and some Pod still runs.
    pub const SUSPENDING: &str = "Suspending";
    /// `spec.suspend` went back to false: the app runs again.
    pub const RESUMED: &str = "Resumed";
    /// The object is being deleted (finalizer running).
    pub const DELETING: &str = "Deleting";
}

/// Maximum length of `message` accepted by the API.
pub const MAX_MESSAGE_LEN: usize = 32768;

/// A condition's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// `"True"`.
    True,
    /// `"False"`.
    False,
    /// `"Unknown"`.
    Unknown,
}

impl Status {
    /// The wire value.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }

    /// `True` for `true`, `False` for `false`.
    #[must_use]
    pub const fn from_bool(b: bool) -> Status {
        if b { Status::True } else { Status::False }
    }
}

/// Builds a condition stamped with `now`; the message is cut to [`MAX_MESSAGE_LEN`] bytes
/// on a character boundary.
#[must_use]
pub fn new(
    type_: &str,
    status: Status,
    reason: &str,
    message: &str,
    observed_generation: Option<i64>,
    now: Time,
) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: status.as_str().to_string(),
        reason: reason.to_string(),
        message: truncate(message, MAX_MESSAGE_LEN).to_string(),
        observed_generation,
        last_transition_time: now,
    }
}

/// Merges `update` into `conditions`, returning the new list.
///
/// # Guarantees
///
/// - An existing condition of the same type is replaced in place; a new type is appended.
/// - If the status did not change, the existing `lastTransitionTime` is kept (reason,
///   message and observedGeneration are still updated); only a flip takes `update`'s time.
/// - Duplicate entries of the same type in the input collapse into one.
#[must_use]
pub fn merge(conditions: &[Condition], update: Condition) -> Vec<Condition> {
    let mut out: Vec<Condition> = Vec::with_capacity(conditions.len() + 1);
    let mut update = Some(update);
    for c in conditions {
        if out.iter().any(|o| o.type_ == c.type_) {
            continue; // drop duplicates of a type already placed
        }
        match update.take_if(|u| u.type_ == c.type_) {
            Some(mut u) => {
                if u.status == c.status {
                    u.last_transition_time = c.last_transition_time.clone();
                }
                out.push(u);
            }
            None => out.push(c.clone()),
        }
    }
    if let Some(u) = update {
        out.push(u);
    }
    out
}

/// Merges several updates in order; see [`merge`].
#[must_use]
pub fn merge_all(
    conditions: &[Condition],
    updates: impl IntoIterator<Item = Condition>,
) -> Vec<Condition> {
    updates
        .into_iter()
        .fold(conditions.to_vec(), |acc, u| merge(&acc, u))
}

/// The condition of type `type_`, if present.
#[must_use]
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of type `type_` is present with status `True`.
#[must_use]
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == Status::True.as_str())
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn t(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH))
    }

    #[test]
    fn same_status_keeps_transition_time() {
        let old = vec![new(
            types::READY,
            Status::False,
            reasons::PROVISIONING,
            "creating",
            Some(1),
            t(100),
        )];
        let merged = merge(
            &old,
            new(
                types::READY,
                Status::False,
                reasons::ZONE_MISMATCH,
                "zone",
                Some(2),
                t(200),
            ),
        );
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].last_transition_time, t(100));
        assert_eq!(merged[0].reason, reasons::ZONE_MISMATCH);
        assert_eq!(merged[0].observed_generation, Some(2));
    }

    #[test]
    fn flip_moves_transition_time_and_keeps_order() {
        let old = vec![
            new(
                types::READY,
                Status::False,
                reasons::PROVISIONING,
                "",
                None,
                t(100),
            ),
            new(
                types::PROGRESSING,
                Status::True,
                reasons::PROVISIONING,
                "",
                None,
                t(100),
            ),
        ];
        let merged = merge_all(
            &old,
            [
                new(
                    types::READY,
                    Status::True,
                    reasons::RECONCILED,
                    "",
                    None,
                    t(300),
                ),
                new(
                    types::DEGRADED,
                    Status::False,
                    reasons::RECONCILED,
                    "",
                    None,
                    t(300),
                ),
            ],
        );
        let names: Vec<_> = merged.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(names, [types::READY, types::PROGRESSING, types::DEGRADED]);
        assert_eq!(merged[0].last_transition_time, t(300));
        assert_eq!(merged[1].last_transition_time, t(100));
        assert!(is_true(&merged, types::READY));
        assert!(!is_true(&merged, types::DEGRADED));
        assert!(!is_true(&merged, "Missing"));
    }

    #[test]
    fn idempotent_and_dedups() {
        let c = new(
            types::READY,
            Status::True,
            reasons::RECONCILED,
            "ok",
            None,
            t(1),
        );
        let twice = vec![
            c.clone(),
            new(types::READY, Status::False, "X", "", None, t(0)),
        ];
        let merged = merge(
            &twice,
            new(
                types::READY,
                Status::True,
                reasons::RECONCILED,
                "ok",
                None,
                t(9),
            ),
        );
        assert_eq!(merged, vec![c.clone()]);
        assert_eq!(merge(&merged, c.clone()), merged);
    }

    #[test]
    fn message_is_truncated_on_char_boundary() {
        let long = "é".repeat(MAX_MESSAGE_LEN);
        let c = new(
            types::READY,
            Status::Unknown,
            reasons::APPLYING,
            &long,
            None,
            t(0),
        );
        assert!(c.message.len() <= MAX_MESSAGE_LEN);
        assert_eq!(c.status, "Unknown");
    }
}

//! Events: the one way the controllers publish a Kubernetes Event. A [`Note`] says what
//! happened; [`publish`] sends it about an object. Callers publish on transitions and actions
//! taken only, never on every reconcile, and never put Secret data in a note.

use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder};

/// Longest note the API accepts (`events.k8s.io/v1` `note`: 1 kB).
pub const MAX_NOTE_BYTES: usize = 1000;

/// One Event to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Normal or Warning.
    pub type_: EventType,
    /// CamelCase reason.
    pub reason: String,
    /// The action (`Reconcile`, `Snapshot`, `Apply`, `Prune`, `VolumeSwitch`, …).
    pub action: &'static str,
    /// Human-readable note; never Secret data.
    pub note: String,
}

impl Note {
    /// A Normal Event: an action taken or a transition.
    #[must_use]
    pub fn normal(
        reason: impl Into<String>,
        action: &'static str,
        note: impl Into<String>,
    ) -> Self {
        Self {
            type_: EventType::Normal,
            reason: reason.into(),
            action,
            note: note.into(),
        }
    }

    /// A Warning Event: something a user must act on.
    #[must_use]
    pub fn warning(
        reason: impl Into<String>,
        action: &'static str,
        note: impl Into<String>,
    ) -> Self {
        Self {
            type_: EventType::Warning,
            ..Self::normal(reason, action, note)
        }
    }
}

/// `note` cut to [`MAX_NOTE_BYTES`] at a character boundary.
fn truncated(mut note: String) -> String {
    if note.len() > MAX_NOTE_BYTES {
        let mut end = MAX_NOTE_BYTES;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
    }
    note
}

/// Publishes `note` about `obj`, logging (not failing) when the API refuses it. The note is cut
/// to the API's limit.
pub async fn publish<K: Resource<DynamicType = ()>>(recorder: &Recorder, obj: &K, note: Note) {
    let ev = Event {
        type_: note.type_,
        reason: note.reason,
        note: Some(truncated(note.note)),
        action: note.action.to_owned(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&ev, &obj.object_ref(&())).await {
        tracing::warn!(reason = %ev.reason, error = %e, "publishing an Event failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_cut_at_a_character_boundary() {
        assert_eq!(truncated("short".into()), "short");
        let long = "é".repeat(MAX_NOTE_BYTES);
        let cut = truncated(long);
        assert!(cut.len() <= MAX_NOTE_BYTES && cut.len() >= MAX_NOTE_BYTES - 1);
        assert!(cut.chars().all(|c| c == 'é'));
        let w = Note::warning("R", "Act", "n");
        assert_eq!(w.type_, EventType::Warning);
        assert_eq!(
            (w.reason.as_str(), w.action, w.note.as_str()),
            ("R", "Act", "n")
        );
        assert_eq!(Note::normal("R", "Act", "n").type_, EventType::Normal);
    }
}

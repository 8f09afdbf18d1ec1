//! Reconcile metrics, registered in the shared [`kompox_serve::Metrics`] registry (prefix
//! `kompox_controller`):
//!
//! - `kompox_controller_reconciles_total{controller}`
//! - `kompox_controller_reconcile_errors_total{controller,reason}`
//! - `kompox_controller_reconcile_duration_seconds{controller}` (histogram)
//! - `kompox_controller_scope_namespaces` (gauge): namespaces matching `--namespace-selector`
//! - `kompox_controller_leader` (gauge): 1 while this replica runs the controllers (holds the
//!   Lease, or runs without leader election), else 0 (a standby)

use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// Metric name prefix of the controller.
pub const PREFIX: &str = "kompox_controller";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabel {
    controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    controller: &'static str,
    reason: &'static str,
}

fn duration_histogram() -> Histogram {
    // 1 ms … ~33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Reconcile counters and durations per controller. Cheap to clone (shared handles).
#[derive(Clone)]
pub struct ControllerMetrics {
    http: kompox_serve::Metrics,
    reconciles: Family<ControllerLabel, Counter>,
    errors: Family<ErrorLabels, Counter>,
    duration: Family<ControllerLabel, Histogram, fn() -> Histogram>,
    scope_namespaces: Gauge,
    leader: Gauge,
}

impl std::fmt::Debug for ControllerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerMetrics").finish_non_exhaustive()
    }
}

impl Default for ControllerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ControllerMetrics {
    /// A fresh registry with the controller metrics registered.
    #[must_use]
    pub fn new() -> Self {
        let http = kompox_serve::Metrics::new(PREFIX);
        let reconciles = Family::<ControllerLabel, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration =
            Family::<ControllerLabel, Histogram, fn() -> Histogram>::new_with_constructor(
                duration_histogram,
            );
        http.register(
            "reconciles",
            "Reconciliations run, by controller",
            reconciles.clone(),
        );
        http.register(
            "reconcile_errors",
            "Reconciliations that failed, by controller and error category",
            errors.clone(),
        );
        http.register(
            "reconcile_duration_seconds",
            "Reconciliation duration in seconds, by controller",
            duration.clone(),
        );
        let scope_namespaces = Gauge::default();
        http.register(
            "scope_namespaces",
            "Namespaces matching --namespace-selector (the controllers' scope)",
            scope_namespaces.clone(),
        );
        let leader = Gauge::default();
        http.register(
            "leader",
            "1 while this replica runs the controllers (holds the Lease), 0 while it stands by",
            leader.clone(),
        );
        Self {
            http,
            reconciles,
            errors,
            duration,
            scope_namespaces,
            leader,
        }
    }

    /// The underlying registry (served at `/metrics`; register more metrics on it).
    #[must_use]
    pub fn registry(&self) -> &kompox_serve::Metrics {
        &self.http
    }

    /// Starts timing one reconcile of `controller`; the count and duration are recorded when
    /// the returned guard drops.
    #[must_use = "the reconcile is measured until the guard drops"]
    pub fn reconcile(&self, controller: &'static str) -> ReconcileTimer {
        self.reconciles
            .get_or_create(&ControllerLabel { controller })
            .inc();
        ReconcileTimer {
            histogram: self
                .duration
                .get_or_create(&ControllerLabel { controller })
                .clone(),
            start: Instant::now(),
        }
    }

    /// Counts a failed reconcile of `controller` with the error category `reason`.
    pub fn error(&self, controller: &'static str, reason: &'static str) {
        self.errors
            .get_or_create(&ErrorLabels { controller, reason })
            .inc();
    }
}

impl ControllerMetrics {
    /// Records how many namespaces match `--namespace-selector`.
    pub fn scope_namespaces(&self, n: usize) {
        self.scope_namespaces
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Records whether this replica runs the controllers.
    pub fn leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }
}

/// Records a reconcile's duration when dropped.
pub struct ReconcileTimer {
    histogram: Histogram,
    start: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_times_per_controller() {
        let m = ControllerMetrics::new();
        {
            let _t = m.reconcile("disk");
        }
        drop(m.reconcile("disk"));
        m.error("disk", "Conflict");
        m.scope_namespaces(3);
        let out = m.registry().encode().unwrap();
        assert!(
            out.contains("kompox_controller_leader 0"),
            "a standby at first: {out}"
        );
        assert!(
            out.contains(r#"kompox_build_info{component="controller",version="#),
            "{out}"
        );
        m.leader(true);
        let leading = m.registry().encode().unwrap();
        assert!(leading.contains("kompox_controller_leader 1"), "{leading}");
        assert!(
            out.contains(r#"kompox_controller_reconciles_total{controller="disk"} 2"#),
            "{out}"
        );
        assert!(
            out.contains(
                r#"kompox_controller_reconcile_errors_total{controller="disk",reason="Conflict"} 1"#
            ),
            "{out}"
        );
        assert!(
            out.contains(
                r#"kompox_controller_reconcile_duration_seconds_count{controller="disk"} 2"#
            ),
            "{out}"
        );
        assert!(
            out.contains("kompox_controller_scope_namespaces 3"),
            "{out}"
        );
    }
}

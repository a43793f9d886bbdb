//! Prometheus metrics of the controllers: reconciles, failures by reason, duration.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};
use std::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    kind: &'static str,
    reason: String,
}

/// The operator's metrics, registered once in [`Metrics::registry`].
pub struct Metrics {
    registry: Registry,
    reconciles: Family<KindLabel, Counter>,
    failures: Family<FailureLabels, Counter>,
    duration: Family<KindLabel, Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("kontrakt");
        let reconciles = Family::<KindLabel, Counter>::default();
        let failures = Family::<FailureLabels, Counter>::default();
        let duration = Family::<KindLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
        });
        registry.register("reconciles", "Reconciles run, by kind", reconciles.clone());
        registry.register(
            "reconcile_failures",
            "Reconciles that failed, by kind and reason",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile, by kind",
            duration.clone(),
        );
        Self {
            registry,
            reconciles,
            failures,
            duration,
        }
    }
}

impl Metrics {
    /// Counts a reconcile of `kind` and measures it until the returned timer drops.
    pub fn reconcile(&self, kind: &'static str) -> ReconcileTimer<'_> {
        self.reconciles.get_or_create(&KindLabel { kind }).inc();
        ReconcileTimer {
            metrics: self,
            kind,
            start: Instant::now(),
        }
    }

    /// Counts a failed reconcile by its reason (the stable Event reason).
    pub fn failure(&self, kind: &'static str, reason: &str) {
        self.failures
            .get_or_create(&FailureLabels {
                kind,
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// The registry to encode on `/metrics`.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

/// Records the duration of one reconcile when dropped.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    kind: &'static str,
    start: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        let secs = self.start.elapsed().as_secs_f64();
        self.metrics
            .duration
            .get_or_create(&KindLabel { kind: self.kind })
            .observe(secs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_reconciles_failures_and_durations() {
        let metrics = Metrics::default();
        drop(metrics.reconcile("SmartContractService"));
        metrics.failure("SmartContractService", "SecretNotFound");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, metrics.registry()).unwrap();
        assert!(
            text.contains("kontrakt_reconciles_total{kind=\"SmartContractService\"} 1"),
            "{text}"
        );
        assert!(text.contains("reason=\"SecretNotFound\""), "{text}");
        assert!(
            text.contains(
                "kontrakt_reconcile_duration_seconds_count{kind=\"SmartContractService\"} 1"
            ),
            "{text}"
        );
    }
}

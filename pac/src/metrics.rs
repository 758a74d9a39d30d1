//! The engine's metrics, registered into a registry the caller owns (never global statics).
//! Labels are bounded: outcomes and cache results, never hosts or URLs.

use std::sync::{Arc, OnceLock};

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Handles to every metric the engine updates.
#[derive(Clone)]
pub(crate) struct Metrics {
    /// Evaluations by outcome: `ok`, `load`, `call`, `timeout`.
    pub evaluations: IntCounterVec,
    /// Wall time of uncached evaluations, in seconds.
    pub duration: Histogram,
    /// Result cache lookups by result: `hit`, `miss`.
    pub cache: IntCounterVec,
    /// DNS lookups made for scripts by outcome: `ok`, `nxdomain`, `timeout`, `budget`, `cached`.
    pub dns: IntCounterVec,
    /// Workers replaced after a deadline expired or a worker died.
    pub worker_restarts: IntCounter,
    /// Worker processes killed (or dead) by reason: `memory`, `deadline`, `crash`.
    pub worker_kills: IntCounterVec,
    /// Calls waiting for a worker process.
    pub queue_depth: IntGauge,
    /// `cache{result="hit"}`, resolved once (a label lookup per answer costs a good part of a
    /// cached answer).
    pub cache_hit: Labelled,
    /// `cache{result="miss"}`.
    pub cache_miss: Labelled,
    /// `evaluations{outcome="ok"}`.
    pub evaluations_ok: Labelled,
}

/// One series of a counter vector, resolved on first use (so, as with `with_label_values` at
/// each use, a series appears in the exposition only once counted).
#[derive(Clone)]
pub(crate) struct Labelled {
    vec: IntCounterVec,
    label: &'static str,
    series: Arc<OnceLock<IntCounter>>,
}

impl Labelled {
    fn new(vec: &IntCounterVec, label: &'static str) -> Labelled {
        Labelled {
            vec: vec.clone(),
            label,
            series: Arc::new(OnceLock::new()),
        }
    }

    /// Adds one.
    pub fn inc(&self) {
        self.series
            .get_or_init(|| self.vec.with_label_values(&[self.label]))
            .inc();
    }
}

impl Metrics {
    /// Creates the metrics and registers them into `registry` when given.
    pub fn new(registry: Option<&Registry>) -> Metrics {
        let counter_vec = |name: &str, help: &str, label: &str| {
            IntCounterVec::new(Opts::new(name, help), &[label])
                .unwrap_or_else(|_| unreachable_metric(name))
        };
        let evaluations = counter_vec(
            "waypost_pac_evaluations_total",
            "PAC evaluations by outcome",
            "outcome",
        );
        let cache = counter_vec(
            "waypost_pac_cache_lookups_total",
            "PAC result cache lookups by result",
            "result",
        );
        let metrics = Metrics {
            cache_hit: Labelled::new(&cache, "hit"),
            cache_miss: Labelled::new(&cache, "miss"),
            evaluations_ok: Labelled::new(&evaluations, "ok"),
            evaluations,
            cache,
            duration: Histogram::with_opts(
                HistogramOpts::new(
                    "waypost_pac_evaluation_duration_seconds",
                    "Duration of uncached PAC evaluations",
                )
                .buckets(vec![
                    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.005, 0.025, 0.1,
                    0.5, 2.5,
                ]),
            )
            .unwrap_or_else(|_| unreachable_metric("duration")),
            dns: counter_vec(
                "waypost_pac_dns_lookups_total",
                "DNS lookups made by PAC scripts by outcome",
                "outcome",
            ),
            worker_restarts: IntCounter::new(
                "waypost_pac_worker_restarts_total",
                "PAC workers replaced after a deadline or a crash",
            )
            .unwrap_or_else(|_| unreachable_metric("restarts")),
            worker_kills: counter_vec(
                "waypost_pac_worker_kills_total",
                "PAC worker processes killed or dead, by reason (memory, deadline, crash)",
                "reason",
            ),
            queue_depth: IntGauge::new(
                "waypost_pac_queue_depth",
                "PAC calls waiting for a worker process",
            )
            .unwrap_or_else(|_| unreachable_metric("queue")),
        };
        if let Some(registry) = registry {
            let all: [Box<dyn prometheus::core::Collector>; 7] = [
                Box::new(metrics.worker_kills.clone()),
                Box::new(metrics.queue_depth.clone()),
                Box::new(metrics.evaluations.clone()),
                Box::new(metrics.duration.clone()),
                Box::new(metrics.cache.clone()),
                Box::new(metrics.dns.clone()),
                Box::new(metrics.worker_restarts.clone()),
            ];
            for collector in all {
                if let Err(err) = registry.register(collector) {
                    tracing::warn!(%err, "PAC metric not registered");
                }
            }
        }
        metrics
    }
}

/// Metric construction fails only for invalid names or label sets; ours are constants that the
/// tests construct, so this cannot be reached.
#[cold]
fn unreachable_metric(name: &str) -> ! {
    unreachable!("metric {name} has a constant, valid definition")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_register_into_the_given_registry_with_the_waypost_prefix() {
        let registry = Registry::new();
        let m = Metrics::new(Some(&registry));
        m.evaluations.with_label_values(&["ok"]).inc();
        m.cache.with_label_values(&["hit"]).inc();
        m.dns.with_label_values(&["ok"]).inc();
        m.worker_restarts.inc();
        m.duration.observe(0.001);
        m.worker_kills.with_label_values(&["memory"]).inc();
        m.queue_depth.set(1);
        let names: Vec<String> = registry
            .gather()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        assert_eq!(names.len(), 7);
        assert!(
            names.iter().all(|n| n.starts_with("waypost_pac_")),
            "{names:?}"
        );
    }
}

//! Authentication metrics, registered into the registry the proxy passes in (prefix
//! `waypost_auth_`). Labels are bounded: scheme and outcome, never users or hosts.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

/// The auth metrics of one proxy instance.
#[derive(Clone, Debug)]
pub struct AuthMetrics {
    /// `scheme` = negotiate|ntlm|basic|none, `outcome` = authenticated|rejected|not_required|error.
    pub handshakes: IntCounterVec,
    pub duration: HistogramVec,
    /// Requests served on an already authenticated, pooled connection (no handshake).
    pub reused: IntCounter,
    /// Identities currently locked out.
    pub locked_out: IntGauge,
}

impl AuthMetrics {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let handshakes = IntCounterVec::new(
            Opts::new(
                "waypost_auth_handshakes_total",
                "Upstream proxy authentication handshakes by scheme and outcome",
            ),
            &["scheme", "outcome"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "waypost_auth_handshake_duration_seconds",
                "Duration of upstream proxy handshakes",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["scheme"],
        )?;
        let reused = IntCounter::new(
            "waypost_auth_connections_reused_total",
            "Requests sent on an already authenticated upstream connection",
        )?;
        let locked_out = IntGauge::new(
            "waypost_auth_lockout_identities",
            "Identities locked out after rejections",
        )?;
        registry.register(Box::new(handshakes.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(reused.clone()))?;
        registry.register(Box::new(locked_out.clone()))?;
        Ok(AuthMetrics {
            handshakes,
            duration,
            reused,
            locked_out,
        })
    }

    /// A histogram for one scheme label.
    pub fn duration_for(&self, scheme: &str) -> Histogram {
        self.duration.with_label_values(&[scheme])
    }

    /// Also exposes these same metrics (shared values) through `registry`: a reloaded
    /// authenticator keeps counting where the previous one stopped.
    pub fn register_into(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.handshakes.clone()))?;
        registry.register(Box::new(self.duration.clone()))?;
        registry.register(Box::new(self.reused.clone()))?;
        registry.register(Box::new(self.locked_out.clone()))?;
        Ok(())
    }
}

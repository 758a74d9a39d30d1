//! Every `waypost_tls_*` metric, registered into the registry the proxy owns (or a private
//! one when none is given). Labels are bounded: outcome, version, kind, flag, config index;
//! never a host name.

use prometheus::{Gauge, GaugeVec, IntCounter, IntCounterVec, Opts, Registry};

use crate::config::Defect;
use crate::error::TlsErrorKind;

/// Handles to the TLS metrics; cheap to clone.
#[derive(Clone, Debug)]
pub struct Metrics {
    handshakes: IntCounterVec,
    cert_errors: IntCounterVec,
    exceptions: IntCounterVec,
    crl_fetches: IntCounterVec,
    minted: IntCounter,
    cache_hits: IntCounter,
    client_cert_days: GaugeVec,
    ca_days: Gauge,
}

fn counter_vec(
    reg: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, prometheus::Error> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    reg.register(Box::new(c.clone()))?;
    Ok(c)
}

impl Metrics {
    /// Registers every metric into `reg`.
    pub fn register(reg: &Registry) -> Result<Metrics, prometheus::Error> {
        let minted = IntCounter::new(
            "waypost_tls_intercept_certs_minted_total",
            "Interception leaf certificates minted",
        )?;
        reg.register(Box::new(minted.clone()))?;
        let cache_hits = IntCounter::new(
            "waypost_tls_intercept_cert_cache_hits_total",
            "Interception certificates served from cache",
        )?;
        reg.register(Box::new(cache_hits.clone()))?;
        let client_cert_days = GaugeVec::new(
            Opts::new(
                "waypost_tls_client_cert_expiry_days",
                "Days until each configured client certificate expires",
            ),
            &["entry"],
        )?;
        reg.register(Box::new(client_cert_days.clone()))?;
        let ca_days = Gauge::new(
            "waypost_tls_ca_expiry_days",
            "Days until the local interception CA expires",
        )?;
        reg.register(Box::new(ca_days.clone()))?;
        Ok(Metrics {
            handshakes: counter_vec(
                reg,
                "waypost_tls_handshakes_total",
                "TLS handshakes waypost originated",
                &["outcome", "version"],
            )?,
            cert_errors: counter_vec(
                reg,
                "waypost_tls_cert_errors_total",
                "Certificate verification failures by kind",
                &["kind"],
            )?,
            exceptions: counter_vec(
                reg,
                "waypost_tls_exceptions_used_total",
                "Certificate defects accepted by a configured exception",
                &["flag"],
            )?,
            crl_fetches: counter_vec(
                reg,
                "waypost_tls_crl_fetches_total",
                "CRL downloads from distribution points",
                &["outcome"],
            )?,
            minted,
            cache_hits,
            client_cert_days,
            ca_days,
        })
    }

    /// Also exposes these same metrics (shared values) through `reg`, e.g. the proxy's registry
    /// for a policy that was built, and validated, before that registry existed.
    pub fn register_into(&self, reg: &Registry) -> Result<(), prometheus::Error> {
        reg.register(Box::new(self.handshakes.clone()))?;
        reg.register(Box::new(self.cert_errors.clone()))?;
        reg.register(Box::new(self.exceptions.clone()))?;
        reg.register(Box::new(self.crl_fetches.clone()))?;
        reg.register(Box::new(self.minted.clone()))?;
        reg.register(Box::new(self.cache_hits.clone()))?;
        reg.register(Box::new(self.client_cert_days.clone()))?;
        reg.register(Box::new(self.ca_days.clone()))?;
        Ok(())
    }

    /// Metrics registered into a private registry nobody scrapes.
    pub fn detached() -> Metrics {
        // A fresh registry has no names yet, so registration cannot collide.
        #[allow(clippy::expect_used)]
        Metrics::register(&Registry::new()).expect("fresh registry accepts every metric")
    }

    /// Counts one handshake: `outcome` is `ok` or the error kind, `version` `1.2`/`1.3`/`none`.
    pub fn handshake(&self, outcome: &str, version: &str) {
        self.handshakes.with_label_values(&[outcome, version]).inc();
    }

    pub(crate) fn cert_error(&self, kind: TlsErrorKind) {
        self.cert_errors.with_label_values(&[kind.as_str()]).inc();
    }

    pub(crate) fn exception_used(&self, d: Defect) {
        self.exceptions.with_label_values(&[d.as_str()]).inc();
    }

    pub(crate) fn crl_fetch(&self, outcome: &str) {
        self.crl_fetches.with_label_values(&[outcome]).inc();
    }

    pub(crate) fn minted(&self) {
        self.minted.inc();
    }

    pub(crate) fn cache_hit(&self) {
        self.cache_hits.inc();
    }

    pub(crate) fn client_cert_expiry(&self, entry: usize, days: f64) {
        self.client_cert_days
            .with_label_values(&[&entry.to_string()])
            .set(days);
    }

    pub(crate) fn ca_expiry(&self, days: f64) {
        self.ca_days.set(days);
    }
}

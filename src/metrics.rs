//! Every metric waypost exports, in one owned registry.
//!
//! Names live here and nowhere else. Labels are bounded: the upstream label is `direct` or a
//! configured/PAC-chosen proxy address, outcomes are error codes from a closed set; the
//! destination host never becomes a label. The registry is created once and passed down through
//! the shared application state (no global statics).

use std::sync::{Arc, OnceLock, RwLock};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::activity::Activity;

/// The metrics of the parts rebuilt on every reload (TLS policy, authenticator, PAC engine) live
/// in a registry of their own per configuration generation; this collector, registered once in
/// the main registry, exposes the current one.
#[derive(Clone, Default)]
struct Generation(Arc<RwLock<Vec<Registry>>>);

impl Collector for Generation {
    fn desc(&self) -> Vec<&Desc> {
        Vec::new()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let regs = self.0.read().unwrap_or_else(|p| p.into_inner()).clone();
        regs.iter().flat_map(Registry::gather).collect()
    }
}

/// The proxy's metrics, registered into [`Metrics::registry`].
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    generation: Generation,
    /// The recent requests and the chart samples of the status page (not metrics: in-process).
    pub activity: Arc<Activity>,
    // operations
    pub reloads: IntCounterVec,
    pub config_generation: IntGauge,
    pub upstream_requests: IntCounterVec,
    // pool
    pub pool_connections: IntGaugeVec,
    pub pool_opened: IntCounterVec,
    pub pool_reused: IntCounterVec,
    pub pool_closed: IntCounterVec,
    pub pool_evicted: IntCounterVec,
    pub pool_connect_seconds: HistogramVec,
    pub pool_slot_waits: IntCounterVec,
    pub pool_drained_bytes: IntCounterVec,
    pub pool_retries: IntCounterVec,
    // requests and tunnels
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    pub bytes: IntCounterVec,
    /// Client request bodies cut for coming slower than `limits.min_request_body_rate`, by how
    /// waypost took them (`held` for a replay, `streamed`).
    pub request_bodies_too_slow: IntCounterVec,
    pub tunnels_active: IntGauge,
    /// Tunnel relays started, by how their bytes move (`splice` socket to socket, `copy`
    /// through buffers).
    pub tunnel_relays: IntCounterVec,
    pub client_connections_active: IntGauge,
    pub client_connections: IntCounter,
    pub client_connections_rejected: IntCounterVec,
    pub upstream_connect_attempts: IntCounterVec,
    pub dns_seconds: Histogram,
    pub route_failovers: IntCounterVec,
    pub proxy_failures: IntCounterVec,
    pub proxies_bad: IntGauge,
    // autoproxy
    pub pac_fetches: IntCounterVec,
    pub pac_discovery_seconds: Histogram,
    pub pac_loaded_timestamp: prometheus::Gauge,
    pub pac_script_age_seconds: prometheus::Gauge,
    pub pac_fallbacks: IntCounterVec,
    /// Network identity changes observed ([`crate::net`]).
    pub network_changes: IntCounter,
    /// The per-request series of each request kind, resolved once ([`Metrics::observe_request`]).
    kinds: Arc<[KindSeries; 4]>,
}

fn reg<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
    // Registration only fails on duplicate names, which this module rules out by construction.
    r.register(Box::new(c.clone()))
        .expect("metric names are unique in metrics.rs");
    c
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    reg(
        r,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

fn histogram_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let buckets = vec![
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ];
    reg(
        r,
        HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
            .expect("valid metric"),
    )
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let generation = Generation::default();
        reg(&r, generation.clone());
        Metrics {
            generation,
            activity: Arc::new(Activity::default()),
            reloads: counter_vec(
                &r,
                "waypost_config_reloads_total",
                "Configuration reloads by trigger (sighup, file) and outcome (ok, invalid, unchanged).",
                &["trigger", "outcome"],
            ),
            config_generation: reg(
                &r,
                IntGauge::new(
                    "waypost_config_generation",
                    "The configuration in use: 1 at start, one more per applied reload.",
                )
                .expect("valid metric"),
            ),
            upstream_requests: counter_vec(
                &r,
                "waypost_upstream_requests_total",
                "Finished requests and tunnels by the hop that carried them (direct or a proxy) and outcome (ok, error).",
                &["upstream", "outcome"],
            ),
            pool_connections: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "waypost_pool_connections",
                        "Upstream connections by state (idle, active).",
                    ),
                    &["upstream", "state"],
                )
                .expect("valid metric"),
            ),
            pool_opened: counter_vec(
                &r,
                "waypost_pool_opened_total",
                "Upstream connections opened.",
                &["upstream"],
            ),
            pool_reused: counter_vec(
                &r,
                "waypost_pool_reused_total",
                "Requests served on a pooled keep-alive connection.",
                &["upstream"],
            ),
            pool_closed: counter_vec(
                &r,
                "waypost_pool_closed_total",
                "Upstream connections closed (not returned to the pool).",
                &["upstream"],
            ),
            pool_evicted: counter_vec(
                &r,
                "waypost_pool_evicted_total",
                "Idle upstream connections evicted after the idle timeout.",
                &["upstream"],
            ),
            pool_connect_seconds: histogram_vec(
                &r,
                "waypost_pool_connect_duration_seconds",
                "Time to open an upstream connection (resolve, TCP, TLS).",
                &["upstream"],
            ),
            pool_slot_waits: counter_vec(
                &r,
                "waypost_pool_slot_waits_total",
                "Requests that waited for a free slot (max_conns_per_server).",
                &["upstream"],
            ),
            pool_drained_bytes: counter_vec(
                &r,
                "waypost_pool_drained_bytes_total",
                "Bytes of unread response bodies drained to keep a connection.",
                &["upstream"],
            ),
            pool_retries: counter_vec(
                &r,
                "waypost_pool_stale_retries_total",
                "Requests resent on a fresh connection because a pooled one had closed.",
                &["upstream"],
            ),
            requests: counter_vec(
                &r,
                "waypost_requests_total",
                "Client requests and tunnels by kind and outcome.",
                &["kind", "outcome"],
            ),
            request_seconds: histogram_vec(
                &r,
                "waypost_request_duration_seconds",
                "Time from request to response headers (http) or to tunnel end (connect).",
                &["kind"],
            ),
            bytes: counter_vec(
                &r,
                "waypost_bytes_total",
                "Body and tunnel bytes by direction (in = from client, out = to client).",
                &["kind", "direction"],
            ),
            request_bodies_too_slow: counter_vec(
                &r,
                "waypost_request_bodies_too_slow_total",
                "Client request bodies cut for coming slower than limits.min_request_body_rate after the grace period, by how waypost took them (held: read whole for an authentication replay; streamed: forwarded as it came).",
                &["body"],
            ),
            tunnels_active: reg(
                &r,
                IntGauge::new(
                    "waypost_tunnels_active",
                    "Open CONNECT and upgrade tunnels.",
                )
                .expect("valid metric"),
            ),
            tunnel_relays: counter_vec(
                &r,
                "waypost_tunnel_relays_total",
                "Tunnel and upgrade relays started, by how their bytes move: splice (socket to socket through a pipe, zero-copy) or copy (through buffers: TLS to an HTTPS proxy, or not Linux).",
                &["way"],
            ),
            client_connections_active: reg(
                &r,
                IntGauge::new(
                    "waypost_client_connections_active",
                    "Open client connections.",
                )
                .expect("valid metric"),
            ),
            client_connections: reg(
                &r,
                IntCounter::new(
                    "waypost_client_connections_total",
                    "Accepted client connections.",
                )
                .expect("valid metric"),
            ),
            client_connections_rejected: counter_vec(
                &r,
                "waypost_client_connections_rejected_total",
                "Client connections refused (not-allowed, limit, auth: a SOCKS client's login).",
                &["reason"],
            ),
            upstream_connect_attempts: counter_vec(
                &r,
                "waypost_upstream_connect_attempts_total",
                "TCP connect attempts by outcome.",
                &["outcome"],
            ),
            dns_seconds: reg(
                &r,
                Histogram::with_opts(HistogramOpts::new(
                    "waypost_dns_duration_seconds",
                    "Name resolution time for upstream connections.",
                ))
                .expect("valid metric"),
            ),
            route_failovers: counter_vec(
                &r,
                "waypost_route_failovers_total",
                "Moves to the next hop of a route after a connect-phase failure.",
                &["reason"],
            ),
            proxy_failures: counter_vec(
                &r,
                "waypost_proxy_failures_total",
                "Connect-phase failures per upstream proxy (which then is marked bad).",
                &["proxy", "reason"],
            ),
            proxies_bad: reg(
                &r,
                IntGauge::new(
                    "waypost_proxies_marked_bad",
                    "Upstream proxies currently marked bad (tried last).",
                )
                .expect("valid metric"),
            ),
            pac_fetches: counter_vec(
                &r,
                "waypost_pac_fetches_total",
                "PAC script fetches by source (file, url, dhcp, dns) and outcome.",
                &["source", "outcome"],
            ),
            pac_discovery_seconds: reg(
                &r,
                Histogram::with_opts(HistogramOpts::new(
                    "waypost_pac_discovery_duration_seconds",
                    "Time to discover (WPAD) and fetch a PAC script.",
                ))
                .expect("valid metric"),
            ),
            pac_loaded_timestamp: reg(
                &r,
                prometheus::Gauge::new(
                    "waypost_pac_script_loaded_timestamp_seconds",
                    "Unix time the PAC script in use was loaded.",
                )
                .expect("valid metric"),
            ),
            pac_script_age_seconds: reg(
                &r,
                prometheus::Gauge::new(
                    "waypost_pac_script_age_seconds",
                    "Age of the PAC script in use (updated at scrape).",
                )
                .expect("valid metric"),
            ),
            pac_fallbacks: counter_vec(
                &r,
                "waypost_pac_fallbacks_total",
                "Requests routed without a PAC answer, by what happened (upstream, direct, refused).",
                &["action"],
            ),
            network_changes: reg(
                &r,
                IntCounter::new(
                    "waypost_network_changes_total",
                    "Changes of the network identity (addresses, default routes, resolv.conf) acted on.",
                )
                .expect("valid metric"),
            ),
            kinds: Arc::new(KINDS.map(|_| KindSeries::default())),
            registry: r,
        }
    }

    /// Counts a finished request or tunnel of `kind` (`http`, `connect`, `upgrade`, `socks`):
    /// `waypost_requests_total` by outcome and `waypost_bytes_total` both ways. The series of
    /// the common outcome (`ok`) are looked up once per kind, not per request (issue 25).
    pub fn observe_request(&self, kind: &str, outcome: &str, bytes_in: u64, bytes_out: u64) {
        let Some(k) = self.kind(kind) else {
            self.requests.with_label_values(&[kind, outcome]).inc();
            self.bytes.with_label_values(&[kind, "in"]).inc_by(bytes_in);
            self.bytes
                .with_label_values(&[kind, "out"])
                .inc_by(bytes_out);
            return;
        };
        match outcome {
            "ok" => {
                k.ok.get_or_init(|| self.requests.with_label_values(&[kind, "ok"]))
                    .inc()
            }
            other => self.requests.with_label_values(&[kind, other]).inc(),
        }
        k.bytes_in
            .get_or_init(|| self.bytes.with_label_values(&[kind, "in"]))
            .inc_by(bytes_in);
        k.bytes_out
            .get_or_init(|| self.bytes.with_label_values(&[kind, "out"]))
            .inc_by(bytes_out);
    }

    /// Observes `waypost_request_duration_seconds` of `kind` (looked up once per kind).
    pub fn observe_request_seconds(&self, kind: &str, seconds: f64) {
        match self.kind(kind) {
            Some(k) => k
                .seconds
                .get_or_init(|| self.request_seconds.with_label_values(&[kind]))
                .observe(seconds),
            None => self
                .request_seconds
                .with_label_values(&[kind])
                .observe(seconds),
        }
    }

    fn kind(&self, kind: &str) -> Option<&KindSeries> {
        KINDS
            .iter()
            .position(|k| *k == kind)
            .map(|i| &self.kinds[i])
    }

    /// Makes `r` the registries of the current configuration generation's parts.
    pub fn set_generation(&self, r: Vec<Registry>) {
        *self.generation.0.write().unwrap_or_else(|p| p.into_inner()) = r;
    }

    /// The Prometheus text exposition of every registered metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let enc = TextEncoder::new();
        if let Err(e) = enc.encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// The request kinds whose series [`KindSeries`] keeps.
const KINDS: [&str; 4] = ["http", "connect", "upgrade", "socks"];

/// The per-request series of one request kind, each resolved on its first use (so the exposition
/// is what per-request label lookups gave: no series before its first request) and then kept.
#[derive(Default)]
struct KindSeries {
    ok: OnceLock<IntCounter>,
    bytes_in: OnceLock<IntCounter>,
    bytes_out: OnceLock<IntCounter>,
    seconds: OnceLock<Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

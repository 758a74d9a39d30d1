//! The one immutable, shared application state handed to every connection.
//!
//! Holds the validated config, the metrics registry, the upstream pool, the resolver, the TLS
//! client and the shutdown machinery (a cancellation token and a tracker of connection and
//! tunnel tasks). Built once in [`App::new`]; each piece of mutable state inside has one owner.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::autoproxy::badproxy::BadProxies;
use crate::autoproxy::AutoProxy;
use crate::config::Config;
use crate::dns::Resolver;
use crate::error::{ErrorKind, ProxyError};
use crate::metrics::Metrics;
use crate::route::{self, Decision, Hop};
use crate::target::Target;
use crate::upstream::pool::Pool;

pub struct App {
    pub cfg: Config,
    pub metrics: Arc<Metrics>,
    pub pool: Arc<Pool>,
    pub resolver: Resolver,
    pub tls: waypost_tls::TlsPolicy,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
    pub autoproxy: Option<Arc<AutoProxy>>,
    pub bad: BadProxies,
    /// Authenticates to upstream proxies on the clients' behalf.
    pub auth: Arc<waypost_auth::Authenticator>,
}

impl App {
    /// Builds the state; must run inside a tokio runtime (the pool spawns its reaper).
    pub fn new(cfg: Config) -> Result<Arc<App>, String> {
        let metrics = Arc::new(Metrics::new());
        let pool = Pool::new(
            metrics.clone(),
            cfg.limits.max_conns_per_server,
            cfg.limits.max_idle_per_server,
            cfg.timeouts.pool_idle,
        );
        let resolver = Resolver::new(&cfg.dns, cfg.timeouts.resolve);
        let tls = cfg.tls_policy.0.clone();
        tls.metrics()
            .register_into(&metrics.registry)
            .map_err(|e| format!("cannot register the TLS metrics: {e}"))?;
        let autoproxy = cfg.pac.clone().map(AutoProxy::new);
        let auth = waypost_auth::Authenticator::from_config(&cfg.auth, Some(&metrics.registry))
            .map(Arc::new)
            .map_err(|e| e.to_string())?;
        let bad = BadProxies::new(cfg.bad_proxy_retry, metrics.proxies_bad.clone());
        let app = Arc::new(App {
            auth,
            autoproxy,
            bad,
            tls,
            cfg,
            metrics,
            pool,
            resolver,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
        });
        if let Some(ap) = &app.autoproxy {
            ap.spawn_refresh(&app);
        }
        Ok(app)
    }

    /// The routing decision for a request to `target` (`url` builds what a PAC script sees; it is
    /// called only when a PAC is asked):
    /// static bypass rules first, then the PAC answer (bad proxies last), else the static
    /// upstream. Without a PAC answer: DIRECT, or an error when `pac.mandatory`.
    pub async fn decide(
        &self,
        target: &Target,
        url: impl FnOnce() -> String,
    ) -> Result<Decision, ProxyError> {
        let Some(ap) = &self.autoproxy else {
            return Ok(route::decide(target, &self.cfg.routes));
        };
        if let Some(d) = route::static_bypass(target, &self.cfg.routes) {
            return Ok(d);
        }
        match ap.find(&url()).await {
            Ok((_, answer)) => Ok(Decision {
                hops: route::hops_from_pac(&answer.entries, |p| self.bad.is_bad(p)),
                reason: "pac",
            }),
            Err(why) if ap.settings.mandatory => {
                self.metrics
                    .pac_fallbacks
                    .with_label_values(&["refused"])
                    .inc();
                Err(ProxyError::new(
                    ErrorKind::PacUnavailable,
                    format!("no PAC answer and pac.mandatory is set: {why}"),
                ))
            }
            Err(why) => {
                self.metrics
                    .pac_fallbacks
                    .with_label_values(&["direct"])
                    .inc();
                tracing::warn!(error = %why, "no PAC answer; going DIRECT (set pac.mandatory to refuse instead)");
                Ok(Decision {
                    hops: vec![Hop::Direct],
                    reason: "pac-failed-direct",
                })
            }
        }
    }

    /// Moving on to the next hop after `err`: the hop is marked, the failover counted and logged.
    pub fn fail_over(&self, hop: &Hop, err: &ProxyError) {
        self.hop_failed(hop, err);
        self.metrics
            .route_failovers
            .with_label_values(&[err.kind.code()])
            .inc();
        tracing::info!(hop = %hop, error = %err, "hop failed; trying the next one");
    }

    /// Records a connect-phase failure of a hop: a proxy is marked bad and counted.
    pub fn hop_failed(&self, hop: &Hop, err: &ProxyError) {
        if let Hop::Proxy(p) = hop {
            self.bad.mark(p);
            self.metrics
                .proxy_failures
                .with_label_values(&[&p.label(), err.kind.code()])
                .inc();
        }
    }
}

//! The decide stage: which hops to try for a target, from the static rules, the PAC script
//! and the proxies marked bad — and the failover bookkeeping when a hop fails.
//!
//! The pure parts (bypass rules, PAC answers to hops) are in [`crate::route`]; this module
//! asks the PAC engine (asynchronous) and owns the bad-proxy marks. It opens no connection.

use std::sync::Arc;

use crate::autoproxy::badproxy::BadProxies;
use crate::autoproxy::AutoProxy;
use crate::config::Scopes;
use crate::error::{ErrorKind, ProxyError};
use crate::metrics::Metrics;
use crate::route::{self, Decision, Hop, StaticRoutes};
use crate::target::Target;

pub struct Router {
    routes: StaticRoutes,
    scopes: Scopes,
    pub autoproxy: Option<Arc<AutoProxy>>,
    pub bad: BadProxies,
    metrics: Arc<Metrics>,
}

impl Router {
    pub fn new(
        routes: StaticRoutes,
        scopes: Scopes,
        autoproxy: Option<Arc<AutoProxy>>,
        bad: BadProxies,
        metrics: Arc<Metrics>,
    ) -> Router {
        Router {
            routes,
            scopes,
            autoproxy,
            bad,
            metrics,
        }
    }

    pub fn routes(&self) -> &StaticRoutes {
        &self.routes
    }

    /// The routing decision for a request to `target` (`url` builds what a PAC script sees; it
    /// is called only when a PAC is asked): the routing of the target's scope first
    /// ([`route::scope_route`]), then static bypass rules, then the PAC answer (bad
    /// proxies last), else the static upstream. Without a PAC answer (no source gave a script,
    /// or the script failed): the static upstream (`route.upstream`) when one is set, else an
    /// error when `pac.mandatory`, else DIRECT.
    pub async fn decide(
        &self,
        target: &Target,
        url: impl FnOnce() -> String,
    ) -> Result<Decision, ProxyError> {
        if let Some(d) = route::scope_route(target, &self.scopes) {
            return Ok(d);
        }
        let Some(ap) = &self.autoproxy else {
            return Ok(route::decide(target, &self.routes));
        };
        if let Some(d) = route::static_bypass(target, &self.routes) {
            return Ok(d);
        }
        match ap.find(&url()).await {
            Ok((_, answer)) => Ok(Decision {
                hops: route::hops_from_pac(&answer.entries, |p| self.bad.is_bad(p)),
                reason: "pac",
            }),
            Err(why) if route::decide(target, &self.routes).reason == "upstream" => {
                self.pac_fallback("upstream");
                tracing::info!(error = %why, "no PAC answer; using the static upstream (route.upstream)");
                Ok(Decision {
                    reason: "pac-unavailable-upstream",
                    ..route::decide(target, &self.routes)
                })
            }
            Err(why) if ap.settings.mandatory => {
                self.pac_fallback("refused");
                Err(ProxyError::new(
                    ErrorKind::PacUnavailable,
                    format!("no PAC answer and pac.mandatory is set: {why}"),
                ))
            }
            Err(why) => {
                self.pac_fallback("direct");
                tracing::warn!(error = %why, "no PAC answer; going DIRECT (set pac.mandatory to refuse instead)");
                Ok(Decision {
                    hops: vec![Hop::Direct],
                    reason: if why.worker_killed.is_some() {
                        "pac-worker-killed-direct"
                    } else {
                        "pac-failed-direct"
                    },
                })
            }
        }
    }

    fn pac_fallback(&self, outcome: &str) {
        self.metrics
            .pac_fallbacks
            .with_label_values(&[outcome])
            .inc();
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

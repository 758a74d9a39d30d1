//! The one immutable, shared application state handed to every connection: it composes the
//! parts, built once in [`App::new`] and passed down separately where they are used.
//!
//! - [`Router`]: the decide stage (static rules, PAC, bad proxies);
//! - [`Upstream`]: the dialer (resolver, TLS policy, timeouts, auth, metrics) and the pool;
//!   the policy's CRL downloads go through the dialer ([`CrlDownloader`]);
//! - the config, the metrics registry, this instance's `Via` token, and the shutdown machinery
//!   (a cancellation token and a tracker of connection and tunnel tasks).
//!
//! Each piece of mutable state inside has one owner.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::autoproxy::badproxy::BadProxies;
use crate::autoproxy::AutoProxy;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::route::{self, ConnectPlan, Hop, Purpose};
use crate::router::Router;
use crate::target::Target;
use crate::upstream::client::HttpClient;
use crate::upstream::crl::CrlDownloader;
use crate::upstream::dialer::Dialer;
use crate::upstream::pool::Pool;
use crate::upstream::Upstream;

pub struct App {
    pub cfg: Config,
    pub metrics: Arc<Metrics>,
    pub router: Router,
    pub upstream: Upstream,
    /// The TLS policy (also the dialer's): interception and SNI rules on the client side.
    pub tls: waypost_tls::TlsPolicy,
    /// This instance's mark in `Via`: a request carrying it has come back (a loop).
    pub via_token: Arc<str>,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
}

impl App {
    /// Builds the state; must run inside a tokio runtime (the pool spawns its reaper).
    pub fn new(cfg: Config) -> Result<Arc<App>, String> {
        let metrics = Arc::new(Metrics::new());
        let tls = cfg.tls_policy.0.clone();
        tls.metrics()
            .register_into(&metrics.registry)
            .map_err(|e| format!("cannot register the TLS metrics: {e}"))?;
        let auth = waypost_auth::Authenticator::from_config(&cfg.auth, Some(&metrics.registry))
            .map(Arc::new)
            .map_err(|e| e.to_string())?;
        let via_token: Arc<str> = Arc::from(instance_token());
        let dialer = Arc::new(Dialer::new(&cfg, auth, metrics.clone(), via_token.clone()));
        CrlDownloader::install(&dialer);
        let pool = Pool::new(
            metrics.clone(),
            cfg.limits.max_conns_per_server,
            cfg.limits.max_idle_per_server,
            cfg.timeouts.pool_idle,
        );
        let autoproxy = cfg.pac.clone().map(AutoProxy::new);
        let bad = BadProxies::new(cfg.bad_proxy_retry, metrics.proxies_bad.clone());
        let router = Router::new(cfg.routes.clone(), autoproxy.clone(), bad, metrics.clone());
        let shutdown = CancellationToken::new();
        if let Some(ap) = &autoproxy {
            ap.spawn_refresh(
                HttpClient::new(dialer.clone()),
                Arc::new(dialer.resolver.clone()),
                metrics.clone(),
                shutdown.clone(),
            );
        }
        Ok(Arc::new(App {
            upstream: Upstream::new(dialer, pool),
            router,
            tls,
            via_token,
            cfg,
            metrics,
            shutdown,
            tracker: TaskTracker::new(),
        }))
    }

    /// The connect plan for one hop: the autologon policy decides the identity.
    pub fn plan(&self, hop: &Hop, target: &Target, purpose: Purpose) -> ConnectPlan {
        let auth = &self.upstream.dialer.auth;
        route::plan(hop, target, purpose, |proxy| {
            auth.allows(&proxy.to_string()).then(|| auth.identity())
        })
    }
}

/// A per-instance token for `Via` (`waypost-` and 12 hex digits): unpredictable enough to tell
/// this instance apart from another waypost in a chain.
fn instance_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    format!("waypost-{:012x}", h.finish() & 0xffff_ffff_ffff)
}

//! The one immutable, shared application state handed to every connection.
//!
//! Holds the validated config, the metrics registry, the upstream pool, the resolver, the TLS
//! client and the shutdown machinery (a cancellation token and a tracker of connection and
//! tunnel tasks). Built once in [`App::new`]; each piece of mutable state inside has one owner.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::dns::Resolver;
use crate::metrics::Metrics;
use crate::route::{self, Decision};
use crate::target::Target;
use crate::upstream::pool::Pool;

pub struct App {
    pub cfg: Config,
    pub metrics: Metrics,
    pub pool: Arc<Pool>,
    pub resolver: Resolver,
    pub tls: waypost_tls::TlsPolicy,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
}

impl App {
    /// Builds the state; must run inside a tokio runtime (the pool spawns its reaper).
    pub fn new(cfg: Config) -> Result<Arc<App>, String> {
        let metrics = Metrics::new();
        let pool = Pool::new(
            metrics.clone(),
            cfg.limits.max_conns_per_server,
            cfg.limits.max_idle_per_server,
            cfg.timeouts.pool_idle,
        );
        let resolver = Resolver::new(&cfg.dns, cfg.timeouts.resolve);
        let tls = waypost_tls::TlsPolicy::new(&cfg.tls, Some(&metrics.registry)).map_err(|e| e.to_string())?;
        Ok(Arc::new(App {
            tls,
            cfg,
            metrics,
            pool,
            resolver,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
        }))
    }

    /// The routing decision for a target (static rules; the PAC source plugs in here).
    pub async fn decide(&self, target: &Target) -> Decision {
        route::decide(target, &self.cfg.routes)
    }
}

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
//!
//! An `App` is one *generation* of the configuration: a reload ([`crate::ops::reload`]) builds the
//! next one with [`App::next`] from a new config, sharing what outlives a config (metrics, the
//! `Via` token, the shutdown machinery, the pool, the operational state in [`Ops`]), and the
//! server hands it to new requests; requests and tunnels already running keep the `Arc<App>`
//! they started with.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

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
use waypost_auth::Speaker;

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
    /// What outlives a configuration: start time, listeners, reload history.
    pub ops: Arc<Ops>,
    /// 1 for the configuration waypost started with, one more per applied reload.
    pub generation: u64,
    /// This generation's TLS and auth metrics (exposed while it is the current one).
    pub registry: prometheus::Registry,
    /// Whether the network has proven itself (credentials for network-named proxies).
    pub trust: Arc<crate::net::trust::Trust>,
    /// The pipes of this generation's socket-to-socket relays.
    pub pipes: Arc<crate::relay::PipePool>,
}

/// Operational state shared by every generation (each field behind its own short lock).
pub struct Ops {
    pub started: SystemTime,
    /// The bound proxy and admin addresses (empty until every listener is bound).
    pub listening: Mutex<Vec<SocketAddr>>,
    pub admin_listening: Mutex<Vec<SocketAddr>>,
    /// The bound SOCKS5 listeners (`socks_listen`), for `/proxy.pac`.
    pub socks_listening: Mutex<Vec<SocketAddr>>,
    /// The configuration file, when there is one (for the status page and reloads).
    pub config_file: Mutex<Option<std::path::PathBuf>>,
    /// The last reload attempt: (unix time, trigger, Ok(generation) or Err(problems)).
    pub last_reload: Mutex<Option<(SystemTime, &'static str, Result<u64, String>)>>,
    /// Which network this is, and its changes ([`crate::net`]; one observer per process).
    pub network: tokio::sync::watch::Receiver<Arc<crate::net::NetworkId>>,
}

impl Ops {
    fn new() -> Ops {
        Ops {
            started: SystemTime::now(),
            listening: Mutex::new(Vec::new()),
            admin_listening: Mutex::new(Vec::new()),
            socks_listening: Mutex::new(Vec::new()),
            config_file: Mutex::new(None),
            last_reload: Mutex::new(None),
            network: crate::net::spawn(),
        }
    }
}

/// Locks a mutex of plain data (a poisoned lock only means another thread panicked mid-update).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a new generation takes over from the one before.
struct Carried {
    metrics: Arc<Metrics>,
    via_token: Arc<str>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    ops: Arc<Ops>,
    pool: Option<Arc<Pool>>,
    autoproxy: Option<Arc<AutoProxy>>,
    auth_metrics: Option<waypost_auth::metrics::AuthMetrics>,
    generation: u64,
}

impl App {
    /// Builds the first generation; must run inside a tokio runtime (the pool spawns its reaper).
    pub fn new(cfg: Config) -> Result<Arc<App>, String> {
        let app = App::build(
            cfg,
            Carried {
                metrics: Arc::new(Metrics::new()),
                via_token: Arc::from(instance_token()),
                shutdown: CancellationToken::new(),
                tracker: TaskTracker::new(),
                ops: Arc::new(Ops::new()),
                pool: None,
                autoproxy: None,
                auth_metrics: None,
                generation: 1,
            },
        )?;
        app.expose_metrics();
        Ok(app)
    }

    /// The next generation from `cfg`: new router, dialer, authenticator and TLS policy; the
    /// pool (its limits are restart-only), metrics (the authenticator's too; the TLS policy's
    /// start again from zero) and shutdown machinery carried over, and the autoproxy too when
    /// the `[pac]` settings did not change (it is asked to reload its script).
    pub fn next(&self, cfg: Config) -> Result<Arc<App>, String> {
        let autoproxy = self
            .router
            .autoproxy
            .as_ref()
            .filter(|ap| Some(&ap.settings) == cfg.pac.as_ref())
            .cloned();
        if let Some(ap) = &autoproxy {
            ap.reload();
        }
        App::build(
            cfg,
            Carried {
                metrics: self.metrics.clone(),
                via_token: self.via_token.clone(),
                shutdown: self.shutdown.clone(),
                tracker: self.tracker.clone(),
                ops: self.ops.clone(),
                pool: Some(self.upstream.pool.clone()),
                autoproxy,
                auth_metrics: self.upstream.dialer.auth.metrics().cloned(),
                generation: self.generation + 1,
            },
        )
    }

    /// Makes this generation's metrics (TLS, auth, PAC engine) the exposed ones.
    pub fn expose_metrics(&self) {
        let mut regs = vec![self.registry.clone()];
        if let Some(ap) = &self.router.autoproxy {
            regs.push(ap.registry.clone());
        }
        self.metrics.set_generation(regs);
        self.metrics.config_generation.set(self.generation as i64);
    }

    /// Stops what belongs to this generation alone once a newer one is in use (its PAC refresh
    /// task, unless the newer one carried the autoproxy over).
    pub fn retire(&self, successor: &App) {
        if let Some(ap) = &self.router.autoproxy {
            let carried = successor
                .router
                .autoproxy
                .as_ref()
                .is_some_and(|n| Arc::ptr_eq(n, ap));
            if !carried {
                ap.retire();
            }
        }
    }

    fn build(cfg: Config, c: Carried) -> Result<Arc<App>, String> {
        let registry = prometheus::Registry::new();
        let metrics = c.metrics;
        let tls = cfg.tls_policy.0.clone();
        tls.metrics()
            .register_into(&registry)
            .map_err(|e| format!("cannot register the TLS metrics: {e}"))?;
        // a reloaded authenticator counts on in the previous one's metrics
        let auth = match c.auth_metrics {
            Some(m) => {
                m.register_into(&registry)
                    .map_err(|e| format!("cannot register the auth metrics: {e}"))?;
                waypost_auth::Authenticators::from_config(&cfg.auth, None)
                    .map(|a| a.with_metrics(m))
            }
            None => waypost_auth::Authenticators::from_config(&cfg.auth, Some(&registry)),
        }
        .map(Arc::new)
        .map_err(|e| e.to_string())?;
        let via_token = c.via_token;
        let dialer = Arc::new(Dialer::new(&cfg, auth, metrics.clone(), via_token.clone()));
        // the first generation is built before binding: the server sets them once bound
        let own: Vec<SocketAddr> = lock(&c.ops.listening)
            .iter()
            .chain(lock(&c.ops.admin_listening).iter())
            .chain(lock(&c.ops.socks_listening).iter())
            .copied()
            .collect();
        if !own.is_empty() {
            dialer.set_own_addrs(own);
        }
        CrlDownloader::install(&dialer);
        let pool = c.pool.unwrap_or_else(|| {
            Pool::new(
                metrics.clone(),
                cfg.limits.max_idle_per_server,
                cfg.timeouts.pool_idle,
            )
        });
        let carried = c.autoproxy.is_some();
        let autoproxy = c.autoproxy.or_else(|| cfg.pac.clone().map(AutoProxy::new));
        let bad = BadProxies::new(cfg.bad_proxy_retry, metrics.proxies_bad.clone());
        let router = Router::new(
            cfg.routes.clone(),
            cfg.scopes.clone(),
            autoproxy.clone(),
            bad,
            metrics.clone(),
        );
        let shutdown = c.shutdown;
        if let (Some(ap), false) = (&autoproxy, carried) {
            ap.spawn_refresh(
                HttpClient::new(dialer.clone()),
                Arc::new(dialer.resolver.clone()),
                c.ops.network.clone(),
                metrics.clone(),
                shutdown.clone(),
            );
        }
        let network = c.ops.network.clone();
        let trust = start_trust(
            &cfg,
            &dialer,
            autoproxy.is_some(),
            network.clone(),
            &shutdown,
        );
        let app = Arc::new(App {
            upstream: Upstream::new(dialer, pool),
            router,
            tls,
            via_token,
            cfg,
            metrics,
            shutdown,
            tracker: c.tracker,
            ops: c.ops,
            generation: c.generation,
            registry,
            trust,
            pipes: Arc::default(),
        });
        follow_network(Arc::downgrade(&app), network);
        Ok(app)
    }

    /// The connect plan for one hop of `decision`: what may be sent to the hop's proxy is
    /// decided here ([`waypost_auth::policy::Policy::grant`]): by the autologon policy, by who
    /// named the proxy ([`App::speaker`]) and by whether the network has proven itself
    /// ([`crate::net::trust`]). The identity is the proxy's (`[[auth.proxies]]`, else the default).
    /// The target's effective options come from its scopes ([`crate::config::Scopes::resolve`]).
    pub fn plan(
        &self,
        hop: &Hop,
        target: &Target,
        purpose: Purpose,
        speaker: Speaker,
    ) -> ConnectPlan {
        let auth = &self.upstream.dialer.auth;
        let proven = self.trust.proven();
        let options = self.cfg.scopes.resolve(&target.host, target.port);
        route::plan(hop, target, purpose, options, |proxy| {
            auth.grant_for(&proxy.host.to_string(), proxy.port, speaker, proven)
        })
    }

    /// Who named the proxies of `decision`: the network when they come from a script found by
    /// WPAD or fetched over plain `http://` (anyone on the path can serve that); the user for
    /// the configuration, a PAC file on local disk, and an `https://` PAC URL (its certificate
    /// verified by the TLS policy: the word of that server's owner).
    pub fn speaker(&self, decision: &route::Decision) -> Speaker {
        if decision.reason != "pac" {
            return Speaker::User;
        }
        let Some(ap) = &self.router.autoproxy else {
            return Speaker::User;
        };
        match ap.current() {
            Some(l) => script_speaker(&l.entry, l.method),
            // no script in use (it was just dropped): the stricter reading
            None => Speaker::Network,
        }
    }

    /// Waits for the network's proof when `decision` would send credentials on its word (a
    /// network-named proxy); any other request goes on at once.
    pub async fn await_trust(&self, decision: &route::Decision) -> Speaker {
        let speaker = self.speaker(decision);
        let names_proxy = decision.hops.iter().any(|h| matches!(h, Hop::Proxy(_)));
        if speaker == Speaker::Network && names_proxy {
            self.trust.decided().await;
        }
        speaker
    }
}

/// Who speaks through a script from `entry` (a `pac.source` entry) loaded by `method`.
pub fn script_speaker(entry: &str, method: &str) -> Speaker {
    match method {
        "dhcp" | "dns" => Speaker::Network,
        _ if entry == "auto" => Speaker::Network,
        _ if entry
            .get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("http://")) =>
        {
            Speaker::Network
        }
        _ => Speaker::User,
    }
}

/// Proves the network only where it matters: a PAC source (its proxies may be the network's
/// word) and a policy that trusts network-named proxies by proof.
fn start_trust(
    cfg: &Config,
    dialer: &Arc<Dialer>,
    has_pac: bool,
    network: tokio::sync::watch::Receiver<Arc<crate::net::NetworkId>>,
    shutdown: &CancellationToken,
) -> Arc<crate::net::trust::Trust> {
    let default = dialer.auth.default_identity();
    if !has_pac || !default.needs_network_proof() {
        return crate::net::trust::Trust::not_needed();
    }
    let prover = crate::net::trust::Prover {
        ccache: default.proof_ccache(),
        kdc: cfg.auth.kdc.clone(),
        probe: cfg.auth.trust_probe.clone().map(|u| {
            let client = HttpClient::new(dialer.clone());
            let fetch: crate::net::trust::Fetch = Arc::new(move |url: String| {
                let client = client.clone();
                Box::pin(async move { client.get(&url, "*/*", 1 << 20).await.map(|_| ()) })
            });
            (u, fetch)
        }),
    };
    crate::net::trust::Trust::start(prover, network, shutdown.clone())
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

/// Keeps the parts of one `App` generation in step with the network: on every change the
/// upstream sockets the move stranded are cut ([`crate::upstream::live`]), the
/// resolver is rebuilt (resolv.conf read again, its cache dropped), the PAC engine probes its
/// local addresses again and flushes its caches, the bad-proxy marks are cleared and idle
/// pooled connections are closed (their route or local address may be gone). WPAD
/// rediscovery runs in the autoproxy's own refresh task. Ends when the generation is dropped.
fn follow_network(
    app: std::sync::Weak<App>,
    mut rx: tokio::sync::watch::Receiver<Arc<crate::net::NetworkId>>,
) {
    tokio::spawn(async move {
        let mut before = rx.borrow_and_update().clone();
        while rx.changed().await.is_ok() {
            let now = rx.borrow_and_update().clone();
            // first the sockets the move stranded: whatever waits on them fails now, not at
            // its response timeout
            let cut = crate::upstream::live::sockets().cut_stranded(&before, &now);
            before = now;
            let Some(app) = app.upgrade() else { return };
            // the resolver next: the PAC engine's lookups go through it
            app.upstream.dialer.resolver.rebuild();
            if let Some(ap) = &app.router.autoproxy {
                ap.network_changed();
            }
            app.router.bad.clear();
            let closed = app.upstream.pool.flush_idle();
            app.metrics.network_changes.inc();
            if cut > 0 {
                tracing::info!(
                    cut,
                    "network change: upstream connections through the old network closed"
                );
            }
            tracing::debug!(
                closed_idle = closed,
                "network change: bad-proxy marks cleared, resolver rebuilt"
            );
        }
    });
}

//! waypost: a local forward proxy that decides per URL how to reach it, the way WinHTTP does.
//!
//! Module map, in the order a request meets them (each stage a module; arrows are imports,
//! and there is no cycle among them: `tests/integration/module_graph.rs` checks):
//! - [`server`]: listeners (bound, or inherited by socket activation: [`systemd`]), connection
//!   caps (tunnels hold their slot), shutdown; SOCKS5 clients' handshake: [`socks`].
//! - [`admission`]: may this client do this now (`allow`, `admin_allow`, `client_auth`, the
//!   admin Host rule), one decision asked at accept and again for every request and tunnel.
//! - [`proxy`]: the pipeline — classify, parse the target, decide, plan, connect + authenticate
//!   with one failover loop, then send-and-stream, reply-200-and-relay, or relay an upgrade;
//!   every error goes through [`error::rescue`].
//! - [`target`]: request targets and proxy addresses; [`headers`]: hop-by-hop handling.
//! - [`router`]: the decide stage (static rules, PAC via [`autoproxy`], bad proxies).
//! - [`route`]: pure routing values: decisions, hops, and the connect plan (with the pool key).
//! - [`upstream`]: carries a plan out — the dialer (DNS, TCP retries, TLS, SOCKS, CONNECT), the
//!   pool and per-server limits, authentication on connections, streamed response bodies, and
//!   the small HTTP client for waypost's own requests.
//! - [`dns`]: name resolution for connections, and a proxy's canonical name for its Kerberos
//!   SPN (answers read and cached by [`dns::canonical_name`]).
//! - [`destination`]: the destination policy (own listeners; loopback and link-local for
//!   clients on other machines), applied by the dialer to every address it dials.
//! - [`body`]: the one body type and the pause limit; [`upstream::body_rate`]: the minimum
//!   data rate every client request body is held to (408 `request-body-too-slow`).
//! - [`intercept`]: opt-in TLS interception; [`relay`]: byte relays; [`access`]: the access log.
//! - [`config`]: raw -> validated typed configuration (it imports no runtime module);
//!   [`metrics`]: every metric in one registry; [`app`]: composes the parts into one
//!   configuration generation; [`reload`]: the generation in use and hot reload (SIGHUP, file
//!   changes); [`network`]: which network this is, and the change event its dependants follow;
//!   [`trust`]: whether that network has proven itself (the realm's KDC, or an HTTPS probe),
//!   which decides whether proxies a WPAD script names may get credentials.
//! - Operating it: [`admin`]: `/metrics`, `/healthz`, `/readyz`, `/status`, `/status.json`,
//!   `/explain`; [`ready`]: readiness checks; [`status`]: the status page; [`activity`]: the
//!   in-process rings of recent requests and chart samples; [`doctor`]: `waypost doctor`;
//!   [`redact`]: URLs as they may be shown (no userinfo, no query).
//! - Clients: [`clientpac`]: `/proxy.pac` for browsers; [`clientenv`]: `waypost env`; SOCKS5
//!   clients: [`socks`]; socket activation and `sd_notify`: [`systemd`].

pub mod access;
pub mod activity;
pub mod admission;
pub mod app;
pub mod autoproxy;
pub mod body;
pub mod cli;
pub mod config;
pub mod doctor;
pub mod error;
pub mod intercept;
pub mod listen;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod ops;
pub mod proxy;
pub mod redact;
pub mod relay;
pub mod route;
pub mod router;
pub mod target;
pub mod trust;
pub mod upstream;
pub mod wpad;

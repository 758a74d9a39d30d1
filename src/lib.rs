//! waypost: a local forward proxy that decides per URL how to reach it, the way WinHTTP does.
//!
//! Module map, in the order a request meets them (folders are parts; within each folder,
//! and among the parts, imports form no circle: `tests/integration/module_graph.rs` checks;
//! `docs/architecture.md` is the bird's-eye view):
//! - [`listen`]: listeners (bound, or inherited by socket activation), connection caps,
//!   shutdown and draining.
//! - [`admission`]: may this client do this now (`allow`, `admin_allow`, `client_auth`, the
//!   admin Host rule), one decision asked at accept and again for every request and tunnel.
//! - [`proxy`]: the pipeline — classify, parse the target, decide, plan, connect + authenticate
//!   with one failover loop, then send-and-stream, reply-200-and-relay, relay an upgrade, or a
//!   SOCKS5 client's CONNECT ([`proxy::socks`], its wire codec in [`proxy::socks::wire`]);
//!   every error goes through [`error::rescue`].
//! - [`target`]: request targets and proxy addresses.
//! - [`router`]: the decide stage (static rules, PAC via [`autoproxy`], bad proxies).
//! - [`route`]: pure routing values: decisions, hops, the connect plan (with the pool key and
//!   what may be sent to its proxy), the destination policy ([`route::destination`]) and
//!   hop-by-hop headers ([`route::headers`]).
//! - [`upstream`]: carries a plan out — the dialer (DNS, TCP retries, TLS), [`upstream::connect`]
//!   (SOCKS, CONNECT), the pool and per-server limits, authentication on connections, streamed
//!   response bodies, the sockets a network change strands ([`upstream::live`]), and the small
//!   HTTP client for waypost's own requests.
//! - [`net`]: which network this is and the change event its dependants follow; name
//!   resolution ([`net::dns`]); WPAD discovery ([`net::wpad`]); whether the network has proven
//!   itself ([`net::trust`]), which decides whether proxies a WPAD script names may get
//!   credentials.
//! - [`body`]: the one body type and the pause limit; [`upstream::body_rate`]: the minimum
//!   data rate every client request body is held to (408 `request-body-too-slow`).
//! - [`intercept`]: opt-in TLS interception; [`relay`]: byte relays.
//! - [`config`]: raw -> validated typed configuration (it imports no runtime module);
//!   [`metrics`]: every metric in one registry; [`activity`]: the in-process rings of recent
//!   requests and chart samples; [`app`]: composes the parts into one configuration
//!   generation; [`redact`]: URLs as they may be shown (no userinfo, no query).
//! - [`ops`]: operating it — the admin surface, readiness, the status page, `explain`,
//!   `doctor`, hot reload, the access log, and what points clients at the proxy
//!   (`/proxy.pac`, `waypost env`).

pub mod activity;
pub mod admission;
pub mod app;
pub mod autoproxy;
pub mod body;
pub mod cli;
pub mod config;
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
pub mod upstream;

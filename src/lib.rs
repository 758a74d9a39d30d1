//! waypost: a local forward proxy that decides per URL how to reach it, the way WinHTTP does.
//!
//! Module map, in the order a request meets them:
//! - [`server`]: listeners, client ACL, connection cap, graceful shutdown.
//! - [`proxy`]: the hyper service — classify (admin, CONNECT, absolute-form), decide, connect,
//!   relay; every error goes through [`error::rescue`].
//! - [`target`]: parsing the request target; [`headers`]: hop-by-hop handling.
//! - [`route`]: pure routing decisions (bypass rules, upstream) as data.
//! - [`upstream`]: dialling (DNS, TCP retries, TLS, CONNECT), the keep-alive pool, streamed
//!   response bodies with drain and timeouts.
//! - [`relay`]: byte relays for tunnels and upgrades; [`access`]: the access log.
//! - [`config`]: raw -> validated typed configuration; [`metrics`]: every metric in one registry;
//!   [`admin`]: `/metrics`, `/healthz`; [`app`]: the shared state.

pub mod access;
pub mod admin;
pub mod app;
pub mod autoproxy;
pub mod body;
pub mod cli;
pub mod config;
pub mod dns;
pub mod error;
pub mod explain;
pub mod headers;
pub mod intercept;
pub mod logging;
pub mod metrics;
pub mod proxy;
pub mod relay;
pub mod route;
pub mod server;
pub mod target;
pub mod upstream;
pub mod wpad;

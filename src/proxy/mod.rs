//! The hyper service: the classify stage, then one stage list for every kind of traffic.
//!
//! Stages of a request: accept (the server, a span per connection) -> admit ([`handle`] asks
//! [`crate::admission`] under the generation current now, for every request) -> classify
//! (admin surface, CONNECT, absolute-form, upgrade) -> parse the target -> [`stage`]'s
//! `Exchange::run`, which owns the order from there for every kind of traffic: loop check ->
//! the last stage's admission -> decide (the [`crate::router::Router`]) -> prepare -> plan each
//! hop ([`crate::route::plan`]) and connect + authenticate ([`crate::upstream`]) with one
//! failover loop ([`pipeline::Exchange::connect`]) -> the last stage, a value supplying only
//! what differs: [`forward`] sends and streams, [`tunnel`] answers 200 and relays, [`upgrade`]
//! relays after a 101, [`socks`] answers a SOCKS5 client's CONNECT and relays. Every failure
//! ends in [`pipeline::Exchange::fail`] (refusals before an exchange in `pipeline::refuse`),
//! answered by [`crate::error::rescue`] and logged once.

mod forward;
pub mod head;
mod pipeline;
pub mod socks;
mod stage;
mod tunnel;
mod upgrade;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{Method, Request, Response};
use hyper::body::Incoming;
use tokio::sync::OwnedSemaphorePermit;

use crate::admission::{self, Ask, Entry, Grant};
use crate::app::App;
use crate::body::Body;
use crate::error::{ErrorKind, ProxyError};
use crate::metrics::Metrics;

/// An HTTP request in absolute form (a client's, or one decrypted from an intercepted tunnel):
/// its target parsed, then [`upgrade`] for an upgrade request, else [`forward`].
pub async fn http(app: Arc<App>, client: Client, req: Request<Incoming>) -> Response<Body> {
    let target =
        match crate::target::Target::from_absolute(req.uri(), app.cfg.reject_userpwd_in_url) {
            Ok(t) => t,
            Err(e) => return pipeline::refuse(&app, &client, &req, e, true),
        };
    if crate::route::headers::is_upgrade(req.headers()) {
        return upgrade::upgrade(app, client, target, req).await;
    }
    forward::forward(app, client, target, req).await
}
pub use socks::serve as serve_socks;

/// A client connection's slot of `max_client_connections`, counted in the active-connections
/// gauge while it lives. Tunnels and upgrades hold a clone, so the slot stays taken until the
/// last of them ends.
pub struct ClientSlot {
    _permit: OwnedSemaphorePermit,
    /// Proxy clients are counted in the client-connection metrics; admin connections are not.
    metrics: Option<Arc<Metrics>>,
}

impl ClientSlot {
    /// A proxy client's slot (`counted`), or an admin connection's (not counted as a client).
    pub fn new(permit: OwnedSemaphorePermit, metrics: Arc<Metrics>, counted: bool) -> Arc<Self> {
        let metrics = counted.then_some(metrics);
        if let Some(m) = &metrics {
            m.client_connections.inc();
            m.client_connections_active.inc();
        }
        Arc::new(ClientSlot {
            _permit: permit,
            metrics,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        if let Some(m) = &self.metrics {
            m.client_connections_active.dec();
        }
    }
}

/// The client of a request: its address and its connection's slot.
#[derive(Clone)]
pub struct Client {
    pub addr: SocketAddr,
    pub slot: Arc<ClientSlot>,
}

/// Entry point for every request on a client connection, on every HTTP listener: admission
/// against the generation current now (`app`), then the classify stage.
pub async fn handle(
    app: Arc<App>,
    entry: Entry,
    client: Client,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let grant = match admission::admit(&app.cfg, entry, client.addr, Ask::http(&req)) {
        Ok(g) => g,
        Err(e) => {
            refused(&app, client.addr, &e);
            return Ok(pipeline::refuse(&app, &client, &req, e, false));
        }
    };
    if let Err(e) = head::check(&req, app.cfg.limits.max_request_header_size) {
        return Ok(pipeline::refuse(&app, &client, &req, e, true));
    }
    if let Grant::Admin { authenticated } = grant {
        return Ok(crate::ops::admin::serve(&app, &req, authenticated).await);
    }
    if req.method() == Method::CONNECT {
        return Ok(tunnel::tunnel(app, client, req).await);
    }
    if req.uri().scheme().is_none() {
        let e = ProxyError::bad_request("authority-form targets are only valid with CONNECT");
        return Ok(pipeline::refuse(&app, &client, &req, e, true));
    }
    Ok(http(app, client, req).await)
}

/// Logs (and counts) a client that [`admission::admit`] refused, once, where it is handled: a
/// client refused outright (outside the allow lists, or proxying through an admin listener) at
/// warn level and in `waypost_client_connections_rejected_total{reason="not-allowed"}` (its
/// connection is closed), a missing login at debug (the first step of every authenticated
/// client), the rest at info.
pub fn refused(app: &App, peer: SocketAddr, err: &ProxyError) {
    match err.kind {
        ErrorKind::Forbidden => {
            app.metrics
                .client_connections_rejected
                .with_label_values(&["not-allowed"])
                .inc();
            tracing::warn!(client = %peer, reason = %err.detail, "client refused");
        }
        ErrorKind::ClientAuthRequired => {
            tracing::debug!(client = %peer, "client asked for the client_auth credentials")
        }
        _ => tracing::info!(client = %peer, code = err.kind.code(), "request refused"),
    }
}

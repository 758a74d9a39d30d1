//! The hyper service: the classify stage, then one pipeline for every kind of traffic.
//!
//! Stages of a request (see [`pipeline`]): accept (the server, a span per connection) ->
//! classify ([`handle`]: admin surface, CONNECT, absolute-form, upgrade) -> parse the target ->
//! decide (the [`crate::router::Router`]) -> plan each hop ([`crate::route::plan`]) -> connect +
//! authenticate ([`crate::upstream`]) with one failover loop ([`pipeline::Exchange::connect`])
//! -> the last stage, which is all that differs: [`forward`] sends and streams, [`tunnel`]
//! answers 200 and relays, [`upgrade`] relays after a 101; a SOCKS5 client's CONNECT ([`socks`])
//! takes the tunnel's path with SOCKS replies. Every error ends in
//! [`crate::error::rescue`], logged once where it is handled.

mod forward;
pub mod head;
mod pipeline;
mod socks;
mod tunnel;
mod upgrade;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{header, Method, Request, Response};
use hyper::body::Incoming;
use tokio::sync::OwnedSemaphorePermit;

use crate::app::App;
use crate::body::Body;
use crate::error::{rescue, ErrorKind, ProxyError};
use crate::metrics::Metrics;

pub use forward::forward;
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

/// Entry point for every request on a client connection: the classify stage.
pub async fn handle(
    app: Arc<App>,
    client: Client,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    if let Err(e) = head::check(&req, app.cfg.limits.max_request_header_size) {
        return Ok(rescue(&e));
    }
    let is_connect = req.method() == Method::CONNECT;
    if !is_connect && req.uri().scheme().is_none() {
        if req.uri().authority().is_some() {
            return Ok(rescue(&ProxyError::bad_request(
                "authority-form targets are only valid with CONNECT",
            )));
        }
        return Ok(crate::admin::serve(&app, &req).await);
    }
    if !client_authorized(&app, req.headers()) {
        let err = ProxyError::new(
            ErrorKind::ClientAuthRequired,
            "this proxy requires Basic credentials (Proxy-Authorization)",
        );
        return Ok(rescue(&err));
    }
    if is_connect {
        Ok(tunnel::tunnel(app, client, req).await)
    } else {
        Ok(forward(app, client, req).await)
    }
}

/// The admin-only port: the admin surface, and a refusal for anything that would be proxied.
pub async fn admin_only(app: &App, req: Request<Incoming>) -> Response<Body> {
    if let Err(e) = head::check(&req, app.cfg.limits.max_request_header_size) {
        return rescue(&e);
    }
    if req.method() != Method::CONNECT
        && req.uri().scheme().is_none()
        && req.uri().authority().is_none()
    {
        return crate::admin::serve(app, &req).await;
    }
    rescue(&ProxyError::new(
        ErrorKind::Forbidden,
        "this is waypost's admin port (admin_listen); it does not proxy",
    ))
}

/// Sidecar mode: the client must present the configured Basic credentials (constant-time check).
fn client_authorized(app: &App, headers: &http::HeaderMap) -> bool {
    match &app.cfg.client_auth {
        None => true,
        Some(auth) => {
            crate::client_auth::basic_matches(auth, headers.get(header::PROXY_AUTHORIZATION))
        }
    }
}

//! Upstream proxy authentication on waypost's connections, driven by `waypost-auth`.
//!
//! The 407 state machine lives in that crate; this module builds its per-hop context (proxy
//! name as configured for the SPN, the HTTPS proxy's certificate for channel bindings), replays
//! buffered requests for each leg, keeps authenticated connections pooled under the identity,
//! and maps the driver's failures to [`ProxyError`]s.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use http_body_util::BodyExt;

use super::pool::Pooled;
use super::{body::ResponseBody, Endpoint};
use crate::app::App;
use crate::body::{self, Body};
use crate::error::{ErrorKind, ProxyError};
use crate::target::Host;

/// A request kept whole so that every leg of a handshake can send it again.
pub struct Replay {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Replay {
    pub fn build(&self) -> Request<Body> {
        let mut req = Request::new(body::full(self.body.clone()));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.version_mut() = Version::HTTP_11;
        *req.headers_mut() = self.headers.clone();
        req
    }
}

/// The driver's context for one proxy hop.
pub fn context(
    app: &App,
    host: &Host,
    port: u16,
    cert: Option<Vec<u8>>,
    reused: bool,
) -> waypost_auth::AuthContext {
    let mut target = waypost_auth::ProxyTarget::new(&host.to_string(), port);
    if let Some(der) = cert {
        target = target.with_tls_cert(der);
    }
    let ctx = waypost_auth::AuthContext::new(app.auth.clone(), target);
    if reused {
        ctx.on_reused_connection()
    } else {
        ctx
    }
}

pub fn map_error(e: &waypost_auth::AuthError, what: &str) -> ProxyError {
    match e {
        waypost_auth::AuthError::Connection(h) => super::map_hyper_error(h, what),
        other => ProxyError::new(
            ErrorKind::UpstreamClosed,
            format!("{what} during authentication: {other}"),
        ),
    }
}

pub fn rejected(what: &str, outcome: &waypost_auth::AuthOutcome) -> ProxyError {
    let scheme = outcome
        .plan
        .as_ref()
        .map(|p| p.to_string())
        .unwrap_or_else(|| "none".into());
    ProxyError::new(
        ErrorKind::AuthRejected,
        format!(
            "{what} rejected the credentials of {} ({scheme})",
            outcome.identity
        ),
    )
}

/// Sends a replayable request on `conn`, authenticating on that connection when the proxy
/// answers 407. A handshake the proxy cuts with `Connection: close` goes on on a new
/// connection. The connection returns to the pool only when authenticated (or not asked).
pub async fn send(
    app: &App,
    ep: &Endpoint,
    mut conn: Pooled,
    replay: &Replay,
) -> Result<Response<Body>, ProxyError> {
    let what = format!("proxy {}", ep.host.to_authority_host());
    let timeout = app.cfg.timeouts.receive_response;
    if conn.sender().ready().await.is_err() {
        drop(conn);
        conn = super::fresh_connection(app, ep).await?;
    }
    if conn.reused {
        app.auth.connection_reused();
    }
    let ctx = context(app, &ep.host, ep.port, conn.tls_cert.clone(), conn.reused);
    for _ in 0..3 {
        let exchange = waypost_auth::authenticate_request(conn.sender(), |_| replay.build(), &ctx);
        let result = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ProxyError::response_timeout(&what, timeout))?;
        match result {
            Err(e) if e.is_reconnect() => {
                drop(conn);
                conn = super::fresh_connection(app, ep).await?;
            }
            Err(e) => return Err(map_error(&e, &what)),
            Ok((resp, outcome)) => {
                if !outcome.is_success() {
                    tracing::warn!(proxy = %ep.label, identity = %outcome.identity, "upstream proxy rejected the credentials; relaying its 407");
                }
                let pooled = outcome.poolable().then_some(conn);
                let (parts, incoming) = resp.into_parts();
                let body = ResponseBody::new(
                    incoming,
                    pooled,
                    app.cfg.timeouts.receive,
                    app.cfg.limits.max_response_drain_size,
                    app.metrics.clone(),
                );
                return Ok(Response::from_parts(parts, body.boxed()));
            }
        }
    }
    Err(ProxyError::new(
        ErrorKind::UpstreamClosed,
        format!("{what} kept closing the connection during authentication"),
    ))
}

/// Largest request body buffered so that it can be resent during a handshake.
pub const MAX_REPLAY_BODY: u64 = 1 << 20;

/// Whether a body of this size can be buffered for replay.
pub fn replayable(size: &http_body::SizeHint) -> bool {
    size.upper().is_some_and(|u| u <= MAX_REPLAY_BODY)
}

#[allow(dead_code)]
fn _send_sync(_: Arc<App>) {}

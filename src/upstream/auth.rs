//! Upstream proxy authentication on waypost's connections, driven by `waypost-auth`.
//!
//! The 407 state machine lives in that crate; this module builds its per-connection context
//! (proxy name as configured, its canonical name for the Kerberos SPN when
//! `auth.canonicalize_spn` is on — looked up through the dialer's resolver, bounded and cached
//! there —, the HTTPS proxy's certificate for channel bindings, kept with pooled connections),
//! and sends requests through the driver in three ways:
//! - [`send_replay`]: a request whose body is held (small, known size, within the replay
//!   budget) is sent again for each leg;
//! - [`send_streaming`]: a body of any size or unknown length is sent once: on a new connection
//!   the connection is authenticated first with a probe — a `HEAD` for the same URL, which has
//!   no body and, by HTTP's semantics, no effect on the origin (squid answers `OPTIONS` with
//!   `Max-Forwards: 0` itself, but before authenticating: useless as a probe) — then the
//!   request streams on the authenticated connection;
//! - [`send_upgrade`]: an upgrade request (no body) on its own connection.
//!
//! The connection returns to the pool only when authenticated (or not asked). A rejection is
//! an error carrying the proxy's 407 page, answered by [`crate::error::rescue`] like every
//! other refusal.

use std::sync::Arc;
use std::sync::Mutex;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, Uri, Version};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;

use super::dialer::{refusal, Dialer};
use super::pool::Pooled;
use super::{describe, UpgradeConn, Upstream};
use crate::body::{self, Body};
use crate::error::{ErrorKind, ProxyError};
use crate::route::ConnectPlan;
use crate::target::Host;

/// Largest request body buffered so that it can be resent during a handshake.
pub const MAX_REPLAY_BODY: u64 = 1 << 20;

/// Largest probe response read (and discarded) before the real request.
const MAX_PROBE_BODY: usize = 1 << 20;

/// A request head (and a held body) that can be built again for every leg of a handshake.
pub struct Replay {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Replay {
    pub fn build(&self) -> Request<Body> {
        self.with_body(body::full(self.body.clone()))
    }

    /// The request with `body`, the head moved (a request sent once, no replay).
    pub fn into_request(self, body: Body) -> Request<Body> {
        let mut req = Request::new(body);
        *req.method_mut() = self.method;
        *req.uri_mut() = self.uri;
        *req.version_mut() = Version::HTTP_11;
        *req.headers_mut() = self.headers;
        req
    }

    fn with_body(&self, body: Body) -> Request<Body> {
        let mut req = Request::new(body);
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.version_mut() = Version::HTTP_11;
        *req.headers_mut() = self.headers.clone();
        req
    }

    /// The probe that authenticates a connection without the body: `HEAD` for the same URL.
    fn probe(&self) -> Request<Body> {
        let mut req = Request::new(body::empty());
        *req.method_mut() = Method::HEAD;
        *req.uri_mut() = self.uri.clone();
        let h = req.headers_mut();
        for name in [header::HOST, header::VIA, header::USER_AGENT] {
            if let Some(v) = self.headers.get(&name) {
                h.insert(name, v.clone());
            }
        }
        req
    }
}

/// Whether a body of this size can be held for replay.
pub fn replayable(size: &http_body::SizeHint) -> bool {
    size.upper().is_some_and(|u| u <= MAX_REPLAY_BODY)
}

/// The proxy `host:port` as authentication sees it, and the identity that authenticates to
/// it: with its canonical name when that identity's SPN wants one.
pub async fn proxy_target(
    dialer: &Dialer,
    host: &Host,
    port: u16,
) -> (Arc<waypost_auth::Authenticator>, waypost_auth::ProxyTarget) {
    let name = host.to_string();
    // the same choice as the plan's identity (`App::plan`): host as named, and port
    let auth = dialer.auth.for_proxy(&name, port).clone();
    let mut target = waypost_auth::ProxyTarget::new(&name, port);
    if auth.wants_canonical_name(&name) {
        if let Some(canonical) = dialer.resolver.canonical_name(&name).await {
            target = target.with_canonical_name(canonical);
        }
    }
    (auth, target)
}

/// The driver's context for one connection to the proxy `host:port`; `grant`: what the
/// plan allows to be sent there.
pub async fn context(
    dialer: &Dialer,
    host: &Host,
    port: u16,
    cert: Option<Arc<[u8]>>,
    reused: bool,
    grant: Option<waypost_auth::Grant>,
) -> waypost_auth::AuthContext {
    let (auth, mut target) = proxy_target(dialer, host, port).await;
    if let Some(der) = cert {
        target = target.with_tls_cert(der.to_vec());
    }
    if let Some(g) = grant {
        target = target.with_grant(g);
    }
    let ctx = waypost_auth::AuthContext::new(auth, target);
    if reused {
        ctx.on_reused_connection()
    } else {
        ctx
    }
}

/// The driver's failures as proxy errors; its own timeouts are 504s.
pub fn map_error(e: waypost_auth::AuthError, what: &str) -> ProxyError {
    use waypost_auth::AuthError as E;
    match e {
        E::Connection(h) => super::map_hyper_error(&h, what),
        E::Timeout => ProxyError::new(
            ErrorKind::ResponseTimeout,
            format!("{what} sent its 407 body too slowly during authentication"),
        ),
        other => ProxyError::new(
            ErrorKind::UpstreamClosed,
            format!("{what} failed during authentication"),
        )
        .with_source(other),
    }
}

/// The proxy refused the credentials (the identity is logged, never shown to the client).
pub fn rejected(what: &str, outcome: &waypost_auth::AuthOutcome) -> ProxyError {
    let scheme = outcome
        .plan
        .as_ref()
        .map(|p| p.to_string())
        .unwrap_or_else(|| "none".into());
    if let waypost_auth::AuthResult::Rejected(reason) = &outcome.result {
        if reason.code() != "auth-rejected" {
            return ProxyError::new(
                ErrorKind::AuthNotSent(reason.code()),
                format!("{what} asked for credentials that were not sent: {reason}"),
            );
        }
    }
    tracing::debug!(proxy = %what, identity = %outcome.identity, scheme = %scheme, "the upstream proxy rejected the credentials");
    ProxyError::new(
        ErrorKind::AuthRejected,
        format!("{what} rejected the configured credentials ({scheme})"),
    )
}

async fn ctx_for(dialer: &Dialer, plan: &ConnectPlan, conn: &Pooled) -> waypost_auth::AuthContext {
    if conn.reused {
        dialer.auth.connection_reused();
    }
    context(
        dialer,
        &plan.key.host,
        plan.key.port,
        conn.tls_cert.clone(),
        conn.reused,
        plan.grant,
    )
    .await
}

/// A 407 from a proxy whose credentials were withheld because the network named it and has
/// not proven itself (`grant`): none were sent, and its page (the network's content) is not
/// relayed to the client. The one check every path (forward, upgrade, CONNECT) makes.
pub fn refuse_untrusted(
    status: http::StatusCode,
    grant: Option<waypost_auth::Grant>,
    what: &str,
) -> Result<(), ProxyError> {
    let withheld = grant.is_some_and(waypost_auth::Grant::withheld_by_network);
    if status == http::StatusCode::PROXY_AUTHENTICATION_REQUIRED && withheld {
        return Err(untrusted(what));
    }
    Ok(())
}

/// A proxy the network named, on a network that has not proven itself, asked for credentials:
/// none were sent, and its page (the network's content) is not shown to the client.
fn untrusted(what: &str) -> ProxyError {
    ProxyError::new(
        ErrorKind::UntrustedProxy,
        format!(
            "{what} asked for credentials; none were sent: a WPAD or http:// PAC script named it \
             and this network has not proven itself (no answer from the Kerberos realm's KDC, no \
             auth.trust_probe); see `waypost explain`"
        ),
    )
}

/// A connection to a proxy that requests can be sent on (pooled, an upgrade's own, a CONNECT's).
pub trait ProxyConn {
    fn sender(&mut self) -> &mut SendRequest<Body>;
}

impl ProxyConn for Pooled {
    fn sender(&mut self) -> &mut SendRequest<Body> {
        Pooled::sender(self)
    }
}

impl ProxyConn for UpgradeConn {
    fn sender(&mut self) -> &mut SendRequest<Body> {
        &mut self.sender
    }
}

impl ProxyConn for SendRequest<Body> {
    fn sender(&mut self) -> &mut SendRequest<Body> {
        self
    }
}

/// The one 407 driver over reconnects, for every path (a replayed request, the probe that
/// authenticates a connection, an upgrade, a CONNECT): sends `make`'s request on `conn`
/// through the handshake; when the proxy closes the connection mid-handshake, drops it and
/// goes on on the next one `reconnect` opens (three connections at most). Returns the
/// connection with the final response; a refusal is an error carrying the proxy's page.
pub async fn drive<C, F>(
    timeout: std::time::Duration,
    what: &str,
    mut conn: C,
    mut reconnect: impl FnMut() -> F,
    mut make: impl FnMut(Option<HeaderValue>) -> Request<Body>,
    ctx: &waypost_auth::AuthContext,
) -> Result<(C, Response<Incoming>), ProxyError>
where
    C: ProxyConn,
    F: std::future::Future<Output = Result<C, ProxyError>>,
{
    for _ in 0..3 {
        match exchange(timeout, what, conn.sender(), &mut make, ctx).await? {
            None => {
                drop(conn); // its slot first: the next connection may need it
                conn = reconnect().await?;
            }
            Some((resp, outcome)) => {
                if !outcome.is_success() {
                    return Err(refusal(rejected(what, &outcome), resp).await);
                }
                return Ok((conn, resp));
            }
        }
    }
    Err(kept_closing(what))
}

/// Runs one exchange through the driver under the receive-response timeout.
async fn exchange(
    timeout: std::time::Duration,
    what: &str,
    conn: &mut SendRequest<Body>,
    make: impl FnMut(Option<HeaderValue>) -> Request<Body>,
    ctx: &waypost_auth::AuthContext,
) -> Result<Option<(Response<Incoming>, waypost_auth::AuthOutcome)>, ProxyError> {
    match tokio::time::timeout(timeout, waypost_auth::authenticate_request(conn, make, ctx)).await {
        Err(_) => Err(ProxyError::response_timeout(what, timeout)),
        Ok(Err(e)) if e.is_reconnect() => Ok(None),
        Ok(Err(e)) => Err(map_error(e, what)),
        Ok(Ok(r)) => Ok(Some(r)),
    }
}

/// Sends a replayable request on `conn`, authenticating on that connection when the proxy
/// answers 407. A handshake the proxy cuts with `Connection: close` goes on on a new
/// connection.
pub async fn send_replay(
    up: &Upstream,
    plan: &ConnectPlan,
    mut conn: Pooled,
    replay: &Replay,
) -> Result<Response<Body>, ProxyError> {
    let what = describe(plan);
    if conn.sender().ready().await.is_err() {
        drop(conn);
        conn = up.fresh_connection(plan).await?;
    }
    let ctx = ctx_for(&up.dialer, plan, &conn).await;
    let timeout = plan.options.receive_response;
    let reconnect = || up.fresh_connection(plan);
    let (conn, resp) = drive(timeout, &what, conn, reconnect, |_| replay.build(), &ctx).await?;
    up.relay(resp, Some(conn), plan)
}

/// Sends a request whose body is sent once (any size, or unknown length): a new connection
/// is authenticated first with a probe, then the request streams on it.
pub async fn send_streaming(
    up: &Upstream,
    plan: &ConnectPlan,
    mut conn: Pooled,
    head: Replay,
    body: Body,
) -> Result<Response<Body>, ProxyError> {
    let what = describe(plan);
    if conn.sender().ready().await.is_err() {
        drop(conn);
        conn = up.fresh_connection(plan).await?;
    }
    if !conn.reused {
        conn = authenticate_connection(up, plan, conn, &head, &what).await?;
    }
    let ctx = ctx_for(&up.dialer, plan, &conn).await;
    let pending = Mutex::new(Some(body));
    let mut legs = 0;
    let make = |_: Option<HeaderValue>| {
        legs += 1;
        match pending.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(b) => head.with_body(b),
            None => head.probe(),
        }
    };
    let timeout = plan.options.receive_response;
    let Some((resp, outcome)) = exchange(timeout, &what, conn.sender(), make, &ctx).await? else {
        return Err(kept_closing(&what));
    };
    if legs > 1 {
        // the body went with the first leg and cannot be sent again
        return Err(ProxyError::new(
            ErrorKind::AuthRejected,
            format!("{what} asked to authenticate again after the request body was sent"),
        ));
    }
    if !outcome.is_success() {
        return Err(refusal(rejected(&what, &outcome), resp).await);
    }
    up.relay(resp, Some(conn), plan)
}

/// Authenticates a new connection with the probe (a refusal is an error carrying the
/// proxy's answer).
async fn authenticate_connection(
    up: &Upstream,
    plan: &ConnectPlan,
    conn: Pooled,
    head: &Replay,
    what: &str,
) -> Result<Pooled, ProxyError> {
    let ctx = ctx_for(&up.dialer, plan, &conn).await;
    let timeout = plan.options.receive_response;
    let reconnect = || up.fresh_connection(plan);
    let (conn, resp) = drive(timeout, what, conn, reconnect, |_| head.probe(), &ctx).await?;
    if waypost_auth::response_closes(&resp) {
        return Err(ProxyError::new(
            ErrorKind::UpstreamClosed,
            format!("{what} closed the connection it had just authenticated"),
        ));
    }
    let read = Limited::new(resp.into_body(), MAX_PROBE_BODY).collect();
    match tokio::time::timeout(plan.options.receive, read).await {
        Ok(Ok(_)) => Ok(conn),
        _ => Err(ProxyError::new(
            ErrorKind::UpstreamClosed,
            format!("{what} broke the connection after authenticating it"),
        )),
    }
}

/// Sends an upgrade request on its own connection, authenticating on it when the plan allows;
/// returns the connection the response came on (a new one when the proxy closed the first).
pub async fn send_upgrade(
    up: &Upstream,
    plan: &ConnectPlan,
    conn: UpgradeConn,
    head: &Replay,
) -> Result<(UpgradeConn, Response<Incoming>), ProxyError> {
    let what = describe(plan);
    let ctx = context(
        &up.dialer,
        &plan.key.host,
        plan.key.port,
        conn.tls_cert.clone(),
        false,
        plan.grant,
    )
    .await;
    let timeout = plan.options.receive_response;
    let reconnect = || up.upgrade_connection(plan);
    drive(timeout, &what, conn, reconnect, |_| head.build(), &ctx).await
}

fn kept_closing(what: &str) -> ProxyError {
    ProxyError::new(
        ErrorKind::UpstreamClosed,
        format!("{what} kept closing the connection during authentication"),
    )
}

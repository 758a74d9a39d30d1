//! The I/O driver: runs a [`Handshake`] over one hyper HTTP/1 connection to the
//! upstream proxy. It sends the request, reads each 407 body completely before reusing
//! the connection, sends the next leg on the same connection, and returns the final
//! response: the proxy's 200 (or any non-407), or the 407 itself when we give up
//! (marked `X-Waypost-Error: auth-rejected`). A 407 that closes the connection ends
//! with [`AuthError::Reconnect`]; the handshake stays in the [`AuthContext`] for the
//! next call on a new connection. The only place that touches both state and socket.

use std::error::Error as StdError;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, PROXY_AUTHORIZATION};
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, Version};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use tokio::time::Instant;
use tracing::{debug, debug_span, trace, Instrument};

use crate::context::AuthContext;
use crate::handshake::{Action, AuthResult, Handshake, Leg};
use crate::scheme::{Plan, Scheme};

/// Largest 407 body we read (and discard) before reusing the connection.
const MAX_407_BODY: usize = 1 << 20;
/// How long reading a 407 body may take.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Header set on a 407 we relay because authentication failed.
pub const X_WAYPOST_ERROR: HeaderName = HeaderName::from_static("x-waypost-error");

/// What happened, for the caller's logs, pool and `auth test`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthOutcome {
    pub result: AuthResult,
    pub plan: Option<Plan>,
    pub spn: String,
    pub identity: String,
    pub legs: Vec<Leg>,
}

impl AuthOutcome {
    /// Authenticated, or the proxy did not ask.
    pub fn is_success(&self) -> bool {
        matches!(
            self.result,
            AuthResult::Authenticated | AuthResult::NotRequired
        )
    }

    /// The connection may be pooled for this identity afterwards (not mid-handshake).
    pub fn poolable(&self) -> bool {
        self.is_success()
    }
}

/// Failures of the driver itself (a relayed 407 is not an error).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The proxy closes this connection after its 407: open a new connection and call
    /// [`authenticate_request`] again with the same [`AuthContext`].
    #[error("the upstream proxy closed the connection during authentication; reconnect and retry")]
    Reconnect,
    #[error("upstream proxy connection failed")]
    Connection(#[source] hyper::Error),
    #[error("reading a 407 body failed")]
    Body(#[source] Box<dyn StdError + Send + Sync>),
    #[error("reading a 407 body timed out")]
    Timeout,
}

impl AuthError {
    pub fn is_reconnect(&self) -> bool {
        matches!(self, AuthError::Reconnect)
    }
}

/// Runs `f` where blocking is allowed: Kerberos steps may wait for a KDC.
fn blocking<T>(may_block: bool, f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if may_block && h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Whether the proxy closes the connection after `resp`.
pub fn response_closes<B>(resp: &Response<B>) -> bool {
    let says = |name: &str, word: &str| {
        resp.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .unwrap_or("")
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(word))
        })
    };
    if says("connection", "close") || says("proxy-connection", "close") {
        return true;
    }
    resp.version() == Version::HTTP_10
        && !says("connection", "keep-alive")
        && !says("proxy-connection", "keep-alive")
}

async fn drain(body: Incoming) -> Result<(), AuthError> {
    match tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_407_BODY).collect()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(AuthError::Body(e)),
        Err(_) => Err(AuthError::Timeout),
    }
}

/// Sends `make_request(token)` through `sender` and authenticates on that connection.
///
/// `make_request` builds the request again for each leg (the driver also sets
/// `Proxy-Authorization` itself, so it may ignore its argument). Works for CONNECT and
/// absolute-form requests; requests with bodies must be rebuildable (buffered).
pub async fn authenticate_request<B>(
    sender: &mut SendRequest<B>,
    mut make_request: impl FnMut(Option<HeaderValue>) -> Request<B>,
    ctx: &AuthContext,
) -> Result<(Response<Incoming>, AuthOutcome), AuthError>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let auth = ctx.auth.clone();
    let carried = ctx.carried.lock().unwrap_or_else(|e| e.into_inner()).take();
    let (mut hs, started) = match carried {
        Some(c) => c,
        None => {
            let remembered_basic = auth
                .memory()
                .get(&ctx.proxy.key())
                .is_some_and(|p| p.scheme == Scheme::Basic);
            (
                auth.handshake(&ctx.proxy, !ctx.reused_connection || remembered_basic),
                Instant::now(),
            )
        }
    };
    let span =
        debug_span!("proxy_auth", proxy = %ctx.proxy.key(), identity = %hs.params().identity);
    async move {
        let mut header = blocking(hs.may_block(), || hs.start());
        loop {
            let mut req = make_request(header.clone());
            if let Some(h) = &header {
                req.headers_mut().insert(PROXY_AUTHORIZATION, h.clone());
                req.headers_mut()
                    .entry(CONNECTION)
                    .or_insert(HeaderValue::from_static("keep-alive"));
            }
            trace!(method = %req.method(), with_token = header.is_some(), "sending");
            sender.ready().await.map_err(AuthError::Connection)?;
            let resp = sender
                .send_request(req)
                .await
                .map_err(AuthError::Connection)?;
            let closes = response_closes(&resp);
            let may_block = hs.may_block()
                || (resp.status() == StatusCode::PROXY_AUTHENTICATION_REQUIRED
                    && hs.params().usable.kerberos);
            let action = blocking(may_block, || {
                hs.on_response(resp.status(), resp.headers(), closes)
            });
            trace!(status = resp.status().as_u16(), closes, ?action, "response");
            match action {
                Action::SendToken(h) => {
                    let (_, body) = resp.into_parts();
                    drain(body).await?;
                    header = Some(h);
                }
                Action::Reconnect => {
                    debug!("407 closes the connection; the handshake continues on a new one");
                    *ctx.carried.lock().unwrap_or_else(|e| e.into_inner()) = Some((hs, started));
                    return Err(AuthError::Reconnect);
                }
                Action::Done | Action::Rejected { .. } => {
                    let mut resp = resp;
                    let outcome = finish(ctx, &hs, started);
                    if let Action::Rejected { reason } = &action {
                        debug!(%reason, "authentication failed; relaying the 407");
                        resp.headers_mut()
                            .insert(X_WAYPOST_ERROR, HeaderValue::from_static(reason.code()));
                    }
                    return Ok((resp, outcome));
                }
            }
        }
    }
    .instrument(span)
    .await
}

fn finish(ctx: &AuthContext, hs: &Handshake, started: Instant) -> AuthOutcome {
    let result = hs.result();
    let plan = hs.plan();
    let outcome = AuthOutcome {
        result: result.clone(),
        plan,
        spn: hs.params().spn.clone(),
        identity: hs.params().identity.clone(),
        legs: hs.legs().to_vec(),
    };
    let label = match &result {
        AuthResult::Authenticated => "authenticated",
        AuthResult::NotRequired => "not_required",
        AuthResult::Rejected(_) => "rejected",
        AuthResult::Pending => "error",
    };
    debug!(outcome = label, plan = ?plan.map(|p| p.to_string()), legs = outcome.legs.len(), spn = %outcome.spn, "handshake finished");
    if let Some(m) = ctx.auth.metrics() {
        let scheme = plan.map_or("none", |p| p.scheme.label());
        // Basic's credentials go with every request on an authenticated connection: that is
        // not a new handshake (one is counted per connection, as for NTLM and Negotiate)
        let per_request_basic = ctx.reused_connection && hs.legs().len() <= 1;
        if result != AuthResult::NotRequired && !per_request_basic {
            m.handshakes.with_label_values(&[scheme, label]).inc();
            m.duration_for(scheme)
                .observe(started.elapsed().as_secs_f64());
        }
        m.locked_out.set(ctx.auth.lockout().locked_count() as i64);
    }
    outcome
}

/// An empty body for CONNECT and GET requests (`make_request` helpers and tests).
pub fn empty() -> http_body_util::Empty<Bytes> {
    http_body_util::Empty::new()
}

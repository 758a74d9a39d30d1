//! What every kind of traffic shares: one [`Exchange`] carried from the parsed target to the
//! response (the order of the stages is [`super::stage`]'s) — decide, the try-hops loop with
//! failover, the response filter, the relay of a switched connection, and the one place a
//! failure is logged, counted and rescued, refusals before an exchange included.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use tracing::Instrument;

use super::Client;
use crate::app::App;
use crate::body::Body;
use crate::error::{self, rescue, ErrorKind, ProxyError};
use crate::ops::access::{Access, Counted, RequestId};
use crate::relay::relay_io;
use crate::route::headers;
use crate::route::{ConnectPlan, Decision, Purpose};
use crate::target::Target;
use crate::upstream::auth::Replay;
use crate::upstream::io::BoxIo;

/// The response header carrying the request id (also accepted from the client).
pub const REQUEST_ID: &str = "x-request-id";

/// One request (or tunnel) on its way through the stages.
pub struct Exchange {
    pub app: Arc<App>,
    pub client: Client,
    pub target: Target,
    pub access: Arc<Access>,
    /// The `Via` values the request arrived with (sent on by a CONNECT to an upstream proxy).
    via: Vec<HeaderValue>,
    /// The request carries this instance's `Via` token: it has been here before.
    looped: bool,
}

impl Exchange {
    /// `headers`: the request's, for a client-given `X-Request-Id`. The id is recorded in the
    /// request's span, so every line logged for it carries it.
    pub fn new(
        app: Arc<App>,
        client: Client,
        method: &str,
        target: Target,
        kind: &'static str,
        headers: &HeaderMap,
    ) -> Exchange {
        let id = RequestId::new(headers.get(REQUEST_ID));
        tracing::Span::current().record("request_id", id.as_str());
        let access = Access::new(
            id,
            client.addr,
            method,
            target.to_string(),
            kind,
            app.metrics.clone(),
            app.cfg.log.access_log,
        );
        let looped = headers::via_names(headers, &app.via_token);
        Exchange {
            app,
            client,
            target,
            access,
            via: headers::incoming_via(headers),
            looped,
        }
    }

    /// The exchange of an HTTP request (its method, and its headers for the id and the loop
    /// check).
    pub fn of_request<B>(
        app: Arc<App>,
        client: Client,
        target: Target,
        kind: &'static str,
        req: &http::Request<B>,
    ) -> Exchange {
        let method = req.method().as_str();
        Exchange::new(app, client, method, target, kind, req.headers())
    }

    /// A request that carries this instance's `Via` token has been here before: a loop
    /// (refused by [`Exchange::run`] before anything else).
    pub fn looped(&self) -> bool {
        self.looped
    }

    /// The decide stage.
    pub async fn decide(&self, url: impl FnOnce() -> String) -> Result<Decision, ProxyError> {
        self.app.router.decide(&self.target, url).await
    }

    /// Tries the decision's hops in order: for each, the plan and `connect`. A connect-phase
    /// failure moves on to the next hop (marking the failed proxy); any other failure, or the
    /// last hop's, ends the loop with the error and the route it happened on.
    pub async fn connect<T, F, Fut>(
        &self,
        decision: &Decision,
        purpose: Purpose,
        mut connect: F,
    ) -> Result<(T, ConnectPlan), (ProxyError, String)>
    where
        F: FnMut(ConnectPlan) -> Fut,
        Fut: Future<Output = Result<T, ProxyError>>,
    {
        let router = &self.app.router;
        let speaker = self.app.await_trust(decision).await;
        let mut last = None;
        for (i, hop) in decision.hops.iter().enumerate() {
            let mut plan = self.app.plan(hop, &self.target, purpose, speaker);
            if crate::route::destination::restricts(self.client.addr) {
                plan = plan.restricted();
            }
            plan.via = self.via.clone();
            let span = tracing::debug_span!("hop", hop = %hop);
            match connect(plan.clone()).instrument(span).await {
                Ok(t) => return Ok((t, plan)),
                Err(e) if e.kind.is_connect_phase() && i + 1 < decision.hops.len() => {
                    router.fail_over(hop, &e);
                    last = Some(e);
                }
                Err(e) => {
                    if e.kind.is_connect_phase() {
                        router.hop_failed(hop, &e);
                    }
                    return Err((e, hop.to_string()));
                }
            }
        }
        let e = last.unwrap_or_else(|| ProxyError::new(ErrorKind::Internal, "empty route"));
        Err((e, "-".into()))
    }

    /// The one place a failed exchange is logged (once), recorded and answered.
    pub fn fail(&self, route: &str, err: ProxyError) -> Response<Body> {
        answer_failure(&self.access, route, err, true)
    }

    /// Records and answers a refusal its caller has logged already (admission: see
    /// [`super::refused`]).
    pub fn refused(&self, err: ProxyError) -> Response<Body> {
        answer_failure(&self.access, "-", err, false)
    }

    /// The response filter: hop-by-hop headers out, `Via` when configured, access record,
    /// body bytes counted.
    pub fn respond(&self, resp: Response<Body>, plan: &ConnectPlan) -> Response<Body> {
        let (mut parts, body) = resp.into_parts();
        let switching = parts.status == StatusCode::SWITCHING_PROTOCOLS;
        headers::strip_hop_by_hop(&mut parts.headers, switching);
        if self.app.cfg.via {
            headers::add_via(&mut parts.headers, parts.version, &self.app.via_token);
        }
        self.tag(&mut parts.headers);
        self.access
            .finish(parts.status.as_u16(), plan.hop.to_string(), "ok");
        Response::from_parts(
            parts,
            Counted::new(body, self.access.clone(), false).boxed(),
        )
    }

    /// Puts the request id on a response to the client (`X-Request-Id`), replacing one an
    /// upstream may have sent, so the id the user quotes is the one in waypost's logs.
    pub fn tag(&self, headers: &mut HeaderMap) {
        tag(&self.access, headers);
    }

    /// Keeps `what` (a tunnel or an upgraded connection) running in the tracked background with
    /// the client's connection slot held for its whole life.
    pub fn spawn<F>(&self, what: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let slot = self.client.slot.clone();
        let span = tracing::Span::current();
        self.app.tracker.spawn(
            async move {
                what.await;
                drop(slot);
            }
            .instrument(span),
        );
    }
}

/// Relays a switched connection (a CONNECT tunnel, an upgraded connection) until it ends or
/// no byte moves for `idle` (its plan's `timeouts.tunnel_idle`): counted in the active-tunnels
/// gauge while it runs, its bytes added to the exchange's record.
pub async fn relay(app: &App, access: &Access, client: BoxIo, upstream: BoxIo, idle: Duration) {
    let metrics = &app.metrics;
    metrics.tunnels_active.inc();
    let end = relay_io(client, upstream, idle, metrics, &app.pipes).await;
    metrics.tunnels_active.dec();
    access
        .bytes_in
        .fetch_add(end.from_client, Ordering::Relaxed);
    access.bytes_out.fetch_add(end.to_client, Ordering::Relaxed);
    if end.idle_timeout {
        tracing::debug!("relay closed after timeouts.tunnel_idle");
    }
}

/// The request head as the client sent it, cleaned (hop-by-hop headers, `Expect`, `Host`).
pub struct RequestHead {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub version: http::Version,
}

impl RequestHead {
    pub fn new(mut parts: http::request::Parts, target: &Target, upgrade: bool) -> RequestHead {
        headers::strip_hop_by_hop(&mut parts.headers, upgrade);
        // hyper answers the client's `Expect: 100-continue` when the body is first polled, i.e.
        // once the upstream connection is ready; the upstream gets the body without waiting.
        parts.headers.remove(header::EXPECT);
        if let Ok(h) = HeaderValue::from_str(&target.host_header()) {
            parts.headers.insert(header::HOST, h);
        }
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        RequestHead {
            method: parts.method,
            path,
            headers: parts.headers,
            version: parts.version,
        }
    }

    /// The URL a PAC script sees.
    pub fn url(&self, target: &Target) -> String {
        format!(
            "{}://{}{}",
            target.scheme.as_str(),
            target.host_header(),
            self.path
        )
    }

    /// The head to send on `plan`: absolute- or origin-form, and this instance's `Via` on
    /// requests to an HTTP proxy (loop detection; CONNECTs carry it too) or when configured.
    pub fn for_plan(
        self,
        plan: &ConnectPlan,
        target: &Target,
        app: &App,
    ) -> Result<Replay, ProxyError> {
        let uri: Uri = if plan.absolute_form {
            self.url(target).parse()
        } else {
            self.path.parse()
        }
        .map_err(|e| ProxyError::bad_request(format!("cannot rebuild the request URI: {e}")))?;
        let mut headers = self.headers;
        if app.cfg.via || plan.absolute_form {
            headers::add_via(&mut headers, self.version, &app.via_token);
        }
        Ok(Replay {
            method: self.method,
            uri,
            headers,
            body: bytes::Bytes::new(),
        })
    }
}

/// A request refused before its exchange could begin (admission, a malformed head or target):
/// answered as every failure is ([`Exchange::fail`]: a request id, an access line, the
/// outcome metric, one log line unless the caller logged it: `log`), with the target as the
/// client wrote it (redacted).
pub fn refuse(
    app: &App,
    client: &Client,
    req: &http::Request<hyper::body::Incoming>,
    err: ProxyError,
    log: bool,
) -> Response<Body> {
    let kind = match req.method() == Method::CONNECT {
        true => "connect",
        false => "http",
    };
    let target = crate::ops::access::redacted_uri(req.uri());
    let id = RequestId::new(req.headers().get(REQUEST_ID));
    let access = record(app, client, id, req.method().as_str(), target, kind);
    answer_failure(&access, "-", err, log)
}

/// A SOCKS client refused during its handshake, before it named a target (a wrong login, no
/// method waypost accepts, a malformed or unsupported request): recorded as every refusal is
/// (an access line with method `SOCKS` and target `-`, the outcome metric); the caller has
/// logged it and answers with a SOCKS reply.
pub fn refuse_handshake(app: &App, client: &Client, err: ProxyError) {
    let access = record(
        app,
        client,
        RequestId::new(None),
        "SOCKS",
        "-".into(),
        "socks",
    );
    let _ = answer_failure(&access, "-", err, false);
}

fn record(
    app: &App,
    client: &Client,
    id: RequestId,
    method: &str,
    target: String,
    kind: &'static str,
) -> Arc<Access> {
    let log = app.cfg.log.access_log;
    Access::new(
        id,
        client.addr,
        method,
        target,
        kind,
        app.metrics.clone(),
        log,
    )
}

/// Puts the request id of `access` on a response (`X-Request-Id`).
fn tag(access: &Access, headers: &mut HeaderMap) {
    if let Ok(v) = HeaderValue::from_str(access.id.as_str()) {
        headers.insert(REQUEST_ID, v);
    }
}

/// Logs a failure once (unless `log` is false: the caller did), records it in `access` and
/// answers it through [`rescue`].
fn answer_failure(access: &Access, route: &str, mut err: ProxyError, log: bool) -> Response<Body> {
    if err.kind == ErrorKind::UpstreamClosed
        && crate::upstream::live::sockets().cut_within(std::time::Duration::from_secs(5))
    {
        err.detail
            .push_str(" (the network changed: waypost closed the connections through the old one)");
    }
    let mut resp = rescue(&err);
    tag(access, resp.headers_mut());
    let id = access.id.as_str();
    let code = err.kind.code();
    match err.kind.blame() {
        _ if !log => {}
        error::Blame::Client => {
            tracing::info!(request_id = id, route, code, error = %error::chain(&err), "request refused")
        }
        _ => {
            tracing::warn!(request_id = id, route, code, error = %error::chain(&err), "request failed")
        }
    }
    access.finish(resp.status().as_u16(), route.to_string(), err.kind.code());
    resp
}

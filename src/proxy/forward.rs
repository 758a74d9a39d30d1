//! The last stage for absolute-form requests: hold or stream the body, take a connection on
//! the first hop that connects, send (authenticating on the connection when the plan says so)
//! and stream the response back.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::OwnedSemaphorePermit;

use super::pipeline::{Exchange, RequestHead};
use super::stage::LastStage;
use super::Client;
use crate::app::App;
use crate::body::{self, Body, IdleTimeout};
use crate::error::{ErrorKind, ProxyError};
use crate::ops::access::Counted;
use crate::route::{ConnectPlan, Decision, Purpose};
use crate::target::Target;
use crate::upstream::auth::{self, replayable};
use crate::upstream::body_rate::MinRate;
use crate::upstream::pool::Pooled;
use crate::upstream::Upstream;

/// The request body on its way: held whole (replayable), or streamed once.
enum Outgoing {
    Held(Bytes, Option<OwnedSemaphorePermit>),
    Stream(Body),
}

/// Absolute-form HTTP to `target` (also requests decrypted from intercepted tunnels, whose URI
/// the interceptor rewrites to `https://host:port/path`); upgrade requests go to
/// [`super::upgrade`] before this ([`super::http`]).
pub async fn forward(
    app: Arc<App>,
    client: Client,
    target: Target,
    req: Request<Incoming>,
) -> Response<Body> {
    let x = Exchange::of_request(app, client, target, "http", &req);
    let (parts, body) = req.into_parts();
    let head = RequestHead::new(parts, &x.target, false);
    let body = BodyState::Incoming(body);
    x.run(Forward { head, body }).await
}

/// The last stage of a forwarded request: its head, and its body as it goes from read to sent.
struct Forward {
    head: RequestHead,
    body: BodyState,
}

/// The request body: as received, then held whole (replayable) or streamed once.
enum BodyState {
    Incoming(Incoming),
    Ready(Outgoing, tokio::time::Instant),
    Taken,
}

impl LastStage for Forward {
    type Answer = Response<Body>;
    type Conn = Pooled;
    const PURPOSE: Purpose = Purpose::Request;

    fn url(&self, x: &Exchange) -> String {
        self.head.url(&x.target)
    }

    async fn prepare(&mut self, x: &Exchange, decision: &Decision) -> Result<(), ProxyError> {
        let BodyState::Incoming(body) = std::mem::replace(&mut self.body, BodyState::Taken) else {
            return Ok(());
        };
        let body = outgoing(x, decision, body).await?;
        self.body = BodyState::Ready(body, tokio::time::Instant::now());
        Ok(())
    }

    async fn connect(&self, up: &Upstream, plan: &ConnectPlan) -> Result<Pooled, ProxyError> {
        up.connection(plan).await
    }

    async fn finish(self, x: Exchange, conn: Pooled, plan: ConnectPlan) -> Response<Body> {
        let BodyState::Ready(body, started) = self.body else {
            let e = ProxyError::new(ErrorKind::Internal, "the request body was not prepared");
            return x.fail(&plan.hop.to_string(), e);
        };
        let result = send(&x, &plan, conn, self.head, body).await;
        x.app
            .metrics
            .observe_request_seconds("http", started.elapsed().as_secs_f64());
        match result {
            Ok(resp) => x.respond(resp, &plan),
            Err(e) => x.fail(&plan.hop.to_string(), e),
        }
    }

    async fn fail(self, x: &Exchange, route: &str, err: ProxyError) -> Response<Body> {
        x.fail(route, err)
    }
}

/// The send stage: on a plan that authenticates requests to a proxy, through the auth driver
/// (a held body replayed per leg, a streamed one after the connection is authenticated).
async fn send(
    x: &Exchange,
    plan: &ConnectPlan,
    conn: Pooled,
    head: RequestHead,
    body: Outgoing,
) -> Result<Response<Body>, ProxyError> {
    let up = &x.app.upstream;
    let mut replay = head.for_plan(plan, &x.target, &x.app)?;
    let authenticates = plan.absolute_form && plan.identity.is_some();
    if !plan.options.keep_alive && !authenticates {
        // keep-alive off toward this server (a scope's `limits.keep_alive`): say so, as
        // WinHTTP does; an authenticating proxy keeps its connection (NTLM binds to it)
        replay.headers.insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    match body {
        Outgoing::Held(bytes, _budget) if authenticates => {
            replay.body = bytes;
            auth::send_replay(up, plan, conn, &replay).await
        }
        Outgoing::Stream(b) if authenticates => {
            auth::send_streaming(up, plan, conn, replay, b).await
        }
        Outgoing::Held(bytes, _) => {
            let body = if bytes.is_empty() {
                body::empty()
            } else {
                body::full(bytes)
            };
            up.send(plan, conn, replay.into_request(body)).await
        }
        Outgoing::Stream(b) => up.send(plan, conn, replay.into_request(b)).await,
    }
}

/// Holds the body when a hop may need to resend it for authentication (small, known size,
/// within the replay budget), reading it before any connection is taken (a client pausing it
/// longer than `timeouts.receive` is cut); else streams it (pauses up to `relay_read`). Either
/// way it is held to `limits.min_request_body_rate` ([`guarded`]).
async fn outgoing(
    x: &Exchange,
    decision: &Decision,
    body: Incoming,
) -> Result<Outgoing, ProxyError> {
    let t = &x.app.cfg.timeouts;
    let size = http_body::Body::size_hint(&body);
    if size.exact() == Some(0) {
        return Ok(Outgoing::Held(Bytes::new(), None));
    }
    let counted = Counted::new(body, x.access.clone(), true).boxed();
    let speaker = x.app.speaker(decision);
    let may_authenticate = decision.hops.iter().any(|hop| {
        let p = x.app.plan(hop, &x.target, Purpose::Request, speaker);
        p.absolute_form && p.identity.is_some()
    });
    if !may_authenticate || !replayable(&size) {
        return Ok(Outgoing::Stream(guarded(
            x,
            counted,
            "streamed",
            t.relay_read,
        )));
    }
    let Some(budget) = x.app.upstream.replay_budget(size.upper().unwrap_or(0)) else {
        return Ok(Outgoing::Stream(guarded(
            x,
            counted,
            "streamed",
            t.relay_read,
        )));
    };
    // a held body is read before any connection is taken; a client pausing it is cut
    match guarded(x, counted, "held", t.receive).collect().await {
        Ok(b) => Ok(Outgoing::Held(b.to_bytes(), Some(budget))),
        Err(e) => Err(
            crate::upstream::body_rate::cause_in(&*e).unwrap_or_else(|| {
                ProxyError::new(
                    ErrorKind::BadRequest,
                    "the client's request body could not be read",
                )
                .with_source(BoxedError(e))
            }),
        ),
    }
}

/// The one way a client's request body is read, held (`how` = `held`) or streamed: cut when it
/// comes slower than `limits.min_request_body_rate` after the grace period, or pauses longer
/// than `idle`.
fn guarded(x: &Exchange, body: Body, how: &str, idle: std::time::Duration) -> Body {
    let body = match x.app.cfg.limits.min_request_body_rate {
        Some(rate) => {
            let cuts = x
                .app
                .metrics
                .request_bodies_too_slow
                .with_label_values(&[how]);
            MinRate::new(body, rate, cuts).boxed()
        }
        None => body,
    };
    IdleTimeout::new(body, idle).boxed()
}

/// A boxed error as a concrete error type (for [`ProxyError::with_source`]).
#[derive(Debug)]
struct BoxedError(body::BoxError);

impl std::fmt::Display for BoxedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BoxedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

//! The last stage for protocol upgrades (WebSocket): a connection of its own on the first hop
//! that connects, the upgrade request sent (authenticated to the proxy when the plan says so),
//! and on 101 both upgraded streams relayed. Also the hand-over of intercepted tunnels, whose
//! decrypted requests come back into [`super::http`].

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::pipeline::{Exchange, RequestHead};
use super::stage::LastStage;
use super::Client;
use crate::app::App;
use crate::body::Body;
use crate::error::ProxyError;
use crate::route::{ConnectPlan, Purpose};
use crate::target::Target;
use crate::upstream::auth::{self, Replay};
use crate::upstream::{describe, map_hyper_error, UpgradeConn, Upstream};

pub async fn upgrade(
    app: Arc<App>,
    client: Client,
    target: Target,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let x = Exchange::of_request(app, client, target, "upgrade", &req);
    let client_upgrade = hyper::upgrade::on(&mut req);
    // an upgrade's body is neither read nor forwarded (hyper reads a body only as it is
    // polled), so nothing here waits on the client before the switch and no body limit
    // (`limits.min_request_body_rate`) applies; after it, bytes are the relay's (`tunnel_idle`)
    let (parts, _no_body) = req.into_parts();
    let head = RequestHead::new(parts, &x.target, true);
    x.run(Upgrade {
        head,
        client_upgrade,
    })
    .await
}

/// The last stage of an upgrade request: its head, and the client side of the switch.
struct Upgrade {
    head: RequestHead,
    client_upgrade: OnUpgrade,
}

impl LastStage for Upgrade {
    type Answer = Response<Body>;
    type Conn = UpgradeConn;
    const PURPOSE: Purpose = Purpose::Upgrade;

    fn url(&self, x: &Exchange) -> String {
        self.head.url(&x.target)
    }

    async fn connect(&self, up: &Upstream, plan: &ConnectPlan) -> Result<UpgradeConn, ProxyError> {
        up.upgrade_connection(plan).await
    }

    async fn finish(self, x: Exchange, conn: UpgradeConn, plan: ConnectPlan) -> Response<Body> {
        let sent = match self.head.for_plan(&plan, &x.target, &x.app) {
            Ok(replay) => send(&x, &plan, conn, &replay).await,
            Err(e) => Err(e),
        };
        let (conn, mut resp) = match sent {
            Ok(r) => r,
            Err(e) => return x.fail(&plan.hop.to_string(), e),
        };
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            spawn_relay(&x, self.client_upgrade, upstream_upgrade, conn);
        }
        x.respond(resp.map(|b| b.map_err(Into::into).boxed()), &plan)
    }

    async fn fail(self, x: &Exchange, route: &str, err: ProxyError) -> Response<Body> {
        x.fail(route, err)
    }
}

async fn send(
    x: &Exchange,
    plan: &ConnectPlan,
    mut conn: UpgradeConn,
    replay: &Replay,
) -> Result<(UpgradeConn, Response<Incoming>), ProxyError> {
    let up = &x.app.upstream;
    if plan.absolute_form && plan.identity.is_some() {
        return auth::send_upgrade(up, plan, conn, replay).await;
    }
    let what = describe(plan);
    let timeout = plan.options.receive_response;
    let resp = tokio::time::timeout(timeout, conn.sender.send_request(replay.build()))
        .await
        .map_err(|_| ProxyError::response_timeout(&what, timeout))?
        .map_err(|e| map_hyper_error(&e, &what))?;
    auth::refuse_untrusted(resp.status(), plan.grant, &what)?;
    Ok((conn, resp))
}

/// Relays the two upgraded streams in the background, holding the client's slot and the
/// upstream connection's server slot while they live.
fn spawn_relay(x: &Exchange, client: OnUpgrade, upstream: OnUpgrade, conn: UpgradeConn) {
    let app = x.app.clone();
    let access = x.access.clone();
    x.spawn(async move {
        let (c, u) = tokio::join!(client, upstream);
        if let (Ok(c), Ok(u)) = (c, u) {
            let (c, u) = (Box::new(TokioIo::new(c)), Box::new(TokioIo::new(u)));
            super::pipeline::relay(&app, &access, c, u, conn.idle).await;
        }
        drop(conn);
    });
}

/// Hands a CONNECT to interception: the decrypted requests re-enter the pipeline through
/// [`super::http`], passed to the interceptor as a handler (it does not call back into this
/// module). A failure before the tunnel is answered (no interception certificate) is the
/// exchange's, answered by its one `fail` on the route `intercept`.
pub fn intercept(x: &Exchange, req: Request<Incoming>) -> Response<Body> {
    let app = x.app.clone();
    let client = x.client.clone();
    let handler: crate::intercept::Handler = Arc::new(move |req| {
        let app = app.clone();
        let client = client.clone();
        Box::pin(async move { super::http(app, client, req).await })
    });
    let slot = x.client.slot.clone();
    let started = crate::intercept::start(
        x.app.clone(),
        x.target.clone(),
        req,
        x.access.clone(),
        handler,
        slot,
    );
    match started {
        Ok(mut resp) => {
            x.tag(resp.headers_mut());
            resp
        }
        Err(e) => x.fail("intercept", e),
    }
}

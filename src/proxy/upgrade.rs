//! The last stage for protocol upgrades (WebSocket): a connection of its own on the first hop
//! that connects, the upgrade request sent (authenticated to the proxy when the plan says so),
//! and on 101 both upgraded streams relayed. Also the hand-over of intercepted tunnels, whose
//! decrypted requests come back into [`super::http`].

use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::pipeline::{Exchange, RequestHead};
use super::Client;
use crate::app::App;
use crate::body::Body;
use crate::error::ProxyError;
use crate::relay::relay_io;
use crate::route::{ConnectPlan, Purpose};
use crate::target::Target;
use crate::upstream::auth::{self, Replay};
use crate::upstream::{describe, map_hyper_error, UpgradeConn};

pub async fn upgrade(
    app: Arc<App>,
    client: Client,
    target: Target,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let x = Exchange::new(
        app,
        client,
        req.method().as_str(),
        target,
        "upgrade",
        req.headers(),
    );
    if let Err(e) = x.check_loop(req.headers()) {
        return x.fail("-", e);
    }
    let client_upgrade = hyper::upgrade::on(&mut req);
    // an upgrade's body is neither read nor forwarded (hyper reads a body only as it is
    // polled), so nothing here waits on the client before the switch and no body limit
    // (`limits.min_request_body_rate`) applies; after it, bytes are the relay's (`tunnel_idle`)
    let (parts, _no_body) = req.into_parts();
    let head = RequestHead::new(parts, &x.target, true);
    let decision = match x.decide(|| head.url(&x.target)).await {
        Ok(d) => d,
        Err(e) => return x.fail("-", e),
    };
    let up = &x.app.upstream;
    let connected = x
        .connect(&decision, Purpose::Upgrade, |plan| async move {
            up.upgrade_connection(&plan).await
        })
        .await;
    let (conn, plan) = match connected {
        Ok(c) => c,
        Err((e, route)) => return x.fail(&route, e),
    };
    let sent = match head.for_plan(&plan, &x.target, &x.app) {
        Ok(replay) => send(&x, &plan, conn, &replay).await,
        Err(e) => Err(e),
    };
    let (conn, mut resp) = match sent {
        Ok(r) => r,
        Err(e) => return x.fail(&plan.hop.to_string(), e),
    };
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        spawn_relay(&x, client_upgrade, upstream_upgrade, conn);
    }
    x.respond(resp.map(|b| b.map_err(Into::into).boxed()), &plan)
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
    let timeout = up.dialer.timeouts.receive_response;
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
            app.metrics.tunnels_active.inc();
            let end = relay_io(
                Box::new(TokioIo::new(c)),
                Box::new(TokioIo::new(u)),
                app.cfg.timeouts.tunnel_idle,
                &app.metrics,
                &app.pipes,
            )
            .await;
            app.metrics.tunnels_active.dec();
            access
                .bytes_in
                .fetch_add(end.from_client, Ordering::Relaxed);
            access.bytes_out.fetch_add(end.to_client, Ordering::Relaxed);
        }
        drop(conn);
    });
}

/// Hands a CONNECT to interception: the decrypted requests re-enter the pipeline through
/// [`super::http`], passed to the interceptor as a handler (it does not call back into this
/// module).
pub fn intercept(x: Exchange, req: Request<Incoming>) -> Response<Body> {
    let app = x.app.clone();
    let client = x.client.clone();
    let handler: crate::intercept::Handler = Arc::new(move |req| {
        let app = app.clone();
        let client = client.clone();
        Box::pin(async move { super::http(app, client, req).await })
    });
    let slot = x.client.slot.clone();
    crate::intercept::start(
        x.app.clone(),
        x.target.clone(),
        req,
        x.access.clone(),
        handler,
        slot,
    )
}

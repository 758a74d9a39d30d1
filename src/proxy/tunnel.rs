//! The last stage for CONNECT: reach the target over the first hop that connects (directly,
//! through SOCKS, or with an authenticated CONNECT through an HTTP(S) proxy), answer 200 and
//! relay bytes — or hand the tunnel to interception.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::pipeline::Exchange;
use super::Client;
use crate::app::App;
use crate::body::{self, Body};
use crate::error::{ErrorKind, ProxyError};
use crate::relay::relay_io;
use crate::route::Purpose;
use crate::target::Target;
use crate::upstream::Tunnel;

pub async fn tunnel(app: Arc<App>, client: Client, req: Request<Incoming>) -> Response<Body> {
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or_else(|| req.uri().to_string());
    let target = match Target::from_connect(&authority) {
        Ok(t) => t,
        Err(e) => return super::pipeline::refuse(&app, &client, &req, e, true),
    };
    let x = Exchange::new(app, client, "CONNECT", target, "connect", req.headers());
    if let Err(e) = admit(&x, req.headers()) {
        return x.fail("-", e);
    }
    if crate::intercept::wants(&x.app, &x.target) {
        return super::upgrade::intercept(x, req);
    }
    if let Err(e) = crate::intercept::host_gate(&x.app, &x.target) {
        return x.fail("-", e);
    }
    let decision = match x
        .decide(|| format!("https://{}/", x.target.host_header()))
        .await
    {
        Ok(d) => d,
        Err(e) => return x.fail("-", e),
    };
    let up = &x.app.upstream;
    let connected = x
        .connect(&decision, Purpose::Tunnel, |plan| async move {
            up.tunnel(&plan).await
        })
        .await;
    let (tunnel, plan) = match connected {
        Ok(c) => c,
        Err((e, route)) => return x.fail(&route, e),
    };
    x.access.finish(200, plan.hop.to_string(), "ok");
    let on_upgrade = hyper::upgrade::on(req);
    let app = x.app.clone();
    let access = x.access.clone();
    x.spawn(async move {
        match on_upgrade.await {
            Ok(up) => relay_tunnel(&app, &access, TokioIo::new(up), tunnel).await,
            Err(e) => tracing::debug!(error = %e, "client went away before the tunnel started"),
        }
    });
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::OK;
    x.tag(resp.headers_mut());
    resp
}

/// The CONNECT port must be allowed, and the request must not be coming back to us.
fn admit(x: &Exchange, headers: &http::HeaderMap) -> Result<(), ProxyError> {
    if !x.app.tls.port_allowed(x.target.port) {
        return Err(ProxyError::new(
            ErrorKind::TargetNotAllowed,
            format!(
                "CONNECT to port {} is not in tls.connect_ports (default 443 and 8443)",
                x.target.port
            ),
        ));
    }
    x.check_loop(headers)
}

/// Relays a tunnel not intercepted: its ClientHello's SNI may be checked, never decrypted.
pub(super) async fn relay_tunnel<C>(
    app: &App,
    access: &crate::ops::access::Access,
    client: C,
    tunnel: Tunnel,
) where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let client_io = match crate::intercept::sni_gate(app, client).await {
        Ok(c) => c,
        Err(why) => {
            tracing::warn!(reason = %why, "tunnel refused by the SNI rules");
            access.finish(403, "-".into(), ErrorKind::TargetNotAllowed.code());
            return;
        }
    };
    let metrics = &app.metrics;
    metrics.tunnels_active.inc();
    let end = relay_io(
        client_io,
        tunnel.io,
        app.cfg.timeouts.tunnel_idle,
        metrics,
        &app.pipes,
    )
    .await;
    metrics.tunnels_active.dec();
    drop(tunnel.permit);
    access
        .bytes_in
        .fetch_add(end.from_client, Ordering::Relaxed);
    access.bytes_out.fetch_add(end.to_client, Ordering::Relaxed);
    if end.idle_timeout {
        tracing::debug!("tunnel closed after the idle timeout");
    }
}

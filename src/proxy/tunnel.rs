//! The last stage for CONNECT: reach the target over the first hop that connects (directly,
//! through SOCKS, or with an authenticated CONNECT through an HTTP(S) proxy), answer 200 and
//! relay bytes — or hand the tunnel to interception.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::pipeline::{self, Exchange};
use super::stage::LastStage;
use super::Client;
use crate::app::App;
use crate::body::{self, Body};
use crate::error::{ErrorKind, ProxyError};
use crate::ops::access::Access;
use crate::route::{ConnectPlan, Purpose};
use crate::target::Target;
use crate::upstream::{Tunnel, Upstream};

pub async fn tunnel(app: Arc<App>, client: Client, req: Request<Incoming>) -> Response<Body> {
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or_else(|| req.uri().to_string());
    let target = match Target::from_connect(&authority) {
        Ok(t) => t,
        Err(e) => return pipeline::refuse(&app, &client, &req, e, true),
    };
    let x = Exchange::new(app, client, "CONNECT", target, "connect", req.headers());
    x.run(Connect { req: Some(req) }).await
}

/// The last stage of an HTTP CONNECT: the request, whose connection is upgraded to the tunnel.
struct Connect {
    /// Taken by interception when it takes the tunnel over.
    req: Option<Request<Incoming>>,
}

impl LastStage for Connect {
    type Answer = Response<Body>;
    type Conn = Tunnel;
    const PURPOSE: Purpose = Purpose::Tunnel;

    /// The CONNECT port must be allowed; an intercepted tunnel is handed over here; the SNI
    /// host rules apply to the CONNECT's host.
    fn admit(&mut self, x: &Exchange) -> Result<Option<Response<Body>>, ProxyError> {
        if !x.app.tls.port_allowed(x.target.port) {
            return Err(ProxyError::new(
                ErrorKind::TargetNotAllowed,
                format!(
                    "CONNECT to port {} is not in tls.connect_ports (default 443 and 8443)",
                    x.target.port
                ),
            ));
        }
        if crate::intercept::wants(&x.app, &x.target) {
            if let Some(req) = self.req.take() {
                return Ok(Some(super::upgrade::intercept(x, req)));
            }
        }
        crate::intercept::host_gate(&x.app, &x.target)?;
        Ok(None)
    }

    fn url(&self, x: &Exchange) -> String {
        format!("https://{}/", x.target.host_header())
    }

    async fn connect(&self, up: &Upstream, plan: &ConnectPlan) -> Result<Tunnel, ProxyError> {
        up.tunnel(plan).await
    }

    async fn finish(self, x: Exchange, tunnel: Tunnel, plan: ConnectPlan) -> Response<Body> {
        let Some(req) = self.req else {
            let e = ProxyError::new(ErrorKind::Internal, "the CONNECT request was taken");
            return x.fail(&plan.hop.to_string(), e);
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

    async fn fail(self, x: &Exchange, route: &str, err: ProxyError) -> Response<Body> {
        x.fail(route, err)
    }
}

/// Relays a tunnel not intercepted (an HTTP or a SOCKS client's): its ClientHello's SNI may be
/// checked, never decrypted.
pub(super) async fn relay_tunnel<C>(app: &App, access: &Access, client: C, tunnel: Tunnel)
where
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
    pipeline::relay(app, access, client_io, tunnel.io, tunnel.idle).await;
    drop(tunnel.permit);
}

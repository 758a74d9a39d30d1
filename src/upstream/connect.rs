//! Carrying a connect plan out: the stream to the server of a [`ConnectPlan`] — straight, to a
//! proxy for absolute-form requests, through a SOCKS proxy, or through a CONNECT tunnel of an
//! HTTP(S) proxy (authenticated on the proxy connection by [`super::auth`]) — from the
//! [`Dialer`]'s primitives. It makes no routing decision: the plan says everything.

use http::{header, HeaderValue, Method, Request};
use hyper_util::rt::TokioIo;

use super::dialer::{refusal, Dialer, Opened};
use super::io::BoxIo;
use crate::body;
use crate::error::{ErrorKind, ProxyError};
use crate::route::{ConnectPlan, Path};
use crate::target::ProxyAddr;

/// The stream to the server of `plan` (`plan.key.host`), TLS-wrapped when `plan.tls`.
pub async fn open(dialer: &Dialer, plan: &ConnectPlan) -> Result<Opened, ProxyError> {
    let (host, port) = (&plan.key.host, plan.key.port);
    let opts = &plan.options;
    match &plan.path {
        Path::Direct => {
            let tcp = dialer
                .tcp_with(host, port, plan.key.restricted, opts)
                .await?;
            dialer.finish(host, tcp, tls_of(plan), opts).await
        }
        Path::Forward(_) => {
            // the proxy is dialled as any server, under its own scopes
            dialer.direct(host, port, plan.tls).await
        }
        Path::Socks(p) => {
            let tcp = super::socks::connect(dialer, p, host, port, plan.identity.is_some()).await?;
            dialer.finish(host, tcp, tls_of(plan), opts).await
        }
        Path::Connect(p) => {
            // the socket to the proxy was registered when it was opened (`to_proxy`)
            let tunnel = connect_tunnel(dialer, p, plan).await?;
            dialer.finish(host, tunnel, tls_of(plan), opts).await
        }
    }
}

/// The TLS settings of TLS with the plan's server, when it speaks TLS with it.
fn tls_of(plan: &ConnectPlan) -> Option<&waypost_tls::ConnSettings> {
    match (plan.tls, &plan.key.tls_settings) {
        (false, _) => None,
        (true, Some(s)) => Some(s),
        (true, None) => Some(&plan.options.tls),
    }
}

/// Opens a tunnel to the plan's server through the HTTP proxy `proxy` with CONNECT; returns
/// the raw stream after the proxy's 2xx, waiting for it up to the plan's `receive_response`.
/// When the plan's grant allows credentials, a 407 is answered on the same connection
/// (Negotiate, NTLM, Basic; Kerberos only under a Kerberos-only grant), reconnecting when the
/// proxy closes after its 407. A refusal keeps the proxy's status and (bounded) body for the
/// client, except a 407 of an untrusted proxy. The client's `Via` values are sent before this
/// instance's own entry (loop detection along proxy chains).
pub async fn connect_tunnel(
    dialer: &Dialer,
    proxy: &ProxyAddr,
    plan: &ConnectPlan,
) -> Result<BoxIo, ProxyError> {
    let (host, port, grant, via) = (&plan.key.host, plan.key.port, plan.grant, &plan.via);
    let authenticate = grant.is_some_and(waypost_auth::Grant::allows_any);
    let what = format!("proxy {}", proxy.label());
    let authority = format!("{}:{port}", host.to_authority_host());
    let own_via = HeaderValue::from_str(&format!("1.1 {}", dialer.via_token)).ok();
    let make = |_: Option<HeaderValue>| {
        let mut req = Request::new(body::empty());
        *req.method_mut() = Method::CONNECT;
        // An authority built from a parsed Host and a port is always a valid URI.
        *req.uri_mut() = authority.parse().unwrap_or_default();
        if let Ok(h) = HeaderValue::from_str(&authority) {
            req.headers_mut().insert(header::HOST, h);
        }
        for v in via.iter().chain(&own_via) {
            req.headers_mut().append(header::VIA, v.clone());
        }
        req
    };
    let timeout = plan.options.receive_response;
    let open = || async {
        let (io, cert) = dialer.to_proxy(proxy).await?;
        Ok::<_, ProxyError>((super::handshake(dialer, io, true, &what).await?, cert))
    };
    let (sender, cert) = open().await?;
    let (_sender, resp) = if authenticate {
        let ctx = super::auth::context(dialer, &proxy.host, proxy.port, cert, false, grant).await;
        let reconnect = || {
            let open = &open;
            async move { open().await.map(|(sender, _)| sender) }
        };
        super::auth::drive(timeout, &what, sender, reconnect, make, &ctx).await?
    } else {
        let mut sender = sender;
        let resp = tokio::time::timeout(timeout, sender.send_request(make(None)))
            .await
            .map_err(|_| ProxyError::response_timeout(&what, timeout))?
            .map_err(|e| super::map_hyper_error(&e, &what))?;
        (sender, resp)
    };
    let status = resp.status();
    super::auth::refuse_untrusted(status, grant, &what)?;
    if !status.is_success() {
        let err = ProxyError::new(
            ErrorKind::ProxyConnect(status.as_u16()),
            format!("{what} answered CONNECT {authority} with {status}"),
        );
        return Err(refusal(err, resp).await);
    }
    let upgraded = hyper::upgrade::on(resp).await.map_err(|e| {
        ProxyError::new(ErrorKind::UpstreamClosed, format!("{what} tunnel broke")).with_source(e)
    })?;
    Ok(Box::new(TokioIo::new(upgraded)))
}

//! Opt-in TLS interception of CONNECT tunnels, and SNI rules for tunnels not intercepted.
//!
//! For hosts matching `tls.intercept.hosts`, waypost answers the CONNECT, terminates the
//! client's TLS with a certificate minted by the local CA (cached per host by the CA), and
//! serves the decrypted requests (HTTP/1.1 or HTTP/2, as ALPN chose) through the [`Handler`]
//! it is given (the proxy's forwarding stage), whose own TLS to the origin is under the policy:
//! invalid origin certificates are refused for apps that would not check, and configured client
//! certificates are presented. Other tunnels are relayed untouched; their ClientHello's SNI may
//! be checked against `tls.sni_rules` without decrypting ([`sni`]).
//!
//! Lifecycle of an intercepted tunnel: CONNECT answered 200 -> upgrade -> TLS accept (bounded by
//! `timeouts.client_header`) -> HTTP/1.1 or HTTP/2 served until the client closes, no byte
//! moves either way for `timeouts.tunnel_idle`, or waypost shuts down (the last two close
//! gracefully: in-flight requests finish). This module picks no status codes: every failure goes through
//! [`crate::error::rescue`].

pub mod sni;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::{header, HeaderValue, Method, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio_rustls::TlsAcceptor;

use crate::app::App;
use crate::body::{self, Body};
use crate::error::{rescue, ErrorKind, ProxyError};
use crate::ops::access::Access;
use crate::target::Target;
use crate::upstream::io::BoxIo;

pub use crate::relay::io::Rewind;

/// Where decrypted requests go (the proxy's forwarding stage), as a value: this module does not
/// call back into the proxy.
pub type Handler = Arc<
    dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> + Send + Sync,
>;

/// Whether the tunnel to `target` is to be intercepted.
pub fn wants(app: &App, target: &Target) -> bool {
    app.tls.intercept_ca().is_some() && app.tls.intercepts(&target.host.to_string())
}

/// Answers the CONNECT and serves the decrypted tunnel in a task on `app.tracker`.
///
/// The leaf certificate is obtained before answering, so a CA failure is a 500 to the CONNECT
/// rather than a broken handshake; that failure is the caller's to answer (the pipeline's one
/// `fail`).
pub fn start<S: Send + Sync + 'static>(
    app: Arc<App>,
    target: Target,
    req: Request<Incoming>,
    access: Arc<Access>,
    handler: Handler,
    slot: Arc<S>,
) -> Result<Response<Body>, ProxyError> {
    let server_config = match app.tls.intercept_ca().map(|ca| {
        ca.server_config_for(&target.host.to_string())
            .map_err(|e| error_chain(&e))
    }) {
        Some(Ok(cfg)) => cfg,
        Some(Err(why)) => {
            return Err(ProxyError::new(
                ErrorKind::Internal,
                format!("cannot mint an interception certificate for {target}: {why}"),
            ))
        }
        None => {
            return Err(ProxyError::new(
                ErrorKind::Internal,
                "interception has no CA loaded",
            ))
        }
    };
    access.finish(200, "intercept".into(), "ok");
    let on_upgrade = hyper::upgrade::on(req);
    let app2 = app.clone();
    app.tracker.spawn(async move {
        match on_upgrade.await {
            Ok(up) => {
                let activity = crate::relay::io::Activity::new();
                let io = crate::relay::io::Counted::new(
                    TokioIo::new(up),
                    access.clone(),
                    activity.clone(),
                );
                serve_tunnel(app2, handler, target, io, server_config, &access, &activity).await;
            }
            Err(e) => tracing::debug!(error = %e, "client went away before the tunnel started"),
        }
        // the client's connection slot is held for the tunnel's whole life
        drop(slot);
    });
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::OK;
    Ok(resp)
}

/// Checks the CONNECT host of a tunnel that is not intercepted against `tls.sni_rules` (the
/// same rules as its SNI: both must pass, so a denied host cannot hide behind an allowed SNI or
/// behind a tunnel that is not TLS at all).
pub fn host_gate(app: &App, target: &Target) -> Result<(), ProxyError> {
    if !sni::has_rules(app) {
        return Ok(());
    }
    let host = target.host.to_string();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if app.tls.sni_allowed(Some(host)) {
        return Ok(());
    }
    Err(ProxyError::new(
        ErrorKind::TargetNotAllowed,
        format!("CONNECT to {host} is not allowed by tls.sni_rules"),
    ))
}

/// Checks the SNI of the client's ClientHello against the rules; returns a stream that still
/// yields every byte read from the client.
pub async fn sni_gate<IO>(app: &App, io: IO) -> Result<BoxIo, String>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    sni::gate(app, io).await
}

/// `err` and its sources, joined with `: ` (the CA's errors keep their cause as a source).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut src = err.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

/// Accepts the client's TLS and serves HTTP on it until the tunnel ends.
async fn serve_tunnel<IO>(
    app: Arc<App>,
    handler: Handler,
    target: Target,
    io: IO,
    server_config: Arc<rustls::ServerConfig>,
    access: &Access,
    activity: &crate::relay::io::Activity,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let timeout = app.cfg.timeouts.client_header;
    let tls = match tokio::time::timeout(timeout, TlsAcceptor::from(server_config).accept(io)).await
    {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            // Typically the client does not trust the waypost CA.
            tracing::warn!(target = %access.target, error = %e, "client TLS handshake on an intercepted tunnel failed (does the client trust the waypost CA?)");
            access.finish(200, "intercept".into(), "client-tls-failed");
            return;
        }
        Err(_) => {
            tracing::warn!(target = %access.target, "client sent no TLS handshake within {timeout:?} on an intercepted tunnel");
            access.finish(200, "intercept".into(), "client-tls-timeout");
            return;
        }
    };
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let version = tls
        .get_ref()
        .1
        .protocol_version()
        .and_then(|v| v.as_str())
        .unwrap_or("?");
    tracing::debug!(target = %access.target, h2, version, "intercepted tunnel established");
    let authority = Arc::<str>::from(target.authority());
    let svc = service_fn(move |req| {
        let handler = handler.clone();
        let authority = authority.clone();
        async move { Ok::<_, Infallible>(serve_request(&handler, &authority, req).await) }
    });
    let io = TokioIo::new(tls);
    app.metrics.tunnels_active.inc();
    let result = if h2 {
        let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .max_header_list_size(header_limit(&app));
        let conn = builder.serve_connection(io, svc);
        tokio::pin!(conn);
        drive(conn, |c| c.graceful_shutdown(), &app, activity).await
    } else {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(timeout)
            .max_buf_size(app.cfg.limits.max_request_header_size)
            .keep_alive(true);
        let conn = builder.serve_connection(io, svc).with_upgrades();
        tokio::pin!(conn);
        drive(conn, |c| c.graceful_shutdown(), &app, activity).await
    };
    app.metrics.tunnels_active.dec();
    if let Err(e) = result {
        tracing::debug!(target = %access.target, error = %e, "intercepted tunnel ended with an error");
    }
}

/// Runs a served connection to its end. It is asked to close gracefully (in-flight requests
/// finish, no new ones start) when waypost shuts down or when no byte moved either way for
/// `timeouts.tunnel_idle`, as for tunnels that are relayed.
async fn drive<C>(
    mut conn: Pin<&mut C>,
    graceful_shutdown: fn(Pin<&mut C>),
    app: &App,
    activity: &crate::relay::io::Activity,
) -> Result<(), hyper::Error>
where
    C: Future<Output = Result<(), hyper::Error>>,
{
    let idle = app.cfg.timeouts.tunnel_idle;
    let mut closing = false;
    loop {
        let deadline = activity.last() + idle;
        tokio::select! {
            r = conn.as_mut() => return r,
            _ = app.shutdown.cancelled(), if !closing => {
                graceful_shutdown(conn.as_mut());
                closing = true;
            }
            _ = tokio::time::sleep_until(deadline), if !closing => {
                if activity.last() + idle <= tokio::time::Instant::now() {
                    tracing::debug!("intercepted tunnel idle for {idle:?}; closing it");
                    graceful_shutdown(conn.as_mut());
                    closing = true;
                }
            }
        }
    }
}

/// The HTTP/2 header list limit: the configured request header size, within u32.
fn header_limit(app: &App) -> u32 {
    u32::try_from(app.cfg.limits.max_request_header_size).unwrap_or(u32::MAX)
}

/// One decrypted request: made absolute (`https://host:port/path`) and forwarded.
async fn serve_request(
    handler: &Handler,
    authority: &str,
    req: Request<Incoming>,
) -> Response<Body> {
    match absolute(req, authority) {
        Ok(req) => handler(req).await,
        Err(e) => {
            tracing::warn!(target = %authority, error = %e, "request inside an intercepted tunnel refused");
            rescue(&e)
        }
    }
}

/// Rewrites a request read from an intercepted tunnel to absolute form for the tunnel's target.
///
/// The target is always the CONNECT authority: a Host header or an HTTP/2 `:authority` naming
/// another host cannot redirect the request (it is set to the target as well).
fn absolute<B>(req: Request<B>, authority: &str) -> Result<Request<B>, ProxyError> {
    if req.method() == Method::CONNECT {
        return Err(ProxyError::bad_request(
            "CONNECT inside an intercepted tunnel is not supported",
        ));
    }
    let (mut parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| p.starts_with('/'))
        .unwrap_or("/");
    parts.uri = format!("https://{authority}{path}")
        .parse::<Uri>()
        .map_err(|e| ProxyError::bad_request(format!("cannot rebuild the request URI: {e}")))?;
    let host = authority.strip_suffix(":443").unwrap_or(authority);
    let host = HeaderValue::from_str(host)
        .map_err(|_| ProxyError::bad_request("the tunnel's authority is not a valid Host"))?;
    parts.headers.insert(header::HOST, host);
    Ok(Request::from_parts(parts, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(uri: &str, authority: &str) -> Result<(String, String), String> {
        let req = Request::get(uri)
            .header(header::HOST, "elsewhere.example")
            .body(())
            .map_err(|e| e.to_string())?;
        let req = absolute(req, authority).map_err(|e| e.to_string())?;
        let host = req.headers()[header::HOST]
            .to_str()
            .unwrap_or("?")
            .to_string();
        Ok((req.uri().to_string(), host))
    }

    #[test]
    fn an_origin_form_request_is_made_absolute_for_the_tunnel_target() {
        assert_eq!(
            rewrite("/a/b?c=d", "origin.test:8443"),
            Ok((
                "https://origin.test:8443/a/b?c=d".into(),
                "origin.test:8443".into()
            ))
        );
    }

    #[test]
    fn an_http2_authority_naming_another_host_cannot_redirect_the_request() {
        assert_eq!(
            rewrite("https://elsewhere.example/x", "origin.test:443"),
            Ok(("https://origin.test:443/x".into(), "origin.test".into()))
        );
    }

    #[test]
    fn connect_inside_an_intercepted_tunnel_is_refused() {
        let req = Request::connect("inner.example:443").body(()).unwrap();
        let err = absolute(req, "origin.test:443").unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadRequest);
    }
}

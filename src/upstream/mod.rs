//! The upstream side: dialling ([`dial`]), the keep-alive pool ([`pool`]), the streamed response
//! body ([`body`]), and [`send`], which runs one HTTP request on a pooled connection.
//!
//! This module performs I/O and makes no routing decisions: it is told which endpoint to use.

pub mod auth;
pub mod body;
pub mod dial;
pub mod io;
pub mod pool;
pub mod socks;

use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use self::io::BoxIo;
use self::pool::{Checkout, PoolKey, Pooled};
use crate::app::App;
use crate::body::Body;
use crate::error::{ErrorKind, ProxyError};
use crate::target::Host;

/// Where a pooled HTTP connection goes: an origin, or an HTTP(S) proxy.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub host: Host,
    pub port: u16,
    pub tls: bool,
    /// A SOCKS proxy the connection goes through (then `host` is the origin).
    pub via: Option<crate::route::ProxyAddr>,
    /// The authentication identity used on this proxy's connections (None: no auth).
    pub identity: Option<String>,
    pub label: Arc<str>,
}

impl Endpoint {
    fn key(&self) -> PoolKey {
        PoolKey {
            host: self.host.clone(),
            port: self.port,
            tls: self.tls,
            identity: self.identity.clone(),
            label: self.label.clone(),
        }
    }
}

/// Maps a hyper client error to a proxy error, naming `what` (e.g. `origin example.com:80`).
pub fn map_hyper_error(e: &hyper::Error, what: &str) -> ProxyError {
    if e.is_parse_too_large() {
        return ProxyError::new(
            ErrorKind::ResponseHeadersTooLarge,
            format!("{what} sent response headers larger than max_response_header_size"),
        );
    }
    if is_timeout(e) {
        return ProxyError::new(
            ErrorKind::SendTimeout,
            format!("{what} stopped reading the request (send timeout)"),
        );
    }
    if e.is_parse() {
        return ProxyError::new(
            ErrorKind::UpstreamClosed,
            format!("{what} sent an invalid HTTP response: {e}"),
        );
    }
    ProxyError::new(
        ErrorKind::UpstreamClosed,
        format!("{what} closed the connection: {e}"),
    )
}

fn is_timeout(e: &hyper::Error) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        src = s.source();
    }
    false
}

/// Runs the HTTP/1.1 handshake on a fresh stream and spawns its connection task.
pub async fn handshake(
    app: &App,
    io: BoxIo,
    upgrades: bool,
    what: &str,
) -> Result<SendRequest<Body>, ProxyError> {
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(app.cfg.limits.max_response_header_size.max(8192))
        .handshake::<_, Body>(TokioIo::new(io))
        .await
        .map_err(|e| map_hyper_error(&e, what))?;
    if upgrades {
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
    } else {
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    Ok(sender)
}

/// A pooled connection to `ep`: an idle one, or a new one. Connect-phase errors only.
pub async fn connection(app: &App, ep: &Endpoint) -> Result<Pooled, ProxyError> {
    let key = ep.key();
    match app.pool.checkout(&key, app.cfg.timeouts.connect).await? {
        Checkout::Reused(p) => Ok(p),
        Checkout::Dial(permit) => {
            let (sender, cert) = dial_sender(app, ep).await?;
            let mut pooled = app.pool.attach(permit, sender);
            pooled.tls_cert = cert;
            Ok(pooled)
        }
    }
}

/// A new connection to `ep`, never an idle one.
pub async fn fresh_connection(app: &App, ep: &Endpoint) -> Result<Pooled, ProxyError> {
    let permit = app
        .pool
        .reserve(&ep.key(), app.cfg.timeouts.connect)
        .await?;
    let (sender, cert) = dial_sender(app, ep).await?;
    let mut pooled = app.pool.attach(permit, sender);
    pooled.tls_cert = cert;
    Ok(pooled)
}

async fn dial_sender(
    app: &App,
    ep: &Endpoint,
) -> Result<(SendRequest<Body>, Option<Vec<u8>>), ProxyError> {
    let started = tokio::time::Instant::now();
    let (io, cert) =
        dial::stream_with_cert(app, &ep.host, ep.port, ep.tls, ep.via.as_ref()).await?;
    let sender = handshake(app, io, false, &ep.label).await?;
    app.metrics
        .pool_connect_seconds
        .with_label_values(&[&ep.label])
        .observe(started.elapsed().as_secs_f64());
    Ok((sender, cert))
}

/// Sends `req` on `conn` and wraps the response body for streaming and pool return. A request
/// that a stale pooled connection could not even start sending is resent once on a fresh one.
pub async fn send(
    app: &App,
    ep: &Endpoint,
    mut conn: Pooled,
    req: Request<Body>,
) -> Result<Response<Body>, ProxyError> {
    use http_body_util::BodyExt;
    let what = format!(
        "{} {}",
        if ep.label.as_ref() == "direct" {
            "origin"
        } else {
            "proxy"
        },
        ep.host.to_authority_host()
    );
    let timeout = app.cfg.timeouts.receive_response;
    if conn.sender().ready().await.is_err() {
        if !conn.reused {
            return Err(ProxyError::new(
                ErrorKind::UpstreamClosed,
                format!("{what} closed the connection at once"),
            ));
        }
        app.metrics
            .pool_retries
            .with_label_values(&[&ep.label])
            .inc();
        drop(conn);
        conn = connection(app, ep).await?;
    }
    let fut = conn.sender().try_send_request(req);
    let resp: Response<Incoming> = match tokio::time::timeout(timeout, fut).await {
        Err(_) => return Err(ProxyError::response_timeout(&what, timeout)),
        Ok(Ok(resp)) => resp,
        Ok(Err(mut e)) => match (conn.reused, e.take_message()) {
            (true, Some(req)) => {
                app.metrics
                    .pool_retries
                    .with_label_values(&[&ep.label])
                    .inc();
                drop(conn);
                conn = connection(app, ep).await?;
                tokio::time::timeout(timeout, conn.sender().send_request(req))
                    .await
                    .map_err(|_| ProxyError::response_timeout(&what, timeout))?
                    .map_err(|e| map_hyper_error(&e, &what))?
            }
            _ => return Err(map_hyper_error(&e.into_error(), &what)),
        },
    };
    let (parts, incoming) = resp.into_parts();
    let body = body::ResponseBody::new(
        incoming,
        Some(conn),
        app.cfg.timeouts.receive,
        app.cfg.limits.max_response_drain_size,
        app.metrics.clone(),
    );
    Ok(Response::from_parts(parts, body.boxed()))
}

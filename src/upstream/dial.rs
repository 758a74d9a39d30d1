//! Opening upstream connections: resolve, TCP connect with retries, TLS, and CONNECT through an
//! HTTP proxy.
//!
//! WinHTTP's rules: one attempt per resolved address, at most `connect_retries` attempts, each
//! bounded by the connect timeout. Errors are classified here (refused, timeout, dns, tls,
//! proxy refusal) so the caller can fail over to the next hop.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use http::{header, Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::io::{BoxIo, SendTimeout};
use crate::app::App;
use crate::body;
use crate::error::{ErrorKind, ProxyError};
use crate::route::{ProxyAddr, ProxyKind};
use crate::target::{Host, Scheme, Target};

/// TCP to `host:port`, trying each resolved address once, up to `connect_retries` attempts.
pub async fn tcp(app: &App, host: &Host, port: u16) -> Result<TcpStream, ProxyError> {
    let started = Instant::now();
    let addrs = app.resolver.resolve(host, port).await?;
    app.metrics
        .dns_seconds
        .observe(started.elapsed().as_secs_f64());
    let t = &app.cfg.timeouts;
    let mut last: Option<ProxyError> = None;
    for addr in addrs.iter().take(app.cfg.limits.connect_retries as usize) {
        match tokio::time::timeout(t.connect, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                app.metrics
                    .upstream_connect_attempts
                    .with_label_values(&["ok"])
                    .inc();
                return Ok(s);
            }
            Ok(Err(e)) => {
                app.metrics
                    .upstream_connect_attempts
                    .with_label_values(&["error"])
                    .inc();
                last = Some(classify_connect_error(host, *addr, &e));
            }
            Err(_) => {
                app.metrics
                    .upstream_connect_attempts
                    .with_label_values(&["timeout"])
                    .inc();
                last = Some(ProxyError::new(
                    ErrorKind::ConnectTimeout,
                    format!(
                        "connecting to {host} ({addr}) took longer than {:?}",
                        t.connect
                    ),
                ));
            }
        }
    }
    Err(last.unwrap_or_else(|| ProxyError::new(ErrorKind::Dns, format!("no addresses for {host}"))))
}

fn classify_connect_error(host: &Host, addr: SocketAddr, e: &io::Error) -> ProxyError {
    let kind = match e.kind() {
        io::ErrorKind::ConnectionRefused => ErrorKind::ConnectRefused,
        io::ErrorKind::TimedOut => ErrorKind::ConnectTimeout,
        _ => ErrorKind::ConnectFailed,
    };
    ProxyError::new(kind, format!("cannot connect to {host} ({addr}): {e}"))
}

/// A stream to `host:port`, TLS-wrapped when `tls`, with the send timeout applied.
pub async fn stream(app: &App, host: &Host, port: u16, tls: bool) -> Result<BoxIo, ProxyError> {
    stream_via(app, host, port, tls, None).await
}

/// As [`stream`], optionally through a SOCKS proxy.
pub async fn stream_via(
    app: &App,
    host: &Host,
    port: u16,
    tls: bool,
    socks: Option<&ProxyAddr>,
) -> Result<BoxIo, ProxyError> {
    Ok(stream_with_cert(app, host, port, tls, socks).await?.0)
}

/// As [`stream_via`], also returning the peer's end-entity certificate when TLS is used.
pub async fn stream_with_cert(
    app: &App,
    host: &Host,
    port: u16,
    tls: bool,
    via: Option<&ProxyAddr>,
) -> Result<(BoxIo, Option<Vec<u8>>), ProxyError> {
    match via {
        Some(proxy) if matches!(proxy.kind, ProxyKind::Socks4 | ProxyKind::Socks5) => {
            let tcp = super::socks::connect(app, proxy, host, port).await?;
            finish(app, host, tcp, tls).await
        }
        Some(proxy) => {
            // An https origin behind an HTTP(S) proxy: CONNECT, then our own TLS to the origin,
            // so the TLS policy (checks, client certificates) holds end to end.
            let target = Target {
                scheme: Scheme::Https,
                host: host.clone(),
                port,
            };
            let tunnel = Box::pin(connect_via_proxy(app, proxy, &target)).await?;
            finish(app, host, tunnel, tls).await
        }
        None => {
            let tcp = tcp(app, host, port).await?;
            finish(app, host, tcp, tls).await
        }
    }
}

/// Wraps a connected stream: TLS when asked (returning the peer's certificate), send timeout.
async fn finish<IO>(
    app: &App,
    host: &Host,
    io: IO,
    tls: bool,
) -> Result<(BoxIo, Option<Vec<u8>>), ProxyError>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let send = app.cfg.timeouts.send;
    if !tls {
        return Ok((Box::new(SendTimeout::new(io, send)), None));
    }
    let tls = tls_handshake(app, host, io, &[b"http/1.1"]).await?;
    let cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec());
    Ok((Box::new(SendTimeout::new(tls, send)), cert))
}

/// TLS under the configured policy, with the failure classified for `X-Waypost-Error`.
pub async fn tls_handshake<IO>(
    app: &App,
    host: &Host,
    io: IO,
    alpn: &[&[u8]],
) -> Result<tokio_rustls::client::TlsStream<IO>, ProxyError>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let name = host.to_string();
    let connect = waypost_tls::connect(&app.tls, &name, io, alpn);
    match tokio::time::timeout(app.cfg.timeouts.connect, connect).await {
        Err(_) => Err(ProxyError::new(
            ErrorKind::ConnectTimeout,
            format!("TLS handshake with {host} timed out"),
        )),
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => {
            let subject = e.subject.clone().unwrap_or_else(|| "-".into());
            tracing::warn!(host = %host, subject = %subject, kind = e.kind.as_str(), "TLS handshake refused");
            Err(ProxyError::new(
                ErrorKind::Tls(e.kind.as_str()),
                format!("TLS with {host} failed: {}", e.source),
            ))
        }
    }
}

/// The stream to a proxy hop (TLS for `HTTPS` proxies).
pub async fn to_proxy(app: &App, proxy: &ProxyAddr) -> Result<BoxIo, ProxyError> {
    match proxy.kind {
        ProxyKind::Http => stream(app, &proxy.host, proxy.port, false).await,
        ProxyKind::Https => stream(app, &proxy.host, proxy.port, true).await,
        ProxyKind::Socks4 | ProxyKind::Socks5 => Err(ProxyError::new(
            ErrorKind::Internal,
            format!(
                "SOCKS upstream {} cannot carry proxy requests; use a tunnel",
                proxy.label()
            ),
        )),
    }
}

/// Opens a tunnel to `target` through an HTTP proxy with CONNECT; returns the raw stream after
/// the proxy's 2xx. When the credential policy allows this proxy, a 407 is answered on the
/// same connection (Negotiate, NTLM, Basic), reconnecting when the proxy closes after its 407.
pub async fn connect_via_proxy(
    app: &App,
    proxy: &ProxyAddr,
    target: &Target,
) -> Result<BoxIo, ProxyError> {
    let what = format!("proxy {}", proxy.label());
    let authority = target.authority();
    let make = |_: Option<http::HeaderValue>| {
        let mut req = Request::new(body::empty());
        *req.method_mut() = Method::CONNECT;
        // An authority parsed from a Target always forms a valid URI and header value.
        *req.uri_mut() = authority.parse().unwrap_or_default();
        if let Ok(h) = http::HeaderValue::from_str(&authority) {
            req.headers_mut().insert(header::HOST, h);
        }
        req
    };
    let use_auth = app.auth.allows(&proxy.host.to_string());
    let timeout = app.cfg.timeouts.receive_response;
    let late = || {
        ProxyError::new(
            ErrorKind::ResponseTimeout,
            format!("{what} did not answer CONNECT"),
        )
    };
    let mut ctx: Option<waypost_auth::AuthContext> = None;
    for _ in 0..3 {
        let (io, cert) = to_proxy_with_cert(app, proxy).await?;
        let mut sender = super::handshake(app, io, true, &what).await?;
        let resp = if use_auth {
            let ctx = ctx.get_or_insert_with(|| {
                super::auth::context(app, &proxy.host, proxy.port, cert, false)
            });
            let exchange = waypost_auth::authenticate_request(&mut sender, make, ctx);
            match tokio::time::timeout(timeout, exchange)
                .await
                .map_err(|_| late())?
            {
                Err(e) if e.is_reconnect() => continue,
                Err(e) => return Err(super::auth::map_error(&e, &what)),
                Ok((resp, outcome)) => {
                    if !outcome.is_success() {
                        return Err(super::auth::rejected(&what, &outcome));
                    }
                    resp
                }
            }
        } else {
            tokio::time::timeout(timeout, sender.send_request(make(None)))
                .await
                .map_err(|_| late())?
                .map_err(|e| super::map_hyper_error(&e, &what))?
        };
        let status = resp.status();
        if !status.is_success() {
            return Err(ProxyError::new(
                ErrorKind::ProxyConnect(status.as_u16()),
                format!("{what} answered CONNECT {authority} with {status}"),
            ));
        }
        let upgraded = hyper::upgrade::on(resp).await.map_err(|e| {
            ProxyError::new(ErrorKind::UpstreamClosed, format!("{what} tunnel: {e}"))
        })?;
        return Ok(Box::new(TokioIo::new(upgraded)));
    }
    Err(ProxyError::new(
        ErrorKind::UpstreamClosed,
        format!("{what} kept closing the connection during authentication"),
    ))
}

/// The stream to an HTTP(S) proxy and, for HTTPS proxies, its certificate.
pub async fn to_proxy_with_cert(
    app: &App,
    proxy: &ProxyAddr,
) -> Result<(BoxIo, Option<Vec<u8>>), ProxyError> {
    match proxy.kind {
        ProxyKind::Http => stream_with_cert(app, &proxy.host, proxy.port, false, None).await,
        ProxyKind::Https => stream_with_cert(app, &proxy.host, proxy.port, true, None).await,
        ProxyKind::Socks4 | ProxyKind::Socks5 => Err(ProxyError::new(
            ErrorKind::Internal,
            format!(
                "SOCKS upstream {} cannot carry proxy requests; use a tunnel",
                proxy.label()
            ),
        )),
    }
}

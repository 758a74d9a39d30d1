//! Opening upstream streams: resolve, TCP connect with retries, TLS — the primitives every
//! [`crate::route::ConnectPlan`]'s path is built from ([`super::connect`] carries a plan out
//! with them, through SOCKS or a CONNECT tunnel), built once from the config and handed down
//! (no `App`).
//!
//! WinHTTP's rules: one attempt per resolved address, at most `connect_retries` attempts, each
//! bounded by the connect timeout — the destination's ([`ConnOptions`]: a plan's, or its
//! scopes' for waypost's own requests). Errors are classified here (refused, timeout, dns, tls,
//! proxy refusal, loop) so the caller can fail over to the next hop. A hop that resolves to one
//! of waypost's own listeners is refused before dialling.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::{header, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio::net::TcpStream;

use super::io::{BoxIo, SendTimeout};
use crate::config::{ClientAuth, Config, ConnOptions, Limits, Scopes};
use crate::error::{ErrorKind, ProxyError, Relayed, MAX_RELAYED_BODY};
use crate::metrics::Metrics;
use crate::net::dns::Resolver;
use crate::target::{Host, ProxyAddr, ProxyKind};

/// A stream to the server of a plan, and the server's TLS certificate when TLS was used.
pub type Opened = (BoxIo, Option<Arc<[u8]>>);

/// Everything needed to open upstream streams.
pub struct Dialer {
    pub resolver: Resolver,
    pub tls: waypost_tls::TlsPolicy,
    pub limits: Limits,
    /// The per-destination options, for streams opened without a plan.
    pub scopes: Scopes,
    /// Authenticates to upstream proxies on the clients' behalf (an identity per proxy).
    pub auth: Arc<waypost_auth::Authenticators>,
    socks_auth: Option<ClientAuth>,
    pub metrics: Arc<Metrics>,
    /// The addresses waypost listens on (set once bound): a hop there is a loop.
    own: OnceLock<Vec<SocketAddr>>,
    /// This instance's token in `Via` (loop detection across other proxies).
    pub via_token: Arc<str>,
}

impl Dialer {
    pub fn new(
        cfg: &Config,
        auth: Arc<waypost_auth::Authenticators>,
        metrics: Arc<Metrics>,
        via_token: Arc<str>,
    ) -> Dialer {
        Dialer {
            resolver: Resolver::new(&cfg.dns, cfg.timeouts.resolve),
            tls: cfg.tls_policy.0.clone(),
            limits: cfg.limits.clone(),
            scopes: cfg.scopes.clone(),
            auth,
            socks_auth: cfg.socks_auth.clone(),
            metrics,
            own: OnceLock::new(),
            via_token,
        }
    }

    /// Records the addresses waypost listens on (once, after binding).
    pub fn set_own_addrs(&self, addrs: Vec<SocketAddr>) {
        let _ = self.own.set(addrs);
    }

    /// TCP to `host:port` under its scopes' options, trying each resolved address once, up to
    /// `connect_retries` attempts. Every address passes [`crate::route::destination::check`]
    /// first (unrestricted).
    pub async fn tcp(&self, host: &Host, port: u16) -> Result<TcpStream, ProxyError> {
        let opts = self.scopes.resolve(host, port);
        self.tcp_with(host, port, false, &opts).await
    }

    /// As [`Dialer::tcp`] under `opts` (a plan's); `restricted`: for a client on another
    /// machine (see [`crate::route::destination`]).
    pub async fn tcp_with(
        &self,
        host: &Host,
        port: u16,
        restricted: bool,
        opts: &ConnOptions,
    ) -> Result<TcpStream, ProxyError> {
        let started = tokio::time::Instant::now();
        let addrs = self
            .resolver
            .resolve_within(host, port, opts.resolve)
            .await?;
        self.metrics
            .dns_seconds
            .observe(started.elapsed().as_secs_f64());
        let own = self.own.get().map(Vec::as_slice).unwrap_or_default();
        let what = format!("{host}:{port}");
        for a in addrs.iter() {
            crate::route::destination::check(own, restricted, &what, *a)?;
        }
        let mut last: Option<ProxyError> = None;
        for addr in addrs.iter().take(opts.connect_retries as usize) {
            let outcome = match tokio::time::timeout(opts.connect, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    self.connect_attempt("ok");
                    return Ok(s);
                }
                Ok(Err(e)) => {
                    self.connect_attempt("error");
                    classify_connect_error(host, *addr, e)
                }
                Err(_) => {
                    self.connect_attempt("timeout");
                    ProxyError::new(
                        ErrorKind::ConnectTimeout,
                        format!(
                            "connecting to {host} ({addr}) took longer than {:?}",
                            opts.connect
                        ),
                    )
                }
            };
            last = Some(outcome);
        }
        Err(last
            .unwrap_or_else(|| ProxyError::new(ErrorKind::Dns, format!("no addresses for {host}"))))
    }

    fn connect_attempt(&self, outcome: &str) {
        self.metrics
            .upstream_connect_attempts
            .with_label_values(&[outcome])
            .inc();
    }

    /// A plain stream (TLS when `tls`) straight to `host:port` under its scopes' options:
    /// waypost's own requests, and the connections to HTTP(S) proxies.
    pub async fn direct(&self, host: &Host, port: u16, tls: bool) -> Result<Opened, ProxyError> {
        let opts = self.scopes.resolve(host, port);
        self.direct_with(host, port, tls, &opts).await
    }

    /// As [`Dialer::direct`] under `opts` (the destination's, resolved by the caller).
    pub async fn direct_with(
        &self,
        host: &Host,
        port: u16,
        tls: bool,
        opts: &ConnOptions,
    ) -> Result<Opened, ProxyError> {
        let tcp = self.tcp_with(host, port, false, opts).await?;
        self.finish(host, tcp, tls.then_some(&opts.tls), opts).await
    }

    /// Wraps a connected stream: TLS under `tls` when given (returning the peer's certificate),
    /// the send timeout of `opts`, and, for a TCP socket, its registration for network changes
    /// ([`super::live`]), made once the stream is final and kept with it.
    pub(super) async fn finish<IO>(
        &self,
        host: &Host,
        io: IO,
        tls: Option<&waypost_tls::ConnSettings>,
        opts: &ConnOptions,
    ) -> Result<Opened, ProxyError>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let send = opts.send;
        let socket = super::live::socket_of(&io);
        let Some(settings) = tls else {
            let live = socket.and_then(|(fd, ip)| super::live::sockets().register(&fd, ip));
            return Ok((Box::new(SendTimeout::new(io, send).with_live(live)), None));
        };
        let tls = self
            .tls_handshake(host, io, &[b"http/1.1"], settings, opts.connect)
            .await?;
        let cert = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| Arc::from(c.as_ref()));
        // `tls` owns the socket from here on: registered now, the guard goes in beside it
        let live = socket.and_then(|(fd, ip)| super::live::sockets().register(&fd, ip));
        Ok((Box::new(SendTimeout::new(tls, send).with_live(live)), cert))
    }

    /// TLS under the configured policy with `settings` (the destination's), within `within`,
    /// with the failure classified for `X-Waypost-Error`.
    pub async fn tls_handshake<IO>(
        &self,
        host: &Host,
        io: IO,
        alpn: &[&[u8]],
        settings: &waypost_tls::ConnSettings,
        within: std::time::Duration,
    ) -> Result<tokio_rustls::client::TlsStream<IO>, ProxyError>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let name = host.to_string();
        let connect = waypost_tls::connect_with(&self.tls, &name, io, alpn, settings);
        match tokio::time::timeout(within, connect).await {
            Err(_) => Err(ProxyError::new(
                ErrorKind::ConnectTimeout,
                format!("TLS handshake with {host} timed out"),
            )),
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => {
                let subject = e.subject.clone().unwrap_or_else(|| "-".into());
                tracing::debug!(host = %host, subject = %subject, kind = e.kind.as_str(), "TLS handshake refused");
                let detail = format!("TLS with {host} failed (certificate subject {subject})");
                Err(ProxyError::new(ErrorKind::Tls(e.kind.as_str()), detail).with_source(e.source))
            }
        }
    }

    /// The stream to an HTTP(S) proxy and, for HTTPS proxies, its certificate.
    pub async fn to_proxy(&self, proxy: &ProxyAddr) -> Result<Opened, ProxyError> {
        match proxy.kind {
            ProxyKind::Http => self.direct(&proxy.host, proxy.port, false).await,
            ProxyKind::Https => self.direct(&proxy.host, proxy.port, true).await,
            ProxyKind::Socks4 | ProxyKind::Socks5 => Err(ProxyError::new(
                ErrorKind::Internal,
                format!(
                    "SOCKS upstream {} cannot carry proxy requests",
                    proxy.label()
                ),
            )),
        }
    }

    pub(super) fn socks_auth(&self) -> Option<&ClientAuth> {
        self.socks_auth.as_ref()
    }
}

/// Attaches a proxy's refusal (status, content type, at most [`MAX_RELAYED_BODY`] bytes of
/// body, read within a short time) to `err`.
pub async fn refusal(err: ProxyError, resp: Response<Incoming>) -> ProxyError {
    let status = resp.status();
    let content_type = resp.headers().get(header::CONTENT_TYPE).cloned();
    let read = Limited::new(resp.into_body(), MAX_RELAYED_BODY).collect();
    let body = match tokio::time::timeout(std::time::Duration::from_secs(5), read).await {
        Ok(Ok(b)) => b.to_bytes(),
        _ => Bytes::new(),
    };
    err.with_relayed(Relayed {
        status,
        content_type,
        body,
    })
}

fn classify_connect_error(host: &Host, addr: SocketAddr, e: io::Error) -> ProxyError {
    let kind = match e.kind() {
        io::ErrorKind::ConnectionRefused => ErrorKind::ConnectRefused,
        io::ErrorKind::TimedOut => ErrorKind::ConnectTimeout,
        _ => ErrorKind::ConnectFailed,
    };
    ProxyError::new(kind, format!("cannot connect to {host} ({addr})")).with_source(e)
}

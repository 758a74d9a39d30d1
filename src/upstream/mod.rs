//! The upstream side: carrying out a [`ConnectPlan`] — the [`dialer`] opens streams, the
//! [`pool`] keeps connections and the per-server limit, [`auth`] authenticates on them, and
//! [`body`] streams responses back with drain and timeouts. [`client`] is waypost's own GET over
//! the dialer, which [`crl`] plugs into the TLS policy for CRL downloads.
//!
//! This module performs I/O and makes no routing decisions: it is handed a plan. [`Upstream`]
//! is built once from its parts (dialer, pool, replay budget) and passed down; it never sees
//! the `App`.

pub mod auth;
pub mod body;
pub mod body_rate;
pub mod client;
pub mod connect;
pub mod crl;
pub mod dialer;
pub mod io;
pub mod live;
pub mod pool;
pub mod socks;

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use self::client::HttpClient;
use self::dialer::Dialer;
use self::io::BoxIo;
use self::pool::{Checkout, Pool, Pooled, ServerPermit};
use crate::body::Body;
use crate::error::{ErrorKind, ProxyError};
use crate::route::ConnectPlan;

/// The upstream parts, composed once.
pub struct Upstream {
    pub dialer: Arc<Dialer>,
    pub pool: Arc<Pool>,
    /// Bytes of request bodies held for authentication replays (`limits.max_replay_memory`).
    replay: Arc<Semaphore>,
}

/// An established tunnel: the stream, its slot of `max_conns_per_server`, and how long it may
/// stay idle (the plan's `timeouts.tunnel_idle`).
pub struct Tunnel {
    pub io: BoxIo,
    pub permit: ServerPermit,
    pub idle: Duration,
}

/// A connection of its own for an upgrade request (never pooled); `idle`: the plan's
/// `timeouts.tunnel_idle`, for the relay once switched.
pub struct UpgradeConn {
    pub sender: SendRequest<Body>,
    pub permit: ServerPermit,
    pub tls_cert: Option<Arc<[u8]>>,
    pub idle: Duration,
}

impl Upstream {
    pub fn new(dialer: Arc<Dialer>, pool: Arc<Pool>) -> Upstream {
        let budget = usize::try_from(dialer.limits.max_replay_memory)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        Upstream {
            dialer,
            pool,
            replay: Arc::new(Semaphore::new(budget)),
        }
    }

    /// Room for `bytes` of a body held for replay, if the global budget has it now.
    pub fn replay_budget(&self, bytes: u64) -> Option<OwnedSemaphorePermit> {
        let n = u32::try_from(bytes).ok()?;
        self.replay.clone().try_acquire_many_owned(n).ok()
    }

    /// A raw stream to the plan's target (a CONNECT tunnel), holding a server slot.
    pub async fn tunnel(&self, plan: &ConnectPlan) -> Result<Tunnel, ProxyError> {
        let permit = self.server_permit(plan).await?;
        let (io, _) = connect::open(&self.dialer, plan).await?;
        let idle = plan.options.tunnel_idle;
        Ok(Tunnel { io, permit, idle })
    }

    /// A slot of `max_conns_per_server` for a connection that is not pooled (waits up to the
    /// plan's connect timeout).
    async fn server_permit(&self, plan: &ConnectPlan) -> Result<ServerPermit, ProxyError> {
        let wait = plan.options.connect;
        self.pool
            .server_permit(&plan.key.server(), plan.key.label(), wait)
            .await
    }

    /// A pooled connection for the plan: an idle one, or a new one. Connect-phase errors only.
    pub async fn connection(&self, plan: &ConnectPlan) -> Result<Pooled, ProxyError> {
        let wait = plan.options.connect;
        match self.pool.checkout(&plan.key, wait).await? {
            Checkout::Reused(p) => Ok(p),
            Checkout::Dial(permit) => {
                let (sender, cert) = self.dial_sender(plan, false).await?;
                Ok(self.pool.attach(permit, sender, cert))
            }
        }
    }

    /// A new connection for the plan, never an idle one.
    pub async fn fresh_connection(&self, plan: &ConnectPlan) -> Result<Pooled, ProxyError> {
        let permit = self.pool.reserve(&plan.key, plan.options.connect).await?;
        let (sender, cert) = self.dial_sender(plan, false).await?;
        Ok(self.pool.attach(permit, sender, cert))
    }

    /// A connection of its own for an upgrade request, holding a server slot.
    pub async fn upgrade_connection(&self, plan: &ConnectPlan) -> Result<UpgradeConn, ProxyError> {
        let permit = self.server_permit(plan).await?;
        let (sender, tls_cert) = self.dial_sender(plan, true).await?;
        Ok(UpgradeConn {
            sender,
            permit,
            tls_cert,
            idle: plan.options.tunnel_idle,
        })
    }

    async fn dial_sender(
        &self,
        plan: &ConnectPlan,
        upgrades: bool,
    ) -> Result<(SendRequest<Body>, Option<Arc<[u8]>>), ProxyError> {
        let started = tokio::time::Instant::now();
        let (io, cert) = connect::open(&self.dialer, plan).await?;
        let sender = handshake(&self.dialer, io, upgrades, plan.key.label()).await?;
        self.dialer
            .metrics
            .pool_connect_seconds
            .with_label_values(&[plan.key.label()])
            .observe(started.elapsed().as_secs_f64());
        Ok((sender, cert))
    }

    /// Wraps a relayed response body: streamed, bounded by the plan's `timeouts.relay_read`
    /// between pieces, the connection returned to the pool (drained up to the plan's
    /// `max_response_drain_size`; closed when its keep-alive is off) at its end. A
    /// response framed both by `Content-Length` and `Transfer-Encoding` is refused (and its
    /// connection closed): relaying it would hand the client a length that does not match
    /// the body (a truncated or smuggled response).
    pub fn relay(
        &self,
        resp: Response<Incoming>,
        mut pooled: Option<Pooled>,
        plan: &ConnectPlan,
    ) -> Result<Response<Body>, ProxyError> {
        let opts = &plan.options;
        if let (false, Some(p)) = (opts.keep_alive, pooled.as_mut()) {
            p.close_after_use();
        }
        use http_body_util::BodyExt;
        let h = resp.headers();
        if h.contains_key(http::header::TRANSFER_ENCODING)
            && h.contains_key(http::header::CONTENT_LENGTH)
        {
            let what = pooled.as_ref().map(|p| p.key().label().to_string());
            return Err(ProxyError::new(
                ErrorKind::BadUpstreamFraming,
                format!(
                    "{} sent a response with both Content-Length and Transfer-Encoding; refused",
                    what.as_deref().unwrap_or("the upstream")
                ),
            ));
        }
        let (parts, incoming) = resp.into_parts();
        let body = body::ResponseBody::new(
            incoming,
            pooled,
            opts.relay_read,
            opts.max_response_drain_size,
            self.dialer.metrics.clone(),
        );
        Ok(Response::from_parts(parts, body.boxed()))
    }

    /// Sends `req` on `conn` (no authentication) and wraps the response for streaming and pool
    /// return. A request that a stale pooled connection could not even start sending is resent
    /// once on a fresh one.
    pub async fn send(
        &self,
        plan: &ConnectPlan,
        mut conn: Pooled,
        req: Request<Body>,
    ) -> Result<Response<Body>, ProxyError> {
        let what = describe(plan);
        let timeout = plan.options.receive_response;
        if conn.sender().ready().await.is_err() {
            if !conn.reused {
                return Err(ProxyError::new(
                    ErrorKind::UpstreamClosed,
                    format!("{what} closed the connection at once"),
                ));
            }
            self.count_retry(plan);
            drop(conn);
            conn = self.fresh_connection(plan).await?;
        }
        let fut = conn.sender().try_send_request(req);
        let resp = match tokio::time::timeout(timeout, fut).await {
            Err(_) => return Err(ProxyError::response_timeout(&what, timeout)),
            Ok(Ok(resp)) => resp,
            Ok(Err(mut e)) => match (conn.reused, e.take_message()) {
                (true, Some(req)) => {
                    self.count_retry(plan);
                    drop(conn);
                    conn = self.fresh_connection(plan).await?;
                    tokio::time::timeout(timeout, conn.sender().send_request(req))
                        .await
                        .map_err(|_| ProxyError::response_timeout(&what, timeout))?
                        .map_err(|e| map_hyper_error(&e, &what))?
                }
                _ => return Err(map_hyper_error(&e.into_error(), &what)),
            },
        };
        auth::refuse_untrusted(resp.status(), plan.grant, &what)?;
        self.relay(resp, Some(conn), plan)
    }

    fn count_retry(&self, plan: &ConnectPlan) {
        self.dialer
            .metrics
            .pool_retries
            .with_label_values(&[plan.key.label()])
            .inc();
    }
}

/// `origin host:port` or `proxy host:port`: the peer a plan's requests go to, for messages.
pub fn describe(plan: &ConnectPlan) -> String {
    let who = if plan.absolute_form {
        "proxy"
    } else {
        "origin"
    };
    format!(
        "{who} {}:{}",
        plan.key.host.to_authority_host(),
        plan.key.port
    )
}

/// Maps a hyper client error to a proxy error, naming `what` (e.g. `origin example.com:80`).
pub fn map_hyper_error(e: &hyper::Error, what: &str) -> ProxyError {
    // the client's body, not the upstream, failed the send
    if let Some(slow) = body_rate::cause_in(e) {
        return slow;
    }
    let (kind, detail) = if e.is_parse_too_large() {
        (
            ErrorKind::ResponseHeadersTooLarge,
            format!("{what} sent response headers larger than max_response_header_size"),
        )
    } else if is_timeout(e) {
        (
            ErrorKind::SendTimeout,
            format!("{what} stopped reading the request (send timeout)"),
        )
    } else if e.is_parse() {
        (
            ErrorKind::UpstreamClosed,
            format!("{what} sent an invalid HTTP response: {e}"),
        )
    } else {
        (
            ErrorKind::UpstreamClosed,
            format!("{what} closed the connection: {e}"),
        )
    };
    ProxyError::new(kind, detail)
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

/// Runs the HTTP/1.1 client handshake on a fresh stream and spawns its connection task.
pub async fn handshake(
    dialer: &Dialer,
    io: BoxIo,
    upgrades: bool,
    what: &str,
) -> Result<SendRequest<Body>, ProxyError> {
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(dialer.limits.max_response_header_size.max(8192))
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

/// A client with the built-in defaults (for commands that run without a proxy), with the TLS
/// policy's CRL downloader installed.
pub fn standalone_client() -> Result<HttpClient, String> {
    let cfg = crate::config::validate(
        &crate::config::raw::RawConfig::default(),
        &std::collections::HashMap::new(),
    )
    .map_err(|p| format!("built-in defaults: {p:?}"))?;
    let auth =
        waypost_auth::Authenticators::from_config(&cfg.auth, None).map_err(|e| e.to_string())?;
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let dialer = Arc::new(Dialer::new(
        &cfg,
        Arc::new(auth),
        metrics,
        Arc::from("waypost"),
    ));
    crl::CrlDownloader::install(&dialer);
    Ok(HttpClient::new(dialer))
}

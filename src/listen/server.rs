//! Accepting clients: listeners, the first admission check (before anything is read; every
//! request is judged again: [`crate::admission`]), the connection cap, and graceful shutdown.
//!
//! Every connection holds a slot of `max_client_connections` (admin listeners: their own
//! `admin_max_connections`) until it ends and every tunnel or upgrade started on it ends.
//!
//! Shutdown order: stop accepting; ask every HTTP connection to finish its in-flight request
//! and close; let tunnels run; after `shutdown_grace`, whatever is left is dropped.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use tracing::Instrument;

use crate::admission::{self, Ask, Entry};
use crate::app::App;
use crate::config::Config;
use crate::error::{rescue_raw, ErrorKind, ProxyError};
use crate::listen::systemd::Inherited;
use crate::ops::reload::{Live, Loader};
use crate::proxy::{Client, ClientSlot};

/// A started proxy: its bound addresses and the handle to stop it.
pub struct Running {
    pub addrs: Vec<SocketAddr>,
    /// Admin-only listeners (`admin_listen`): /metrics, /healthz, /explain; never proxying.
    pub admin_addrs: Vec<SocketAddr>,
    /// SOCKS5 listeners for clients (`socks_listen`).
    pub socks_addrs: Vec<SocketAddr>,
    /// The generation it started with (metrics, shutdown and operational state are shared by
    /// every generation; for the one in use now, ask `live`).
    pub app: Arc<App>,
    /// The configuration generation new requests get, and reloads.
    pub live: Arc<Live>,
    accept_tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Begins a graceful shutdown (idempotent).
    pub fn shutdown(&self) {
        self.app.shutdown.cancel();
    }

    /// Waits for the shutdown to finish, at most `shutdown_grace` after it began. Returns true
    /// when everything drained in time.
    pub async fn wait(self) -> bool {
        self.app.shutdown.cancelled().await;
        for t in self.accept_tasks {
            let _ = t.await;
        }
        self.app.tracker.close();
        tokio::time::timeout(
            self.live.current().cfg.shutdown_grace,
            self.app.tracker.wait(),
        )
        .await
        .is_ok()
    }
}

/// Binds every listen address and starts accepting (no reloads: see [`start_reloadable`]).
pub async fn start(cfg: Config) -> io::Result<Running> {
    start_reloadable(cfg, None, None).await
}

/// As [`start`], with `loader` for reloads (on SIGHUP, installed by the caller with
/// [`Live::spawn_sighup`]) and `config_file` watched for changes, as is a file PAC.
pub async fn start_reloadable(
    cfg: Config,
    loader: Option<Loader>,
    config_file: Option<std::path::PathBuf>,
) -> io::Result<Running> {
    start_with(cfg, loader, config_file, Inherited::default()).await
}

/// As [`start_reloadable`], serving on sockets handed over by socket activation
/// ([`crate::listen::systemd`]): a role (proxy, admin, socks) with inherited sockets binds none of its
/// configured addresses.
pub async fn start_with(
    cfg: Config,
    loader: Option<Loader>,
    config_file: Option<std::path::PathBuf>,
    inherited: Inherited,
) -> io::Result<Running> {
    let app = App::new(cfg).map_err(io::Error::other)?;
    *crate::app::lock(&app.ops.config_file) = config_file.clone();
    let listeners = bind_all(&app.cfg.listen, inherited.proxy, "").await?;
    let admin_listeners =
        bind_all(&app.cfg.admin_listen, inherited.admin, " (admin_listen)").await?;
    let socks_listeners =
        bind_all(&app.cfg.socks_listen, inherited.socks, " (socks_listen)").await?;
    let addrs = listeners
        .iter()
        .map(|l| l.local_addr())
        .collect::<io::Result<Vec<_>>>()?;
    let admin_addrs = admin_listeners
        .iter()
        .map(|l| l.local_addr())
        .collect::<io::Result<Vec<_>>>()?;
    let socks_addrs = socks_listeners
        .iter()
        .map(|l| l.local_addr())
        .collect::<io::Result<Vec<_>>>()?;
    // a hop to one of these addresses is a loop (or the admin surface), refused before dialling
    let own: Vec<SocketAddr> = addrs
        .iter()
        .chain(&admin_addrs)
        .chain(&socks_addrs)
        .copied()
        .collect();
    app.upstream.dialer.set_own_addrs(own);
    *crate::app::lock(&app.ops.listening) = addrs.clone();
    *crate::app::lock(&app.ops.admin_listening) = admin_addrs.clone();
    *crate::app::lock(&app.ops.socks_listening) = socks_addrs.clone();
    let live = Arc::new(Live::new(app.clone(), loader));
    live.spawn_watch(config_file);
    crate::ops::status::spawn_sampler(&app);
    let slots = Arc::new(Semaphore::new(app.cfg.max_client_connections));
    let admin_slots = Arc::new(Semaphore::new(app.cfg.admin_max_connections));
    let accept_tasks = listeners
        .into_iter()
        .map(|l| tokio::spawn(accept_loop(live.clone(), l, slots.clone(), Entry::Proxy)))
        .chain(admin_listeners.into_iter().map(|l| {
            tokio::spawn(accept_loop(
                live.clone(),
                l,
                admin_slots.clone(),
                Entry::Admin,
            ))
        }))
        .chain(
            socks_listeners
                .into_iter()
                .map(|l| tokio::spawn(accept_loop(live.clone(), l, slots.clone(), Entry::Socks))),
        )
        .collect();
    tracing::info!(listen = ?addrs, "waypost is listening");
    Ok(Running {
        addrs,
        admin_addrs,
        socks_addrs,
        app,
        live,
        accept_tasks,
    })
}

/// The inherited sockets of a role, or else its configured addresses, bound.
async fn bind_all(
    addrs: &[SocketAddr],
    inherited: Vec<std::net::TcpListener>,
    what: &str,
) -> io::Result<Vec<TcpListener>> {
    if !inherited.is_empty() {
        return inherited.into_iter().map(TcpListener::from_std).collect();
    }
    let mut listeners = Vec::new();
    for addr in addrs {
        let l = TcpListener::bind(addr)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}{what}: {e}")))?;
        listeners.push(l);
    }
    Ok(listeners)
}

/// How often a returning accept failure (EMFILE) may log at warn level.
const ACCEPT_WARN_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

async fn accept_loop(live: Arc<Live>, listener: TcpListener, slots: Arc<Semaphore>, entry: Entry) {
    let admin_only = entry == Entry::Admin;
    let shutdown = live.current().shutdown.clone();
    // Failed accepts since the last good one: a shortage (EMFILE) logs one line when it starts
    // and one when it ends, not one per retry; a shortage that comes back within a minute of
    // the last one logged (descriptors freeing one at a time) is logged at debug only.
    let mut failing: u64 = 0;
    let mut warned_at: Option<tokio::time::Instant> = None;
    let mut warned = false;
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    if failing == 0 {
                        warned = warned_at.is_none_or(|t| t.elapsed() >= ACCEPT_WARN_EVERY);
                        if warned {
                            warned_at = Some(tokio::time::Instant::now());
                            tracing::warn!(error = %e, "accept failed; retrying every 50 ms until it works");
                        } else {
                            tracing::debug!(error = %e, "accept failed again; retrying every 50 ms");
                        }
                    }
                    failing += 1;
                    // EMFILE and friends: back off briefly instead of spinning.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if failing > 0 {
            if warned {
                tracing::info!(failed = failing, "accept works again");
            } else {
                tracing::debug!(failed = failing, "accept works again");
            }
            failing = 0;
        }
        // the cheap refusal before anything is read; every request is judged again
        let app = live.current();
        if let Err(err) = admission::admit(&app.cfg, entry, peer, Ask::Connection) {
            crate::proxy::refused(&app, peer, &err);
            app.tracker.spawn(refuse(stream, err, entry));
            continue;
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            app.metrics
                .client_connections_rejected
                .with_label_values(&["limit"])
                .inc();
            let limit = if admin_only {
                "admin_max_connections"
            } else {
                "max_client_connections"
            };
            tracing::warn!(client = %peer, limit, "connection limit reached; connection refused");
            let err = ProxyError::new(
                ErrorKind::TooManyConnections,
                format!("{limit} reached (tunnels and upgrades hold their connection's slot)"),
            );
            app.tracker.spawn(refuse(stream, err, entry));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let client = Client {
            addr: peer,
            slot: ClientSlot::new(permit, app.metrics.clone(), !admin_only),
        };
        let span = tracing::info_span!("conn", client = %peer);
        if entry == Entry::Socks {
            let socks = crate::proxy::serve_socks(live.clone(), client, stream);
            app.tracker.spawn(socks.instrument(span));
            continue;
        }
        app.tracker
            .spawn(serve(live.clone(), app.clone(), stream, client, entry).instrument(span));
    }
}

/// Answers a connection refused before any request is read, with [`rescue_raw`]'s bytes (a
/// SOCKS client: no acceptable method).
async fn refuse(mut stream: TcpStream, err: ProxyError, entry: Entry) {
    if entry == Entry::Socks {
        let grace = std::time::Duration::from_secs(5);
        let _ = tokio::time::timeout(
            grace,
            crate::proxy::socks::wire::refuse_greeting(&mut stream),
        )
        .await;
        return;
    }
    let resp = rescue_raw(&err);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), stream.write_all(&resp)).await;
    let _ = stream.shutdown().await;
}

/// Serves one client connection (`app`: the generation current when it was accepted, for the
/// connection's own settings; each request gets the generation current when it arrives, and is
/// admitted again under it: a client a reload revoked gets 403 and the connection closes). Its
/// slot (and the active-connections gauge) is released when the last holder lets go: this
/// function, or a tunnel or upgrade started on the connection.
async fn serve(live: Arc<Live>, app: Arc<App>, stream: TcpStream, client: Client, entry: Entry) {
    let svc_client = client.clone();
    let local = stream.local_addr().ok();
    let svc = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
        if let Some(l) = local {
            req.extensions_mut()
                .insert(crate::ops::clientpac::Arrived(l));
        }
        let app = live.current();
        let client = svc_client.clone();
        let span = tracing::info_span!("req", method = %req.method(), uri = %crate::ops::access::RedactedUri(req.uri()), request_id = tracing::field::Empty);
        async move { crate::proxy::handle(app, entry, client, req).await }.instrument(span)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(app.cfg.timeouts.client_header)
        // the exact limit is proxy::head's (431 with a reason); hyper's buffer only needs to
        // hold a head of that size, and refuses (also 431) what is far beyond it
        .max_buf_size(app.cfg.limits.max_request_header_size + 16 * 1024)
        .keep_alive(true);
    let conn = builder
        .serve_connection(TokioIo::new(stream), svc)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = app.shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.as_mut().await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "client connection ended with an error");
    }
    drop(client);
}

//! The keep-alive pool of upstream HTTP/1.1 connections, and the per-server connection limit.
//!
//! Idle connections are kept per [`PoolKey`]: everything that makes two connections
//! interchangeable (the route — direct or which proxy —, the server spoken to, TLS, the
//! authenticated identity, the TLS settings and the connection limit of the target's scope).
//! The limit `max_conns_per_server` (the key's, from the plan) is kept per *server*, the first
//! peer dialled (the upstream proxy, or the origin when direct), whatever the connection
//! carries: pooled requests, CONNECT tunnels and upgrades all hold a [`ServerPermit`] while they
//! live. Idle connections hold none, and a dial only happens when no idle connection is left.
//! The map's lock is short and never held across `.await`.
//!
//! Lifecycle of a connection: dialled (permit held) -> active -> released: back to idle if the
//! response was read to its end (or drained within `max_response_drain_size`), else closed ->
//! idle -> reused (active again) or evicted after `pool_idle`.
//!
//! The pool is generic over the connection ([`PoolConn`]) so that it can be tested without
//! sockets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use hyper::client::conn::http1::SendRequest;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::body::Body;
use crate::error::{ErrorKind, ProxyError};
use crate::metrics::Metrics;
pub use crate::route::{PoolKey, ServerKey};

/// What the pool needs to know of a connection.
pub trait PoolConn: Send + 'static {
    /// The peer closed it (or it broke).
    fn is_closed(&self) -> bool;
    /// It can take a request now.
    fn is_ready(&self) -> bool;
}

impl PoolConn for SendRequest<Body> {
    fn is_closed(&self) -> bool {
        SendRequest::is_closed(self)
    }
    fn is_ready(&self) -> bool {
        SendRequest::is_ready(self)
    }
}

struct Idle<C> {
    conn: C,
    cert: Option<Arc<[u8]>>,
    since: Instant,
}

/// The idle connections of one key, with the key's metric series.
struct Slot<C> {
    list: Vec<Idle<C>>,
    series: Arc<KeySeries>,
}

/// The series of one pool key, looked up once when the key gets its slot (not per request:
/// issue 25); shared with the connections checked out under the key.
struct KeySeries {
    active: prometheus::IntGauge,
    idle: prometheus::IntGauge,
    reused: prometheus::IntCounter,
}

pub struct Pool<C = SendRequest<Body>> {
    idle: Mutex<HashMap<PoolKey, Slot<C>>>,
    servers: Mutex<HashMap<ServerKey, Arc<Semaphore>>>,
    metrics: Arc<Metrics>,
    max_idle: usize,
    idle_timeout: Duration,
}

/// Either a live pooled connection, or the right (a permit) to dial a new one.
pub enum Checkout<C = SendRequest<Body>> {
    Reused(Pooled<C>),
    Dial(DialPermit),
}

/// A slot of `max_conns_per_server`, held for the life of one connection (nothing to hold when
/// the limit is unlimited, WinHTTP's default).
pub struct ServerPermit(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

pub struct DialPermit {
    key: PoolKey,
    permit: ServerPermit,
}

/// A connection checked out of the pool. Dropping it closes the connection; [`Pooled::release`]
/// returns it for reuse.
pub struct Pooled<C = SendRequest<Body>> {
    conn: Option<C>,
    key: PoolKey,
    series: Arc<KeySeries>,
    pool: Weak<Pool<C>>,
    _permit: ServerPermit,
    pub reused: bool,
    /// The end-entity certificate of a TLS peer (an HTTPS proxy's: channel bindings for NTLM),
    /// kept with the connection while it is idle.
    pub tls_cert: Option<Arc<[u8]>>,
    /// Returned to the pool on release (false: `limits.keep_alive` is off for its server).
    keep: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked mid-update of plain data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<C: PoolConn> Pool<C> {
    pub fn new(metrics: Arc<Metrics>, max_idle: usize, idle_timeout: Duration) -> Arc<Self> {
        let pool = Arc::new(Pool {
            idle: Mutex::new(HashMap::new()),
            servers: Mutex::new(HashMap::new()),
            metrics,
            max_idle,
            idle_timeout,
        });
        spawn_reaper(Arc::downgrade(&pool), idle_timeout);
        pool
    }

    fn gauge(&self, key: &PoolKey, state: &str) -> prometheus::IntGauge {
        self.metrics
            .pool_connections
            .with_label_values(&[key.label(), state])
    }

    /// The slot of `key` in the idle map, made (with its series) when the key has none.
    fn slot<'m>(&self, idle: &'m mut HashMap<PoolKey, Slot<C>>, key: &PoolKey) -> &'m mut Slot<C> {
        // looked up before inserting: the key is cloned only for a new slot
        if !idle.contains_key(key) {
            let series = Arc::new(KeySeries {
                active: self.gauge(key, "active"),
                idle: self.gauge(key, "idle"),
                reused: self.metrics.pool_reused.with_label_values(&[key.label()]),
            });
            idle.insert(
                key.clone(),
                Slot {
                    list: Vec::new(),
                    series,
                },
            );
        }
        match idle.get_mut(key) {
            Some(slot) => slot,
            None => unreachable!("the slot was just made"),
        }
    }

    fn semaphore(&self, server: &ServerKey, limit: u32) -> Arc<Semaphore> {
        let mut servers = lock(&self.servers);
        if let Some(s) = servers.get(server) {
            return s.clone();
        }
        servers
            .entry(server.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(limit as usize)))
            .clone()
    }

    /// A slot for one more connection to `server` (labelled `label` in metrics), waiting at
    /// most `wait` for one to free up. Tunnels and upgrades hold it for their whole life.
    pub async fn server_permit(
        &self,
        server: &ServerKey,
        label: &str,
        wait: Duration,
    ) -> Result<ServerPermit, ProxyError> {
        let Some(limit) = server.limit else {
            return Ok(ServerPermit(None));
        };
        let permits = self.semaphore(server, limit);
        if let Ok(p) = permits.clone().try_acquire_owned() {
            return Ok(ServerPermit(Some(p)));
        }
        self.metrics
            .pool_slot_waits
            .with_label_values(&[label])
            .inc();
        let permit = tokio::time::timeout(wait, permits.acquire_owned())
            .await
            .map_err(|_| {
                ProxyError::new(
                    ErrorKind::PoolTimeout,
                    format!(
                        "no free connection to {}:{} within {wait:?} (max_conns_per_server)",
                        server.host.to_authority_host(),
                        server.port
                    ),
                )
            })?
            .map_err(|_| ProxyError::new(ErrorKind::Internal, "connection pool closed"))?;
        Ok(ServerPermit(Some(permit)))
    }

    /// A reusable idle connection, or a permit to dial; waits (bounded) for a free slot.
    pub async fn checkout(
        self: &Arc<Self>,
        key: &PoolKey,
        wait: Duration,
    ) -> Result<Checkout<C>, ProxyError> {
        let permit = self.server_permit(&key.server(), key.label(), wait).await?;
        while let Some((idle, series)) = self.pop_idle(key) {
            if idle.conn.is_closed() || !idle.conn.is_ready() {
                self.metrics
                    .pool_closed
                    .with_label_values(&[key.label()])
                    .inc();
                continue;
            }
            series.reused.inc();
            series.active.inc();
            return Ok(Checkout::Reused(Pooled {
                conn: Some(idle.conn),
                key: key.clone(),
                series,
                pool: Arc::downgrade(self),
                _permit: permit,
                reused: true,
                tls_cert: idle.cert,
                keep: true,
            }));
        }
        Ok(Checkout::Dial(DialPermit {
            key: key.clone(),
            permit,
        }))
    }

    /// A permit to dial a new connection, never an idle one (a handshake that must continue
    /// on a fresh connection).
    pub async fn reserve(&self, key: &PoolKey, wait: Duration) -> Result<DialPermit, ProxyError> {
        let permit = self.server_permit(&key.server(), key.label(), wait).await?;
        Ok(DialPermit {
            key: key.clone(),
            permit,
        })
    }

    /// The newest idle connection of `key` still within `pool_idle`, with the key's series.
    fn pop_idle(&self, key: &PoolKey) -> Option<(Idle<C>, Arc<KeySeries>)> {
        let mut idle = lock(&self.idle);
        let slot = idle.get_mut(key)?;
        let now = Instant::now();
        while let Some(i) = slot.list.pop() {
            slot.series.idle.dec();
            if now.duration_since(i.since) < self.idle_timeout {
                return Some((i, slot.series.clone()));
            }
            self.metrics
                .pool_evicted
                .with_label_values(&[key.label()])
                .inc();
        }
        None
    }

    /// Turns a dial permit and a fresh connection into a checked-out [`Pooled`].
    pub fn attach(
        self: &Arc<Self>,
        permit: DialPermit,
        conn: C,
        tls_cert: Option<Arc<[u8]>>,
    ) -> Pooled<C> {
        self.metrics
            .pool_opened
            .with_label_values(&[permit.key.label()])
            .inc();
        let series = self.slot(&mut lock(&self.idle), &permit.key).series.clone();
        series.active.inc();
        Pooled {
            conn: Some(conn),
            key: permit.key,
            series,
            pool: Arc::downgrade(self),
            _permit: permit.permit,
            reused: false,
            tls_cert,
            keep: true,
        }
    }

    fn put_back(&self, key: &PoolKey, conn: C, cert: Option<Arc<[u8]>>) {
        let mut idle = lock(&self.idle);
        let slot = self.slot(&mut idle, key);
        if slot.list.len() >= self.max_idle || conn.is_closed() {
            self.metrics
                .pool_closed
                .with_label_values(&[key.label()])
                .inc();
            return;
        }
        slot.list.push(Idle {
            conn,
            cert,
            since: Instant::now(),
        });
        slot.series.idle.inc();
    }

    fn evict_expired(&self) {
        let now = Instant::now();
        lock(&self.idle).retain(|key, slot| {
            let list = &mut slot.list;
            let before = list.len();
            list.retain(|i| now.duration_since(i.since) < self.idle_timeout && !i.conn.is_closed());
            let gone = before - list.len();
            if gone > 0 {
                slot.series.idle.sub(gone as i64);
                self.metrics
                    .pool_evicted
                    .with_label_values(&[key.label()])
                    .inc_by(gone as u64);
            }
            !list.is_empty()
        });
        // a server's semaphore goes when nobody holds a permit or is waiting for one (every
        // permit and every acquirer holds a clone of the Arc), so the limit is never split
        lock(&self.servers).retain(|_, s| Arc::strong_count(s) > 1);
    }

    /// Closes every idle connection (the network changed: the route or local address they
    /// were made over may be gone, and a dead one would cost a failed request to notice).
    /// Connections in use are left to finish. Returns how many were closed.
    pub fn flush_idle(&self) -> usize {
        let mut idle = lock(&self.idle);
        let mut closed = 0;
        for (key, Slot { list, series }) in idle.drain() {
            series.idle.sub(list.len() as i64);
            self.metrics
                .pool_evicted
                .with_label_values(&[key.label()])
                .inc_by(list.len() as u64);
            closed += list.len();
        }
        closed
    }

    /// Idle connections in all (tests and the status page).
    pub fn idle_count(&self) -> usize {
        lock(&self.idle).values().map(|s| s.list.len()).sum()
    }
}

fn spawn_reaper<C: PoolConn>(pool: Weak<Pool<C>>, idle_timeout: Duration) {
    let period = (idle_timeout / 2).clamp(Duration::from_millis(50), Duration::from_secs(15));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match pool.upgrade() {
                Some(p) => p.evict_expired(),
                None => return,
            }
        }
    });
}

impl<C: PoolConn> Pooled<C> {
    pub fn conn(&mut self) -> &mut C {
        // Only `release` and `Drop` take the connection, and both consume the Pooled.
        self.conn
            .as_mut()
            .expect("connection present until release")
    }

    pub fn key(&self) -> &PoolKey {
        &self.key
    }

    /// Closes the connection at release instead of keeping it (keep-alive off).
    pub fn close_after_use(&mut self) {
        self.keep = false;
    }

    /// Returns the connection to the pool (its response must have been read to the end), or
    /// closes it when it may not be kept.
    pub fn release(mut self) {
        if !self.keep {
            return;
        }
        if let (Some(conn), Some(pool)) = (self.conn.take(), self.pool.upgrade()) {
            self.series.active.dec();
            pool.put_back(&self.key, conn, self.tls_cert.take());
        }
    }
}

impl Pooled<SendRequest<Body>> {
    pub fn sender(&mut self) -> &mut SendRequest<Body> {
        self.conn()
    }
}

impl<C> Drop for Pooled<C> {
    fn drop(&mut self) {
        if self.conn.take().is_some() {
            if let Some(pool) = self.pool.upgrade() {
                self.series.active.dec();
                pool.metrics
                    .pool_closed
                    .with_label_values(&[self.key.label()])
                    .inc();
            }
        }
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;

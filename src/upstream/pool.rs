//! The keep-alive pool of upstream HTTP/1.1 connections.
//!
//! Connections are keyed by everything that makes two of them interchangeable ([`PoolKey`]:
//! endpoint, TLS, and the authentication identity once auth lands). Each key has a semaphore of
//! `max_conns_per_server` permits held by *active* connections (checked out or being dialled);
//! idle connections hold none, and a dial only happens when no idle connection is left, so the
//! total per key never exceeds the limit. The map's lock is short and never held across `.await`.
//!
//! Lifecycle of a connection: dialled (permit held) -> active -> released: back to idle if the
//! response was read to its end (or drained within `max_response_drain_size`), else closed ->
//! idle -> reused (active again) or evicted after `pool_idle`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use hyper::client::conn::http1::SendRequest;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::body::Body;
use crate::error::{ErrorKind, ProxyError};
use crate::metrics::Metrics;
use crate::target::Host;

/// What makes two upstream connections interchangeable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    pub host: Host,
    pub port: u16,
    pub tls: bool,
    /// The authenticated identity on this connection (None = unauthenticated).
    pub identity: Option<String>,
    /// Metric label: `direct` or the proxy's `host:port`.
    pub label: Arc<str>,
}

struct Idle {
    sender: SendRequest<Body>,
    since: Instant,
}

struct Slot {
    idle: Vec<Idle>,
    permits: Arc<Semaphore>,
}

pub struct Pool {
    slots: Mutex<HashMap<PoolKey, Slot>>,
    metrics: Arc<Metrics>,
    max_per_server: usize,
    max_idle: usize,
    idle_timeout: Duration,
}

/// Either a live pooled connection, or the right (a permit) to dial a new one.
pub enum Checkout {
    Reused(Pooled),
    Dial(DialPermit),
}

pub struct DialPermit {
    key: PoolKey,
    permit: OwnedSemaphorePermit,
}

/// A connection checked out of the pool. Dropping it closes the connection; [`Pooled::release`]
/// returns it for reuse.
pub struct Pooled {
    sender: Option<SendRequest<Body>>,
    key: PoolKey,
    pool: Weak<Pool>,
    _permit: OwnedSemaphorePermit,
    pub reused: bool,
    /// The end-entity certificate of an HTTPS proxy (channel bindings for NTLM).
    pub tls_cert: Option<Vec<u8>>,
}

impl Pool {
    pub fn new(
        metrics: Arc<Metrics>,
        max_per_server: Option<u32>,
        max_idle: usize,
        idle_timeout: Duration,
    ) -> Arc<Pool> {
        let pool = Arc::new(Pool {
            slots: Mutex::new(HashMap::new()),
            metrics,
            max_per_server: max_per_server
                .map(|m| m as usize)
                .unwrap_or(Semaphore::MAX_PERMITS),
            max_idle,
            idle_timeout,
        });
        spawn_reaper(Arc::downgrade(&pool), idle_timeout);
        pool
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PoolKey, Slot>> {
        // A poisoned lock only means another thread panicked mid-update of plain data.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn gauge(&self, key: &PoolKey, state: &str) -> prometheus::IntGauge {
        self.metrics
            .pool_connections
            .with_label_values(&[&key.label, state])
    }

    /// The key's slot semaphore (created with the slot).
    fn permits_for(&self, key: &PoolKey) -> Arc<Semaphore> {
        let mut slots = self.lock();
        let slot = slots.entry(key.clone()).or_insert_with(|| Slot {
            idle: Vec::new(),
            permits: Arc::new(Semaphore::new(self.max_per_server)),
        });
        slot.permits.clone()
    }

    /// A reusable idle connection, or a permit to dial; waits (bounded) for a free slot.
    pub async fn checkout(
        self: &Arc<Self>,
        key: &PoolKey,
        wait: Duration,
    ) -> Result<Checkout, ProxyError> {
        let permits = self.permits_for(key);
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                self.metrics
                    .pool_slot_waits
                    .with_label_values(&[&key.label])
                    .inc();
                tokio::time::timeout(wait, permits.acquire_owned())
                    .await
                    .map_err(|_| {
                        ProxyError::new(
                            ErrorKind::PoolTimeout,
                            format!(
                                "no free connection to {} within {wait:?} (max_conns_per_server)",
                                key.label
                            ),
                        )
                    })?
                    .map_err(|_| ProxyError::new(ErrorKind::Internal, "connection pool closed"))?
            }
        };
        while let Some(idle) = self.pop_idle(key) {
            if idle.sender.is_closed() || !idle.sender.is_ready() {
                self.metrics
                    .pool_closed
                    .with_label_values(&[&key.label])
                    .inc();
                continue;
            }
            self.metrics
                .pool_reused
                .with_label_values(&[&key.label])
                .inc();
            self.gauge(key, "active").inc();
            return Ok(Checkout::Reused(Pooled {
                sender: Some(idle.sender),
                key: key.clone(),
                pool: Arc::downgrade(self),
                _permit: permit,
                reused: true,
                tls_cert: None,
            }));
        }
        Ok(Checkout::Dial(DialPermit {
            key: key.clone(),
            permit,
        }))
    }

    /// A permit to dial a new connection, never an idle one (a handshake that must continue
    /// on a fresh connection).
    pub async fn reserve(
        self: &Arc<Self>,
        key: &PoolKey,
        wait: Duration,
    ) -> Result<DialPermit, ProxyError> {
        let permits = self.permits_for(key);
        let permit = tokio::time::timeout(wait, permits.acquire_owned())
            .await
            .map_err(|_| {
                ProxyError::new(
                    ErrorKind::PoolTimeout,
                    format!("no free connection to {} within {wait:?}", key.label),
                )
            })?
            .map_err(|_| ProxyError::new(ErrorKind::Internal, "connection pool closed"))?;
        Ok(DialPermit {
            key: key.clone(),
            permit,
        })
    }

    fn pop_idle(&self, key: &PoolKey) -> Option<Idle> {
        let mut slots = self.lock();
        let slot = slots.get_mut(key)?;
        let now = Instant::now();
        while let Some(idle) = slot.idle.pop() {
            self.gauge(key, "idle").dec();
            if now.duration_since(idle.since) < self.idle_timeout {
                return Some(idle);
            }
            self.metrics
                .pool_evicted
                .with_label_values(&[&key.label])
                .inc();
        }
        None
    }

    /// Turns a dial permit and a fresh connection into a checked-out [`Pooled`].
    pub fn attach(self: &Arc<Self>, permit: DialPermit, sender: SendRequest<Body>) -> Pooled {
        self.metrics
            .pool_opened
            .with_label_values(&[&permit.key.label])
            .inc();
        self.gauge(&permit.key, "active").inc();
        Pooled {
            sender: Some(sender),
            key: permit.key,
            pool: Arc::downgrade(self),
            _permit: permit.permit,
            reused: false,
            tls_cert: None,
        }
    }

    fn put_back(&self, key: &PoolKey, sender: SendRequest<Body>) {
        let mut slots = self.lock();
        let Some(slot) = slots.get_mut(key) else {
            self.metrics
                .pool_closed
                .with_label_values(&[&key.label])
                .inc();
            return;
        };
        if slot.idle.len() >= self.max_idle || sender.is_closed() {
            self.metrics
                .pool_closed
                .with_label_values(&[&key.label])
                .inc();
            return;
        }
        slot.idle.push(Idle {
            sender,
            since: Instant::now(),
        });
        self.gauge(key, "idle").inc();
    }

    fn evict_expired(&self) {
        let now = Instant::now();
        let mut slots = self.lock();
        slots.retain(|key, slot| {
            let before = slot.idle.len();
            slot.idle.retain(|i| {
                now.duration_since(i.since) < self.idle_timeout && !i.sender.is_closed()
            });
            let gone = before - slot.idle.len();
            if gone > 0 {
                self.gauge(key, "idle").sub(gone as i64);
                self.metrics
                    .pool_evicted
                    .with_label_values(&[&key.label])
                    .inc_by(gone as u64);
            }
            // Keep slots that still have connections or holders of permits.
            !slot.idle.is_empty() || slot.permits.available_permits() < self.max_per_server
        });
    }

    /// Idle connections per key (tests and the status page).
    pub fn idle_count(&self) -> usize {
        self.lock().values().map(|s| s.idle.len()).sum()
    }
}

fn spawn_reaper(pool: Weak<Pool>, idle_timeout: Duration) {
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

impl Pooled {
    pub fn sender(&mut self) -> &mut SendRequest<Body> {
        // Only `release` and `Drop` take the sender, and both consume the Pooled.
        self.sender.as_mut().expect("sender present until release")
    }

    pub fn label(&self) -> &str {
        &self.key.label
    }

    /// Returns the connection to the pool (its response must have been read to the end).
    pub fn release(mut self) {
        if let (Some(sender), Some(pool)) = (self.sender.take(), self.pool.upgrade()) {
            pool.gauge(&self.key, "active").dec();
            pool.put_back(&self.key, sender);
        }
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if self.sender.take().is_some() {
            if let Some(pool) = self.pool.upgrade() {
                pool.gauge(&self.key, "active").dec();
                pool.metrics
                    .pool_closed
                    .with_label_values(&[&self.key.label])
                    .inc();
            }
        }
    }
}

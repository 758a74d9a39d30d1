//! Unit tests of the pool with fake connections: no sockets.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::route::Hop;
use crate::target::Host;
use crate::target::ProxyAddr;

#[derive(Clone)]
struct Fake {
    id: u32,
    closed: Arc<AtomicBool>,
}

impl Fake {
    fn new(id: u32) -> Fake {
        Fake {
            id,
            closed: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl PoolConn for Fake {
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
    fn is_ready(&self) -> bool {
        !self.is_closed()
    }
}

fn pool() -> Arc<Pool<Fake>> {
    Pool::new(Arc::new(Metrics::new()), 4, Duration::from_secs(30))
}

/// `key` under a `max_conns_per_server` of `max`.
fn limited(mut k: PoolKey, max: u32) -> PoolKey {
    k.max_conns = Some(max);
    k
}

fn proxy(s: &str) -> Hop {
    Hop::Proxy(ProxyAddr::parse(s).unwrap())
}

fn key(route: Hop, identity: Option<&str>) -> PoolKey {
    let (host, port) = match &route {
        Hop::Proxy(p) => (p.host.clone(), p.port),
        Hop::Direct => (Host::parse("origin.example").unwrap(), 80),
    };
    PoolKey::new(route, host, port, false, identity.map(str::to_string))
}

async fn dial(pool: &Arc<Pool<Fake>>, key: &PoolKey, id: u32) -> Pooled<Fake> {
    match pool.checkout(key, Duration::from_secs(1)).await.unwrap() {
        Checkout::Dial(permit) => pool.attach(permit, Fake::new(id), None),
        Checkout::Reused(_) => panic!("expected a dial for {key:?}"),
    }
}

async fn reused_id(pool: &Arc<Pool<Fake>>, key: &PoolKey) -> Option<u32> {
    match pool.checkout(key, Duration::from_secs(1)).await.unwrap() {
        Checkout::Reused(mut p) => Some(p.conn().id),
        Checkout::Dial(_) => None,
    }
}

#[tokio::test]
async fn a_released_connection_is_reused_for_the_same_key() {
    let pool = pool();
    let k = key(proxy("http://p1:3128"), None);
    dial(&pool, &k, 7).await.release();
    assert_eq!(reused_id(&pool, &k).await, Some(7));
}

#[tokio::test]
async fn keys_differ_by_the_proxy_the_connection_goes_through() {
    let pool = pool();
    let origin = Host::parse("origin.example").unwrap();
    let via_a = PoolKey::new(proxy("socks5://a:1080"), origin.clone(), 80, false, None);
    let via_b = PoolKey::new(proxy("socks5://b:1080"), origin.clone(), 80, false, None);
    let direct = PoolKey::new(Hop::Direct, origin, 80, false, None);
    dial(&pool, &via_a, 1).await.release();
    assert_eq!(reused_id(&pool, &via_b).await, None);
    assert_eq!(reused_id(&pool, &direct).await, None);
    assert_eq!(reused_id(&pool, &via_a).await, Some(1));
    assert_eq!(via_a.label().as_ref(), "a:1080");
    assert_eq!(direct.label().as_ref(), "direct");
}

#[tokio::test]
async fn keys_differ_by_identity() {
    let pool = pool();
    let alice = key(proxy("http://p:3128"), Some("CORP\\alice"));
    let bob = key(proxy("http://p:3128"), Some("CORP\\bob"));
    let anonymous = key(proxy("http://p:3128"), None);
    dial(&pool, &alice, 1).await.release();
    assert_eq!(reused_id(&pool, &bob).await, None);
    assert_eq!(reused_id(&pool, &anonymous).await, None);
    assert_eq!(reused_id(&pool, &alice).await, Some(1));
}

#[tokio::test(start_paused = true)]
async fn the_per_server_limit_makes_the_next_caller_wait_and_then_time_out() {
    let pool = pool();
    let k = limited(key(proxy("http://p:3128"), None), 1);
    let held = dial(&pool, &k, 1).await;
    let waited = pool.checkout(&k, Duration::from_secs(5)).await;
    assert!(matches!(waited, Err(ref e) if e.kind == ErrorKind::PoolTimeout));
    drop(held);
    assert!(matches!(
        pool.checkout(&k, Duration::from_secs(5)).await,
        Ok(Checkout::Dial(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn the_per_server_limit_counts_tunnels_and_pooled_connections_to_one_proxy_together() {
    let pool = pool();
    let server = ServerKey {
        host: Host::parse("p").unwrap(),
        port: 3128,
        limit: Some(2),
    };
    let _tunnel = pool
        .server_permit(&server, "p:3128", Duration::from_secs(1))
        .await
        .unwrap();
    // another identity and another target, same proxy: the same server
    let _a = dial(
        &pool,
        &limited(key(proxy("http://p:3128"), Some("u")), 2),
        1,
    )
    .await;
    let third = limited(key(proxy("http://p:3128"), None), 2);
    let third = pool.checkout(&third, Duration::from_secs(1)).await;
    assert!(matches!(third, Err(ref e) if e.kind == ErrorKind::PoolTimeout));
}

#[tokio::test(start_paused = true)]
async fn a_scope_s_limit_holds_its_connections_while_an_unlimited_key_is_not_held() {
    let pool = pool();
    let k = limited(key(Hop::Direct, None), 1);
    let _held = dial(&pool, &k, 1).await;
    let waited = pool.checkout(&k, Duration::from_secs(1)).await;
    assert!(matches!(waited, Err(ref e) if e.kind == ErrorKind::PoolTimeout));
    // the same server without a limit (another scope): not counted against it
    let free = key(Hop::Direct, None);
    assert!(matches!(
        pool.checkout(&free, Duration::from_secs(1)).await,
        Ok(Checkout::Dial(_))
    ));
}

#[tokio::test]
async fn a_connection_made_under_one_scope_s_tls_settings_is_not_reused_under_another() {
    let pool = pool();
    let mut strict = key(Hop::Direct, None);
    strict.tls = true;
    let settings = waypost_tls::ConnSettings {
        min_version: waypost_tls::config::MinVersion::Tls13,
        allow: Arc::default(),
        client_cert: None,
        check_revocation: false,
    };
    strict.tls_settings = Some(settings.clone());
    let mut lax = strict.clone();
    lax.tls_settings = Some(waypost_tls::ConnSettings {
        min_version: waypost_tls::config::MinVersion::Tls12,
        ..settings
    });
    dial(&pool, &strict, 1).await.release();
    assert_eq!(reused_id(&pool, &lax).await, None);
    assert_eq!(reused_id(&pool, &strict).await, Some(1));
}

#[tokio::test]
async fn a_connection_closed_after_use_is_not_kept() {
    let pool = pool();
    let k = key(Hop::Direct, None);
    let mut p = dial(&pool, &k, 1).await;
    p.close_after_use();
    p.release();
    assert_eq!(pool.idle_count(), 0);
    assert_eq!(reused_id(&pool, &k).await, None);
}

#[tokio::test(start_paused = true)]
async fn idle_connections_are_evicted_after_the_idle_timeout() {
    let pool = pool();
    let k = key(proxy("http://p:3128"), None);
    dial(&pool, &k, 1).await.release();
    assert_eq!(pool.idle_count(), 1);
    tokio::time::sleep(Duration::from_secs(31)).await;
    // the reaper ran (paused time advanced past its period) and dropped it
    assert_eq!(pool.idle_count(), 0);
    assert_eq!(reused_id(&pool, &k).await, None);
}

#[tokio::test]
async fn a_closed_idle_connection_is_never_handed_out() {
    let pool = pool();
    let k = key(proxy("http://p:3128"), None);
    let p = dial(&pool, &k, 1).await;
    let closed = p.conn.as_ref().unwrap().closed.clone();
    p.release();
    closed.store(true, Ordering::SeqCst);
    assert_eq!(reused_id(&pool, &k).await, None);
}

#[tokio::test]
async fn a_reused_connection_keeps_the_peer_certificate_for_channel_bindings() {
    let pool = pool();
    let k = key(proxy("https://p:443"), Some("u"));
    let permit = match pool.checkout(&k, Duration::from_secs(1)).await.unwrap() {
        Checkout::Dial(p) => p,
        Checkout::Reused(_) => unreachable!(),
    };
    let cert: Arc<[u8]> = Arc::from(&b"DER"[..]);
    pool.attach(permit, Fake::new(1), Some(cert.clone()))
        .release();
    match pool.checkout(&k, Duration::from_secs(1)).await.unwrap() {
        Checkout::Reused(p) => assert_eq!(p.tls_cert.as_deref(), Some(&b"DER"[..])),
        Checkout::Dial(_) => panic!("expected reuse"),
    }
}

#[tokio::test]
async fn a_network_change_closes_every_idle_connection_and_leaves_active_ones_alone() {
    let pool = pool();
    let (a, b) = (
        key(proxy("http://office.example:3128"), None),
        key(Hop::Direct, None),
    );
    let active = dial(&pool, &a, 3).await;
    dial(&pool, &a, 1).await.release();
    dial(&pool, &b, 2).await.release();
    assert_eq!(pool.idle_count(), 2);
    assert_eq!(pool.flush_idle(), 2);
    assert_eq!(pool.idle_count(), 0);
    assert_eq!(
        reused_id(&pool, &b).await,
        None,
        "nothing idle is handed out"
    );
    active.release();
    assert_eq!(
        reused_id(&pool, &a).await,
        Some(3),
        "the active one went back to the pool"
    );
}

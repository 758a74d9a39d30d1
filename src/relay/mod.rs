//! Relaying bytes both ways for CONNECT tunnels and upgraded connections.
//!
//! Relays until both sides have closed (each end of stream is passed on as a half-close), one
//! fails, or no byte moved in either direction for the tunnel idle timeout. Byte counts are kept
//! even when the relay ends by timeout or error.
//!
//! [`relay_io`] picks the way: when both ends are plain sockets underneath ([`raw`]), bytes go
//! socket to socket through a pipe ([`splice`], Linux), never through waypost's memory;
//! otherwise (TLS to an HTTPS proxy, other systems) they are copied through buffers ([`relay`]).
//! [`io`] has the stream wrappers both ways share with the tunnel edge (replayed prefixes, byte
//! counts, the idle clock).

pub mod io;
pub mod raw;
#[cfg(target_os = "linux")]
pub mod splice;

/// The pipes of the socket-to-socket relay ([`splice::PipePool`]), owned by the configuration
/// generation that runs relays.
#[cfg(target_os = "linux")]
pub use splice::PipePool;
/// Without splice (not Linux) there are no pipes to keep.
#[cfg(not(target_os = "linux"))]
#[derive(Default)]
pub struct PipePool;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use self::io::{Activity, Counted, ReadBytes};
use crate::metrics::Metrics;
use crate::upstream::io::BoxIo;

/// How a relay ended, with the bytes moved each way.
#[derive(Debug, Clone, Copy)]
pub struct RelayEnd {
    /// Bytes from the client to the upstream side.
    pub from_client: u64,
    /// Bytes from the upstream side to the client.
    pub to_client: u64,
    pub idle_timeout: bool,
}

/// Relays between two streams, socket to socket when both are plain sockets underneath;
/// counts the way taken in `waypost_tunnel_relays_total`.
pub async fn relay_io(
    client: BoxIo,
    upstream: BoxIo,
    idle: Duration,
    metrics: &Metrics,
    pipes: &Arc<PipePool>,
) -> RelayEnd {
    let way = |w: &str| metrics.tunnel_relays.with_label_values(&[w]).inc();
    #[cfg(target_os = "linux")]
    let (client, upstream) = match (raw::unwrap(client), raw::unwrap(upstream)) {
        (Ok(c), Ok(u)) => {
            way("splice");
            return splice::relay(c, u, idle, pipes.clone()).await;
        }
        (c, u) => (
            c.map_or_else(|io| io, raw::RawSide::into_io),
            u.map_or_else(|io| io, raw::RawSide::into_io),
        ),
    };
    way("copy");
    relay(client, upstream, idle).await
}

/// Relays between `client` and `upstream` through buffers until both sides close, one fails,
/// or the idle timeout hits.
pub async fn relay<A, B>(client: A, upstream: B, idle: Duration) -> RelayEnd
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let activity = Activity::new();
    let (up, down) = (
        Arc::new(ReadBytes::default()),
        Arc::new(ReadBytes::default()),
    );
    let mut a = Counted::new(client, up.clone(), activity.clone());
    let mut b = Counted::new(upstream, down.clone(), activity.clone());
    let copy = tokio::io::copy_bidirectional_with_sizes(&mut a, &mut b, 64 * 1024, 64 * 1024);
    let idle_timeout = until_idle(copy, &activity, idle).await.is_none();
    RelayEnd {
        from_client: up.0.load(Ordering::Relaxed),
        to_client: down.0.load(Ordering::Relaxed),
        idle_timeout,
    }
}

/// Runs `work` until it ends (`Some` of its output) or no byte moved for `idle` by `activity`
/// (`None`; `work` is dropped).
async fn until_idle<F: Future>(work: F, activity: &Activity, idle: Duration) -> Option<F::Output> {
    tokio::pin!(work);
    loop {
        let wait = idle.saturating_sub(activity.last().elapsed());
        if wait.is_zero() {
            return None;
        }
        tokio::select! {
            r = &mut work => return Some(r),
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// A connected pair of loopback sockets, for the relay's tests.
#[cfg(test)]
async fn socket_pair() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = tokio::net::TcpStream::connect(l.local_addr().unwrap())
        .await
        .unwrap();
    let (b, _) = l.accept().await.unwrap();
    (a, b)
}

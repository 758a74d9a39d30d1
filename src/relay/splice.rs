//! The zero-copy tunnel relay (Linux): bytes go from one socket into a pipe and from the pipe
//! into the other socket with `splice(2)`, never through waypost's memory.
//!
//! A pipe is held only while bytes move: a direction borrows one from a small shared pool when
//! its socket turns readable and gives it back once the socket has nothing more to read and the
//! pipe is empty again. An idle tunnel therefore costs two sockets and a task, no buffer and no
//! pipe, and ten thousand idle tunnels need no twenty thousand extra descriptors. When no pipe
//! can be had (out of descriptors), that chunk is copied through a small buffer instead.
//!
//! Each direction ends at its reader's end of stream by shutting down the other socket's
//! writing half, as a buffered copy does; an error on either ends both.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use nix::fcntl::{splice, OFlag, SpliceFFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::io::Activity;
use super::raw::RawSide;
use super::{until_idle, RelayEnd};

/// Capacity asked for each pipe, and so the most bytes one `splice` call moves: 64 page slots
/// (the default 16 fill up early when a socket's data sits in small fragments). Memory only
/// while bytes are in the pipe.
const CHUNK: usize = 256 * 1024;
/// `TCP_NOTSENT_LOWAT` on both sockets of a spliced tunnel: a socket counts as writable only
/// while less than this much is queued unsent. Without it the relay fills the receiver's socket
/// as far as the buffers go, and the client (curl over TLS) then spent ~35 % more CPU per
/// 100 MiB than downloading directly; with it, 0.9x direct's (issue 25; 16 to 64 KiB measured
/// alike, 128 KiB and more as without, bench/README.md).
const NOTSENT_LOWAT: u32 = 32 * 1024;
/// Empty pipes kept for the next transfer; more are closed.
const POOL_KEEP: usize = 32;
/// Buffer of the copy used when no pipe can be had.
const FALLBACK_BUF: usize = 16 * 1024;

/// The two ends of a pipe.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

/// The pipes of the relays that use it: empty ones kept for the next transfer (at most
/// [`POOL_KEEP`]), and a count of those held by relays now. Owned by whoever runs relays (the
/// configuration generation, [`crate::app::App`]), not the process.
#[derive(Default)]
pub struct PipePool {
    idle: Mutex<Vec<Pipe>>,
    in_use: AtomicUsize,
}

impl PipePool {
    pub fn new() -> std::sync::Arc<PipePool> {
        std::sync::Arc::default()
    }

    /// Pipes held by relays right now (the idle ones not counted).
    pub fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Relaxed)
    }
}

/// The pipe one direction holds while its bytes move. Given back to the pool only when empty
/// ([`Held::release`]); dropped, it is closed with whatever it still holds.
struct Held<'a> {
    pipe: Option<Pipe>,
    pool: &'a PipePool,
}

impl<'a> Held<'a> {
    fn new(pool: &'a PipePool) -> Self {
        Held { pipe: None, pool }
    }

    /// The held pipe, taken from the pool or made when none is held; `None` when no pipe can
    /// be made (out of descriptors).
    fn get(&mut self) -> Option<&Pipe> {
        if self.pipe.is_none() {
            let pooled = self
                .pool
                .idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop();
            let pipe = match pooled {
                Some(p) => p,
                None => {
                    let (read, write) =
                        nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).ok()?;
                    // at the default size when the system refuses more (pipe-max-size)
                    let _ =
                        nix::fcntl::fcntl(&write, nix::fcntl::FcntlArg::F_SETPIPE_SZ(CHUNK as i32));
                    Pipe { read, write }
                }
            };
            self.pool.in_use.fetch_add(1, Ordering::Relaxed);
            self.pipe = Some(pipe);
        }
        self.pipe.as_ref()
    }

    /// Gives the (empty) pipe back to the pool, or closes it when the pool is full.
    fn release(&mut self) {
        if let Some(p) = self.pipe.take() {
            self.pool.in_use.fetch_sub(1, Ordering::Relaxed);
            let mut pool = self.pool.idle.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < POOL_KEEP {
                pool.push(p);
            }
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if self.pipe.take().is_some() {
            self.pool.in_use.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

fn flags() -> SpliceFFlags {
    SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK
}

fn splice_io(from: impl AsFd, to: impl AsFd, len: usize) -> io::Result<usize> {
    splice(from, None, to, None, len, flags()).map_err(io::Error::from)
}

/// Relays between two sockets until both directions reached their end, one failed, or no
/// byte moved for `idle`.
pub async fn relay(
    mut client: RawSide,
    mut upstream: RawSide,
    idle: Duration,
    pipes: std::sync::Arc<PipePool>,
) -> RelayEnd {
    // the bytes already read go to the pumps, which drop them once sent (they may be a slice
    // of a larger buffer, which the tunnel must not keep for its whole life)
    let (client_first, upstream_first) = (
        std::mem::take(&mut client.pending),
        std::mem::take(&mut upstream.pending),
    );
    tune(&client.tcp);
    tune(&upstream.tcp);
    let activity = Activity::new();
    let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
    let both = async {
        tokio::try_join!(
            pump(
                &client.tcp,
                &upstream.tcp,
                client_first,
                upstream.send_timeout,
                &up,
                &activity,
                &pipes,
            ),
            pump(
                &upstream.tcp,
                &client.tcp,
                upstream_first,
                client.send_timeout,
                &down,
                &activity,
                &pipes,
            ),
        )
    };
    let ended = until_idle(both, &activity, idle).await;
    if let Some(Err(e)) = &ended {
        tracing::debug!(error = %e, "tunnel relay ended with an error");
    }
    let idle_timeout = ended.is_none();
    RelayEnd {
        from_client: up.load(Ordering::Relaxed),
        to_client: down.load(Ordering::Relaxed),
        idle_timeout,
    }
}

/// Sets [`NOTSENT_LOWAT`] on a relayed socket (a tuning only: a socket that refuses it relays
/// as before).
fn tune(tcp: &TcpStream) {
    let _ = socket2::SockRef::from(tcp).set_tcp_notsent_lowat(NOTSENT_LOWAT);
}

/// Moves `src`'s bytes to `dst` (after `first`, bytes already read from `src`) until `src`
/// ends, then shuts down `dst`'s writing half.
async fn pump(
    src: &TcpStream,
    dst: &TcpStream,
    first: Bytes,
    stall: Option<Duration>,
    moved: &AtomicU64,
    activity: &Activity,
    pipes: &PipePool,
) -> io::Result<()> {
    if !first.is_empty() {
        write_all(dst, &first, stall).await?;
        moved.fetch_add(first.len() as u64, Ordering::Relaxed);
        activity.touch();
    }
    drop(first);
    let mut held = Held::new(pipes);
    loop {
        src.readable().await?;
        let Some(pipe) = held.get() else {
            // no pipe to be had: this chunk goes through a buffer
            match copy_chunk(src, dst, stall).await? {
                0 => break,
                n => {
                    moved.fetch_add(n as u64, Ordering::Relaxed);
                    activity.touch();
                    continue;
                }
            }
        };
        let n = match src.try_io(Interest::READABLE, || splice_io(src, &pipe.write, CHUNK)) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // nothing more to read for now: the (empty) pipe goes back while we wait
                held.release();
                continue;
            }
            Err(e) => return Err(e),
        };
        moved.fetch_add(n as u64, Ordering::Relaxed);
        activity.touch();
        let mut left = n;
        while left > 0 {
            writable(dst, stall).await?;
            match dst.try_io(Interest::WRITABLE, || splice_io(&pipe.read, dst, left)) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(m) => left -= m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // `held` is dropped, not pooled: the pipe may still hold bytes
                Err(e) => return Err(e),
            }
        }
    }
    held.release();
    match socket2::SockRef::from(dst).shutdown(std::net::Shutdown::Write) {
        Err(e) if e.kind() != io::ErrorKind::NotConnected => Err(e),
        _ => Ok(()),
    }
}

/// Waits until `dst` takes bytes, failing after `stall` without progress.
async fn writable(dst: &TcpStream, stall: Option<Duration>) -> io::Result<()> {
    match stall {
        None => dst.writable().await,
        Some(t) => tokio::time::timeout(t, dst.writable())
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "send timeout"))?,
    }
}

async fn write_all(dst: &TcpStream, mut bytes: &[u8], stall: Option<Duration>) -> io::Result<()> {
    while !bytes.is_empty() {
        writable(dst, stall).await?;
        match dst.try_write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One read through a buffer and its write; 0 at the end of `src`.
async fn copy_chunk(
    src: &TcpStream,
    dst: &TcpStream,
    stall: Option<Duration>,
) -> io::Result<usize> {
    let mut buf = vec![0u8; FALLBACK_BUF];
    loop {
        match src.try_read(&mut buf) {
            Ok(n) => {
                write_all(dst, &buf[..n], stall).await?;
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => src.readable().await?,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// (the end a test drives, the end the relay gets)
    use super::super::socket_pair as pair;

    fn side(tcp: TcpStream, pending: &'static [u8]) -> RawSide {
        RawSide {
            live: None,
            tcp,
            pending: Bytes::from_static(pending),
            send_timeout: Some(Duration::from_secs(10)),
        }
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect()
    }

    async fn read_to_end(mut s: impl AsyncReadExt + Unpin) -> Vec<u8> {
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut got))
            .await
            .expect("the stream ends in time")
            .unwrap();
        got
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bytes_cross_both_ways_at_once_in_order_and_are_counted() {
        let pipes = PipePool::new();
        let (client, client_end) = pair().await;
        let (upstream, upstream_end) = pair().await;
        let relay = tokio::spawn(relay(
            side(client_end, b"early "),
            side(upstream_end, b""),
            Duration::from_secs(30),
            pipes.clone(),
        ));
        let up_bytes = pattern(6 << 20, 1);
        let down_bytes = pattern(5 << 20, 2);
        let (cr, mut cw) = client.into_split();
        let (ur, mut uw) = upstream.into_split();
        let (u, d) = (up_bytes.clone(), down_bytes.clone());
        let writers = tokio::spawn(async move {
            tokio::join!(
                async {
                    cw.write_all(&u).await.unwrap();
                    cw.shutdown().await.unwrap();
                },
                async {
                    uw.write_all(&d).await.unwrap();
                    uw.shutdown().await.unwrap();
                }
            );
        });
        let (at_upstream, at_client) = tokio::join!(read_to_end(ur), read_to_end(cr));
        writers.await.unwrap();
        assert_eq!(&at_upstream[..6], b"early ");
        assert!(
            at_upstream[6..] == up_bytes[..],
            "client -> upstream bytes differ"
        );
        assert!(at_client == down_bytes, "upstream -> client bytes differ");
        let end = relay.await.unwrap();
        assert_eq!(end.from_client, 6 + (6 << 20));
        assert_eq!(end.to_client, 5 << 20);
        assert!(!end.idle_timeout);
        assert_eq!(pipes.in_use(), 0, "a finished relay gave its pipes back");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_half_close_is_passed_on_and_the_answer_still_arrives() {
        let pipes = PipePool::new();
        let (mut client, client_end) = pair().await;
        let (mut upstream, upstream_end) = pair().await;
        let relay = tokio::spawn(relay(
            side(client_end, b""),
            side(upstream_end, b""),
            Duration::from_secs(30),
            pipes.clone(),
        ));
        client.write_all(b"question").await.unwrap();
        client.shutdown().await.unwrap();
        // the upstream sees the question and then the end of it
        let mut asked = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), upstream.read_to_end(&mut asked))
            .await
            .expect("the half-close reached the upstream")
            .unwrap();
        assert_eq!(asked, b"question");
        upstream.write_all(b"answer").await.unwrap();
        drop(upstream);
        assert_eq!(read_to_end(client).await, b"answer");
        let end = relay.await.unwrap();
        assert_eq!((end.from_client, end.to_client), (8, 6));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_quiet_tunnel_holds_no_pipe() {
        let pipes = PipePool::new();
        let mut tunnels = Vec::new();
        for _ in 0..20 {
            let (mut client, client_end) = pair().await;
            let (mut upstream, upstream_end) = pair().await;
            tokio::spawn(relay(
                side(client_end, b""),
                side(upstream_end, b""),
                Duration::from_secs(60),
                pipes.clone(),
            ));
            client.write_all(&[7u8; 100_000]).await.unwrap();
            let mut got = vec![0u8; 100_000];
            upstream.read_exact(&mut got).await.unwrap();
            upstream.write_all(b"pong").await.unwrap();
            let mut pong = [0u8; 4];
            client.read_exact(&mut pong).await.unwrap();
            tunnels.push((client, upstream));
        }
        // every direction has read all there was and gone back to waiting for its socket
        waypost_testsupport::eventually(
            Duration::from_secs(10),
            || async { pipes.in_use() },
            |n| *n == 0,
        )
        .await;
        // and a quiet tunnel still carries bytes when they come
        let (client, upstream) = &mut tunnels[7];
        client.write_all(b"again").await.unwrap();
        let mut got = [0u8; 5];
        upstream.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"again");
    }

    #[tokio::test]
    async fn a_relayed_socket_wakes_its_writer_only_below_the_unsent_low_mark() {
        let (_a, b) = pair().await;
        tune(&b);
        let lowat = socket2::SockRef::from(&b).tcp_notsent_lowat().unwrap();
        assert_eq!(lowat, NOTSENT_LOWAT);
    }

    #[tokio::test]
    async fn the_buffered_fallback_moves_a_chunk_and_sees_the_end() {
        let (mut a, a_end) = pair().await;
        let (b_end, mut b) = pair().await;
        a.write_all(b"no pipe").await.unwrap();
        let n = copy_chunk(&a_end, &b_end, None).await.unwrap();
        assert_eq!(n, 7);
        let mut got = [0u8; 7];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"no pipe");
        drop(a);
        assert_eq!(copy_chunk(&a_end, &b_end, None).await.unwrap(), 0);
    }
}

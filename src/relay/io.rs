//! Stream wrappers for the relay and the tunnel edge: [`Rewind`] replays bytes already read
//! from a stream before the rest of it; [`Counted`] counts the bytes moved each way into a
//! [`Tally`] (a relay's counters, an access record) and notes when a byte last moved
//! ([`Activity`], the idle clock). They only move bytes and count; they decide nothing.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// A stream that yields `prefix` first, then whatever `inner` yields; writes go to `inner`.
pub struct Rewind<T> {
    prefix: Bytes,
    inner: T,
}

impl<T> Rewind<T> {
    pub fn new(prefix: impl Into<Bytes>, inner: T) -> Self {
        Rewind {
            prefix: prefix.into(),
            inner,
        }
    }

    /// The bytes not replayed yet, and the stream.
    pub fn into_parts(self) -> (Bytes, T) {
        (self.prefix, self.inner)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.has_remaining() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// When a byte last moved on a stream (tokio time, so paused-time tests work).
pub struct Activity {
    epoch: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
        })
    }

    /// Notes that a byte moved now.
    pub fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// The instant of the last byte (or of creation).
    pub fn last(&self) -> Instant {
        self.epoch + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// Where [`Counted`] adds the bytes it sees: read from the wrapped stream, written to it.
pub trait Tally: Send + Sync {
    fn read(&self, n: u64);
    fn written(&self, n: u64);
}

/// Bytes read, the one count a relay keeps per side.
#[derive(Default)]
pub struct ReadBytes(pub AtomicU64);

impl Tally for ReadBytes {
    fn read(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    fn written(&self, _n: u64) {}
}

/// A stream that counts the bytes moved into `tally` and touches `activity` when it reads.
pub struct Counted<T, C: ?Sized> {
    inner: T,
    tally: Arc<C>,
    activity: Arc<Activity>,
}

impl<T, C: Tally + ?Sized> Counted<T, C> {
    pub fn new(inner: T, tally: Arc<C>, activity: Arc<Activity>) -> Self {
        Counted {
            inner,
            tally,
            activity,
        }
    }
}

impl<T: AsyncRead + Unpin, C: Tally + ?Sized> AsyncRead for Counted<T, C> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before) as u64;
        if n > 0 {
            self.tally.read(n);
            self.activity.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin, C: Tally + ?Sized> AsyncWrite for Counted<T, C> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            self.tally.written(*n as u64);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn rewind_replays_the_peeked_bytes_before_the_rest() {
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(b" world").await.unwrap();
        drop(a);
        let mut r = Rewind::new(&b"hello"[..], b);
        let mut out = String::new();
        r.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "hello world");
    }

    #[tokio::test]
    async fn rewind_hands_out_a_long_prefix_in_pieces_the_reader_can_hold() {
        let (_a, b) = tokio::io::duplex(64);
        let mut r = Rewind::new(vec![7u8; 10], b);
        let mut small = [0u8; 4];
        assert_eq!(r.read(&mut small).await.unwrap(), 4);
        assert_eq!(r.read(&mut small).await.unwrap(), 4);
        assert_eq!(r.read(&mut small).await.unwrap(), 2);
    }
}

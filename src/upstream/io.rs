//! The upstream byte stream: plain TCP or TLS, behind one boxed type, with a send timeout.
//!
//! [`SendTimeout`] fails a write that makes no progress for the configured send timeout (the
//! peer stopped reading), which is WinHTTP's send timeout. Reads are bounded elsewhere (response
//! header and body timeouts) so that idle pooled connections are not killed by them.

use std::any::Any;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

pub trait AsyncIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {
    /// The concrete stream, for finding the socket under it (the zero-copy tunnel relay).
    fn as_any(&self) -> &dyn Any;
    /// The concrete stream, owned (see [`AsyncIo::as_any`]).
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> AsyncIo for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}

/// A boxed upstream stream.
pub type BoxIo = Box<dyn AsyncIo>;

pub struct SendTimeout<T> {
    /// The socket's registration for network changes ([`super::live`]): declared before
    /// `inner`, so it is dropped before the socket closes.
    live: Option<super::live::Registered>,
    inner: T,
    timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> SendTimeout<T> {
    pub fn new(inner: T, timeout: Duration) -> Self {
        SendTimeout {
            live: None,
            inner,
            timeout,
            stalled: None,
        }
    }

    /// With the registration of the socket under `inner`.
    pub fn with_live(mut self, live: Option<super::live::Registered>) -> Self {
        self.live = live;
        self
    }

    /// The stream, its send timeout and its registration (keep it while the stream lives).
    pub fn into_parts(self) -> (T, Duration, Option<super::live::Registered>) {
        (self.inner, self.timeout, self.live)
    }

    fn check<R>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match r {
            Poll::Pending => {
                let timeout = self.timeout;
                let sleep = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "send timeout",
                    )));
                }
                Poll::Pending
            }
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}

use std::future::Future;

impl<T: AsyncRead + Unpin> AsyncRead for SendTimeout<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for SendTimeout<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.check(cx, r)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.check(cx, r)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.check(cx, r)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

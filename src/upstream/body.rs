//! The response body handed to the client: streams the upstream body frame by frame, enforces
//! the receive timeout between frames, and gives the connection back to the pool at the end.
//!
//! If the client goes away before the end, the rest is drained in the background when it is at
//! most `max_response_drain_size` bytes (WinHTTP's MAX_RESPONSE_DRAIN_SIZE), so the connection
//! can be reused; otherwise the connection is closed.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::Sleep;

use super::pool::Pooled;
use crate::body::BoxError;
use crate::metrics::Metrics;

pub struct ResponseBody {
    inner: Option<Incoming>,
    pooled: Option<Pooled>,
    receive_timeout: Duration,
    idle: Option<Pin<Box<Sleep>>>,
    drain_limit: u64,
    metrics: Arc<Metrics>,
}

impl ResponseBody {
    pub fn new(
        inner: Incoming,
        pooled: Option<Pooled>,
        receive_timeout: Duration,
        drain_limit: u64,
        metrics: Arc<Metrics>,
    ) -> Self {
        ResponseBody {
            inner: Some(inner),
            pooled,
            receive_timeout,
            idle: None,
            drain_limit,
            metrics,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("upstream sent no data for {0:?} (receive timeout)")]
pub struct ReceiveTimeout(Duration);

impl HttpBody for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Pending => {
                let t = this.receive_timeout;
                let sleep = this
                    .idle
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(t)));
                if sleep.as_mut().poll(cx).is_ready() {
                    this.inner = None;
                    this.pooled = None; // closes the connection
                    return Poll::Ready(Some(Err(Box::new(ReceiveTimeout(t)))));
                }
                Poll::Pending
            }
            Poll::Ready(Some(Ok(frame))) => {
                this.idle = None;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.inner = None;
                this.pooled = None;
                Poll::Ready(Some(Err(Box::new(e))))
            }
            Poll::Ready(None) => {
                this.inner = None;
                if let Some(p) = this.pooled.take() {
                    p.release();
                }
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner
            .as_ref()
            .map(|i| i.is_end_stream())
            .unwrap_or(true)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map(|i| i.size_hint())
            .unwrap_or_else(|| SizeHint::with_exact(0))
    }
}

use std::future::Future;

impl Drop for ResponseBody {
    fn drop(&mut self) {
        let (Some(inner), Some(pooled)) = (self.inner.take(), self.pooled.take()) else {
            return;
        };
        if inner.is_end_stream() {
            pooled.release();
            return;
        }
        let limit = self.drain_limit;
        if limit == 0 || inner.size_hint().lower() > limit {
            return; // dropping `pooled` closes the connection
        }
        let metrics = self.metrics.clone();
        let timeout = self.receive_timeout;
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        tokio::spawn(async move {
            let label = pooled.key().label().to_string();
            match tokio::time::timeout(timeout, drain(inner, limit)).await {
                Ok(Some(n)) => {
                    metrics
                        .pool_drained_bytes
                        .with_label_values(&[&label])
                        .inc_by(n);
                    pooled.release();
                }
                _ => drop(pooled),
            }
        });
    }
}

/// Reads a body to its end if it is at most `limit` bytes; the byte count, or None.
async fn drain(mut body: Incoming, limit: u64) -> Option<u64> {
    use http_body_util::BodyExt;
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.ok()?;
        if let Some(d) = frame.data_ref() {
            n += d.len() as u64;
            if n > limit {
                return None;
            }
        }
    }
    Some(n)
}

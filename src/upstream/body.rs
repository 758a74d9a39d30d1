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
#[error("upstream sent no data for {0:?} (timeouts.relay_read)")]
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body_util::BodyExt;
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// An origin on an in-memory pipe that sends one event, pauses `gap`, sends another and
    /// ends; returns what the client read through a [`ResponseBody`] with `relay_read`.
    async fn events_with_a_pause(gap: Duration, relay_read: Duration) -> Result<String, String> {
        let (client_io, mut origin_io) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            let mut head = [0u8; 1024];
            let _ = origin_io.read(&mut head).await;
            let _ = origin_io
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n9\r\ndata: 0\n\n\r\n")
                .await;
            tokio::time::sleep(gap).await;
            let _ = origin_io.write_all(b"9\r\ndata: 1\n\n\r\n0\r\n\r\n").await;
            let _ = origin_io.flush().await;
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, crate::body::Body>(TokioIo::new(client_io))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = http::Request::get("/events")
            .header("host", "origin.test")
            .body(crate::body::empty())
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let body = ResponseBody::new(
            resp.into_body(),
            None,
            relay_read,
            0,
            Arc::new(Metrics::new()),
        );
        let mut got = String::new();
        let mut body = std::pin::pin!(body);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("after {got:?}: {e}"))?;
            if let Some(d) = frame.data_ref() {
                got.push_str(&String::from_utf8_lossy(d));
            }
        }
        Ok(got)
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_stream_pausing_five_minutes_arrives_whole_with_the_default_relay_timeout() {
        let defaults = crate::config::validate(
            &crate::config::raw::RawConfig::default(),
            &std::collections::HashMap::new(),
        )
        .expect("the defaults are valid");
        let got = events_with_a_pause(Duration::from_secs(300), defaults.timeouts.relay_read).await;
        assert_eq!(got.as_deref(), Ok("data: 0\n\ndata: 1\n\n"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_relayed_body_pausing_longer_than_relay_read_is_cut() {
        let got =
            events_with_a_pause(Duration::from_secs(16 * 60), Duration::from_secs(15 * 60)).await;
        let err = got.expect_err("the pause is longer than relay_read");
        assert!(err.contains("relay_read"), "{err}");
    }
}

//! The access log: one line per request or tunnel, written when it ends.
//!
//! An [`Access`] record travels with the request (inside the bodies or the tunnel task); when the
//! last holder drops it, one `waypost::access` line is emitted with client, method, target
//! (`host:port` only, never the path's query or any credentials), route, status, bytes and
//! duration, and the request metrics are updated.
//!
//! Each record has a request id (see [`RequestId`]): sent to the client as `X-Request-Id`, in
//! the access line and the failure line, and on the status page, so a user can quote it.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::Instant;

use crate::body::BoxError;
use crate::metrics::Metrics;

pub struct Access {
    pub id: RequestId,
    pub client: SocketAddr,
    pub method: String,
    pub target: String,
    pub kind: &'static str,
    pub started: Instant,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    outcome: Mutex<(u16, String, &'static str)>,
    metrics: Arc<Metrics>,
    enabled: bool,
}

impl Access {
    pub fn new(
        id: RequestId,
        client: SocketAddr,
        method: &str,
        target: String,
        kind: &'static str,
        metrics: Arc<Metrics>,
        enabled: bool,
    ) -> Arc<Access> {
        Arc::new(Access {
            id,
            client,
            method: method.to_string(),
            target,
            kind,
            started: Instant::now(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            outcome: Mutex::new((0, "-".into(), "ok")),
            metrics,
            enabled,
        })
    }

    /// Records the final status, the hop used and the outcome code (`ok` or an error code).
    pub fn finish(&self, status: u16, route: String, outcome: &'static str) {
        let mut o = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
        *o = (status, route, outcome);
    }
}

impl Drop for Access {
    fn drop(&mut self) {
        let (status, route, outcome) = self
            .outcome
            .get_mut()
            .map(|o| o.clone())
            .unwrap_or_else(|p| p.into_inner().clone());
        let bytes_in = self.bytes_in.load(Ordering::Relaxed);
        let bytes_out = self.bytes_out.load(Ordering::Relaxed);
        let m = &self.metrics;
        m.requests.with_label_values(&[self.kind, outcome]).inc();
        m.bytes
            .with_label_values(&[self.kind, "in"])
            .inc_by(bytes_in);
        m.bytes
            .with_label_values(&[self.kind, "out"])
            .inc_by(bytes_out);
        if self.kind != "http" {
            m.request_seconds
                .with_label_values(&[self.kind])
                .observe(self.started.elapsed().as_secs_f64());
        }
        if let Some(upstream) = upstream_label(&route) {
            let ok = if outcome == "ok" { "ok" } else { "error" };
            m.upstream_requests.with_label_values(&[upstream, ok]).inc();
        }
        let duration_ms = self.started.elapsed().as_millis() as u64;
        m.activity.record(crate::activity::RecentRequest {
            id: self.id.to_string(),
            at: crate::activity::unix(std::time::SystemTime::now()),
            kind: self.kind,
            method: self.method.clone(),
            target: self.target.clone(),
            route: route.clone(),
            status,
            outcome,
            duration_ms,
        });
        if self.enabled {
            tracing::info!(
                target: "waypost::access",
                request_id = %self.id,
                client = %self.client,
                method = %self.method,
                target = %self.target,
                route = %route,
                status,
                outcome,
                bytes_in,
                bytes_out,
                duration_ms,
                "access"
            );
        }
    }
}

/// The `upstream` label of a route as the access record has it (`DIRECT`, a proxy URL, or `-`
/// when no hop was reached): the pool's label, `direct` or the proxy's `host:port`.
fn upstream_label(route: &str) -> Option<&str> {
    match route {
        "-" | "" => None,
        "DIRECT" => Some("direct"),
        r => Some(r.split_once("://").map(|(_, a)| a).unwrap_or(r)),
    }
}

/// A request's id: the client's own `X-Request-Id` when it sent a sane one (so ids can be
/// followed across tools), else a new one unique in this process (16 hex digits: a random
/// per-process prefix and a counter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(Arc<str>);

impl RequestId {
    pub fn new(from_client: Option<&http::HeaderValue>) -> RequestId {
        use std::sync::OnceLock;
        static PREFIX: OnceLock<u32> = OnceLock::new();
        static NEXT: AtomicU64 = AtomicU64::new(1);
        if let Some(v) = from_client.and_then(|v| v.to_str().ok()) {
            let v = v.trim();
            let sane = !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
            if sane {
                return RequestId(Arc::from(v));
            }
        }
        let prefix = *PREFIX.get_or_init(|| {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u32(std::process::id());
            h.finish() as u32
        });
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        RequestId(Arc::from(format!("{prefix:08x}{:08x}", n as u32)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A body wrapper that counts data bytes into the access record and keeps it alive.
pub struct Counted<B> {
    inner: B,
    access: Arc<Access>,
    inbound: bool,
}

impl<B> Counted<B> {
    /// `inbound`: bytes from the client (request body) rather than to it.
    pub fn new(inner: B, access: Arc<Access>, inbound: bool) -> Self {
        Counted {
            inner,
            access,
            inbound,
        }
    }
}

impl<B> HttpBody for Counted<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    let c = if this.inbound {
                        &this.access.bytes_in
                    } else {
                        &this.access.bytes_out
                    };
                    c.fetch_add(d.len() as u64, Ordering::Relaxed);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request target for logs and spans: scheme and `host:port` (never userinfo, path or query);
/// for origin-form requests to the admin surface, the path alone.
pub fn redacted_uri(uri: &http::Uri) -> String {
    let Some(a) = uri.authority() else {
        return uri.path().to_string();
    };
    let host_port = match a.port_u16() {
        Some(p) => format!("{}:{p}", a.host()),
        None => a.host().to_string(),
    };
    match uri.scheme_str() {
        Some(s) => format!("{s}://{host_port}"),
        None => host_port,
    }
}

/// An intercepted tunnel's encrypted bytes count into its access record: read from the client
/// in, written to it out.
impl crate::relay::io::Tally for Access {
    fn read(&self, n: u64) {
        self.bytes_in.fetch_add(n, Ordering::Relaxed);
    }
    fn written(&self, n: u64) {
        self.bytes_out.fetch_add(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_unique_and_a_sane_client_id_is_kept() {
        let a = RequestId::new(None);
        let b = RequestId::new(None);
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 16);
        let theirs = http::HeaderValue::from_static("trace-42.a_b");
        assert_eq!(RequestId::new(Some(&theirs)).as_str(), "trace-42.a_b");
        let odd = http::HeaderValue::from_static("a b<script>");
        assert_ne!(RequestId::new(Some(&odd)).as_str(), "a b<script>");
    }

    #[test]
    fn upstream_labels_match_the_pool_labels() {
        assert_eq!(upstream_label("DIRECT"), Some("direct"));
        assert_eq!(upstream_label("http://proxy:3128"), Some("proxy:3128"));
        assert_eq!(upstream_label("-"), None);
    }
}

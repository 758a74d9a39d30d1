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
        let (status, route, outcome) = std::mem::replace(
            self.outcome.get_mut().unwrap_or_else(|p| p.into_inner()),
            (0, String::new(), "ok"),
        );
        let bytes_in = self.bytes_in.load(Ordering::Relaxed);
        let bytes_out = self.bytes_out.load(Ordering::Relaxed);
        let elapsed = self.started.elapsed();
        let m = &self.metrics;
        m.observe_request(self.kind, outcome, bytes_in, bytes_out);
        if self.kind != "http" {
            m.observe_request_seconds(self.kind, elapsed.as_secs_f64());
        }
        if let Some(upstream) = upstream_label(&route) {
            let ok = if outcome == "ok" { "ok" } else { "error" };
            m.upstream_requests.with_label_values(&[upstream, ok]).inc();
        }
        let duration_ms = elapsed.as_millis() as u64;
        if self.enabled {
            let line = Line {
                id: &self.id,
                client: self.client,
                method: &self.method,
                target: &self.target,
                route: &route,
                status,
                outcome,
                bytes_in,
                bytes_out,
                duration_ms,
            };
            line.log();
        }
        // the record is ending: its strings move to the status page's list
        m.activity.record(crate::activity::RecentRequest {
            id: self.id.to_string(),
            at: crate::activity::unix(std::time::SystemTime::now()),
            kind: self.kind,
            method: std::mem::take(&mut self.method),
            target: std::mem::take(&mut self.target),
            route,
            status,
            outcome,
            duration_ms,
        });
    }
}

/// One access line's values.
struct Line<'a> {
    id: &'a RequestId,
    client: SocketAddr,
    method: &'a str,
    target: &'a str,
    route: &'a str,
    status: u16,
    outcome: &'static str,
    bytes_in: u64,
    bytes_out: u64,
    duration_ms: u64,
}

impl Line<'_> {
    /// Emits the line: as fields for JSON, or, for text lines ([`crate::logging::plain_text`]),
    /// as one message formatted in one pass, the same text the fields would give.
    fn log(&self) {
        if crate::logging::plain_text() {
            tracing::info!(target: "waypost::access", "{self}");
            return;
        }
        tracing::info!(
            target: "waypost::access",
            request_id = %self.id,
            client = %self.client,
            method = %self.method,
            target = %self.target,
            route = %self.route,
            status = self.status,
            outcome = self.outcome,
            bytes_in = self.bytes_in,
            bytes_out = self.bytes_out,
            duration_ms = self.duration_ms,
            "access"
        );
    }
}

/// The text of an access line: its message and fields as tracing's text format writes them
/// (`key=value`, a string field quoted).
impl std::fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "access request_id={} client={} method={} target={} route={} status={} outcome={:?} bytes_in={} bytes_out={} duration_ms={}",
            self.id,
            self.client,
            self.method,
            self.target,
            self.route,
            self.status,
            self.outcome,
            self.bytes_in,
            self.bytes_out,
            self.duration_ms
        )
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
    RedactedUri(uri).to_string()
}

/// [`redacted_uri`] written straight into a formatter (a span's field: no string of its own).
pub struct RedactedUri<'a>(pub &'a http::Uri);

impl std::fmt::Display for RedactedUri<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let uri = self.0;
        let Some(a) = uri.authority() else {
            return f.write_str(uri.path());
        };
        if let Some(s) = uri.scheme_str() {
            write!(f, "{s}://")?;
        }
        f.write_str(a.host())?;
        match a.port_u16() {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        }
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

    /// The text subscriber's own rendering of the access line's fields, to hold the one-pass
    /// message to.
    fn fields_as_text(line: &Line) -> String {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Out(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Out {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let out = Out::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .with_level(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || line.log());
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        text.trim_end().to_string()
    }

    #[test]
    fn the_one_pass_access_line_reads_as_the_fields_would() {
        let id = RequestId::new(None);
        let line = Line {
            id: &id,
            client: "127.0.0.1:5555".parse().unwrap(),
            method: "GET",
            target: "http://example.test:80",
            route: "http://proxy:3128",
            status: 502,
            outcome: "proxy-connect-refused",
            bytes_in: 12,
            bytes_out: 3456,
            duration_ms: 7,
        };
        // `plain_text()` is false in tests (no subscriber installed by `init`): fields
        assert!(!crate::logging::plain_text());
        assert_eq!(line.to_string(), fields_as_text(&line));
        assert!(line
            .to_string()
            .contains(r#"outcome="proxy-connect-refused""#));
    }

    #[test]
    fn redacted_uris_keep_scheme_host_and_port_only() {
        let cases = [
            (
                "http://user:pw@example.test:8080/p?q=1",
                "http://example.test:8080",
            ),
            ("http://example.test/p", "http://example.test"),
            ("example.test:443", "example.test:443"),
            ("/metrics?x", "/metrics"),
        ];
        for (uri, shown) in cases {
            assert_eq!(redacted_uri(&uri.parse().unwrap()), shown, "{uri}");
        }
    }

    #[test]
    fn upstream_labels_match_the_pool_labels() {
        assert_eq!(upstream_label("DIRECT"), Some("direct"));
        assert_eq!(upstream_label("http://proxy:3128"), Some("proxy:3128"));
        assert_eq!(upstream_label("-"), None);
    }
}

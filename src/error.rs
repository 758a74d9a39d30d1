//! The proxy's error type and the one place that turns an error into a response.
//!
//! Every failure on the request path becomes a [`ProxyError`]: a closed [`ErrorKind`] that knows
//! who is to blame (the client, the upstream side, or waypost itself), plus a short detail for the
//! log and the response body. [`rescue`] maps it to a status and an `X-Waypost-Error` header; no
//! other code picks error status codes. Details never contain credentials: callers pass host
//! names, addresses and reasons only.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::body::Body;

/// The name of the header that carries the error kind to the client.
pub const ERROR_HEADER: &str = "x-waypost-error";

/// Who caused a failure; decides 4xx versus 5xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    Client,
    Upstream,
    Internal,
}

/// Every way a request can fail, as a closed set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request cannot be understood (bad target, bad header, ...).
    BadRequest,
    /// The URL carries `user:pass@` and `reject_userpwd_in_url` is on.
    UserPwdInUrl,
    /// The client's address is outside the `allow` list (or `admin_allow`), or it asked an
    /// admin listener to proxy; the connection is closed after the answer.
    Forbidden,
    /// The proxy itself requires client credentials (sidecar mode) and none or wrong were given.
    ClientAuthRequired,
    /// The CONNECT port or target is not permitted.
    TargetNotAllowed,
    /// An admin path asked with a Host that is not `localhost` or an IP literal (DNS
    /// rebinding).
    AdminRefused,
    /// An admin path needs the `client_auth` credentials (401 with `WWW-Authenticate`).
    AdminAuthRequired,
    /// The client's request head is larger than `limits.max_request_header_size`.
    RequestHeadersTooLarge,
    /// The request uses a transfer coding other than `chunked` (e.g. `gzip, chunked`).
    UnsupportedTransferCoding,
    /// The client sent its request body slower than `limits.min_request_body_rate` after the
    /// grace period (408; the client connection is closed).
    RequestBodyTooSlow,
    /// The upstream side framed its response ambiguously (`Content-Length` with chunked).
    BadUpstreamFraming,
    /// Name resolution failed (no such host).
    Dns,
    /// Name resolution took longer than the resolve timeout.
    DnsTimeout,
    /// Every attempted address refused the connection.
    ConnectRefused,
    /// Connecting took longer than the connect timeout.
    ConnectTimeout,
    /// Another socket error while connecting (unreachable network, ...).
    ConnectFailed,
    /// Waiting for a free connection slot (max_conns_per_server) took too long.
    PoolTimeout,
    /// Writing the request upstream stalled beyond the send timeout.
    SendTimeout,
    /// No response headers within the receive-response timeout.
    ResponseTimeout,
    /// The upstream side sent headers larger than max_response_header_size.
    ResponseHeadersTooLarge,
    /// The upstream side closed or broke the connection before a complete response.
    UpstreamClosed,
    /// The upstream proxy refused a CONNECT with this status.
    ProxyConnect(u16),
    /// The upstream proxy rejected our credentials (its 407 is relayed as 407).
    AuthRejected,
    /// Credentials were not sent to the upstream proxy, for the reason named by the code
    /// (`auth-basic-cleartext-refused`, `auth-policy-refused`); its 407 is relayed.
    AuthNotSent(&'static str),
    /// A proxy named by the network (WPAD, `http://` PAC) on a network that has not proven
    /// itself asked for credentials; none were sent and its page is not relayed (502).
    UntrustedProxy,
    /// TLS to the upstream failed; the string is the kind (`tls-unknown-ca`, ...).
    Tls(&'static str),
    /// No PAC script could be obtained and `pac_mandatory` is set.
    PacUnavailable,
    /// The request came back to this waypost (its own address as a hop, or its Via token).
    Loop,
    /// `max_client_connections` (or the admin listener's limit) is reached.
    TooManyConnections,
    /// A bug or resource exhaustion inside waypost.
    Internal,
}

impl ErrorKind {
    /// The stable identifier sent in `X-Waypost-Error` and used as a metric label.
    pub fn code(&self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad-request",
            ErrorKind::UserPwdInUrl => "userpwd-in-url",
            ErrorKind::Forbidden => "client-not-allowed",
            ErrorKind::ClientAuthRequired => "client-auth-required",
            ErrorKind::TargetNotAllowed => "target-not-allowed",
            ErrorKind::AdminRefused => "admin-refused",
            ErrorKind::AdminAuthRequired => "admin-auth-required",
            ErrorKind::RequestHeadersTooLarge => "request-headers-too-large",
            ErrorKind::UnsupportedTransferCoding => "unsupported-transfer-coding",
            ErrorKind::RequestBodyTooSlow => "request-body-too-slow",
            ErrorKind::BadUpstreamFraming => "bad-upstream-framing",
            ErrorKind::Dns => "dns",
            ErrorKind::DnsTimeout => "dns-timeout",
            ErrorKind::ConnectRefused => "connect-refused",
            ErrorKind::ConnectTimeout => "connect-timeout",
            ErrorKind::ConnectFailed => "connect-failed",
            ErrorKind::PoolTimeout => "pool-timeout",
            ErrorKind::SendTimeout => "send-timeout",
            ErrorKind::ResponseTimeout => "response-timeout",
            ErrorKind::ResponseHeadersTooLarge => "response-headers-too-large",
            ErrorKind::UpstreamClosed => "upstream-closed",
            ErrorKind::ProxyConnect(_) => "proxy-connect-refused",
            ErrorKind::AuthRejected => "auth-rejected",
            ErrorKind::AuthNotSent(code) => code,
            ErrorKind::UntrustedProxy => "auth-untrusted-proxy",
            ErrorKind::Tls(kind) => kind,
            ErrorKind::PacUnavailable => "pac-unavailable",
            ErrorKind::Loop => "loop",
            ErrorKind::TooManyConnections => "too-many-connections",
            ErrorKind::Internal => "internal",
        }
    }

    pub fn blame(&self) -> Blame {
        match self {
            ErrorKind::BadRequest
            | ErrorKind::UserPwdInUrl
            | ErrorKind::Forbidden
            | ErrorKind::ClientAuthRequired
            | ErrorKind::TargetNotAllowed
            | ErrorKind::AdminRefused
            | ErrorKind::AdminAuthRequired
            | ErrorKind::RequestHeadersTooLarge
            | ErrorKind::UnsupportedTransferCoding
            | ErrorKind::RequestBodyTooSlow => Blame::Client,
            ErrorKind::Internal | ErrorKind::Loop | ErrorKind::TooManyConnections => {
                Blame::Internal
            }
            _ => Blame::Upstream,
        }
    }

    /// Whether trying the next hop of a route could help (connect-phase failures only).
    pub fn is_connect_phase(&self) -> bool {
        matches!(
            self,
            ErrorKind::Dns
                | ErrorKind::DnsTimeout
                | ErrorKind::ConnectRefused
                | ErrorKind::ConnectTimeout
                | ErrorKind::ConnectFailed
                | ErrorKind::Tls(_)
                | ErrorKind::Loop
        ) || matches!(self, ErrorKind::ProxyConnect(s) if *s >= 500)
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ErrorKind::BadRequest | ErrorKind::UserPwdInUrl => StatusCode::BAD_REQUEST,
            ErrorKind::Forbidden | ErrorKind::TargetNotAllowed | ErrorKind::AdminRefused => {
                StatusCode::FORBIDDEN
            }
            ErrorKind::AdminAuthRequired => StatusCode::UNAUTHORIZED,
            ErrorKind::RequestHeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorKind::UnsupportedTransferCoding => StatusCode::NOT_IMPLEMENTED,
            ErrorKind::RequestBodyTooSlow => StatusCode::REQUEST_TIMEOUT,
            ErrorKind::ClientAuthRequired | ErrorKind::AuthRejected | ErrorKind::AuthNotSent(_) => {
                StatusCode::PROXY_AUTHENTICATION_REQUIRED
            }
            ErrorKind::ConnectTimeout
            | ErrorKind::DnsTimeout
            | ErrorKind::SendTimeout
            | ErrorKind::ResponseTimeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::PoolTimeout | ErrorKind::TooManyConnections => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ErrorKind::Loop => StatusCode::LOOP_DETECTED,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}

/// A failure on the request path: what went wrong, a short, credential-free detail, the
/// underlying cause (never repeated in `Display`), and, when an upstream proxy refused, its
/// answer to relay to the client.
#[derive(Debug, Clone)]
pub struct ProxyError {
    pub kind: ErrorKind,
    pub detail: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
    /// The upstream proxy's own refusal (status, type, bounded body), shown to the client.
    pub relayed: Option<Arc<Relayed>>,
}

/// An upstream proxy's refusal kept for the client (WinHTTP's
/// `WINHTTP_OPTION_RECEIVE_PROXY_CONNECT_RESPONSE`): why it said no, in its words.
#[derive(Debug)]
pub struct Relayed {
    pub status: StatusCode,
    pub content_type: Option<HeaderValue>,
    /// At most [`MAX_RELAYED_BODY`] bytes of its body.
    pub body: Bytes,
}

/// The most of a refusal's body that is kept for the client.
pub const MAX_RELAYED_BODY: usize = 64 * 1024;

impl ProxyError {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        ProxyError {
            kind,
            detail: detail.into(),
            source: None,
            relayed: None,
        }
    }

    /// Keeps `cause` as this error's source (for logs; not shown in `Display`).
    pub fn with_source(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(cause));
        self
    }

    /// Attaches the upstream proxy's refusal, relayed to the client by [`rescue`].
    pub fn with_relayed(mut self, relayed: Relayed) -> Self {
        self.relayed = Some(Arc::new(relayed));
        self
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, detail)
    }

    /// No response headers from `what` within the receive-response timeout.
    pub fn response_timeout(what: &str, timeout: std::time::Duration) -> Self {
        Self::new(
            ErrorKind::ResponseTimeout,
            format!("{what} sent no response headers within {timeout:?}"),
        )
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.code(), self.detail)
    }
}

impl std::error::Error for ProxyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The error and its causes, joined with `: ` (for the one log line where it is handled).
pub fn chain(err: &ProxyError) -> String {
    let mut out = err.to_string();
    let mut src = std::error::Error::source(err);
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

/// Turns any request-path error into the response the client sees. The one place that does.
pub fn rescue(err: &ProxyError) -> Response<Body> {
    let (status, ctype, text) = match &err.relayed {
        // the upstream proxy's own answer: its status and words tell the user why
        Some(r) => (
            r.status,
            r.content_type
                .clone()
                .unwrap_or(HeaderValue::from_static("text/html")),
            r.body.clone(),
        ),
        None => (
            err.kind.status(),
            HeaderValue::from_static("text/plain; charset=utf-8"),
            Bytes::from(format!("waypost: {} ({})\n", err.detail, err.kind.code())),
        ),
    };
    let mut resp = Response::new(Full::new(text).map_err(|e| match e {}).boxed());
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, ctype);
    headers.insert(ERROR_HEADER, HeaderValue::from_static(err.kind.code()));
    if err.kind == ErrorKind::ClientAuthRequired {
        headers.insert(
            header::PROXY_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"waypost\""),
        );
    }
    if err.kind == ErrorKind::AdminAuthRequired {
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"waypost admin\""),
        );
    }
    // a client too slow to send its body is not kept (RFC 9110 408: "close"), and a client
    // outside `allow` gets nothing more on this connection (a reload may have just revoked it:
    // its keep-alive connection ends here)
    let keep = (err.kind.blame() == Blame::Client
        && !matches!(
            err.kind,
            ErrorKind::RequestBodyTooSlow | ErrorKind::Forbidden
        ))
        || (status == StatusCode::PROXY_AUTHENTICATION_REQUIRED && err.relayed.is_none());
    if !keep {
        // keep-alive only for the client's retry with credentials
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// [`rescue`]'s response as HTTP/1.1 bytes, for refusals written before any request is read
/// (a client outside `allow`, the connection cap).
pub fn rescue_raw(err: &ProxyError) -> Vec<u8> {
    let resp = rescue(err);
    let text = format!("waypost: {} ({})\n", err.detail, err.kind.code());
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        resp.status().as_u16(),
        resp.status().canonical_reason().unwrap_or("")
    );
    for (k, v) in resp.headers() {
        if k != header::CONNECTION {
            out.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap_or("")));
        }
    }
    out.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    ));
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_map_to_504_and_refusals_to_502() {
        assert_eq!(
            ErrorKind::ConnectTimeout.status(),
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(
            ErrorKind::ResponseTimeout.status(),
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(ErrorKind::ConnectRefused.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(ErrorKind::Dns.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(ErrorKind::Tls("tls-unknown-ca").code(), "tls-unknown-ca");
    }

    #[test]
    fn rescue_sets_the_error_header_and_a_reason() {
        let resp = rescue(&ProxyError::new(
            ErrorKind::Dns,
            "no such host: nowhere.invalid",
        ));
        assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(resp.headers()[ERROR_HEADER], "dns");
    }

    #[test]
    fn an_upstream_refusal_reaches_the_client_with_its_status_and_body() {
        let err = ProxyError::new(ErrorKind::ProxyConnect(403), "proxy p:3128 answered 403")
            .with_relayed(Relayed {
                status: StatusCode::FORBIDDEN,
                content_type: Some(HeaderValue::from_static("text/html")),
                body: Bytes::from_static(b"<h1>ERR_ACCESS_DENIED</h1>"),
            });
        let resp = rescue(&err);
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert_eq!(resp.headers()[ERROR_HEADER], "proxy-connect-refused");
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/html");
    }

    #[test]
    fn a_loop_is_508_and_the_cause_is_kept_but_not_repeated() {
        let io = std::io::Error::other("peer said no");
        let err = ProxyError::new(ErrorKind::Loop, "hop is waypost itself").with_source(io);
        assert_eq!(err.kind.status(), StatusCode::LOOP_DETECTED);
        assert_eq!(err.to_string(), "loop: hop is waypost itself");
        assert_eq!(chain(&err), "loop: hop is waypost itself: peer said no");
    }

    #[test]
    fn a_body_too_slow_is_408_and_closes_the_client_connection() {
        let resp = rescue(&ProxyError::new(
            ErrorKind::RequestBodyTooSlow,
            "the client sent 3 bytes of its request body in 5.0s of waiting",
        ));
        assert_eq!(resp.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(resp.headers()[ERROR_HEADER], "request-body-too-slow");
        assert_eq!(resp.headers()[header::CONNECTION], "close");
    }

    #[test]
    fn raw_refusals_are_the_same_response_as_bytes() {
        let raw = rescue_raw(&ProxyError::new(
            ErrorKind::TooManyConnections,
            "max_client_connections reached",
        ));
        let text = String::from_utf8(raw).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{text}"
        );
        assert!(
            text.contains("x-waypost-error: too-many-connections\r\n"),
            "{text}"
        );
        assert!(text.ends_with("max_client_connections reached (too-many-connections)\n"));
    }
}

//! The proxy's error type and the one place that turns an error into a response.
//!
//! Every failure on the request path becomes a [`ProxyError`]: a closed [`ErrorKind`] that knows
//! who is to blame (the client, the upstream side, or waypost itself), plus a short detail for the
//! log and the response body. [`rescue`] maps it to a status and an `X-Waypost-Error` header; no
//! other code picks error status codes. Details never contain credentials: callers pass host
//! names, addresses and reasons only.

use std::fmt;

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
    /// The client's address is outside the `allow` list.
    Forbidden,
    /// The proxy itself requires client credentials (sidecar mode) and none or wrong were given.
    ClientAuthRequired,
    /// The CONNECT port or target is not permitted.
    TargetNotAllowed,
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
    /// TLS to the upstream failed; the string is the kind (`tls-unknown-ca`, ...).
    Tls(&'static str),
    /// No PAC script could be obtained and `pac_mandatory` is set.
    PacUnavailable,
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
            ErrorKind::Tls(kind) => kind,
            ErrorKind::PacUnavailable => "pac-unavailable",
            ErrorKind::Internal => "internal",
        }
    }

    pub fn blame(&self) -> Blame {
        match self {
            ErrorKind::BadRequest
            | ErrorKind::UserPwdInUrl
            | ErrorKind::Forbidden
            | ErrorKind::ClientAuthRequired
            | ErrorKind::TargetNotAllowed => Blame::Client,
            ErrorKind::Internal => Blame::Internal,
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
        ) || matches!(self, ErrorKind::ProxyConnect(s) if *s >= 500)
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ErrorKind::BadRequest | ErrorKind::UserPwdInUrl => StatusCode::BAD_REQUEST,
            ErrorKind::Forbidden | ErrorKind::TargetNotAllowed => StatusCode::FORBIDDEN,
            ErrorKind::ClientAuthRequired | ErrorKind::AuthRejected => {
                StatusCode::PROXY_AUTHENTICATION_REQUIRED
            }
            ErrorKind::ConnectTimeout
            | ErrorKind::DnsTimeout
            | ErrorKind::SendTimeout
            | ErrorKind::ResponseTimeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::PoolTimeout => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}

/// A failure on the request path: what went wrong and a short, credential-free detail.
#[derive(Debug, Clone)]
pub struct ProxyError {
    pub kind: ErrorKind,
    pub detail: String,
}

impl ProxyError {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        ProxyError {
            kind,
            detail: detail.into(),
        }
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

impl std::error::Error for ProxyError {}

/// Turns any request-path error into the response the client sees. The one place that does.
pub fn rescue(err: &ProxyError) -> Response<Body> {
    let status = err.kind.status();
    let text = format!("waypost: {} ({})\n", err.detail, err.kind.code());
    let mut resp = Response::new(Full::new(Bytes::from(text)).map_err(|e| match e {}).boxed());
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(ERROR_HEADER, HeaderValue::from_static(err.kind.code()));
    if err.kind == ErrorKind::ClientAuthRequired {
        headers.insert(
            header::PROXY_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"waypost\""),
        );
    }
    if err.kind.blame() == Blame::Client || status == StatusCode::PROXY_AUTHENTICATION_REQUIRED {
        // keep the connection usable for the client's retry with credentials
    } else {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
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
}

//! The small HTTP client for the requests waypost makes for itself (PAC downloads, CRL
//! downloads for the TLS policy, the `explain` CLI asking the admin surface): one GET over the
//! [`Dialer`], so they share its resolver, timeouts and TLS policy, under the options of the
//! URL's scope (else the global ones). It goes DIRECT, as WinHTTP's own downloads do, reads at
//! most `max` bytes, and bounds pauses in the body by `timeouts.receive`. Redirects are the caller's to follow (it knows which are allowed).

use std::sync::{Arc, Weak};

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, Request, StatusCode, Uri};
use http_body_util::BodyExt;

use super::dialer::Dialer;
use crate::body;
use crate::target::{Scheme, Target};

/// A response read whole.
#[derive(Debug)]
pub struct Fetched {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Clone)]
pub struct HttpClient {
    dialer: Arc<Dialer>,
}

/// An [`HttpClient`] that does not keep its dialer alive: for holders the dialer itself owns,
/// such as the TLS policy's CRL downloader.
#[derive(Clone)]
pub struct WeakHttpClient {
    dialer: Weak<Dialer>,
}

impl WeakHttpClient {
    /// The client, while the dialer lives.
    pub fn upgrade(&self) -> Option<HttpClient> {
        self.dialer.upgrade().map(HttpClient::new)
    }
}

impl HttpClient {
    pub fn new(dialer: Arc<Dialer>) -> HttpClient {
        HttpClient { dialer }
    }

    pub fn downgrade(&self) -> WeakHttpClient {
        WeakHttpClient {
            dialer: Arc::downgrade(&self.dialer),
        }
    }

    /// GET `url` with `accept`; the body up to `max` bytes (more is an error). An error names
    /// the URL without its userinfo and query (a PAC URL may carry a token).
    pub async fn get(&self, url: &str, accept: &str, max: usize) -> Result<Fetched, String> {
        let shown = crate::redact::url(url);
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("invalid URL {shown}: {e}"))?;
        let target = Target::from_absolute(&uri, false).map_err(|e| e.detail)?;
        let tls = target.scheme == Scheme::Https;
        // the destination's options: its scope's timeouts and TLS settings, else the global ones
        let opts = self.dialer.scopes.resolve(&target.host, target.port);
        let (io, _) = self
            .dialer
            .direct_with(&target.host, target.port, tls, &opts)
            .await
            .map_err(|e| crate::error::chain(&e))?;
        let mut sender = super::handshake(&self.dialer, io, false, &shown)
            .await
            .map_err(|e| e.to_string())?;
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let req = Request::get(path)
            .header(header::HOST, target.host_header())
            .header(header::ACCEPT, accept)
            .header(
                header::USER_AGENT,
                concat!("waypost/", env!("CARGO_PKG_VERSION")),
            )
            .body(body::empty())
            .map_err(|e| e.to_string())?;
        let timeout = opts.receive_response;
        let resp = tokio::time::timeout(timeout, sender.send_request(req))
            .await
            .map_err(|_| format!("{shown}: no response within {timeout:?}"))?
            .map_err(|e| format!("{shown}: {e}"))?;
        let (parts, mut incoming) = resp.into_parts();
        let mut bytes = BytesMut::new();
        let pause = opts.receive;
        loop {
            let frame = match tokio::time::timeout(pause, incoming.frame()).await {
                Err(_) => return Err(format!("{shown}: the body paused longer than {pause:?}")),
                Ok(None) => break,
                Ok(Some(f)) => f.map_err(|e| format!("{shown}: {e}"))?,
            };
            if let Some(d) = frame.data_ref() {
                bytes.extend_from_slice(d);
                if bytes.len() > max {
                    return Err(format!("{shown} is over the {max}-byte limit"));
                }
            }
        }
        Ok(Fetched {
            status: parts.status,
            headers: parts.headers,
            body: bytes.freeze(),
        })
    }
}

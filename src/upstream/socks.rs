//! SOCKS upstreams (PAC `SOCKS`, `SOCKS4`, `SOCKS5`): a tunnel to the target through the proxy.
//!
//! SOCKS5 sends the target's name for the proxy to resolve (remote resolution) and uses the
//! configured username/password when the proxy asks for it and the autologon policy allows
//! that proxy (the plan's identity; the password travels in clear); SOCKS4 becomes SOCKS4a when the
//! target is a name. Protocol handling is tokio-socks'; this module only maps errors.

use tokio::net::TcpStream;
use tokio_socks::tcp::{Socks4Stream, Socks5Stream};

use super::dialer::Dialer;
use crate::error::{ErrorKind, ProxyError};
use crate::target::{Host, ProxyAddr, ProxyKind};

/// Opens a stream to `host:port` through the SOCKS proxy `proxy`; the `[socks]` password is
/// offered only when `with_password` (the autologon policy allows this proxy: RFC 1929 sends
/// it in clear).
pub async fn connect(
    dialer: &Dialer,
    proxy: &ProxyAddr,
    host: &Host,
    port: u16,
    with_password: bool,
) -> Result<TcpStream, ProxyError> {
    // the proxy is dialled as any server, under its own scopes (connect, and the handshake)
    let opts = dialer.scopes.resolve(&proxy.host, proxy.port);
    let tcp = dialer
        .tcp_with(&proxy.host, proxy.port, false, &opts)
        .await?;
    let target = host.to_string();
    let what = format!("SOCKS proxy {}", proxy.label());
    let handshake = async {
        match (proxy.kind, dialer.socks_auth().filter(|_| with_password)) {
            (ProxyKind::Socks5, Some(auth)) => Socks5Stream::connect_with_password_and_socket(
                tcp,
                (target.as_str(), port),
                &auth.username,
                &auth.password,
            )
            .await
            .map(|s| s.into_inner()),
            (ProxyKind::Socks5, None) => {
                Socks5Stream::connect_with_socket(tcp, (target.as_str(), port))
                    .await
                    .map(|s| s.into_inner())
            }
            _ => Socks4Stream::connect_with_socket(tcp, (target.as_str(), port))
                .await
                .map(|s| s.into_inner()),
        }
    };
    match tokio::time::timeout(opts.connect, handshake).await {
        Err(_) => Err(ProxyError::new(
            ErrorKind::ConnectTimeout,
            format!("{what} did not answer in time"),
        )),
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(map_error(&what, host, port, e)),
    }
}

fn map_error(what: &str, host: &Host, port: u16, e: tokio_socks::Error) -> ProxyError {
    use tokio_socks::Error as E;
    let kind = match &e {
        E::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            ErrorKind::ConnectRefused
        }
        E::ConnectionRefused => ErrorKind::ConnectRefused,
        E::HostUnreachable | E::NetworkUnreachable | E::TtlExpired => ErrorKind::ConnectFailed,
        E::Io(_) => ErrorKind::ConnectFailed,
        // the proxy itself misbehaved or refused us: another hop may help
        _ => ErrorKind::ProxyConnect(502),
    };
    ProxyError::new(kind, format!("{what} could not reach {host}:{port}: {e}"))
}

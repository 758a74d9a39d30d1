//! The last stage for a SOCKS5 client: after the SOCKS handshake ([`crate::proxy::socks::wire`]) and
//! admission under the generation current then ([`crate::admission`], as every HTTP request),
//! the client's CONNECT goes through the same stages as an HTTP CONNECT — decide (bypass, PAC),
//! connect with failover and upstream authentication (a hop back to waypost is refused as a
//! loop by the dialer) — and the tunnel is relayed the same way (SNI rules included). Only the
//! answers differ: SOCKS reply codes instead of status lines ([`reply_for`]).

pub mod wire;

use std::sync::Arc;

use http::HeaderMap;
use tokio::net::TcpStream;

use self::wire::{self as socks, LoginCheck, Reply, SocksError};
use super::pipeline::Exchange;
use super::stage::LastStage;
use super::Client;
use crate::admission::{self, Ask, Entry};
use crate::app::App;
use crate::error::{ErrorKind, ProxyError};
use crate::ops::reload::Live;
use crate::route::{ConnectPlan, Purpose};
use crate::target::{Scheme, Target};
use crate::upstream::{Tunnel, Upstream};

/// Serves one SOCKS5 client connection from greeting to the tunnel's end. The login and the
/// CONNECT are each admitted under the generation current at that moment (a reload between
/// them applies to the CONNECT), and the tunnel runs on the CONNECT's generation.
pub async fn serve(live: Arc<Live>, client: Client, mut stream: TcpStream) {
    let greeting = live.current();
    let peer = client.addr;
    let check = |l: &socks::Login| {
        let login = Some((&l.username[..], &l.password[..]));
        let now = live.current();
        admission::admit(&now.cfg, Entry::Socks, peer, Ask::Socks { login }).is_ok()
    };
    let login = greeting
        .cfg
        .client_auth
        .is_some()
        .then_some(&check as LoginCheck);
    let within = greeting.cfg.timeouts.client_header;
    let request = match tokio::time::timeout(within, socks::handshake(&mut stream, login)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            handshake_failed(&greeting, &client, &e);
            return;
        }
        Err(_) => {
            tracing::debug!("SOCKS client sent no complete request within timeouts.client_header");
            return;
        }
    };
    let app = live.current();
    let target = Target {
        scheme: Scheme::Https,
        host: request.host,
        port: request.port,
    };
    let x = Exchange::new(app, client, "CONNECT", target, "socks", &HeaderMap::new());
    let login = request
        .login
        .as_ref()
        .map(|l| (&l.username[..], &l.password[..]));
    if let Err(e) = admission::admit(&x.app.cfg, Entry::Socks, peer, Ask::Socks { login }) {
        super::refused(&x.app, peer, &e);
        let code = reply_for(&e.kind);
        let _ = x.refused(e);
        let _ = socks::reply(&mut stream, code).await;
        return;
    }
    x.run(Socks { stream }).await
}

/// The last stage of a SOCKS client's CONNECT: its connection, on which replies are written
/// and, after success, the tunnel runs. `tls.connect_ports` is not applied: it keeps HTTP
/// CONNECT to TLS ports, while a SOCKS listener exists for any TCP (port 80 included); `allow`
/// and `client_auth` guard it.
struct Socks {
    stream: TcpStream,
}

impl LastStage for Socks {
    type Answer = ();
    type Conn = Tunnel;
    const PURPOSE: Purpose = Purpose::Tunnel;

    fn url(&self, x: &Exchange) -> String {
        pac_url(&x.target)
    }

    async fn connect(&self, up: &Upstream, plan: &ConnectPlan) -> Result<Tunnel, ProxyError> {
        up.tunnel(plan).await
    }

    async fn finish(mut self, x: Exchange, tunnel: Tunnel, plan: ConnectPlan) {
        if let Err(e) = socks::reply(&mut self.stream, Reply::Succeeded).await {
            tracing::debug!(error = %e, "SOCKS client went away before the tunnel started");
            x.access.finish(499, plan.hop.to_string(), "client-closed");
            return;
        }
        x.access.finish(200, plan.hop.to_string(), "ok");
        super::tunnel::relay_tunnel(&x.app, &x.access, self.stream, tunnel).await;
    }

    /// Logs and records the failure once (as for HTTP), then answers with its reply code.
    async fn fail(mut self, x: &Exchange, route: &str, err: ProxyError) {
        let code = reply_for(&err.kind);
        let _ = x.fail(route, err);
        let _ = socks::reply(&mut self.stream, code).await;
    }
}

/// The URL a PAC script sees for a SOCKS CONNECT: the scheme is not known, so port 80 is
/// `http://host/` and anything else `https://host[:port]/`.
pub fn pac_url(target: &Target) -> String {
    let host = target.host.to_authority_host();
    match target.port {
        80 => format!("http://{host}/"),
        443 => format!("https://{host}/"),
        p => format!("https://{host}:{p}/"),
    }
}

/// The SOCKS reply code for a failure of the pipeline.
pub fn reply_for(kind: &ErrorKind) -> Reply {
    match kind {
        ErrorKind::Forbidden
        | ErrorKind::TargetNotAllowed
        | ErrorKind::ClientAuthRequired
        | ErrorKind::Loop
        | ErrorKind::ProxyConnect(403) => Reply::NotAllowed,
        ErrorKind::Dns | ErrorKind::DnsTimeout => Reply::HostUnreachable,
        ErrorKind::ConnectRefused => Reply::ConnectionRefused,
        ErrorKind::ConnectFailed => Reply::NetworkUnreachable,
        ErrorKind::ConnectTimeout | ErrorKind::PoolTimeout => Reply::TtlExpired,
        _ => Reply::GeneralFailure,
    }
}

/// Logs and counts a failed handshake once; a refusal (not a client that went away) is also
/// recorded as every refusal is ([`super::pipeline::refuse_handshake`]).
fn handshake_failed(app: &App, client: &Client, e: &SocksError) {
    let kind = match e {
        SocksError::BadCredentials | SocksError::NoAcceptableMethod(_) => {
            app.metrics
                .client_connections_rejected
                .with_label_values(&["auth"])
                .inc();
            tracing::info!(error = %e, "SOCKS client refused");
            ErrorKind::ClientAuthRequired
        }
        SocksError::Io(_) => {
            tracing::debug!(error = %e, "SOCKS client went away");
            return;
        }
        _ => {
            tracing::info!(error = %e, "SOCKS request refused");
            ErrorKind::BadRequest
        }
    };
    super::pipeline::refuse_handshake(app, client, ProxyError::new(kind, e.to_string()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::Host;

    fn t(host: &str, port: u16) -> Target {
        Target {
            scheme: Scheme::Https,
            host: Host::parse(host).unwrap(),
            port,
        }
    }

    #[test]
    fn the_pac_sees_http_for_port_80_and_https_otherwise() {
        assert_eq!(pac_url(&t("a.example", 80)), "http://a.example/");
        assert_eq!(pac_url(&t("a.example", 443)), "https://a.example/");
        assert_eq!(pac_url(&t("::1", 8443)), "https://[::1]:8443/");
    }

    #[test]
    fn failures_map_to_socks_reply_codes() {
        assert_eq!(
            reply_for(&ErrorKind::ConnectRefused),
            Reply::ConnectionRefused
        );
        assert_eq!(reply_for(&ErrorKind::Dns), Reply::HostUnreachable);
        assert_eq!(reply_for(&ErrorKind::TargetNotAllowed), Reply::NotAllowed);
        assert_eq!(reply_for(&ErrorKind::AuthRejected), Reply::GeneralFailure);
    }
}

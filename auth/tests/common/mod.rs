//! Shared helpers of the real-peer suites: one KDC per test binary, authenticators with
//! test credentials, and a small client that runs `authenticate_request` for a GET or
//! a CONNECT on fresh loopback connections (reconnecting when told to).

#![allow(dead_code)]

pub use waypost_testsupport::peers;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::{Method, Request, StatusCode};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use waypost_auth::client::empty;
use waypost_auth::{
    authenticate_request, AuthConfig, AuthContext, AuthOutcome, Authenticator, AutologonPolicy,
    Credentials, ProxyTarget,
};

#[allow(unused_imports)]
pub use peers::{Kdc, Origin, Squid, NTLM_DOMAIN, PASSWORD, REALM, USER};

/// The KDC of this test binary (stopped by the scripts' watchdog when the process exits).
pub fn kdc() -> &'static Kdc {
    static KDC: OnceLock<Kdc> = OnceLock::new();
    KDC.get_or_init(Kdc::start)
}

pub fn origin() -> &'static Origin {
    static ORIGIN: OnceLock<Origin> = OnceLock::new();
    ORIGIN.get_or_init(Origin::start)
}

/// Policy `low` (tests talk to loopback proxies by IP and by `localhost`).
pub fn config() -> AuthConfig {
    AuthConfig {
        policy: AutologonPolicy::Low,
        ..AuthConfig::default()
    }
}

/// `user@EXAMPLE.TEST` with NTLM domain `EXAMPLE` and the test password; KDC of [`kdc`].
pub fn password_creds(password: &str) -> Credentials {
    Credentials::with_password(&format!("{USER}@{REALM}"), password)
        .with_domain(NTLM_DOMAIN)
        .with_kdc(&format!("127.0.0.1:{}", kdc().port))
}

pub fn authenticator(
    creds: Credentials,
    cfg: &AuthConfig,
    registry: Option<&prometheus::Registry>,
) -> Arc<Authenticator> {
    Arc::new(Authenticator::new(creds, cfg, registry).expect("authenticator"))
}

/// What one request through the proxy gave.
#[derive(Debug)]
pub struct Fetched {
    pub status: StatusCode,
    pub outcome: AuthOutcome,
    pub connections: usize,
    /// Body of the GET (or of the GET sent through the CONNECT tunnel).
    pub body: String,
    pub waypost_error: Option<String>,
}

async fn open(port: u16) -> SendRequest<http_body_util::Empty<bytes::Bytes>> {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to squid");
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("http1 handshake");
    tokio::spawn(conn.with_upgrades());
    sender
}

/// One request for `path` at the test origin through the proxy `host` (as configured)
/// listening on 127.0.0.1:`port`: `connect` = CONNECT to the origin, then a GET inside.
pub async fn fetch(
    auth: &Arc<Authenticator>,
    host: &str,
    port: u16,
    connect: bool,
    path: &str,
) -> Fetched {
    let ctx = AuthContext::new(auth.clone(), ProxyTarget::new(host, port));
    fetch_with(&ctx, port, connect, path).await
}

pub async fn fetch_with(ctx: &AuthContext, port: u16, connect: bool, path: &str) -> Fetched {
    let origin_port = origin().port;
    let authority = format!("127.0.0.1:{origin_port}");
    let mut connections = 0;
    loop {
        connections += 1;
        assert!(connections <= 3, "too many reconnects");
        let mut sender = open(port).await;
        let make = |_t| {
            if connect {
                Request::builder()
                    .method(Method::CONNECT)
                    .uri(authority.as_str())
                    .header("host", &authority)
                    .body(empty())
            } else {
                Request::builder()
                    .uri(format!("http://{authority}{path}"))
                    .header("host", &authority)
                    .body(empty())
            }
            .unwrap()
        };
        let result = tokio::time::timeout(
            Duration::from_secs(60),
            authenticate_request(&mut sender, make, ctx),
        )
        .await
        .expect("handshake in time");
        let (resp, outcome) = match result {
            Err(e) if e.is_reconnect() => continue,
            Err(e) => panic!("authenticate_request: {e:?}"),
            Ok(x) => x,
        };
        let status = resp.status();
        let waypost_error = resp
            .headers()
            .get("x-waypost-error")
            .map(|v| v.to_str().unwrap_or_default().to_string());
        let body = if connect && status == StatusCode::OK {
            let mut io = TokioIo::new(hyper::upgrade::on(resp).await.expect("upgrade"));
            let req =
                format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
            io.write_all(req.as_bytes()).await.unwrap();
            let mut buf = Vec::new();
            io.read_to_end(&mut buf).await.unwrap();
            String::from_utf8_lossy(&buf).into_owned()
        } else {
            use http_body_util::BodyExt;
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            String::from_utf8_lossy(&bytes).into_owned()
        };
        return Fetched {
            status,
            outcome,
            connections,
            body,
            waypost_error,
        };
    }
}

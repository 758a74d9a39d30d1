//! Credentials never reach logs: full handshakes (NTLM, Basic, Kerberos via sspi) with
//! tracing at TRACE for every crate (sspi included) must not print the password, its NT
//! hash, or the Basic base64. Also shows pooled reuse in the metrics: N requests on one
//! authenticated connection, one handshake. Its own binary: it installs a global subscriber.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use http::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use waypost_auth::client::empty;
use waypost_auth::{authenticate_request, AuthContext, AuthResult, Credentials, ProxyTarget};
use waypost_testsupport::metrics::{self, metric};

/// NT hash (MD4 of UTF-16LE) of the test password, computed with pyspnego.
const NT_HASH: &str = "1125073ee22b680cc3b5ff0ae16ef454";

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logs_of_full_handshakes_contain_no_secrets() {
    let sink = Sink::default();
    let writer = sink.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    let ntlm = Squid::start("ntlm");
    let basic = Squid::start("basic");
    let negotiate = Squid::builder("negotiate").kdc(kdc()).start();
    let auth = authenticator(password_creds(PASSWORD), &config(), None);
    assert_eq!(
        fetch(&auth, "localhost", ntlm.port, false, "/a")
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        fetch(&auth, "localhost", negotiate.port, true, "/b")
            .await
            .status,
        StatusCode::OK
    );
    // Basic to a plain-HTTP proxy only when chosen explicitly
    let basic_cfg = waypost_auth::AuthConfig {
        scheme: waypost_auth::SchemeChoice::Basic,
        ..config()
    };
    let b = authenticator(Credentials::with_password(USER, PASSWORD), &basic_cfg, None);
    assert_eq!(
        fetch(&b, "localhost", basic.port, false, "/c").await.status,
        StatusCode::OK
    );
    let hashed = Credentials::with_user(USER)
        .with_domain(NTLM_DOMAIN)
        .with_nt_hash(waypost_auth::credentials::parse_nt_hash(NT_HASH).unwrap());
    let h = authenticator(hashed, &config(), None);
    assert_eq!(
        fetch(&h, "localhost", ntlm.port, false, "/d").await.status,
        StatusCode::OK,
        "NT hash login"
    );
    let bad = authenticator(password_creds("Wrong-Pass-9"), &config(), None);
    assert_eq!(
        fetch(&bad, "localhost", ntlm.port, false, "/e")
            .await
            .status,
        StatusCode::PROXY_AUTHENTICATION_REQUIRED
    );

    let logs = String::from_utf8_lossy(&sink.0.lock().unwrap()).into_owned();
    assert!(
        logs.len() > 1000,
        "trace output was captured ({} bytes)",
        logs.len()
    );
    let basic_b64 = waypost_auth::mech::BasicMech::header_token(USER, PASSWORD);
    for secret in [
        PASSWORD,
        "Wrong-Pass-9",
        NT_HASH,
        &NT_HASH.to_uppercase(),
        &basic_b64,
    ] {
        assert!(
            !logs.contains(secret),
            "{secret:?} appears in the trace output"
        );
    }
    // UTF-16 hex dumps of the password (sspi prints buffers as hex) must not appear either
    let utf16_hex: String = PASSWORD
        .encode_utf16()
        .flat_map(|c| c.to_le_bytes())
        .map(|b| format!("{b:02X}"))
        .collect();
    assert!(
        !logs.to_uppercase().contains(&utf16_hex),
        "UTF-16 password bytes appear in the trace output"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n_requests_on_an_authenticated_connection_need_one_handshake() {
    let squid = Squid::start("ntlm");
    let registry = prometheus::Registry::new();
    let auth = authenticator(password_creds(PASSWORD), &config(), Some(&registry));
    let origin = origin().port;
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", squid.port))
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    for i in 0..10 {
        // what the proxy does: the first request handshakes; pooled reuse sends no token
        let mut ctx = AuthContext::new(auth.clone(), ProxyTarget::new("localhost", squid.port));
        if i > 0 {
            ctx = ctx.on_reused_connection();
        }
        let make = |_t| {
            Request::get(format!("http://127.0.0.1:{origin}/n{i}"))
                .body(empty())
                .unwrap()
        };
        let (resp, outcome) = authenticate_request(&mut sender, make, &ctx).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        use http_body_util::BodyExt;
        resp.into_body().collect().await.unwrap();
        if i > 0 {
            assert_eq!(
                outcome.result,
                AuthResult::NotRequired,
                "request {i} needed no handshake"
            );
            auth.connection_reused();
        }
    }
    let text = metrics::text(&registry);
    assert_eq!(
        metric(
            &text,
            "waypost_auth_handshakes_total{outcome=\"authenticated\",scheme=\"ntlm\"}"
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "waypost_auth_connections_reused_total"),
        9.0,
        "{text}"
    );
}

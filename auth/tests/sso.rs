//! Kerberos single sign-on from a `kinit` ticket cache through the system GSSAPI, against
//! a real KDC and squid. Its own test binary: it sets `KRB5_CONFIG` for the process.

mod common;

use common::*;
use http::StatusCode;
use waypost_auth::{AuthResult, Credentials, Mech, Scheme};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kinit_ticket_authenticates_negotiate_without_any_password() {
    let kdc = kdc();
    std::env::set_var("KRB5_CONFIG", &kdc.krb5_conf);
    let ccache = kdc.kinit();
    let squid = Squid::builder("negotiate").kdc(kdc).start();
    let creds = Credentials::ticket_cache(Some(format!("FILE:{}", ccache.display())));
    let auth = authenticator(creds, &config(), None);
    for (connect, path) in [(false, "/sso"), (true, "/sso-tls")] {
        let f = fetch(&auth, "localhost", squid.port, connect, path).await;
        assert_eq!(f.status, StatusCode::OK, "{f:?}");
        assert_eq!(f.outcome.result, AuthResult::Authenticated);
        let plan = f.outcome.plan.unwrap();
        assert_eq!(
            (plan.scheme, plan.mech),
            (Scheme::Negotiate, Mech::Kerberos)
        );
    }
    // an empty cache: Kerberos is impossible, nothing else is configured -> the 407 is relayed
    let empty = Credentials::ticket_cache(Some(format!(
        "FILE:{}",
        kdc.state_dir().join("no-such-ccache").display()
    )));
    let f = fetch(
        &authenticator(empty, &config(), None),
        "localhost",
        squid.port,
        false,
        "/nocc",
    )
    .await;
    assert_eq!(f.status, StatusCode::PROXY_AUTHENTICATION_REQUIRED);
    assert_eq!(f.waypost_error.as_deref(), Some("auth-rejected"));
}

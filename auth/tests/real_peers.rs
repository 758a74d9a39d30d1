//! waypost-auth against real peers: an MIT KDC and squid in each authentication mode
//! (tests/peers), for an absolute-form GET and a CONNECT each. Kerberos here uses
//! explicit credentials through sspi; ticket-cache SSO has its own binary (`sso.rs`).

mod common;

use common::*;
use http::StatusCode;
use waypost_auth::{AuthConfig, AuthResult, Credentials, Mech, RejectReason, Scheme, SchemeChoice};

fn assert_authenticated(f: &Fetched, scheme: Scheme, mech: Mech) {
    assert_eq!(f.status, StatusCode::OK, "{f:?}");
    assert_eq!(f.outcome.result, AuthResult::Authenticated, "{f:?}");
    let plan = f.outcome.plan.expect("a plan");
    assert_eq!((plan.scheme, plan.mech), (scheme, mech), "{f:?}");
    assert!(
        f.body.contains("200") || f.body.contains("path="),
        "origin answered: {}",
        f.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntlm_authenticates_a_get_and_a_connect_with_ntlmv2_and_a_mic() {
    let squid = Squid::start("ntlm");
    let auth = authenticator(password_creds(PASSWORD), &config(), None);
    let get = fetch(&auth, "localhost", squid.port, false, "/ntlm-get").await;
    assert_authenticated(&get, Scheme::Ntlm, Mech::Ntlm);
    assert_eq!(get.outcome.legs.len(), 2);
    let tunnel = fetch(&auth, "localhost", squid.port, true, "/ntlm-connect").await;
    assert_authenticated(&tunnel, Scheme::Ntlm, Mech::Ntlm);
    // the second one sent its type 1 pre-emptively: one 407 fewer
    assert_eq!(tunnel.outcome.legs[0].status, Some(407));
    let log = squid.ntlm_log();
    let auths: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"authenticate\""))
        .collect();
    assert_eq!(auths.len(), 2, "{log}");
    for l in auths {
        assert!(
            l.contains("\"ntlm_version\": \"v2\"") && l.contains("\"mic_present\": true"),
            "{l}"
        );
        assert!(l.contains("\"verdict\": \"ok\""), "{l}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_that_requires_a_mic_accepts_ours() {
    let squid = Squid::start("ntlm-mic");
    let auth = authenticator(password_creds(PASSWORD), &config(), None);
    assert_authenticated(
        &fetch(&auth, "localhost", squid.port, false, "/mic").await,
        Scheme::Ntlm,
        Mech::Ntlm,
    );
    assert_authenticated(
        &fetch(&auth, "localhost", squid.port, true, "/mic-tls").await,
        Scheme::Ntlm,
        Mech::Ntlm,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_rejected_once_without_loops_and_locks_out() {
    let squid = Squid::start("ntlm");
    let mut cfg = config();
    cfg.lockout_after = 2;
    let auth = authenticator(password_creds("Wrong-Pass"), &cfg, None);
    for connect in [false, true] {
        let f = fetch(&auth, "localhost", squid.port, connect, "/wrong").await;
        assert_eq!(f.status, StatusCode::PROXY_AUTHENTICATION_REQUIRED, "{f:?}");
        assert_eq!(
            f.outcome.result,
            AuthResult::Rejected(RejectReason::CredentialsRejected)
        );
        assert_eq!(f.waypost_error.as_deref(), Some("auth-rejected"));
        assert!(f.outcome.legs.len() <= 2, "{f:?}");
    }
    let verdicts = squid
        .ntlm_log()
        .lines()
        .filter(|l| l.contains("\"authenticate\""))
        .count();
    assert_eq!(verdicts, 2, "one AUTHENTICATE per request, no retry loop");
    // the third request is not even tried: the identity is locked out
    let f = fetch(&auth, "localhost", squid.port, false, "/locked").await;
    assert_eq!(
        f.outcome.result,
        AuthResult::Rejected(RejectReason::LockedOut)
    );
    assert_eq!(
        squid
            .ntlm_log()
            .lines()
            .filter(|l| l.contains("\"authenticate\""))
            .count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_authenticates_a_get_and_a_connect() {
    let squid = Squid::start("basic");
    // Basic over plain HTTP must be chosen explicitly
    let basic = AuthConfig {
        scheme: SchemeChoice::Basic,
        ..config()
    };
    let auth = authenticator(Credentials::with_password(USER, PASSWORD), &basic, None);
    assert_authenticated(
        &fetch(&auth, "localhost", squid.port, false, "/basic").await,
        Scheme::Basic,
        Mech::Basic,
    );
    let t = fetch(&auth, "localhost", squid.port, true, "/basic-tls").await;
    assert_authenticated(&t, Scheme::Basic, Mech::Basic);
    assert_eq!(t.outcome.legs.len(), 1, "pre-emptive Basic: no 407 at all");
    let wrong = authenticator(Credentials::with_password(USER, "nope"), &basic, None);
    let f = fetch(&wrong, "localhost", squid.port, false, "/basic-wrong").await;
    assert_eq!(
        f.outcome.result,
        AuthResult::Rejected(RejectReason::CredentialsRejected)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiate_authenticates_with_kerberos_from_a_password_through_sspi() {
    let squid = Squid::builder("negotiate").kdc(kdc()).start();
    let auth = authenticator(password_creds(PASSWORD), &config(), None);
    let get = fetch(&auth, "localhost", squid.port, false, "/neg").await;
    assert_authenticated(&get, Scheme::Negotiate, Mech::Kerberos);
    assert_eq!(get.outcome.spn, "HTTP/localhost");
    let t = fetch(&auth, "localhost", squid.port, true, "/neg-tls").await;
    assert_authenticated(&t, Scheme::Negotiate, Mech::Kerberos);
    assert_eq!(t.outcome.legs.len(), 1, "pre-emptive SPNEGO token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiate_authenticates_with_a_keytab_through_sspi() {
    let kdc = kdc();
    let squid = Squid::builder("negotiate").kdc(kdc).start();
    let dir = tempfile::tempdir().unwrap();
    let keytab = dir.path().join("user.keytab");
    let script = format!(
        "addent -password -p {USER}@{REALM} -k 1 -e aes256-cts-hmac-sha1-96\n{PASSWORD}\nwkt {}\nquit\n",
        keytab.display()
    );
    let mut child = std::process::Command::new("ktutil")
        .env("KRB5_CONFIG", &kdc.krb5_conf)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("ktutil");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    let creds = Credentials::with_user(&format!("{USER}@{REALM}"))
        .with_keytab(&keytab)
        .with_kdc(&format!("127.0.0.1:{}", kdc.port));
    let auth = authenticator(creds, &config(), None);
    assert!(
        auth.identity().starts_with("keytab:user@EXAMPLE.TEST"),
        "{}",
        auth.identity()
    );
    assert_authenticated(
        &fetch(&auth, "localhost", squid.port, false, "/kt").await,
        Scheme::Negotiate,
        Mech::Kerberos,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_schemes_offered_picks_negotiate_and_an_ip_address_falls_back_to_ntlm() {
    let squid = Squid::builder("all").kdc(kdc()).start();
    let auth = authenticator(password_creds(PASSWORD), &config(), None);
    let by_name = fetch(&auth, "localhost", squid.port, false, "/all").await;
    assert_authenticated(&by_name, Scheme::Negotiate, Mech::Kerberos);
    let by_ip = fetch(&auth, "127.0.0.1", squid.port, false, "/all-ip").await;
    assert_authenticated(&by_ip, Scheme::Ntlm, Mech::Ntlm);
    let t = fetch(&auth, "127.0.0.1", squid.port, true, "/all-ip-tls").await;
    assert_authenticated(&t, Scheme::Ntlm, Mech::Ntlm);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_kdc_falls_back_to_ntlm() {
    let squid = Squid::builder("all").kdc(kdc()).start();
    let dead_kdc = peers::free_port();
    let creds = Credentials::with_password(&format!("{USER}@{REALM}"), PASSWORD)
        .with_domain(NTLM_DOMAIN)
        .with_kdc(&format!("127.0.0.1:{dead_kdc}"));
    let auth = authenticator(creds, &config(), None);
    let f = fetch(&auth, "localhost", squid.port, false, "/nokdc").await;
    assert_authenticated(&f, Scheme::Ntlm, Mech::Ntlm);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_ntlm_goes_inside_negotiate_when_only_negotiate_may_be_used() {
    let squid = Squid::builder("all").kdc(kdc()).start();
    let mut cfg = config();
    cfg.scheme = waypost_auth::SchemeChoice::Negotiate;
    let auth = authenticator(password_creds(PASSWORD), &cfg, None);
    let f = fetch(&auth, "127.0.0.1", squid.port, false, "/raw").await;
    assert_authenticated(&f, Scheme::Negotiate, Mech::Ntlm);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_407_with_connection_close_is_followed_by_a_reconnect() {
    let squid = Squid::builder("all-close").kdc(kdc()).start();
    let auth = authenticator(password_creds(PASSWORD), &config(), None);
    let f = fetch(&auth, "127.0.0.1", squid.port, false, "/close").await;
    assert_authenticated(&f, Scheme::Ntlm, Mech::Ntlm);
    assert_eq!(f.connections, 2, "{f:?}");
    let t = fetch(&auth, "localhost", squid.port, true, "/close-tls").await;
    assert_authenticated(&t, Scheme::Negotiate, Mech::Kerberos);
}

/// The network proof against the real MIT KDC: a fresh TGS exchange proves the realm; a
/// server that answers in its place (garbage, or a replayed real reply to another request)
/// refutes it; nothing listening means unreachable. The ticket cache is not changed.
#[test]
fn the_real_kdc_proves_the_realm_and_an_impostor_or_silence_does_not() {
    use std::io::{Read, Write};
    use std::time::Duration;
    use waypost_auth::proof::{prove_realm, Proof};

    let kdc = kdc();
    let ccache = kdc.state_dir().join("proof-ccache");
    assert!(kdc.kinit_into(&ccache, PASSWORD), "kinit");
    let cache = format!("FILE:{}", ccache.display());
    let before = std::fs::read(&ccache).unwrap();
    let real = format!("127.0.0.1:{}", kdc.port);
    let p = prove_realm(Some(&cache), Some(&real), Duration::from_secs(5));
    assert!(
        matches!(&p, Proof::Proven { realm, .. } if realm == "EXAMPLE.TEST"),
        "{p:?}"
    );
    assert_eq!(
        std::fs::read(&ccache).unwrap(),
        before,
        "the cache is left as it was"
    );

    // an impostor KDC: it relays the request to the real KDC and answers with the real reply to
    // an *earlier* request (a replay), then with garbage
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let fake = listener.local_addr().unwrap().to_string();
    let real_addr = real.clone();
    let impostor = std::thread::spawn(move || {
        let mut old_reply: Option<Vec<u8>> = None;
        for conn in listener.incoming().take(3) {
            let mut c = conn.unwrap();
            let mut len = [0u8; 4];
            c.read_exact(&mut len).unwrap();
            let mut req = vec![0u8; u32::from_be_bytes(len) as usize];
            c.read_exact(&mut req).unwrap();
            let mut k = std::net::TcpStream::connect(&real_addr).unwrap();
            k.write_all(&len).unwrap();
            k.write_all(&req).unwrap();
            let mut rlen = [0u8; 4];
            k.read_exact(&mut rlen).unwrap();
            let mut rep = vec![0u8; u32::from_be_bytes(rlen) as usize];
            k.read_exact(&mut rep).unwrap();
            let answer = match old_reply.take() {
                None => rep.clone(), // first: relayed as is (a proxying attacker)
                Some(old) => old,    // second: the previous reply (a replay)
            };
            old_reply = Some(rep);
            let answer = if answer.is_empty() {
                b"garbage".to_vec()
            } else {
                answer
            };
            c.write_all(&(answer.len() as u32).to_be_bytes()).unwrap();
            c.write_all(&answer).unwrap();
        }
    });
    // relayed untouched: the real KDC's answer is a proof (the realm is reachable from here)
    let p = prove_realm(Some(&cache), Some(&fake), Duration::from_secs(5));
    assert!(p.is_proven(), "{p:?}");
    let p = prove_realm(Some(&cache), Some(&fake), Duration::from_secs(5));
    assert!(
        matches!(&p, Proof::Refuted { why, .. } if why.contains("nonce")),
        "{p:?}"
    );
    drop(impostor);

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap().to_string();
    drop(closed);
    let p = prove_realm(Some(&cache), Some(&addr), Duration::from_secs(2));
    assert!(matches!(p, Proof::Unreachable { .. }), "{p:?}");
}

//! Upstream proxy authentication in the running proxy, against real squids: the client (curl or
//! the harness) has no credentials of its own; waypost answers the proxy's 407s.

use crate::support;

use support::harness::{self, metric, Client, Origin};
use support::peers::{Squid, PASSWORD, USER};
use support::scenario::BehindSquid;

use waypost_auth::config::ProxyAuthConfig;
use waypost_auth::credentials::SecretString;
use waypost_testsupport::curl::Curl;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntlm_authenticates_once_and_reuses_the_connection_for_later_requests() {
    let BehindSquid {
        squid,
        origin,
        proxy,
    } = BehindSquid::start("ntlm", |_, _| {}).await;
    let addr = proxy.addrs[0];
    let url = origin.url("/ntlm");
    let code = Curl::new()
        .proxy(&format!("http://{addr}"))
        .status_async(&url)
        .await;
    assert_eq!(code, "200");
    let mut client = Client::connect(addr).await;
    for _ in 0..9 {
        assert_eq!(client.get(&origin.url("/again")).await.0, 200);
    }
    let m = harness::metrics(addr).await;
    assert_eq!(
        metric(
            &m,
            "waypost_auth_handshakes_total{outcome=\"authenticated\",scheme=\"ntlm\"}"
        ),
        1.0,
        "{m}"
    );
    assert!(
        metric(&m, "waypost_auth_connections_reused_total") >= 9.0,
        "{m}"
    );
    let log = squid.ntlm_log();
    assert!(
        log.contains("\"ntlm_version\": \"v2\"") || log.contains("\"ntlm_version\":\"v2\""),
        "{log}"
    );
    assert!(!log.contains("\"v1\""), "never NTLMv1: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_counts_one_handshake_per_pooled_connection_and_sends_credentials_with_every_request()
{
    let BehindSquid {
        squid,
        origin,
        proxy,
    } = BehindSquid::start("basic", |c, _| {
        c.auth.scheme = waypost_auth::SchemeChoice::Basic;
    })
    .await;
    let port = squid.port;
    let addr = proxy.addrs[0];
    let mut client = Client::connect(addr).await;
    for i in 0..10 {
        let (code, _, _) = client.get(&origin.url(&format!("/basic-{i}"))).await;
        assert_eq!(code, 200);
    }
    let m = harness::metrics(addr).await;
    let opened = metric(
        &m,
        &format!("waypost_pool_opened_total{{upstream=\"localhost:{port}\"}}"),
    );
    assert_eq!(
        opened, 1.0,
        "ten sequential requests, one pooled connection: {m}"
    );
    assert_eq!(
        metric(
            &m,
            "waypost_auth_handshakes_total{outcome=\"authenticated\",scheme=\"basic\"}"
        ),
        opened,
        "one handshake per pooled connection, not per request: {m}"
    );
    // squid saw every request with the user: Basic is per request
    let log = squid.access_log_when(|l| l.contains("/basic-9")).await;
    for i in 0..10 {
        let line = log
            .lines()
            .find(|l| l.contains(&format!("/basic-{i}")))
            .unwrap_or_else(|| panic!("/basic-{i} not in squid's log: {log}"));
        assert!(line.contains(USER), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_tunnels_authenticate_with_ntlm_and_basic() {
    for mode in ["ntlm", "basic", "ntlm-mic"] {
        let BehindSquid {
            origin,
            proxy,
            squid: _squid,
        } = BehindSquid::start(mode, |c, _| {
            if mode == "basic" {
                // Basic to a plain-HTTP proxy is an explicit choice
                c.auth.scheme = waypost_auth::SchemeChoice::Basic;
            }
        })
        .await;
        let reply = harness::raw(
            proxy.addrs[0],
            format!("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\nGET /in-{mode} HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n", origin.addr).as_bytes(),
        )
        .await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{mode}: {reply}");
        assert!(
            reply.contains(&format!("GET /in-{mode}")),
            "{mode}: {reply}"
        );
        let (status, _, body) =
            harness::get(proxy.addrs[0], &origin.url(&format!("/get-{mode}"))).await;
        assert_eq!(status, 200, "{mode}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_that_closes_after_its_first_407_gets_a_new_connection_and_the_handshake() {
    let BehindSquid {
        origin,
        proxy,
        squid: _squid,
    } = BehindSquid::start("all-close", |c, _| {
        c.auth.scheme = waypost_auth::SchemeChoice::Ntlm;
    })
    .await;
    let (status, _, body) = harness::get(proxy.addrs[0], &origin.url("/after-close")).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_relays_one_407_and_then_locks_out_instead_of_retrying() {
    let BehindSquid {
        squid,
        origin,
        proxy,
    } = BehindSquid::start("ntlm", |c, _| {
        c.auth.password = Some(waypost_auth::credentials::SecretString::new("Wrong-Pass-9"));
        c.auth.lockout_after = 2;
    })
    .await;
    for _ in 0..2 {
        let (status, headers, _) = harness::get(proxy.addrs[0], &origin.url("/wrong")).await;
        assert_eq!(status, 407);
        assert_eq!(headers["x-waypost-error"], "auth-rejected");
        assert!(
            headers.get("proxy-authenticate").is_none(),
            "the client is not asked for credentials"
        );
    }
    let attempts_before = squid.ntlm_log().matches("\"authenticate\"").count();
    assert_eq!(attempts_before, 2, "one AUTHENTICATE per request, no loop");
    let (status, _, _) = harness::get(proxy.addrs[0], &origin.url("/locked")).await;
    assert_eq!(status, 407);
    assert_eq!(
        squid.ntlm_log().matches("\"authenticate\"").count(),
        attempts_before,
        "locked out: no new attempt reaches the proxy"
    );
    let logs = squid.ntlm_log();
    assert!(!logs.contains("Wrong-Pass-9"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_not_sent_to_proxies_the_policy_does_not_allow() {
    // an IP address is never "intranet" under the medium policy
    let BehindSquid {
        squid,
        origin,
        proxy,
    } = BehindSquid::start("basic", |c, port| {
        c.route.upstream = format!("http://127.0.0.1:{port}");
    })
    .await;
    let (status, _, _) = harness::get(proxy.addrs[0], &origin.url("/policy")).await;
    assert_eq!(
        status, 407,
        "the proxy's own 407 comes back; no credentials were sent"
    );
    assert!(!squid.access_log().contains(&format!("user={USER}")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_from_the_kernel_keyring_authenticates_without_any_in_the_config() {
    use linux_keyutils::{KeyRing, KeyRingIdentifier};
    // a user name only this test uses, so parallel tests never see the key
    let user = format!("EXAMPLE\\{USER}");
    let ring = KeyRing::from_special_id(KeyRingIdentifier::User, true).unwrap();
    let key = ring
        .add_key(&waypost_auth::keyring::description(&user), PASSWORD)
        .unwrap();
    let BehindSquid {
        origin,
        proxy,
        squid: _squid,
    } = BehindSquid::start("ntlm", |c, _| {
        c.auth.user = Some(user.clone());
        c.auth.password = None;
    })
    .await;
    let (status, _, body) = harness::get(proxy.addrs[0], &origin.url("/keyring")).await;
    key.invalidate().unwrap();
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_upstream_proxy_gets_the_identity_configured_for_it() {
    // two corporate proxies that accept different users; the default identity (the test
    // user) is accepted by neither, so a wrong choice fails with 407
    let (basic, ntlm) = tokio::task::spawn_blocking(|| {
        (
            Squid::builder("basic")
                .credentials("alice", "Alice-Pass-1")
                .start(),
            Squid::builder("ntlm")
                .credentials("bob", "Bob-Pass-2")
                .start(),
        )
    })
    .await
    .unwrap();
    let origin = Origin::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let pac = dir.path().join("two.pac");
    std::fs::write(
        &pac,
        format!(
            "function FindProxyForURL(url, host) {{\n\
             if (shExpMatch(url, '*/to-basic*')) return 'PROXY localhost:{}';\n\
             return 'PROXY localhost:{}';\n}}",
            basic.port, ntlm.port
        ),
    )
    .unwrap();
    let bob_pw = dir.path().join("bob.pw");
    std::fs::write(&bob_pw, "Bob-Pass-2\n").unwrap();
    std::fs::set_permissions(&bob_pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let (basic_port, ntlm_port) = (basic.port, ntlm.port);
    let proxy = harness::start_proxy(|c| {
        c.pac.source = pac.display().to_string().into();
        c.pac.cache_file = "none".into();
        c.route.bypass_loopback = false;
        c.auth.user = Some(USER.to_string());
        c.auth.password = Some(waypost_auth::credentials::SecretString::new(PASSWORD));
        c.auth.proxies = vec![
            ProxyAuthConfig {
                matches: format!("localhost:{basic_port}"),
                user: Some("alice".into()),
                password: Some(SecretString::new("Alice-Pass-1")),
                scheme: waypost_auth::SchemeChoice::Basic,
                ..Default::default()
            },
            ProxyAuthConfig {
                matches: format!("*:{ntlm_port}"),
                user: Some("bob".into()),
                password_file: Some(bob_pw.clone()),
                ..Default::default()
            },
        ];
    })
    .await;
    let addr = proxy.addrs[0];
    let mut client = Client::connect(addr).await;
    for i in 0..3 {
        let (status, _, body) = client.get(&origin.url(&format!("/to-basic/{i}"))).await;
        assert_eq!(status, 200, "through the basic squid: {body}");
        let (status, _, body) = client.get(&origin.url(&format!("/to-ntlm/{i}"))).await;
        assert_eq!(status, 200, "through the NTLM squid: {body}");
    }
    let basic_log = basic
        .access_log_when(|l| l.matches("user=alice").count() >= 3)
        .await;
    assert_eq!(basic_log.matches("user=alice").count(), 3, "{basic_log}");
    assert!(!basic_log.contains("/to-ntlm"), "{basic_log}");
    assert!(!basic_log.contains("user=bob") && !basic_log.contains(&format!("user={USER}")));
    let ntlm_log = ntlm.ntlm_log();
    let users: Vec<&str> = ntlm_log
        .lines()
        .filter(|l| l.contains("\"event\": \"authenticate\""))
        .filter_map(|l| l.split("\"user\": \"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(users, ["bob"], "{ntlm_log}");
    assert!(ntlm_log.contains("\"verdict\": \"ok\""), "{ntlm_log}");
    let ntlm_access = ntlm
        .access_log_when(|l| l.matches("user=bob").count() >= 3)
        .await;
    assert_eq!(ntlm_access.matches(" 200 ").count(), 3, "{ntlm_access}");
    assert_eq!(ntlm_access.matches("user=bob").count(), 3, "{ntlm_access}");
    assert!(!ntlm_access.contains("/to-basic"), "{ntlm_access}");
    // one NTLM handshake: later requests reuse bob's authenticated connection
    let m = harness::metrics(addr).await;
    assert_eq!(
        metric(
            &m,
            "waypost_auth_handshakes_total{outcome=\"authenticated\",scheme=\"ntlm\"}"
        ),
        1.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_password_file_is_used_by_the_next_handshake_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("password");
    let write = |text: &str| {
        // replaced by rename, as editors and secret managers do
        let tmp = dir.path().join("password.new");
        std::fs::write(&tmp, text).unwrap();
        std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        std::fs::rename(&tmp, &pw).unwrap();
    };
    write("Wrong-Pass-9\n");
    let BehindSquid {
        squid,
        origin,
        proxy,
    } = BehindSquid::start("ntlm", |c, _| {
        c.auth.password = None;
        c.auth.password_file = Some(pw.clone());
    })
    .await;
    let (status, headers, _) = harness::get(proxy.addrs[0], &origin.url("/old")).await;
    assert_eq!(
        (status, headers["x-waypost-error"].to_str().unwrap()),
        (407, "auth-rejected")
    );
    write(&format!("{PASSWORD}\n"));
    let (status, _, body) = harness::get(proxy.addrs[0], &origin.url("/new")).await;
    assert_eq!(status, 200, "the new password is used at once: {body}");
    let log = squid.ntlm_log();
    assert!(log.contains("\"verdict\": \"ok\""), "{log}");
    assert!(!log.contains("Wrong-Pass-9") && !log.contains(PASSWORD));
}

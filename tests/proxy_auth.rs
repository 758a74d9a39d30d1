//! Upstream proxy authentication in the running proxy, against real squids: the client (curl or
//! the harness) has no credentials of its own; waypost answers the proxy's 407s.

mod support;

use support::harness::{self, metric, Client, Origin};
use support::peers::{Squid, PASSWORD, USER};
use waypost::config::raw::RawConfig;
use waypost_testsupport::curl::Curl;

fn with_credentials(c: &mut RawConfig, squid_port: u16) {
    // `localhost` is a plain host name: the default (medium) autologon policy allows it
    c.route.upstream = format!("http://localhost:{squid_port}");
    c.route.bypass_loopback = false;
    c.auth.user = Some(USER.to_string());
    c.auth.password = Some(waypost_auth::credentials::SecretString::new(PASSWORD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntlm_authenticates_once_and_reuses_the_connection_for_later_requests() {
    let squid = tokio::task::spawn_blocking(|| Squid::start("ntlm"))
        .await
        .unwrap();
    let origin = Origin::echo().await;
    let port = squid.port;
    let proxy = harness::start_proxy(|c| with_credentials(c, port)).await;
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
async fn connect_tunnels_authenticate_with_ntlm_and_basic() {
    for mode in ["ntlm", "basic", "ntlm-mic"] {
        let squid = tokio::task::spawn_blocking(move || Squid::start(mode))
            .await
            .unwrap();
        let origin = Origin::echo().await;
        let port = squid.port;
        let proxy = harness::start_proxy(|c| {
            with_credentials(c, port);
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
    let squid = tokio::task::spawn_blocking(|| Squid::start("all-close"))
        .await
        .unwrap();
    let origin = Origin::echo().await;
    let port = squid.port;
    let proxy = harness::start_proxy(|c| {
        with_credentials(c, port);
        c.auth.scheme = waypost_auth::SchemeChoice::Ntlm;
    })
    .await;
    let (status, _, body) = harness::get(proxy.addrs[0], &origin.url("/after-close")).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_relays_one_407_and_then_locks_out_instead_of_retrying() {
    let squid = tokio::task::spawn_blocking(|| Squid::start("ntlm"))
        .await
        .unwrap();
    let origin = Origin::echo().await;
    let port = squid.port;
    let proxy = harness::start_proxy(|c| {
        with_credentials(c, port);
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
    let squid = tokio::task::spawn_blocking(|| Squid::start("basic"))
        .await
        .unwrap();
    let origin = Origin::echo().await;
    let port = squid.port;
    // an IP address is never "intranet" under the medium policy
    let proxy = harness::start_proxy(|c| {
        with_credentials(c, port);
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
    let squid = tokio::task::spawn_blocking(|| Squid::start("ntlm"))
        .await
        .unwrap();
    let origin = Origin::echo().await;
    // a user name only this test uses, so parallel tests never see the key
    let user = format!("EXAMPLE\\{USER}");
    let ring = KeyRing::from_special_id(KeyRingIdentifier::User, true).unwrap();
    let key = ring
        .add_key(&waypost_auth::keyring::description(&user), PASSWORD)
        .unwrap();
    let port = squid.port;
    let proxy = harness::start_proxy(|c| {
        c.route.upstream = format!("http://localhost:{port}");
        c.route.bypass_loopback = false;
        c.auth.user = Some(user.clone());
    })
    .await;
    let (status, _, body) = harness::get(proxy.addrs[0], &origin.url("/keyring")).await;
    key.invalidate().unwrap();
    assert_eq!(status, 200, "{body}");
}

//! Kerberos (Negotiate) to real squids with a real MIT KDC: single sign-on from a `kinit`
//! ticket cache, and the fall back to NTLM when Kerberos is impossible. One test per process
//! environment (KRB5_CONFIG / KRB5CCNAME are process-wide), so the cases run in sequence.

#![cfg(feature = "gssapi")]

mod support;

use support::harness::{self, metric, Origin};
use support::peers::{Kdc, Squid, PASSWORD, USER};
use waypost_testsupport::curl::Curl;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kerberos_sso_from_a_kinit_ticket_and_ntlm_fallback_when_the_proxy_is_an_ip() {
    // peers start blocking, before anything is awaited
    let kdc = Kdc::start();
    for (k, v) in kdc.env() {
        // SAFETY: set before any other thread of this test reads the environment (one test per binary)
        unsafe { std::env::set_var(k, v) };
    }
    let negotiate = Squid::builder("negotiate").kdc(&kdc).start();
    let all = Squid::builder("all").kdc(&kdc).start();
    let origin = Origin::echo().await;

    // SSO: no user or password configured; the ticket cache is used through GSSAPI. The
    // proxy starts before `kinit`: no ticket yet, the proxy's 407 comes back
    let neg_port = negotiate.port;
    let sso = harness::start_proxy(|c| {
        c.route.upstream = format!("http://localhost:{neg_port}");
        c.route.bypass_loopback = false;
    })
    .await;
    let (status, _, _) = harness::get(sso.addrs[0], &origin.url("/before-kinit")).await;
    assert_eq!(status, 407, "no ticket before kinit");
    // `kinit` after the start: the next request uses the new ticket, no restart
    kdc.kinit();
    let (status, _, body) = harness::get(sso.addrs[0], &origin.url("/kerberos")).await;
    assert_eq!(status, 200, "{body}");
    auth_status_shows_the_ticket_and_no_secret(&kdc);
    let reply = harness::raw(
        sso.addrs[0],
        format!("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\nGET /kerberos-tunnel HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n", origin.addr).as_bytes(),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let m = harness::metrics(sso.addrs[0]).await;
    assert!(
        metric(
            &m,
            "waypost_auth_handshakes_total{outcome=\"authenticated\",scheme=\"negotiate\"}"
        ) >= 1.0,
        "{m}"
    );
    assert!(
        negotiate.cache_log().contains("authenticated"),
        "{}",
        negotiate.cache_log()
    );

    // Kerberos is impossible for a proxy given as an IP address: NTLM is used instead
    let all_port = all.port;
    let fallback = harness::start_proxy(|c| {
        c.route.upstream = format!("http://127.0.0.1:{all_port}");
        c.route.bypass_loopback = false;
        c.auth.user = Some(USER.to_string());
        c.auth.password = Some(waypost_auth::credentials::SecretString::new(PASSWORD));
        c.auth.allow_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let (status, _, body) = harness::get(fallback.addrs[0], &origin.url("/fallback")).await;
    assert_eq!(status, 200, "{body}");
    let m = harness::metrics(fallback.addrs[0]).await;
    assert!(
        m.contains("waypost_auth_handshakes_total{outcome=\"authenticated\",scheme=\"ntlm\"}"),
        "{m}"
    );

    // curl with no credentials of its own reaches the origin through every test proxy
    for mode in ["negotiate", "ntlm", "ntlm-mic", "basic", "all", "all-close"] {
        let squid = Squid::builder(mode).kdc(&kdc).start();
        let port = squid.port;
        let proxy = harness::start_proxy(|c| {
            c.route.upstream = format!("http://localhost:{port}");
            c.route.bypass_loopback = false;
            // as a corporate user has it: a password (no realm: no Kerberos from it) and a
            // ticket in the cache, which the Kerberos-only proxy gets
            c.auth.user = Some(USER.to_string());
            c.auth.password = Some(waypost_auth::credentials::SecretString::new(PASSWORD));
            if mode == "basic" {
                // Basic to a plain-HTTP proxy is an explicit choice
                c.auth.scheme = waypost_auth::SchemeChoice::Basic;
            }
        })
        .await;
        let proxy_url = format!("http://{}", proxy.addrs[0]);
        let url = origin.url(&format!("/curl-{mode}"));
        let code = Curl::new().proxy(&proxy_url).status_async(&url).await;
        assert_eq!(code, "200", "curl through waypost to squid {mode}");
    }
}

/// `waypost auth status --json` (the binary, as a user runs it) with the ticket of `kdc`'s
/// cache and a per-proxy entry with a password.
fn auth_status_shows_the_ticket_and_no_secret(kdc: &Kdc) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("waypost.toml");
    std::fs::write(
        &cfg,
        format!(
            "[auth]\nccache = \"FILE:{}\"\n[[auth.proxies]]\nmatch = \"*.partner.example\"\n\
             user = \"alice\"\npassword = \"Alice-Secret-7\"\n",
            kdc.ccache.display()
        ),
    )
    .unwrap();
    let run = |json: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_waypost"));
        cmd.args(["auth", "status", "--config"]).arg(&cfg);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().expect("run waypost auth status");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let text = run(false);
    let json: serde_json::Value = serde_json::from_str(&run(true)).unwrap();
    for out in [&text, &json.to_string()] {
        assert!(
            !out.contains("Alice-Secret-7") && !out.contains(PASSWORD),
            "{out}"
        );
    }
    let default = &json[0];
    assert_eq!(default["match"], "default");
    assert_eq!(default["kerberos"]["ticket"], "valid", "{json}");
    assert_eq!(
        default["kerberos"]["principal"],
        format!("{USER}@EXAMPLE.TEST")
    );
    let left = default["kerberos"]["expires_in_seconds"].as_i64().unwrap();
    assert!(
        left > 9 * 3600 && left <= 10 * 3600,
        "a 10 h ticket: {left} s left"
    );
    assert_eq!(json[1]["match"], "*.partner.example");
    assert_eq!(json[1]["identity"], "alice");
    assert_eq!(json[1]["secret"], "config password");
    assert!(
        text.contains("ticket valid for user@EXAMPLE.TEST, expires "),
        "{text}"
    );
    assert!(
        text.contains("proxies matching *.partner.example"),
        "{text}"
    );
}

//! Autoproxy in the running proxy: PAC from a file and over HTTP, failover across the PAC list
//! with bad-proxy marking, roaming to a new script, the failure policy, and explain.

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Response;
use support::harness::{self, metric, Origin};
use support::peers::{free_port, Socks5, Squid};
use waypost::body;
use waypost_testsupport::eventually;

fn pac_file(dir: &tempfile::TempDir, script: &str) -> String {
    let path = dir.path().join("proxy.pac");
    std::fs::write(&path, script).unwrap();
    path.display().to_string()
}

fn base(c: &mut waypost::config::raw::RawConfig, source: &str) {
    c.pac.source = source.into();
    c.pac.cache_file = "none".into();
    c.route.bypass_loopback = false;
}

async fn explain(proxy: std::net::SocketAddr, url: &str) -> serde_json::Value {
    let (status, _, body) = harness::get(
        proxy,
        &format!("/explain?url={}", waypost::ops::admin::percent_encode(url)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pac_file_routes_each_url_as_the_script_says() {
    let squid = tokio::task::spawn_blocking(|| Squid::start("open"))
        .await
        .unwrap();
    let origin = Origin::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "function FindProxyForURL(url, host) {{ if (shExpMatch(url, '*/direct/*')) return 'DIRECT'; return 'PROXY 127.0.0.1:{}'; }}",
        squid.port
    );
    let source = pac_file(&dir, &script);
    let proxy = harness::start_proxy(|c| base(c, &source)).await;
    let (_, _, via_squid) = harness::get(proxy.addrs[0], &origin.url("/proxied/x")).await;
    assert!(
        via_squid.to_ascii_lowercase().contains("via:"),
        "{via_squid}"
    );
    let (_, _, direct) = harness::get(proxy.addrs[0], &origin.url("/direct/x")).await;
    assert!(!direct.to_ascii_lowercase().contains("via:"), "{direct}");
    let report = explain(proxy.addrs[0], &origin.url("/direct/y")).await;
    assert_eq!(report["raw"], "DIRECT");
    assert_eq!(report["pac"]["method"], "file");
    assert_eq!(report["decision"][0], "DIRECT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_first_proxy_fails_over_within_the_request_and_is_tried_last_until_its_retry_time() {
    let squid = tokio::task::spawn_blocking(|| Squid::start("open"))
        .await
        .unwrap();
    let origin = Origin::echo().await;
    let dead = free_port();
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "function FindProxyForURL(u, h) {{ return 'PROXY 127.0.0.1:{dead}; PROXY 127.0.0.1:{}'; }}",
        squid.port
    );
    let source = pac_file(&dir, &script);
    let proxy = harness::start_proxy(|c| {
        base(c, &source);
        c.pac.bad_proxy_retry = "1500ms".into();
    })
    .await;
    let (status, _, body) = harness::get(proxy.addrs[0], &origin.url("/failover")).await;
    assert_eq!(status, 200, "the client sees no error: {body}");
    assert!(body.to_ascii_lowercase().contains("via:"), "{body}");
    let m = harness::metrics(proxy.addrs[0]).await;
    assert_eq!(
        metric(
            &m,
            "waypost_route_failovers_total{reason=\"connect-refused\"}"
        ),
        1.0,
        "{m}"
    );
    assert_eq!(metric(&m, "waypost_proxies_marked_bad"), 1.0, "{m}");
    let report = explain(proxy.addrs[0], &origin.url("/")).await;
    assert_eq!(
        report["bad_proxies"][0]["proxy"],
        format!("http://127.0.0.1:{dead}")
    );
    assert_eq!(
        report["decision"][0],
        format!("http://127.0.0.1:{}", squid.port),
        "the bad proxy goes last: {report}"
    );
    // while marked, requests go straight to the good proxy: no new failover
    assert_eq!(
        harness::get(proxy.addrs[0], &origin.url("/again")).await.0,
        200
    );
    let m = harness::metrics(proxy.addrs[0]).await;
    assert_eq!(
        metric(
            &m,
            "waypost_route_failovers_total{reason=\"connect-refused\"}"
        ),
        1.0,
        "{m}"
    );
    // after bad_proxy_retry (1.5 s) the mark expires and the PAC order is back
    let url = origin.url("/");
    let report = eventually(
        Duration::from_secs(10),
        || explain(proxy.addrs[0], &url),
        |r| {
            r["bad_proxies"]
                .as_array()
                .is_some_and(|bad| bad.is_empty())
        },
    )
    .await;
    assert_eq!(
        report["decision"][0],
        format!("http://127.0.0.1:{dead}"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pac_served_over_http_is_refreshed_and_new_decisions_follow_it() {
    let squid = tokio::task::spawn_blocking(|| Squid::start("open"))
        .await
        .unwrap();
    let origin = Origin::echo().await;
    let script = Arc::new(Mutex::new(
        "function FindProxyForURL(u, h) { return 'DIRECT'; }".to_string(),
    ));
    let served = script.clone();
    let pac_server = Origin::start(move |_req| {
        let text = served.lock().unwrap().clone();
        async move {
            Response::builder()
                .header("content-type", "application/x-ns-proxy-autoconfig")
                .body(body::full(text))
                .unwrap()
        }
    })
    .await;
    let pac_url = pac_server.url("/wpad.dat");
    let proxy = harness::start_proxy(|c| {
        base(c, &pac_url);
        c.pac.refresh = "300ms".into();
    })
    .await;
    let (_, _, body) = harness::get(proxy.addrs[0], &origin.url("/before")).await;
    assert!(
        !body.to_ascii_lowercase().contains("via:"),
        "DIRECT first: {body}"
    );
    *script.lock().unwrap() = format!(
        "function FindProxyForURL(u, h) {{ return 'PROXY 127.0.0.1:{}'; }}",
        squid.port
    );
    // the next refresh (every 300 ms) picks the new script up
    eventually(
        Duration::from_secs(10),
        || async { harness::get(proxy.addrs[0], &origin.url("/after")).await.2 },
        |body| body.to_ascii_lowercase().contains("via:"),
    )
    .await;
    let report = explain(proxy.addrs[0], &origin.url("/x")).await;
    assert_eq!(report["pac"]["method"], "url");
    let m = harness::metrics(proxy.addrs[0]).await;
    assert!(
        metric(
            &m,
            "waypost_pac_fetches_total{outcome=\"ok\",source=\"url\"}"
        ) >= 2.0,
        "{m}"
    );
}

#[tokio::test]
async fn without_a_pac_script_requests_go_direct_unless_pac_is_mandatory() {
    let origin = Origin::echo().await;
    let unreachable = format!("http://127.0.0.1:{}/proxy.pac", free_port());
    let lenient = harness::start_proxy(|c| {
        base(c, &unreachable);
        c.pac.first_load_wait = "2s".into();
    })
    .await;
    assert_eq!(
        harness::get(lenient.addrs[0], &origin.url("/")).await.0,
        200
    );
    let m = harness::metrics(lenient.addrs[0]).await;
    assert_eq!(
        metric(&m, "waypost_pac_fallbacks_total{action=\"direct\"}"),
        1.0,
        "{m}"
    );
    let strict = harness::start_proxy(|c| {
        base(c, &unreachable);
        c.pac.mandatory = true;
        c.pac.first_load_wait = "2s".into();
    })
    .await;
    let (status, headers, _) = harness::get(strict.addrs[0], &origin.url("/")).await;
    assert_eq!(status, 502);
    assert_eq!(headers["x-waypost-error"], "pac-unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socks_entry_in_the_pac_list_is_followed() {
    let socks = tokio::task::spawn_blocking(Socks5::start).await.unwrap();
    let origin = Origin::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let source = pac_file(
        &dir,
        &format!(
            "function FindProxyForURL(u, h) {{ return 'SOCKS5 127.0.0.1:{}; DIRECT'; }}",
            socks.port
        ),
    );
    let proxy = harness::start_proxy(|c| base(c, &source)).await;
    let (status, _, body) = harness::get(proxy.addrs[0], &origin.url("/socks-from-pac")).await;
    assert_eq!(status, 200, "{body}");
    let report = explain(proxy.addrs[0], &origin.url("/")).await;
    assert_eq!(
        report["decision"][0],
        format!("socks5://127.0.0.1:{}", socks.port)
    );
}

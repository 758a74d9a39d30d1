//! Option scopes (`[[scopes]]`) through the running proxy with real origins: a scoped
//! `receive_response`, a scoped `max_conns_per_server`, a TLS 1.3-only scope against a real
//! TLS 1.2 origin, the legacy `[[tls.exceptions]]` syntax, and explain naming each effective
//! option's source.

use crate::support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use rustls::pki_types::PrivateKeyDer;
use support::harness::{self, Origin};
use waypost::body;
use waypost::config::raw::RawScope;
use waypost_testsupport::eventually;

fn scope(matches: &[String], tweak: impl FnOnce(&mut RawScope)) -> RawScope {
    let mut s = RawScope {
        matches: matches.to_vec(),
        ..RawScope::default()
    };
    tweak(&mut s);
    s
}

/// An origin that answers 200 after `delay`.
async fn slow_origin(delay: Duration) -> Origin {
    Origin::start(move |_req: Request<Incoming>| async move {
        tokio::time::sleep(delay).await;
        Response::new(body::full("late"))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_receive_response_lets_a_slow_origin_answer_while_the_global_one_cuts_another() {
    let scoped = slow_origin(Duration::from_millis(1500)).await;
    let other = slow_origin(Duration::from_millis(1500)).await;
    let m = vec![scoped.addr.to_string()];
    let proxy = harness::start_proxy(|c| {
        c.timeouts.receive_response = "300ms".into();
        c.scopes = vec![scope(&m, |s| {
            s.timeouts.receive_response = Some("30s".into())
        })];
    })
    .await;
    let (scoped_url, other_url) = (scoped.url("/"), other.url("/"));
    let (a, b) = tokio::join!(
        harness::get(proxy.addrs[0], &scoped_url),
        harness::get(proxy.addrs[0], &other_url)
    );
    assert_eq!((a.0, a.2.as_str()), (200, "late"));
    assert_eq!(b.0, 504, "{}", b.2);
    assert_eq!(b.1["x-waypost-error"], "response-timeout");
}

/// An origin that holds every request until `gate` opens, counting those it holds.
async fn gated_origin(gate: tokio::sync::watch::Receiver<bool>) -> (Origin, Arc<AtomicUsize>) {
    let held = Arc::new(AtomicUsize::new(0));
    let count = held.clone();
    let origin = Origin::start(move |_req: Request<Incoming>| {
        let (mut gate, held) = (gate.clone(), count.clone());
        async move {
            held.fetch_add(1, Ordering::SeqCst);
            let _ = gate.wait_for(|open| *open).await;
            Response::new(body::full("done"))
        }
    })
    .await;
    (origin, held)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_max_conns_per_server_holds_the_third_request_while_another_host_is_not_limited() {
    let (open, gate) = tokio::sync::watch::channel(false);
    let (limited, limited_held) = gated_origin(gate.clone()).await;
    let (free, free_held) = gated_origin(gate).await;
    let m = vec![limited.addr.to_string()];
    let proxy = harness::start_proxy(|c| {
        c.scopes = vec![scope(&m, |s| s.limits.max_conns_per_server = Some(2))];
    })
    .await;
    let addr = proxy.addrs[0];
    let mut requests = Vec::new();
    for origin in [&limited, &free] {
        for _ in 0..3 {
            let url = origin.url("/");
            requests.push(tokio::spawn(
                async move { harness::get(addr, &url).await.0 },
            ));
        }
    }
    // the free host has all three in flight; the limited one two, the third waiting for a slot
    eventually(
        Duration::from_secs(10),
        || async { free_held.load(Ordering::SeqCst) },
        |n| *n == 3,
    )
    .await;
    eventually(
        Duration::from_secs(10),
        || async { harness::registry_metrics(&proxy) },
        |m| harness::metric(m, "waypost_pool_slot_waits_total{upstream=\"direct\"}") >= 1.0,
    )
    .await;
    assert_eq!(limited_held.load(Ordering::SeqCst), 2);
    assert_eq!(limited.connections.load(Ordering::SeqCst), 2);
    open.send(true).unwrap();
    for r in requests {
        assert_eq!(r.await.unwrap(), 200);
    }
    assert_eq!(limited_held.load(Ordering::SeqCst), 3);
}

/// A TLS origin speaking TLS 1.2 only, with a self-signed certificate for `localhost`.
async fn tls12_origin() -> SocketAddr {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let chain = vec![cert.cert.der().clone()];
    harness::tls_origin(chain, key, &[&rustls::version::TLS12]).await
}

/// Runs the waypost binary with `args`: (success, stdout).
async fn waypost(args: Vec<std::ffi::OsString>) -> (bool, String) {
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_waypost"))
            .args(args)
            .env_remove("WAYPOST_CONFIG")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.success(), stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls13_only_scope_refuses_a_tls12_origin_while_other_hosts_accept_tls12() {
    let strict = tls12_origin().await;
    let lax = tls12_origin().await;
    let strict_dest = vec![format!("localhost:{}", strict.port())];
    let proxy = harness::start_proxy(|c| {
        c.scopes = vec![
            scope(&strict_dest, |s| s.tls.min_version = Some("1.3".into())),
            // both origins are self-signed: accepted for localhost, on any port
            scope(&["localhost".into()], |s| {
                s.tls.allow = Some(vec!["unknown-ca".into()])
            }),
        ];
    })
    .await;
    let url = |a: SocketAddr| format!("https://localhost:{}/", a.port());
    let (status, headers, body) = harness::get(proxy.addrs[0], &url(strict)).await;
    assert_eq!(status, 502, "{body}");
    let code = headers["x-waypost-error"].to_str().unwrap();
    assert!(code.starts_with("tls-"), "{code}");
    let (status, _, body) = harness::get(proxy.addrs[0], &url(lax)).await;
    assert_eq!((status, body.as_str()), (200, "secure"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_tls_exceptions_syntax_still_loads_and_works_with_a_deprecation_note() {
    let origin = tls12_origin().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("waypost.toml");
    std::fs::write(
        &file,
        "listen = [\"127.0.0.1:0\"]\n[tls]\nconnect_ports = []\n\
         [[tls.exceptions]]\nhosts = [\"localhost\"]\nallow = [\"unknown-ca\"]\n",
    )
    .unwrap();
    let overrides = waypost::config::Overrides::default();
    let cfg = waypost::config::load_with_env(Some(&file), &overrides, HashMap::new()).unwrap();
    let proxy = waypost::listen::server::start(cfg).await.unwrap();
    let url = format!("https://localhost:{}/", origin.port());
    let (status, _, body) = harness::get(proxy.addrs[0], &url).await;
    assert_eq!((status, body.as_str()), (200, "secure"));
    let (ok, stdout) = waypost(vec!["config".into(), "check".into(), file.into()]).await;
    assert!(ok, "{stdout}");
    assert!(
        stdout.contains("warning: tls.exceptions[0]: deprecated: write it as [[scopes]]"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_shows_each_effective_option_and_its_source() {
    let origin = Origin::echo().await;
    let m = vec![origin.addr.to_string()];
    let proxy = harness::start_proxy(|c| {
        c.scopes = vec![
            scope(&m, |s| {
                s.timeouts.receive_response = Some("10m".into());
                s.limits.keep_alive = Some(false);
            }),
            scope(&["127.0.0.0/8".into()], |s| {
                s.timeouts.receive_response = Some("1s".into());
                s.limits.max_conns_per_server = Some(2);
            }),
        ];
    })
    .await;
    let url = origin.url("/x");
    let path = format!("/explain?url={}", waypost::ops::admin::percent_encode(&url));
    let (status, _, body) = harness::get(proxy.addrs[0], &path).await;
    assert_eq!(status, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    let options: HashMap<String, (String, String)> = report["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let s = |k: &str| o[k].as_str().unwrap().to_string();
            (s("key"), (s("value"), s("source")))
        })
        .collect();
    let get = |k: &str| options[k].clone();
    let pair = |v: &str, s: &str| (v.to_string(), s.to_string());
    assert_eq!(get("timeouts.receive_response"), pair("10m", "scopes[0]"));
    assert_eq!(get("limits.keep_alive"), pair("false", "scopes[0]"));
    assert_eq!(get("limits.max_conns_per_server"), pair("2", "scopes[1]"));
    assert_eq!(get("timeouts.connect"), pair("1m", "global"));
    assert_eq!(get("tls.min_version"), pair("1.2", "global"));
    assert_eq!(options.len(), 16, "{options:?}");
    // the command line shows the same, one line per option
    let addr = proxy.addrs[0].to_string();
    let args = ["explain", &url, "--proxy", &addr].map(Into::into).to_vec();
    let (ok, text) = waypost(args).await;
    assert!(ok, "{text}");
    assert!(
        text.contains("option:     timeouts.receive_response = 10m (scopes[0])"),
        "{text}"
    );
    // keep-alive off: the origin is told (`Connection: close`) and the connection to it is not
    // kept for the next request
    let (_, _, echoed) = harness::get(proxy.addrs[0], &origin.url("/a")).await;
    assert!(echoed.contains("connection: close\n"), "{echoed}");
    harness::get(proxy.addrs[0], &origin.url("/b")).await;
    assert_eq!(origin.connections.load(Ordering::SeqCst), 2);
}

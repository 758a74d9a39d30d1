//! Hostile PAC scripts through the running proxy: PAC evaluation runs in supervised
//! `waypost pac-worker` processes, so a memory bomb, a spinning script, `for(;;) f();`, deep
//! recursion or a 10 MB alert loop costs one worker — never the proxy. For each, the proxy keeps
//! answering other requests and keeps a tunnel opened before, its RSS stays within 64 MiB of
//! where it started (each worker is capped at 256 MiB of address space), nothing burns CPU a few
//! seconds later, and the metrics count what happened.
//!
//! One test in this file on purpose: it measures the CPU time of the whole test process.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::harness::{self, metric, Origin};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use waypost_testsupport::{eventually, procfs};

const HOSTILE: &str = r#"
function f() { var x = 0; for (var i = 0; i < 1000; i++) { x += i; } return x; }
function deep(n) { return deep(n + 1) + 1; }
function FindProxyForURL(url, host) {
    if (host == 'bomb.test') { var s = 'x'; var keep = []; for (;;) { s = s + s; keep.push(s); } }
    if (host == 'spin.test') { while (true) {} }
    if (host == 'calls.test') { for (;;) f(); }
    if (host == 'deep.test') { return deep(0); }
    if (host == 'alerts.test') {
        var big = 'A'; for (var j = 0; j < 20; j++) big += big;   // 1 MiB
        for (var k = 0; k < 10; k++) alert(big);                  // 10 MiB of alert()
        return 'DIRECT';
    }
    return 'DIRECT';
}
"#;

async fn open_tunnel(proxy: SocketAddr, to: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(format!("CONNECT {to} HTTP/1.1\r\nHost: {to}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut byte))
            .await
            .expect("tunnel answer in time")
            .unwrap();
        assert!(n > 0, "closed: {:?}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

async fn tunnel_still_echoes(s: &mut TcpStream, round: usize) {
    let msg = format!("ping {round}\n");
    s.write_all(msg.as_bytes()).await.unwrap();
    let mut back = vec![0u8; msg.len()];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut back))
        .await
        .expect("the tunnel answers")
        .unwrap();
    assert_eq!(back, msg.as_bytes());
}

/// Resident set size of this process (the proxy runs in it), in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        * 1024
}

/// CPU clock ticks used so far by this process and its children (the PAC workers).
fn cpu_ticks() -> u64 {
    let me = procfs::stat("self").unwrap();
    me.cpu_ticks
        + procfs::children(me.pid)
            .iter()
            .map(|c| c.cpu_ticks)
            .sum::<u64>()
}

/// Share of one core used over the next 500 ms by this process and its children.
async fn cpu_share() -> f64 {
    let before = cpu_ticks();
    tokio::time::sleep(Duration::from_millis(500)).await;
    (cpu_ticks() - before) as f64 / 100.0 / 0.5
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_scripts_cost_one_worker_process_and_never_the_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let pac = dir.path().join("hostile.pac");
    std::fs::write(&pac, HOSTILE).unwrap();
    let origin = Origin::echo().await;
    let echo = harness::echo_server().await;
    let proxy = harness::start_proxy(|c| {
        c.pac.source = pac.display().to_string().into();
        c.pac.cache_file = "none".into();
        c.pac.workers = 2;
        c.pac.call_timeout = "2s".into();
        c.pac.worker_memory_limit = 256 << 20;
        c.route.bypass_loopback = false;
    })
    .await;
    let addr = proxy.addrs[0];
    let (status, _, _) = harness::get(addr, &origin.url("/warm-up")).await;
    assert_eq!(status, 200);
    let mut tunnel = open_tunnel(addr, echo).await;
    let rss_before = rss();

    let mut round = 0;
    for (host, counted) in [
        (
            "bomb.test",
            "waypost_pac_worker_kills_total{reason=\"memory\"}",
        ),
        (
            "spin.test",
            "waypost_pac_evaluations_total{outcome=\"timeout\"}",
        ),
        (
            "calls.test",
            "waypost_pac_evaluations_total{outcome=\"timeout\"}",
        ),
        (
            "deep.test",
            "waypost_pac_evaluations_total{outcome=\"call\"}",
        ),
        (
            "alerts.test",
            "waypost_pac_evaluations_total{outcome=\"ok\"}",
        ),
    ] {
        let before = metric(&harness::metrics(addr).await, counted);
        let url = format!("http://{host}/x");
        let hostile = tokio::spawn(async move { harness::get(addr, &url).await });
        // while it runs, other requests (each a fresh evaluation) and the tunnel are served
        for _ in 0..3 {
            round += 1;
            let (status, _, body) =
                harness::get(addr, &origin.url(&format!("/other/{round}"))).await;
            assert_eq!(status, 200, "{host}: {body}");
            tunnel_still_echoes(&mut tunnel, round).await;
        }
        let (status, _, _) = hostile.await.unwrap();
        assert!(status == 502 || status == 200, "{host}: {status}");
        let m = harness::metrics(addr).await;
        assert!(
            metric(&m, counted) > before,
            "{host}: {counted} did not move\n{m}"
        );
        assert!(
            rss() < rss_before + (64 << 20),
            "{host}: the proxy grew from {rss_before} to {} bytes",
            rss()
        );
    }
    let m = harness::metrics(addr).await;
    assert!(metric(&m, "waypost_pac_worker_kills_total{reason=\"memory\"}") >= 1.0);
    assert!(
        metric(&m, "waypost_pac_worker_kills_total{reason=\"deadline\"}")
            + metric(&m, "waypost_pac_evaluations_total{outcome=\"timeout\"}")
            >= 2.0
    );
    assert!(metric(&m, "waypost_pac_worker_restarts_total") >= 1.0);

    // explain names the kill as the reason the request went DIRECT
    let (status, _, body) = harness::get(
        addr,
        &format!(
            "/explain?url={}",
            waypost::ops::admin::percent_encode("http://bomb.test/y")
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["reason"], "pac-worker-killed-direct", "{report}");
    assert!(
        report["pac_error"]
            .as_str()
            .unwrap_or("")
            .contains("memory limit"),
        "{report}"
    );

    // nothing keeps burning CPU: within 5 s the proxy and its workers are idle
    eventually(Duration::from_secs(5), cpu_share, |share| *share < 0.2).await;
    tunnel_still_echoes(&mut tunnel, round + 1).await;
    let (status, _, _) = harness::get(addr, &origin.url("/after")).await;
    assert_eq!(status, 200);
}

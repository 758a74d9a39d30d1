//! When the proxy dies (SIGKILL: no chance to clean up), its `waypost pac-worker` processes end
//! on their own: an idle worker sees its stdin close, a worker spinning in a hostile call stops
//! at its interpreter's backstop and finds no one to answer. Nothing is left burning CPU.

use crate::support;

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use waypost_testsupport::{eventually, procfs};

const SPIN: &str = r#"
function FindProxyForURL(url, host) {
    if (host == 'spin.test') { while (true) {} }
    return 'DIRECT';
}
"#;

/// The running PAC workers of `proxy`, with the CPU ticks each has used.
fn workers_of(proxy: u32) -> Vec<(u32, u64)> {
    procfs::children(proxy)
        .into_iter()
        .filter(procfs::Stat::running)
        .map(|s| (s.pid, s.cpu_ticks))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_proxy_ends_its_pac_workers_idle_or_spinning() {
    let dir = tempfile::tempdir().unwrap();
    let pac = dir.path().join("spin.pac");
    std::fs::write(&pac, SPIN).unwrap();
    let config = dir.path().join("waypost.toml");
    std::fs::write(
        &config,
        format!(
            "listen = [\"127.0.0.1:0\"]\n[pac]\nsource = {:?}\ncache_file = \"none\"\n\
             isolation = \"process\"\nworkers = 2\ncall_timeout = \"5s\"\n",
            pac.display().to_string()
        ),
    )
    .unwrap();
    let (mut proxy, addr, _lines) = support::process::spawn_waypost(&config, None).await;
    let proxy_pid = proxy.id().unwrap();
    let workers = eventually(
        Duration::from_secs(20),
        || async { workers_of(proxy_pid) },
        |w| w.len() == 2,
    )
    .await;

    // one worker spins in a call (it burns CPU), the other waits for work
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET http://spin.test/ HTTP/1.1\r\nHost: spin.test\r\n\r\n")
        .await
        .unwrap();
    let spun = |now: &Vec<(u32, u64)>| {
        now.iter().any(|(pid, ticks)| {
            workers
                .iter()
                .any(|(p, before)| p == pid && *ticks >= before + 10)
        })
    };
    eventually(
        Duration::from_secs(10),
        || async { workers_of(proxy_pid) },
        spun,
    )
    .await;

    proxy.start_kill().unwrap();
    proxy.wait().await.unwrap();
    let started = Instant::now();
    // the spinning one stops at its backstop (1.5 x call_timeout = 7.5 s), the idle one at once
    let still_running = || async {
        workers
            .iter()
            .filter(|(pid, _)| procfs::running(pid))
            .count()
    };
    eventually(Duration::from_secs(20), still_running, |n| *n == 0).await;
    eprintln!("workers gone {:?} after the proxy died", started.elapsed());
}

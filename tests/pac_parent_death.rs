//! When the proxy dies (SIGKILL: no chance to clean up), its `waypost pac-worker` processes end
//! on their own: an idle worker sees its stdin close, a worker spinning in a hostile call stops
//! at its interpreter's backstop and finds no one to answer. Nothing is left burning CPU.

mod support;

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const SPIN: &str = r#"
function FindProxyForURL(url, host) {
    if (host == 'spin.test') { while (true) {} }
    return 'DIRECT';
}
"#;

/// Pids whose parent is `parent`, with their CPU ticks (user + system); zombies left out.
fn children(parent: u32) -> Vec<(u32, u64)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // fields after the command name in parentheses: state ppid ... utime(14) stime(15)
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() < 13 || fields[0] == "Z" || fields[1] != parent.to_string() {
            continue;
        }
        let ticks = fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
        found.push((pid, ticks));
    }
    found
}

/// Whether `pid` still runs (a zombie waiting for its reaper has ended).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

async fn until<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    let workers = until("both PAC workers run", Duration::from_secs(20), || {
        let c = children(proxy_pid);
        (c.len() == 2).then_some(c)
    })
    .await;

    // one worker spins in a call (it burns CPU), the other waits for work
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET http://spin.test/ HTTP/1.1\r\nHost: spin.test\r\n\r\n")
        .await
        .unwrap();
    until("a worker spins", Duration::from_secs(10), || {
        let now = children(proxy_pid);
        now.iter()
            .any(|(pid, ticks)| {
                workers
                    .iter()
                    .any(|(p, before)| p == pid && *ticks >= before + 10)
            })
            .then_some(())
    })
    .await;

    proxy.start_kill().unwrap();
    proxy.wait().await.unwrap();
    let started = Instant::now();
    // the spinning one stops at its backstop (1.5 x call_timeout = 7.5 s), the idle one at once
    until(
        "every PAC worker has ended",
        Duration::from_secs(20),
        || workers.iter().all(|(pid, _)| !running(*pid)).then_some(()),
    )
    .await;
    eprintln!("workers gone {:?} after the proxy died", started.elapsed());
}

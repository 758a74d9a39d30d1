//! The `waypost` binary as a separate process, for what an in-process proxy cannot show:
//! signals, file-descriptor limits, the log a user sees.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

const WAIT: Duration = Duration::from_secs(20);

/// Lines a child process wrote to stderr, collected as they come.
pub type Lines = Arc<Mutex<Vec<String>>>;

/// Starts the `waypost` binary on `config` (through `prlimit` when `nofile` is given) and
/// returns it with its listen address and every line it logs to stderr.
pub async fn spawn_waypost(
    config: &Path,
    nofile: Option<u32>,
) -> (tokio::process::Child, SocketAddr, Lines) {
    spawn_waypost_with_env(config, nofile, &[]).await
}

/// As [`spawn_waypost`], with `env` added to the child's environment only (process-wide
/// settings such as `KRB5_CONFIG` stay out of the test process and its other tests).
pub async fn spawn_waypost_with_env(
    config: &Path,
    nofile: Option<u32>,
    env: &[(&str, &std::ffi::OsStr)],
) -> (tokio::process::Child, SocketAddr, Lines) {
    let exe = env!("CARGO_BIN_EXE_waypost");
    let mut cmd = match nofile {
        Some(n) => {
            waypost_testsupport::peers::require_program("prlimit");
            let mut c = tokio::process::Command::new("prlimit");
            c.arg(format!("--nofile={n}:{n}")).arg("--").arg(exe);
            c
        }
        None => tokio::process::Command::new(exe),
    };
    let mut child = cmd
        .args(["run", "--config"])
        .arg(config)
        .env("WAYPOST_LOG", "info")
        .envs(env.iter().copied())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stderr.take().unwrap()).lines();
    let lines: Lines = Arc::default();
    let addr = tokio::time::timeout(WAIT, async {
        while let Some(line) = reader.next_line().await.unwrap() {
            lines.lock().unwrap().push(line.clone());
            if line.contains("waypost is listening") {
                let at = line.find("127.0.0.1:").expect("a loopback listen address");
                let end = line[at..]
                    .find(|c: char| c != '.' && c != ':' && !c.is_ascii_digit())
                    .map_or(line.len(), |e| at + e);
                return line[at..end].parse::<SocketAddr>().unwrap();
            }
        }
        panic!(
            "waypost exited before listening: {:?}",
            lines.lock().unwrap()
        );
    })
    .await
    .expect("waypost starts listening");
    let collected = lines.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = reader.next_line().await {
            collected.lock().unwrap().push(line);
        }
    });
    (child, addr, lines)
}

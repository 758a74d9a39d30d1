//! Operating waypost: hot reload (a changed config file, SIGHUP, an invalid file), readiness
//! (`/readyz`, `waypost ready --wait`), the request id a user can quote, and the status data
//! agreeing with `/metrics`.
//!
//! The upstream proxies here are in-process HTTP servers that answer absolute-form requests
//! with their own name, so a response says which upstream carried it.

use crate::support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use support::harness::{self, metric, Origin};
use support::process::spawn_waypost;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use waypost::body;
use waypost::config::{self, Overrides};
use waypost::listen::server::Running;
use waypost_testsupport::eventually;

const WAIT: Duration = Duration::from_secs(20);

/// An upstream "proxy" that answers every request with `name`.
async fn named_upstream(name: &'static str) -> Origin {
    Origin::start(move |_req: Request<Incoming>| async move {
        http::Response::new(body::full(format!("via {name}\n")))
    })
    .await
}

/// Opens a CONNECT tunnel through `proxy` to `target`; returns the stream after the 200.
async fn open_tunnel(proxy: SocketAddr, target: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    s
}

async fn ping(s: &mut TcpStream, what: &str) -> String {
    s.write_all(what.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; what.len()];
    tokio::time::timeout(WAIT, s.read_exact(&mut buf))
        .await
        .expect("the tunnel answers")
        .expect("the tunnel is open");
    String::from_utf8_lossy(&buf).into_owned()
}

fn config_text(upstream: &Origin) -> String {
    format!(
        "listen = [\"127.0.0.1:0\"]\n[route]\nupstream = \"http://{}\"\n\
         # test echo servers listen on ephemeral ports\n[tls]\nconnect_ports = []\n",
        upstream.addr
    )
}

/// Loads the file as `waypost run` would, with PAC workers run by the waypost binary (a test
/// binary is not one).
fn load(path: &Path) -> Result<config::Config, config::ConfigError> {
    let mut env: std::collections::HashMap<String, String> = std::env::vars().collect();
    env.insert(
        "WAYPOST_PAC__WORKER_EXE".into(),
        env!("CARGO_BIN_EXE_waypost").into(),
    );
    config::load_with_env(Some(path), &Overrides::default(), env)
}

fn loader(path: PathBuf) -> waypost::ops::reload::Loader {
    Box::new(move || load(&path).map_err(|e| e.to_string()))
}

async fn start_from_file(path: &Path) -> Running {
    let cfg = load(path).expect("valid config");
    waypost::listen::server::start_reloadable(
        cfg,
        Some(loader(path.to_path_buf())),
        Some(path.into()),
    )
    .await
    .expect("proxy starts")
}

/// Replaces the file's content the way editors do (write a new file, rename it over).
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn via(proxy: SocketAddr) -> String {
    harness::get(proxy, "http://service.example.test/").await.2
}

#[tokio::test]
async fn a_changed_config_file_sends_the_next_request_to_the_new_upstream_and_open_tunnels_stay_up()
{
    let (a, b) = (named_upstream("a").await, named_upstream("b").await);
    let echo = harness::echo_server().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("waypost.toml");
    std::fs::write(&path, config_text(&a)).unwrap();
    let proxy = start_from_file(&path).await;
    let addr = proxy.addrs[0];
    assert_eq!(via(addr).await, "via a\n");
    // loopback targets go DIRECT: this tunnel does not depend on either upstream
    let mut tunnel = open_tunnel(addr, echo).await;
    assert_eq!(ping(&mut tunnel, "before").await, "before");

    replace(&path, &config_text(&b));
    eventually(WAIT, || via(addr), |body| body == "via b\n").await;
    assert_eq!(
        ping(&mut tunnel, "after").await,
        "after",
        "the tunnel opened before the reload is still up"
    );
    let m = harness::metrics(addr).await;
    assert_eq!(
        metric(
            &m,
            "waypost_config_reloads_total{outcome=\"ok\",trigger=\"file\"}"
        ),
        1.0
    );
    assert_eq!(metric(&m, "waypost_config_generation"), 2.0);
}

#[tokio::test]
async fn an_invalid_config_file_is_refused_counted_and_the_old_config_keeps_serving() {
    let a = named_upstream("a").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("waypost.toml");
    std::fs::write(&path, config_text(&a)).unwrap();
    let proxy = start_from_file(&path).await;
    let addr = proxy.addrs[0];

    replace(
        &path,
        "listen = [\"127.0.0.1:0\"]\n[route]\nupstrem = \"http://nowhere:1\"\n[timeouts]\nconnect = \"soon\"\n",
    );
    let m = eventually(
        WAIT,
        || harness::metrics(addr),
        |m: &String| {
            metric(
                m,
                "waypost_config_reloads_total{outcome=\"invalid\",trigger=\"file\"}",
            ) == 1.0
        },
    )
    .await;
    assert_eq!(metric(&m, "waypost_config_generation"), 1.0);
    assert_eq!(via(addr).await, "via a\n", "the old config still serves");
    let status: serde_json::Value =
        serde_json::from_str(&harness::get(addr, "/status.json").await.2).unwrap();
    let problems = status["last_reload"]["problems"]
        .as_str()
        .unwrap_or_default();
    assert!(
        problems.contains("route.upstrem: unknown key") && problems.contains("timeouts.connect"),
        "every problem is reported: {problems}"
    );
}

#[tokio::test]
async fn a_listen_address_change_is_kept_for_a_restart_and_the_rest_applies() {
    let (a, b) = (named_upstream("a").await, named_upstream("b").await);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("waypost.toml");
    std::fs::write(&path, config_text(&a)).unwrap();
    let proxy = start_from_file(&path).await;
    let addr = proxy.addrs[0];
    replace(
        &path,
        &config_text(&b).replace("127.0.0.1:0", "127.0.0.1:1"),
    );
    eventually(WAIT, || via(addr), |body| body == "via b\n").await;
    let cfg = &proxy.live.current().cfg;
    assert_eq!(
        cfg.listen,
        vec!["127.0.0.1:0".parse::<SocketAddr>().unwrap()]
    );
}

/// A PAC origin whose answer waits until `release` is notified.
async fn gated_pac(upstream: SocketAddr) -> (Origin, Arc<tokio::sync::Semaphore>) {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let g = gate.clone();
    let script = format!("function FindProxyForURL(u, h) {{ return \"PROXY {upstream}\"; }}");
    let origin = Origin::start(move |_req: Request<Incoming>| {
        let g = g.clone();
        let script = script.clone();
        async move {
            let _permit = g.acquire().await.unwrap();
            let mut r = http::Response::new(body::full(script));
            r.headers_mut().insert(
                "content-type",
                "application/x-ns-proxy-autoconfig".parse().unwrap(),
            );
            r
        }
    })
    .await;
    (origin, gate)
}

#[tokio::test]
async fn readyz_is_false_with_the_reason_until_the_pac_loads_then_true() {
    let a = named_upstream("a").await;
    let (pac, gate) = gated_pac(a.addr).await;
    let proxy = harness::start_proxy(|raw| {
        raw.pac.source = pac.url("/wpad.dat").into();
        raw.pac.first_load_wait = "100ms".into();
    })
    .await;
    let addr = proxy.addrs[0];
    let (status, _, body) = harness::get(addr, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("FAIL pac:") && body.contains("not loaded yet"),
        "{body}"
    );
    assert!(body.contains("ok   listening:"), "{body}");
    let (status, _, _) = harness::get(addr, "/healthz").await;
    assert_eq!(status, 200, "liveness does not wait for the PAC");

    gate.add_permits(100);
    let (_, _, body) = eventually(WAIT, || harness::get(addr, "/readyz"), |r| r.0 == 200).await;
    assert!(body.contains("ok   pac: loaded from http://"), "{body}");
}

async fn ready_cli(args: &[&str]) -> (i32, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_waypost"))
        .arg("ready")
        .args(args)
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn waypost_ready_exits_1_until_ready_and_0_once_ready_within_the_wait() {
    let a = named_upstream("a").await;
    let (pac, gate) = gated_pac(a.addr).await;
    let proxy = harness::start_proxy(|raw| {
        raw.pac.source = pac.url("/wpad.dat").into();
        raw.pac.first_load_wait = "100ms".into();
    })
    .await;
    let admin = proxy.addrs[0].to_string();
    let (code, text) = ready_cli(&["--admin", &admin]).await;
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("not loaded yet"), "{text}");

    let waiting = tokio::spawn({
        let admin = admin.clone();
        async move { ready_cli(&["--admin", &admin, "--wait", "30s"]).await }
    });
    // Let the waiting command ask (and be told no) a few times before the PAC arrives. Not a
    // sleep-then-assert: the outcome is the same either way; the pause only makes the test
    // exercise the waiting.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !waiting.is_finished(),
        "still waiting while the PAC is held back"
    );
    gate.add_permits(100);
    let (code, text) = waiting.await.unwrap();
    assert_eq!(code, 0, "{text}");
    assert!(text.starts_with("ready"), "{text}");

    // nobody listening: not ready, and says why
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let (code, text) = ready_cli(&["--admin", &format!("http://{closed}"), "--wait", "1s"]).await;
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("cannot reach waypost"), "{text}");
}

#[tokio::test]
async fn every_response_carries_a_request_id_that_the_status_page_lists() {
    let a = named_upstream("a").await;
    let proxy = harness::start_proxy(|raw| raw.route.upstream = format!("http://{}", a.addr)).await;
    let addr = proxy.addrs[0];
    let (status, headers, _) = harness::get(addr, "http://service.example.test/").await;
    assert_eq!(status, 200);
    let id = headers["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 16);
    let (_, headers2, _) = harness::get(addr, "http://service.example.test/").await;
    assert_ne!(headers2["x-request-id"], id.as_str());
    // a failure carries one too
    let (status, headers, _) = harness::get(addr, "http://127.0.0.1:1/").await;
    assert!(status >= 500);
    assert!(headers.contains_key("x-request-id"));

    let status: serde_json::Value = eventually(
        WAIT,
        || async {
            serde_json::from_str::<serde_json::Value>(&harness::get(addr, "/status.json").await.2)
                .unwrap()
        },
        |s| {
            s["recent"]
                .as_array()
                .is_some_and(|r| r.len() == 3 && r.iter().any(|x| x["id"] == id.as_str()))
        },
    )
    .await;
    let m = harness::metrics(addr).await;
    let label = a.addr.to_string();
    let row = status["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["upstream"] == label.as_str())
        .expect("the upstream has a row");
    for (field, state) in [("pool_idle", "idle"), ("pool_active", "active")] {
        assert_eq!(
            row[field].as_f64().unwrap(),
            metric(
                &m,
                &format!("waypost_pool_connections{{state=\"{state}\",upstream=\"{label}\"}}")
            ),
            "{field} equals /metrics"
        );
    }
    assert_eq!(row["requests"], 2);
}

#[tokio::test]
async fn the_status_page_never_shows_a_password() {
    let a = named_upstream("a").await;
    let proxy = harness::start_proxy(|raw| {
        raw.route.upstream = format!("http://{}", a.addr);
        raw.auth.user = Some("CORP\\alice".into());
        raw.auth.password = Some(waypost_auth::credentials::SecretString::new("S3cr3t-pw!"));
    })
    .await;
    let addr = proxy.addrs[0];
    let _ = harness::get(addr, "http://service.example.test/").await;
    for path in ["/status", "/status.json", "/readyz", "/metrics"] {
        let (status, _, body) = harness::get(addr, path).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(!body.contains("S3cr3t"), "{path} shows the password");
    }
    let (_, _, page) = harness::get(addr, "/status").await;
    assert!(page.contains("alice"), "the identity is shown");
}

#[tokio::test]
async fn json_logs_carry_the_request_id_the_client_was_given() {
    let a = named_upstream("a").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("waypost.toml");
    let text = format!(
        "{}[log]\nformat = \"json\"\naccess_log = true\n",
        config_text(&a)
    );
    std::fs::write(&path, text).unwrap();
    let (_child, addr, lines) = spawn_waypost(&path, None).await;
    let (status, headers, _) = harness::get(addr, "http://service.example.test/").await;
    assert_eq!(status, 200);
    let id = headers["x-request-id"].to_str().unwrap().to_string();
    let access = eventually(
        WAIT,
        || async { lines.lock().unwrap().clone() },
        |ls: &Vec<String>| ls.iter().any(|l| l.contains(&id)),
    )
    .await;
    for l in &access {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{l}");
    }
    let line: serde_json::Value = access
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["target"] == "waypost::access")
        .expect("an access line");
    assert_eq!(line["fields"]["request_id"], id.as_str());
    assert_eq!(line["fields"]["status"], 200);

    // a line logged while serving the request (a failure) has the id in its span too
    let (status, headers, _) = harness::get(addr, "http://127.0.0.1:1/").await;
    assert_eq!(status, 502);
    let failed = headers["x-request-id"].to_str().unwrap().to_string();
    let logged = eventually(
        WAIT,
        || async { lines.lock().unwrap().clone() },
        |ls: &Vec<String>| {
            ls.iter()
                .any(|l| l.contains("request failed") && l.contains(&failed))
        },
    )
    .await;
    let line: serde_json::Value = logged
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "request failed")
        .expect("a failure line");
    assert_eq!(line["fields"]["request_id"], failed.as_str());
    assert_eq!(line["fields"]["code"], "connect-refused");
    assert_eq!(
        line["span"]["request_id"],
        failed.as_str(),
        "the request span has the id"
    );
}

#[tokio::test]
async fn sighup_reloads_even_a_change_the_file_watch_cannot_see() {
    let (a, b) = (named_upstream("a").await, named_upstream("b").await);
    let (ta, tb) = (config_text(&a), config_text(&b));
    assert_eq!(
        ta.len(),
        tb.len(),
        "both ports have the same number of digits"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("waypost.toml");
    std::fs::write(&path, &ta).unwrap();
    let (child, addr, _) = spawn_waypost(&path, None).await;
    assert_eq!(via(addr).await, "via a\n");

    // same size, same inode, same modification time: only a SIGHUP can tell
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    {
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        std::io::Write::write_all(&mut f, tb.as_bytes()).unwrap();
        f.set_modified(mtime).unwrap();
    }
    let pid = child.id().unwrap().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    eventually(WAIT, || via(addr), |body| body == "via b\n").await;
    let m = harness::metrics(addr).await;
    assert_eq!(
        metric(
            &m,
            "waypost_config_reloads_total{outcome=\"ok\",trigger=\"sighup\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn version_prints_the_crate_version() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_waypost"))
        .arg("--version")
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("waypost {}", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn a_changed_pac_file_is_reloaded_and_a_broken_one_keeps_the_last_good_script() {
    let (a, b) = (named_upstream("a").await, named_upstream("b").await);
    let dir = tempfile::tempdir().unwrap();
    let pac = dir.path().join("corp.pac");
    let script = |u: &Origin| {
        format!(
            "function FindProxyForURL(url, host) {{ return \"PROXY {}\"; }}\n",
            u.addr
        )
    };
    std::fs::write(&pac, script(&a)).unwrap();
    let path = dir.path().join("waypost.toml");
    std::fs::write(
        &path,
        format!(
            "listen = [\"127.0.0.1:0\"]\n[pac]\nsource = \"{}\"\n",
            pac.display()
        ),
    )
    .unwrap();
    let proxy = start_from_file(&path).await;
    let addr = proxy.addrs[0];
    assert_eq!(via(addr).await, "via a\n");

    replace(&pac, &script(&b));
    eventually(WAIT, || via(addr), |body| body == "via b\n").await;

    replace(&pac, "function FindProxyForURL(url, host) {\n");
    let status: serde_json::Value = eventually(
        WAIT,
        || async {
            serde_json::from_str::<serde_json::Value>(&harness::get(addr, "/status.json").await.2)
                .unwrap()
        },
        |s| s["pac"]["last_error"].is_string(),
    )
    .await;
    assert!(
        status["pac"]["last_error"]
            .as_str()
            .unwrap()
            .contains("does not load"),
        "{status}"
    );
    assert_eq!(
        via(addr).await,
        "via b\n",
        "the last good script keeps serving"
    );
}

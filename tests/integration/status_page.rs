//! The status page in a real browser: Debian's headless `chromium`, driven by
//! `tests/browser/render.sh`, loads `/status` from a running waypost that uses a file PAC and
//! has carried requests through an upstream. The page renders with no console message (no
//! script error, no Content-Security-Policy violation: it must load nothing), shows the PAC
//! source, and the upstream's pool numbers equal `/metrics`. The screenshot is kept in
//! `$CARGO_TARGET_TMPDIR/status-page/screenshot.png`.

use crate::support;

use std::path::{Path, PathBuf};

use http::Request;
use hyper::body::Incoming;
use support::harness::{self, metric, Origin};
use waypost::body;
use waypost_testsupport::peers::require_program;

/// Renders `url`; returns (DOM after load, chromium's log).
async fn render(url: &str, out: &Path) -> (String, String) {
    let _ = std::fs::remove_dir_all(out);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/render.sh");
    let status = tokio::process::Command::new("bash")
        .arg(script)
        .arg(url)
        .arg(out)
        .status()
        .await
        .unwrap();
    let log = std::fs::read_to_string(out.join("console.log")).unwrap_or_default();
    assert!(status.success(), "chromium failed:\n{log}");
    (std::fs::read_to_string(out.join("dom.html")).unwrap(), log)
}

/// What the page said to the console (script errors, CSP violations, failed loads).
fn console_messages(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            l.contains("CONSOLE")
                || l.contains("Content Security Policy")
                || l.contains("Uncaught")
                || l.contains("Failed to load resource")
        })
        .collect()
}

/// The text of the element that follows `marker` (up to the next `<`).
fn text_after<'a>(html: &'a str, marker: &str) -> Option<&'a str> {
    let i = html.find(marker)? + marker.len();
    let rest = &html[i..];
    let start = rest.find('>')? + 1;
    let end = rest[start..].find('<')?;
    Some(rest[start..start + end].trim())
}

fn out_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

#[tokio::test]
async fn the_console_check_catches_a_page_that_logs_an_error() {
    require_program("chromium");
    let origin = Origin::start(|_req: Request<Incoming>| async {
        let mut r = http::Response::new(body::full(
            "<!doctype html><html><body><p>x</p><script>console.error('boom from the page')</script></body></html>",
        ));
        r.headers_mut()
            .insert("content-type", "text/html".parse().unwrap());
        r
    })
    .await;
    let (_, log) = render(&origin.url("/"), &out_dir("console-check")).await;
    let messages = console_messages(&log);
    assert!(
        messages.iter().any(|m| m.contains("boom from the page")),
        "chromium's log does not show console messages; the status page check would be blind:\n{log}"
    );
}

#[tokio::test]
async fn the_status_page_renders_in_a_browser_with_the_pac_source_and_pool_numbers_of_metrics() {
    require_program("chromium");
    let upstream = Origin::start(|_req: Request<Incoming>| async {
        http::Response::new(body::full("hello from the upstream\n"))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let pac = dir.path().join("corp.pac");
    std::fs::write(
        &pac,
        format!(
            "function FindProxyForURL(url, host) {{ return \"PROXY {}; DIRECT\"; }}\n",
            upstream.addr
        ),
    )
    .unwrap();
    let pac_source = pac.display().to_string();
    let proxy = harness::start_proxy(|raw| raw.pac.source = pac_source.clone().into()).await;
    let addr = proxy.addrs[0];
    for _ in 0..3 {
        let (status, _, body) = harness::get(addr, "http://intranet.example.test/").await;
        assert_eq!(status, 200, "{body}");
    }
    let _ = harness::get(addr, "http://127.0.0.1:1/refused").await;

    let out = out_dir("status-page");
    let (dom, log) = render(&format!("http://{addr}/status"), &out).await;
    let messages = console_messages(&log);
    assert!(
        messages.is_empty(),
        "console messages:\n{}",
        messages.join("\n")
    );

    assert_eq!(
        text_after(&dom, "id=\"pac-source\""),
        Some(pac_source.as_str())
    );
    assert_eq!(text_after(&dom, "id=\"pac-method\""), Some("file"));
    let label = upstream.addr.to_string();
    let row = &dom[dom
        .find(&format!("data-upstream=\"{label}\""))
        .expect("the upstream has a row")..];
    let idle: f64 = text_after(row, "class=\"pool-idle\"")
        .unwrap()
        .parse()
        .unwrap();
    let active: f64 = text_after(row, "class=\"pool-active\"")
        .unwrap()
        .parse()
        .unwrap();
    let requests = text_after(row, "class=\"requests\"").unwrap();
    let m = harness::metrics(addr).await;
    assert_eq!(
        idle,
        metric(
            &m,
            &format!("waypost_pool_connections{{state=\"idle\",upstream=\"{label}\"}}")
        )
    );
    assert_eq!(
        active,
        metric(
            &m,
            &format!("waypost_pool_connections{{state=\"active\",upstream=\"{label}\"}}")
        )
    );
    assert_eq!(
        idle, 1.0,
        "one keep-alive connection carried the three requests"
    );
    assert_eq!(requests, "3");
    assert!(dom.contains("id=\"chart-requests\"") && dom.contains("<polyline"));

    // the admin root: a browser gets the same page, a script (curl's `*/*`) the usage text
    let (root_dom, _) = render(&format!("http://{addr}/"), &out_dir("status-root")).await;
    assert_eq!(
        text_after(&root_dom, "id=\"pac-source\""),
        Some(pac_source.as_str()),
        "{root_dom}"
    );
    let script = harness::raw(
        addr,
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        script.contains("text/plain") && script.contains("Admin paths: /status"),
        "{script}"
    );

    let shot = out.join("screenshot.png");
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "screenshot {} is {size} bytes",
        shot.display()
    );
    eprintln!("status page screenshot: {}", shot.display());
}

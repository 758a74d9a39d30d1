//! The `waypost pac` command end to end, through the crate's `waypost-pac` binary: output
//! formats, repeated --url/--host pairing, pinned environment and exit codes. Scripts run in
//! `pac-worker` processes of that binary (the default), so every test here crosses the process
//! boundary; `cli_hostile` gives the command hostile scripts.

use std::io::Write;
use std::process::Command;

pub(crate) fn script(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_waypost-pac"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

const ECHO: &str = "var n = 0; function FindProxyForURL(url, host) { n++; return 'PROXY ' + host + ':' + n + '; DIRECT'; }";

#[test]
fn eval_prints_the_raw_result_per_url_with_state_carried_over() {
    let f = script(ECHO);
    let p = f.path().to_str().unwrap();
    let (code, out) = run(&[
        "eval",
        "--pac",
        p,
        "--url",
        "http://a.example/x",
        "--url",
        "http://b.example/",
        "--host",
        "given",
    ]);
    assert_eq!(code, 0);
    assert_eq!(out, "PROXY given:1; DIRECT\nPROXY b.example:2; DIRECT\n");
}

#[test]
fn eval_json_renders_entries_canonically_in_the_documented_field_order() {
    let f = script(
        "function FindProxyForURL(url, host) { return 'proxy P.example; socks5 [::1]; Direct'; }",
    );
    let (code, out) = run(&[
        "eval",
        "--pac",
        f.path().to_str().unwrap(),
        "--url",
        "https://u:p@h.example/secret",
        "--json",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        v["url"], "https://u:p@h.example/secret",
        "passed as given without --sanitize"
    );
    assert_eq!(v["host"], "h.example");
    assert_eq!(
        v["proxies"],
        serde_json::json!(["PROXY p.example:80", "SOCKS5 [::1]:1080", "DIRECT"])
    );
    assert!(v["error"].is_null());
    assert!(v["duration_us"].is_u64());
    let order: Vec<&str> = [
        "\"url\"",
        "\"host\"",
        "\"result\"",
        "\"proxies\"",
        "\"error\"",
        "\"duration_us\"",
    ]
    .to_vec();
    let positions: Vec<usize> = order.iter().map(|k| out.find(k).unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{out}");
}

#[test]
fn sanitize_applies_the_proxys_stripping() {
    let f = script("function FindProxyForURL(url, host) { return 'PROXY x:1'; }");
    let (_, out) = run(&[
        "eval",
        "--pac",
        f.path().to_str().unwrap(),
        "--url",
        "https://u:p@h.example/secret?q",
        "--sanitize",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["url"], "https://h.example/");
}

#[test]
fn pinned_ip_dns_and_clock_reach_the_script() {
    let f = script(
        "function FindProxyForURL(url, host) { return [myIpAddress(), myIpAddressEx(), dnsResolve('intra'), dnsResolveEx('intra'), String(isResolvable('other.example')), String(weekdayRange('WED')), String(timeRange(1))].join(' '); }",
    );
    let (code, out) = run(&[
        "eval",
        "--pac",
        f.path().to_str().unwrap(),
        "--url",
        "http://a/",
        "--my-ip",
        "10.0.0.5",
        "--my-ip",
        "fd00::5",
        "--resolve",
        "intra=fd00::9,10.9.9.9",
        "--no-dns",
        "--now",
        "2024-05-07T23:30:00Z",
        "--tz",
        "Europe/Berlin",
    ]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.trim(),
        "10.0.0.5 10.0.0.5;fd00::5 10.9.9.9 fd00::9;10.9.9.9 false true true"
    );
}

#[test]
fn script_errors_exit_2_and_are_still_json_objects() {
    let f = script("function FindProxyForURL(url, host) {\n  throw new Error('boom');\n}");
    let (code, out) = run(&[
        "eval",
        "--pac",
        f.path().to_str().unwrap(),
        "--url",
        "http://a/",
        "--json",
    ]);
    assert_eq!(code, 2);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["error"]["kind"], "call");
    assert!(v["result"].is_null());

    let broken = script("function FindProxyForURL(url, host) {");
    let (code, out) = run(&[
        "eval",
        "--pac",
        broken.path().to_str().unwrap(),
        "--url",
        "http://a/",
        "--json",
    ]);
    assert_eq!(code, 2);
    assert!(out.contains("\"kind\":\"load\""), "{out}");

    let looping = script("function FindProxyForURL(url, host) { while (true) {} }");
    let (code, out) = run(&[
        "eval",
        "--pac",
        looping.path().to_str().unwrap(),
        "--url",
        "http://a/",
        "--json",
        "--timeout",
        "300ms",
    ]);
    assert_eq!(code, 2);
    assert!(out.contains("\"kind\":\"timeout\""), "{out}");
}

#[test]
fn usage_errors_exit_1_with_a_hint() {
    let f = script(ECHO);
    let p = f.path().to_str().unwrap();
    for args in [
        vec![
            "eval",
            "--pac",
            p,
            "--url",
            "http://a/",
            "--now",
            "tomorrow",
        ],
        vec![
            "eval",
            "--pac",
            p,
            "--url",
            "http://a/",
            "--resolve",
            "nameonly",
        ],
        vec![
            "eval",
            "--pac",
            p,
            "--url",
            "http://a/",
            "--host",
            "x",
            "--host",
            "y",
        ],
        vec!["eval", "--pac", "/does/not/exist.pac", "--url", "http://a/"],
        vec!["eval", "--pac", p],
        vec![
            "eval",
            "--pac",
            p,
            "--url",
            "http://a/",
            "--memory-limit",
            "lots",
        ],
        vec![
            "eval",
            "--pac",
            p,
            "--url",
            "http://a/",
            "--in-process",
            "--memory-limit",
            "1GiB",
        ],
        vec!["check", p, "--memory-limit", "1MiB"],
    ] {
        let (code, _) = run(&args);
        assert_eq!(code, 1, "{args:?}");
    }
}

#[test]
fn check_reports_positions_and_the_functions_used() {
    let good = script("function FindProxyForURL(url, host) { return isPlainHostName(host) ? 'DIRECT' : 'PROXY p:1'; }");
    let (code, out) = run(&["check", good.path().to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        out.contains("uses: FindProxyForURL, isPlainHostName"),
        "{out}"
    );
    let bad = script("function FindProxyForURL(url, host) {\n  return 'DIRECT' +;\n}");
    let (code, out) = run(&["check", bad.path().to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(out.contains(":2:"), "{out}");
}

#[test]
fn bench_reports_cold_and_cached_rates() {
    let f = script("function FindProxyForURL(url, host) { return shExpMatch(host, '*.example') ? 'PROXY p:1' : 'DIRECT'; }");
    let (code, out) = run(&[
        "bench",
        f.path().to_str().unwrap(),
        "--url",
        "http://a.example/",
        "--iterations",
        "50",
        "--workers",
        "2",
        "--no-dns",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("uncached: median")
            && out.contains("cached:")
            && out.contains("throughput with 2 worker(s)"),
        "{out}"
    );
}

/// A script of the shared PAC corpus (read in place), or `None` (with a notice) without it.
fn corpus_script(name: &str) -> Option<std::path::PathBuf> {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/pac-corpus/upstream/chromium")
        .join(name);
    if path.is_file() {
        Some(path)
    } else {
        eprintln!("{} not found; skipping", path.display());
        None
    }
}

#[test]
fn chromiums_pac_library_unittest_with_its_mock_date_passes_every_test() {
    let Some(path) = corpus_script("pac_library_unittest.js") else {
        return;
    };
    let (code, out) = run(&[
        "eval",
        "--pac",
        path.to_str().unwrap(),
        "--url",
        "http://example.com/",
    ]);
    assert_eq!((code, out.trim()), (0, "PROXY success:80"));
}

#[test]
fn legacy_date_strings_parse_as_browsers_parse_them() {
    let f = script(
        "function FindProxyForURL(url, host) { return [\
           new Date('Tue Mar 03 2009 GMT').toISOString(),\
           new Date('Mar 03, 2009 03:34:01 GMT').toISOString(),\
           new Date('2009-03-03T00:00:00Z').toISOString(),\
           isNaN(new Date('not a date')),\
           new Date(0) instanceof Date,\
           typeof Date(),\
         ].join(' '); }",
    );
    let (code, out) = run(&[
        "eval",
        "--pac",
        f.path().to_str().unwrap(),
        "--url",
        "http://a/",
    ]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.trim(),
        "2009-03-03T00:00:00.000Z 2009-03-03T03:34:01.000Z 2009-03-03T00:00:00.000Z true true string"
    );
}

#[test]
fn chromiums_dns_fail_script_succeeds_in_an_empty_network_namespace() {
    let Some(path) = corpus_script("dns_fail.js") else {
        return;
    };
    if !nix_is_root() {
        eprintln!("skipping: an empty network namespace (unshare -n) needs root");
        return;
    }
    let out = Command::new("unshare")
        .args(["-n", env!("CARGO_BIN_EXE_waypost-pac"), "eval", "--pac"])
        .arg(&path)
        .args(["--url", "http://example.com/"])
        .output()
        .expect("run unshare (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        "PROXY success:80",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("Uid:")
                    .map(|v| v.split_whitespace().nth(1) == Some("0"))
            })
        })
        .unwrap_or(false)
}

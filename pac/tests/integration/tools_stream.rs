//! `waypost-pac eval --urls`: a URL list from a file or a pipe, answered in input order by a
//! pool of `pac-worker` processes while the pipe is still open; a hostile script under
//! `--coverage` still costs one evaluation; and instrumenting for coverage changes no answer of
//! any corpus script.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::cli::script;
use crate::corpus::corpus;
use crate::tools::{run, PINNED};

/// Answers `PROXY HOST:1`; hosts starting with `slow` spin for 30 ms first, so later URLs
/// finish before earlier ones on a pool of workers.
const ECHO_SLOW: &str = "function FindProxyForURL(url, host) {
    if (host.indexOf('slow') == 0) { var t = Date.now(); while (Date.now() - t < 30) {} }
    return 'PROXY ' + host + ':1';
}";

#[test]
fn urls_from_stdin_come_back_in_input_order_from_a_pool_of_workers() {
    let f = script(ECHO_SLOW);
    let hosts: Vec<String> = (0..60)
        .map(|i| {
            if i % 5 == 0 {
                format!("slow{i}.example")
            } else {
                format!("h{i}.example")
            }
        })
        .collect();
    let mut list = String::from("# a proxy log\n");
    for (i, h) in hosts.iter().enumerate() {
        list.push_str(&format!("http://{h}/path{i}\n"));
        if i == 7 {
            list.push_str("\n   # blank and comment lines are skipped\n");
        }
    }
    let (code, out) = run(
        &[
            "eval",
            "--pac",
            f.path().to_str().unwrap(),
            "--urls",
            "-",
            "--workers",
            "2",
        ],
        Some(&list),
    );
    assert_eq!(code, 0, "{out}");
    let expected: Vec<String> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| format!("http://{h}/path{i} PROXY {h}:1"))
        .collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), expected);
}

#[test]
fn a_pipe_is_answered_line_by_line_while_it_is_still_open() {
    let f = script(ECHO_SLOW);
    let mut child = Command::new(env!("CARGO_BIN_EXE_waypost-pac"))
        .args([
            "eval",
            "--pac",
            f.path().to_str().unwrap(),
            "--urls",
            "-",
            "--json",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    for i in 0..3 {
        writeln!(stdin, "http://u{i}.example/ given{i}.example").unwrap();
        stdin.flush().unwrap();
        // generous: a debug build on a busy machine starts its workers slowly
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("an answer before the input ends");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["url"], format!("http://u{i}.example/"));
        assert_eq!(v["host"], format!("given{i}.example"));
        assert_eq!(v["result"], format!("PROXY given{i}.example:1"));
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_bad_line_is_reported_in_its_place_and_the_list_goes_on() {
    let f = script(ECHO_SLOW);
    let (code, out) = run(
        &["eval", "--pac", f.path().to_str().unwrap(), "--urls", "-"],
        Some("http://a.example/\nnohost\nhttp://b.example/ x y\nhttp://c.example/\n"),
    );
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "http://a.example/ PROXY a.example:1",
            "nohost error (input): stdin:2: cannot find a host in \"nohost\"; put the host to pass after the URL",
            "http://b.example/ x y error (input): stdin:3: expected URL, optionally followed by the host to pass",
            "http://c.example/ PROXY c.example:1",
        ]
    );
}

#[test]
fn a_hostile_script_under_coverage_costs_the_one_evaluation_that_spins() {
    let f = script(
        "function FindProxyForURL(url, host) {
            if (host == 'spin.example') { for (;;) {} }
            return 'PROXY ' + host + ':3128';
        }",
    );
    let (code, out) = run(
        &[
            "eval",
            "--pac",
            f.path().to_str().unwrap(),
            "--urls",
            "-",
            "--json",
            "--coverage",
            "--timeout",
            "3s",
            "--workers",
            "1",
        ],
        Some("http://before.example/\nhttp://spin.example/\nhttp://after.example/\n"),
    );
    assert_eq!(code, 2, "{out}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["result"], "PROXY before.example:3128", "{out}");
    // the deadline, or boa's loop limit first: a timeout either way
    assert_eq!(lines[1]["error"]["kind"], "timeout", "{out}");
    assert_eq!(lines[2]["result"], "PROXY after.example:3128", "{out}");
    let coverage = &lines[3]["coverage"];
    assert_eq!(coverage["answers"], 2, "{out}");
    assert_eq!(
        coverage["probes"][0]["true"], 0,
        "spin's true outcome died with its worker"
    );
    assert_eq!(coverage["probes"][0]["false"], 2, "{out}");
}

/// The answers (or error kinds and positions) of `eval --urls --json`, durations left out; one
/// worker, so scripts that keep state across calls answer alike from run to run.
fn answers(pac: &str, urls: &str, coverage: bool) -> Vec<serde_json::Value> {
    let mut args = vec![
        "eval",
        "--pac",
        pac,
        "--urls",
        "-",
        "--json",
        "--in-process",
        "--workers",
        "1",
        "--timeout",
        "60s",
        "--now",
        "2024-05-07T09:30:00Z",
        "--tz",
        "UTC",
    ];
    args.extend(PINNED);
    if coverage {
        args.push("--coverage");
    }
    let (_, out) = run(&args, Some(urls));
    out.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("coverage").is_none())
        .map(|mut v| {
            v.as_object_mut().map(|o| o.remove("duration_us"));
            v
        })
        .collect()
}

#[test]
fn instrumenting_for_coverage_changes_no_answer_of_any_corpus_script() {
    let Some(root) = corpus() else { return };
    let urls = "http://www.example.com/path?q=1\nhttps://intranet/\nhttp://10.1.2.3/\n\
                http://www.baidu.com/\nhttp://elearning.bmf.gv.at/kurs\nhttp://internal.example/\n\
                http://www.manugarg.com/ www.manugarg.com\nhttp://a.externaldomain.com/x'q\n";
    let mut checked = 0;
    for dir in ["upstream", "realworld"] {
        let mut stack = vec![root.join(dir)];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                if path.extension().is_some_and(|e| e == "txt") {
                    continue;
                }
                let pac = path.to_str().unwrap();
                let plain = answers(pac, urls, false);
                if plain.is_empty() {
                    continue; // does not load: test_and_diff cover that
                }
                assert_eq!(answers(pac, urls, true), plain, "{pac}");
                checked += 1;
            }
        }
    }
    assert!(checked > 40, "only {checked} scripts answered");
}

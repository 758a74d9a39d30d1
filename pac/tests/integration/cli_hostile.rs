//! `waypost-pac eval` and `check` given hostile scripts: the script runs in a `pac-worker`
//! process under the proxy's budgets, so a memory bomb or an endless loop costs that worker and
//! is reported on the line of the URL that triggered it; the command never aborts and answers
//! the URLs after it (in a fresh worker: globals start over). The command itself runs with its
//! address space capped at 2 GiB (a small machine): a bomb evaluated in-process would abort it
//! ("memory allocation failed"), which fails these tests.

use std::process::Command;

use crate::cli::script;

const HOSTILE: &str = r#"
    var calls = 0;
    function f() { var x = 0; for (var i = 0; i < 1000; i++) { x += i; } return x; }
    function FindProxyForURL(url, host) {
        calls++;
        if (host == 'bomb.example') { var s = 'x'; var keep = []; for (;;) { s = s + s; keep.push(s); } }
        if (host == 'spin.example') { for (;;) f(); }
        return 'PROXY ' + host + ':' + calls;
    }"#;

/// Address-space cap of the command (KiB, as `ulimit -v` takes it).
const COMMAND_CAP_KIB: u32 = 2 << 20;

/// Runs the binary under the cap; (exit code or -1 when killed by a signal, stdout, stderr).
fn run_capped(args: &[&str]) -> (i32, String, String) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {COMMAND_CAP_KIB} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_waypost-pac"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn eval_reports_a_memory_bomb_on_its_url_and_answers_the_next_url() {
    let f = script(HOSTILE);
    let (code, out, err) = run_capped(&[
        "eval",
        "--pac",
        f.path().to_str().unwrap(),
        "--url",
        "http://bomb.example/",
        "--url",
        "http://b.example/",
    ]);
    // a script error (2), not an abort (a signal)
    assert_eq!(code, 2, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}{err}");
    // the proxy's default limit; on a busy machine the 5 s deadline may come first
    assert!(
        lines[0].starts_with("error (")
            && (lines[0].contains("memory limit of 512 MiB") || lines[0].contains("deadline")),
        "{out}{err}"
    );
    assert_eq!(lines[1], "PROXY b.example:1");

    // the control: in-process (no deadline in reach) the same bomb aborts the command under
    // this cap, so the cap is real and the worker process is what saved the runs above
    let (code, out, err) = run_capped(&[
        "eval",
        "--pac",
        f.path().to_str().unwrap(),
        "--url",
        "http://bomb.example/",
        "--url",
        "http://b.example/",
        "--in-process",
        "--timeout",
        "120s",
    ]);
    assert!(
        code == -1 && err.contains("memory allocation") && !out.contains("b.example"),
        "{code} {out}{err}"
    );
}

#[test]
fn eval_json_reports_an_endless_loop_killed_at_its_deadline_and_answers_the_next_url() {
    let f = script(HOSTILE);
    let (code, out, err) = run_capped(&[
        "eval",
        "--pac",
        f.path().to_str().unwrap(),
        "--url",
        "http://spin.example/",
        "--url",
        "http://b.example/",
        "--json",
        "--timeout",
        "2s",
    ]);
    assert_eq!(code, 2, "{out}{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{out}{err}");
    let error = &lines[0]["error"];
    assert_eq!(error["kind"], "timeout", "{out}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("deadline of 2s"),
        "{out}"
    );
    // killed by the supervisor (named), or the caller stopped waiting first (a plain timeout)
    assert!(
        error["killed"] == "deadline" || error.get("killed").is_none(),
        "{out}"
    );
    assert!(lines[0]["result"].is_null());
    assert_eq!(lines[1]["result"], "PROXY b.example:1", "{out}");
    assert!(lines[1]["error"].is_null());
}

#[test]
fn a_script_that_bombs_while_loading_is_a_script_error_for_eval_and_check() {
    let f = script(
        "var s = 'x'; var keep = []; for (;;) { s = s + s; keep.push(s); }\n\
         function FindProxyForURL(url, host) { return 'DIRECT'; }",
    );
    let p = f.path().to_str().unwrap();
    let (code, out, err) = run_capped(&[
        "eval",
        "--pac",
        p,
        "--url",
        "http://a/",
        "--url",
        "http://b/",
        "--json",
    ]);
    assert_eq!(code, 2, "{out}{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{out}{err}");
    for line in &lines {
        let message = line["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("memory limit") || message.contains("deadline"),
            "{out}"
        );
    }
    let (code, out, err) = run_capped(&["check", p]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        out.starts_with(&format!("error: {p}: "))
            && (out.contains("memory limit") || out.contains("deadline")),
        "{out}{err}"
    );
}

#[test]
fn memory_limit_reaches_the_worker_and_in_process_runs_without_one() {
    // a 128 Mi-character string: over a 64 MiB worker, fine for the command itself
    let f = script(
        "function FindProxyForURL(url, host) { var s = 'x'; for (var i = 0; i < 27; i++) s = s + s; return 'PROXY ok:' + s.length; }",
    );
    let p = f.path().to_str().unwrap();
    let (code, out, err) = run_capped(&[
        "eval",
        "--pac",
        p,
        "--url",
        "http://a/",
        "--memory-limit",
        "64MiB",
    ]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.contains("memory limit of 64 MiB"), "{out}{err}");
    let (code, out, err) = run_capped(&["eval", "--pac", p, "--url", "http://a/", "--in-process"]);
    assert_eq!((code, out.trim()), (0, "PROXY ok:134217728"), "{err}");
}

//! `waypost pac eval` (the root binary's PAC tester) given hostile scripts: it evaluates in a
//! `waypost pac-worker` process with the proxy's `[pac]` defaults, so a memory bomb and an
//! endless loop are each reported on their own URL's line and the URL after them is answered.
//! The command runs with its address space capped at 2 GiB: evaluated in-process, the bomb
//! would abort it ("memory allocation failed"), as issue 22 found.

use std::process::Command;

const HOSTILE: &str = r#"
    function f() { var x = 0; for (var i = 0; i < 1000; i++) { x += i; } return x; }
    function FindProxyForURL(url, host) {
        if (host == 'bomb.example') { var s = 'x'; var keep = []; for (;;) { s = s + s; keep.push(s); } }
        if (host == 'spin.example') { for (;;) f(); }
        return 'PROXY ' + host + ':3128';
    }"#;

#[test]
fn waypost_pac_eval_reports_a_memory_bomb_and_an_endless_loop_per_url_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let pac = dir.path().join("hostile.pac");
    std::fs::write(&pac, HOSTILE).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 2097152 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_waypost"))
        .args(["pac", "eval", "--json", "--timeout", "3s", "--pac"])
        .arg(&pac)
        .args(["--url", "http://bomb.example/"])
        .args(["--url", "http://spin.example/"])
        .args(["--url", "http://after.example/"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let context = format!("{text}{}", String::from_utf8_lossy(&out.stderr));
    // a script error (2), not an abort (a signal)
    assert_eq!(out.status.code(), Some(2), "{context}");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{context}");
    let message = |i: usize| {
        lines[i]["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    // the memory limit, or on a busy machine the deadline first
    assert!(
        message(0).contains("memory limit of 512 MiB") || message(0).contains("deadline"),
        "{context}"
    );
    assert_eq!(lines[1]["error"]["kind"], "timeout", "{context}");
    assert!(message(1).contains("deadline of 3s"), "{context}");
    assert_eq!(lines[2]["result"], "PROXY after.example:3128", "{context}");
}

//! Secrets are never echoed by an error (issue 22, point 3): a canary secret is fed to every
//! error path that shows configuration or a PAC source — a `password` line with an unterminated
//! string, one with a backslash, upstream URLs with `user:pw@` and a `?token=` query, the config
//! path swapped for a symlink to a non-TOML file whose first line is the canary, PAC source URLs
//! with a token, the PAC file swapped for a symlink to that file — and every output is searched
//! for it: the log of a running waypost (a child process reloading each bad file), `/status`,
//! `/status.json`, `/explain`, `waypost run`, `waypost config check` and `waypost doctor`.
//! Each error must still name the file and line (and the key where there is one).

use crate::support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::harness::{self, metric};
use support::peers::free_port;
use support::process::spawn_waypost;
use waypost_testsupport::eventually;

/// A word that is at once a TOML bare key, a JavaScript identifier and a URL's user, password
/// and query value: each parser that quotes what it could not take would quote it whole.
const CANARY: &str = "Cnry7q_s3cret_Zx9";
const WAIT: Duration = Duration::from_secs(30);

/// One bad configuration: its text (None: the path becomes a symlink to a file whose first
/// line is the canary) and what its report must name (`file:line`, keys).
struct Case {
    name: &'static str,
    text: Option<String>,
    names: Vec<String>,
}

fn cases(path: &Path, pac_url: &str) -> Vec<Case> {
    let at = |line: &str| format!("{}:{line}", path.display());
    let head = "listen = [\"127.0.0.1:0\"]\n";
    vec![
        Case {
            name: "unterminated password string",
            text: Some(format!(
                "{head}[client_auth]\nusername = \"u\"\npassword = \"{CANARY}\n"
            )),
            names: vec![at("4:"), "client_auth.password".into()],
        },
        Case {
            name: "backslash in a password",
            text: Some(format!(
                "{head}[client_auth]\nusername = \"u\"\npassword = \"a\\q{CANARY}\"\n"
            )),
            names: vec![at("4:"), "client_auth.password".into()],
        },
        Case {
            name: "upstream URLs with userinfo and a token",
            text: Some(format!(
                "{head}[route]\nupstream = \"http://user:{CANARY}@proxy.example:3128/?token={CANARY}\"\n\
                 https_upstream = \"http://proxy.example:3128/?token={CANARY}\"\n\
                 bypass = [\"http://user:{CANARY}@intranet.example/?token={CANARY}\"]\n"
            )),
            names: vec![
                at("3"),
                "route.upstream".into(),
                at("4"),
                "route.https_upstream".into(),
                at("5"),
                "route.bypass[0]".into(),
            ],
        },
        Case {
            name: "a PAC source URL with a token, listed twice",
            text: Some(format!(
                "{head}[pac]\nsource = [\"{pac_url}\", \"{pac_url}\"]\n"
            )),
            names: vec![at("3"), "pac.source[1]".into()],
        },
        Case {
            name: "the config path is a symlink to a file that is not TOML",
            text: None,
            names: vec![at("1:")],
        },
    ]
}

/// Puts `case` at `path` in one step (a rename), so a reload never reads half a file.
fn install(dir: &Path, path: &Path, case: &Case) {
    let next = dir.join("next.toml");
    let _ = std::fs::remove_file(&next);
    match &case.text {
        Some(text) => std::fs::write(&next, text).unwrap(),
        None => {
            let secret = dir.join("token.txt");
            std::fs::write(&secret, format!("{CANARY}\n")).unwrap();
            std::os::unix::fs::symlink(&secret, &next).unwrap();
        }
    }
    std::fs::rename(&next, path).unwrap();
}

/// Runs `waypost ARGS`; (exit code, stdout and stderr).
async fn waypost(args: &[&str]) -> (Option<i32>, String) {
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_waypost"))
            .args(args)
            .env("WAYPOST_LOG", "info")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("waypost ends")
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// What went wrong across all surfaces, reported together at the end (so a regression shows
/// every path it opened, not only the first).
#[derive(Default)]
struct Findings(Vec<String>);

impl Findings {
    /// `output` is what `what` showed: it must not hold the canary, and must name `names`.
    fn check(&mut self, what: &str, output: &str, names: &[String]) {
        if output.contains(CANARY) {
            self.0.push(format!("{what} shows the secret:\n{output}"));
        }
        for n in names {
            if !output.contains(n.as_str()) {
                self.0.push(format!("{what} does not name {n}:\n{output}"));
            }
        }
    }
}

#[tokio::test]
async fn no_error_path_echoes_a_secret_and_each_still_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("waypost.toml");
    let p = path.to_str().unwrap();
    let mut found = Findings::default();
    // a PAC server that hangs up on every request: the fetch error names the URL
    let pac_server = harness::raw_origin(|s| async move { drop(s) }).await;
    let pac_url = format!("http://user:{CANARY}@{pac_server}/proxy.pac?token={CANARY}");
    let where_pac = vec![format!("{pac_server}/proxy.pac")];

    // a valid configuration whose PAC script cannot be fetched
    std::fs::write(
        &path,
        format!(
            "listen = [\"127.0.0.1:0\"]\n[pac]\nsource = \"{pac_url}\"\ncache_file = \"none\"\n"
        ),
    )
    .unwrap();
    let (_child, addr, log) = spawn_waypost(&path, None).await;
    let status = eventually(
        WAIT,
        || async { harness::get(addr, "/status.json").await.2 },
        |s| {
            serde_json::from_str::<serde_json::Value>(s)
                .is_ok_and(|v| v["pac"]["last_error"].is_string())
        },
    )
    .await;
    found.check("/status.json (PAC)", &status, &where_pac);
    let (_, _, page) = harness::get(addr, "/status").await;
    found.check("/status (PAC)", &page, &where_pac);
    let explain = format!(
        "/explain?url={}",
        waypost::ops::admin::percent_encode(&format!("http://origin.example/?token={CANARY}"))
    );
    let (_, _, report) = harness::get(addr, &explain).await;
    found.check("/explain", &report, &where_pac);
    let (code, out) = waypost(&["config", "check", p]).await;
    assert_eq!(code, Some(0), "{out}");
    found.check("config check (PAC)", &out, &[]);
    let sample = format!("http://127.0.0.1:{}/?token={CANARY}", free_port());
    let (code, out) = waypost(&["doctor", "--standalone", "--config", p, "--url", &sample]).await;
    assert_eq!(code, Some(1), "the PAC check fails: {out}");
    found.check("doctor (PAC)", &out, &where_pac);

    // each bad file: refused by the running waypost's reload, and by every command
    for (i, case) in cases(&path, &pac_url).iter().enumerate() {
        install(dir.path(), &path, case);
        let refused = (i + 1) as f64;
        eventually(
            WAIT,
            || harness::metrics(addr),
            |m| {
                metric(
                    m,
                    "waypost_config_reloads_total{outcome=\"invalid\",trigger=\"file\"}",
                ) >= refused
            },
        )
        .await;
        let what = |surface: &str| format!("{surface} ({})", case.name);
        let (_, _, status) = harness::get(addr, "/status.json").await;
        found.check(&what("/status.json"), &status, &[]);
        let problems = serde_json::from_str::<serde_json::Value>(&status).unwrap()["last_reload"]
            ["problems"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        found.check(&what("/status.json problems"), &problems, &case.names);
        let (_, _, page) = harness::get(addr, "/status").await;
        found.check(&what("/status"), &page, &case.names);
        for args in [
            vec!["config", "check", p],
            vec!["doctor", "--standalone", "--config", p],
            vec!["run", "--config", p],
        ] {
            let (code, out) = waypost(&args).await;
            let surface = what(&format!("waypost {}", args[0]));
            assert_ne!(code, Some(0), "{surface} accepted it: {out}");
            found.check(&surface, &out, &case.names);
        }
    }

    // a PAC file swapped for a symlink to the secret file: loads as a script and fails
    let pac_file = dir.path().join("proxy.pac");
    std::os::unix::fs::symlink(dir.path().join("token.txt"), &pac_file).unwrap();
    let with_pac_file = Case {
        name: "the PAC file is a symlink to a file that is not a script",
        text: Some(format!(
            "listen = [\"127.0.0.1:0\"]\n[pac]\nsource = \"{}\"\ncache_file = \"none\"\n",
            pac_file.display()
        )),
        names: vec![],
    };
    install(dir.path(), &path, &with_pac_file);
    let where_script = vec![pac_file.display().to_string(), "ReferenceError".to_string()];
    let status = eventually(
        WAIT,
        || async { harness::get(addr, "/status.json").await.2 },
        |s| s.contains("does not load"),
    )
    .await;
    found.check("/status.json (PAC file)", &status, &where_script);
    let (_, _, page) = harness::get(addr, "/status").await;
    found.check("/status (PAC file)", &page, &where_script);
    let (_, _, report) = harness::get(addr, "/explain?url=http://origin.example/").await;
    found.check("/explain (PAC file)", &report, &where_script);
    let (_, out) = waypost(&["doctor", "--standalone", "--config", p, "--url", &sample]).await;
    found.check("doctor (PAC file)", &out, &where_script);

    let log = log.lock().unwrap().join("\n");
    assert!(log.contains("configuration reload refused"), "{log}");
    let all: Vec<String> = cases(&path, &pac_url)
        .into_iter()
        .flat_map(|c| c.names)
        .chain(where_pac)
        .chain(where_script)
        .collect();
    found.check("the log", &log, &all);
    assert!(found.0.is_empty(), "{}", found.0.join("\n\n"));
}

//! The real `waypost` binary running inside a network namespace (`ip netns exec`), for the
//! tests that move a machine between networks or discover WPAD there: start it, ask it
//! `waypost explain` until a report holds, curl through it, read a metric, stop it keeping its
//! directory. Killed on drop; a failing test prints the tail of its log.

use std::ffi::OsStr;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use waypost_testsupport::curl::Curl;

/// The binary under test. `TEST_WAYPOST_BIN` overrides it: helpers building several worktrees
/// into one target directory can point the tests at the binary they mean.
pub fn binary() -> String {
    std::env::var("TEST_WAYPOST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_waypost").into())
}

/// A waypost process in a namespace, serving at `addr` there.
pub struct NsWaypost {
    child: Child,
    pub ns: String,
    pub addr: String,
    log: PathBuf,
    dir: tempfile::TempDir,
}

impl NsWaypost {
    /// Runs `waypost ARGS` in `ns` with `env` added, its output going to `log_name` in `dir`;
    /// `addr` is where the arguments make it listen.
    pub fn spawn<I, S>(
        ns: &str,
        addr: &str,
        dir: tempfile::TempDir,
        log_name: &str,
        args: I,
        env: &[(&str, &str)],
    ) -> NsWaypost
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let log = dir.path().join(log_name);
        let out = fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, &binary()])
            .args(args)
            .env_remove("WAYPOST_CONFIG")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        for (k, v) in env {
            cmd.env(k, v);
        }
        // `ip netns exec` execs waypost: the child's pid is waypost's
        let child = cmd.spawn().expect("spawn waypost under ip netns exec");
        NsWaypost {
            child,
            ns: ns.to_string(),
            addr: addr.to_string(),
            log,
            dir,
        }
    }

    /// Stops it, keeping its directory (the last good PAC copy) for a restart.
    pub fn stop(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"))
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `waypost explain URL --proxy ADDR [--json]` run in the namespace: (exit ok, stdout).
    pub fn explain_raw(&self, url: &str, json: bool) -> (bool, String) {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, &binary(), "explain", url])
            .args(["--proxy", &self.addr]);
        if json {
            cmd.arg("--json");
        }
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .expect("run waypost explain");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// The `explain --json` report, when waypost answered with one.
    pub fn explain_once(&self, url: &str) -> Option<Value> {
        match self.explain_raw(url, true) {
            (true, out) => serde_json::from_str(out.trim()).ok(),
            (false, _) => None,
        }
    }

    /// The `explain --json` report; panics (with the log) when there is none.
    pub fn explain(&self, url: &str) -> Value {
        let (ok, out) = self.explain_raw(url, true);
        assert!(ok, "waypost explain failed: {out}\n{}", self.log());
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("explain --json: {e}: {out}"))
    }

    /// Polls `explain --json` until `done` holds for its report (panics after `within`, with
    /// the last report and the log).
    pub fn explain_until(
        &self,
        url: &str,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        let mut last = None;
        loop {
            if let Some(v) = self.explain_once(url) {
                if done(&v) {
                    return v;
                }
                last = Some(v);
            }
            if Instant::now() >= deadline {
                panic!(
                    "explain did not reach the expected state within {within:?}; last report: {}\n--- waypost log\n{}",
                    last.map(|v| v.to_string()).unwrap_or_default(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// curl through waypost from inside the namespace: (HTTP status, body).
    pub fn curl(&self, url: &str) -> (u16, String) {
        let got = Curl::in_netns(&self.ns)
            .proxy(&format!("http://{}", self.addr))
            .fetch(url);
        assert!(
            got.output.success(),
            "curl {url} through waypost failed: {}\n--- waypost log\n{}",
            got.output.stderr,
            self.log()
        );
        (got.status, got.body)
    }

    /// One metric's value from `/metrics` (the sum of its series; 0 when absent).
    pub fn metric(&self, name: &str) -> f64 {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "curl", "-s", "--noproxy", "*"])
            .arg(format!("http://{}/metrics", self.addr))
            .output()
            .expect("curl /metrics");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for NsWaypost {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "--- tail of the waypost log\n{}",
                lines[lines.len().saturating_sub(40)..].join("\n")
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

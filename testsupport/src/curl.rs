//! curl as the client of a test: `curl -sS --max-time 20` plus what the test adds, run
//! blocking or on tokio, on the host or inside a network namespace.
//!
//! ```ignore
//! let code = Curl::new().proxy(&format!("http://{addr}")).status(&origin.url("/"));
//! assert_eq!(code, "200");
//! ```

use std::process::{Command, Output, Stdio};

use crate::peers::require_program;

/// One curl invocation being put together.
pub struct Curl {
    cmd: Command,
}

/// What one curl run gave.
#[derive(Debug, Clone)]
pub struct CurlOutput {
    /// curl's exit code (0 = transfer done; see `man curl`, EXIT CODES), -1 when killed.
    pub exit: i32,
    pub stdout: String,
    pub stderr: String,
}

/// What [`Curl::fetch`] gave.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The HTTP status, 0 when no response came.
    pub status: u16,
    pub body: String,
    /// The whole run (exit code, stderr).
    pub output: CurlOutput,
}

impl Curl {
    /// `curl -sS --max-time 20`.
    pub fn new() -> Curl {
        require_program("curl");
        Curl::with(Command::new("curl"))
    }

    /// `ip netns exec NS curl -sS --max-time 20`: curl inside a network namespace.
    pub fn in_netns(ns: &str) -> Curl {
        require_program("ip");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, "curl"]);
        Curl::with(cmd)
    }

    fn with(mut cmd: Command) -> Curl {
        cmd.args(["-sS", "--max-time", "20"]).stdin(Stdio::null());
        Curl { cmd }
    }

    /// `-x PROXY` (`http://host:port`, `https://...`, `socks5h://...`).
    pub fn proxy(mut self, proxy: &str) -> Curl {
        self.cmd.args(["-x", proxy]);
        self
    }

    pub fn arg(mut self, arg: &str) -> Curl {
        self.cmd.arg(arg);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Curl
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.cmd.args(args);
        self
    }

    /// Environment for curl (e.g. `KRB5_CONFIG`, `KRB5CCNAME` of a test KDC).
    pub fn envs(mut self, env: &[(String, String)]) -> Curl {
        self.cmd
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        self
    }

    /// Runs curl as built so far (the URL among the arguments).
    pub fn run(mut self) -> CurlOutput {
        CurlOutput::from(self.cmd.output().expect("run curl"))
    }

    /// [`Curl::run`] on tokio: does not block the runtime while curl talks to an in-process
    /// server.
    pub async fn run_async(self) -> CurlOutput {
        let out = tokio::process::Command::from(self.cmd)
            .output()
            .await
            .expect("run curl");
        CurlOutput::from(out)
    }

    /// The HTTP status of `url` as curl's `%{http_code}` prints it: `"200"`, `"407"`, or
    /// `"000"` when no response came. The body is discarded.
    pub fn status(self, url: &str) -> String {
        self.status_args(url).run().last_line().to_string()
    }

    /// [`Curl::status`] on tokio.
    pub async fn status_async(self, url: &str) -> String {
        self.status_args(url)
            .run_async()
            .await
            .last_line()
            .to_string()
    }

    fn status_args(self, url: &str) -> Curl {
        self.args(["-o", "/dev/null", "-w", "%{http_code}\n", url])
    }

    /// The response head(s) of `url` (`-D -`), lower-cased; the body is discarded.
    pub fn head(self, url: &str) -> String {
        self.args(["-D", "-", "-o", "/dev/null", url])
            .run()
            .stdout
            .to_lowercase()
    }

    /// Status and body of `url`.
    pub fn fetch(self, url: &str) -> Fetched {
        let output = self.args(["-w", "\n%{http_code}", url]).run();
        let (body, code) = output
            .stdout
            .rsplit_once('\n')
            .unwrap_or(("", &output.stdout));
        Fetched {
            status: code.trim().parse().unwrap_or(0),
            body: body.to_string(),
            output,
        }
    }
}

impl Default for Curl {
    fn default() -> Self {
        Curl::new()
    }
}

impl CurlOutput {
    /// The last line of stdout, trimmed (what `-w '...\n'` printed).
    pub fn last_line(&self) -> &str {
        self.stdout.lines().last().unwrap_or("").trim()
    }

    /// stdout with stderr appended (for assertion messages).
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    pub fn success(&self) -> bool {
        self.exit == 0
    }
}

impl From<Output> for CurlOutput {
    fn from(out: Output) -> CurlOutput {
        CurlOutput {
            exit: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// `curl -x PROXY URL`'s HTTP status: the common case of [`Curl::status`].
pub fn status_via(proxy: &str, url: &str) -> String {
    Curl::new().proxy(proxy).status(url)
}

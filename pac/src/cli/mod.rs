//! The `waypost pac` command: `eval` (the pactester of this project), `check`, `bench`, and for
//! the owners of a corporate PAC the list commands — `eval --urls` (`urls`), `test` (`cases`)
//! and `diff` — with `--coverage`. Arguments stay close to what the user typed (strings);
//! `apply` turns them into engine options, reporting bad values as usage errors (exit 1).
//! Scripts run in `pac-worker` processes under the proxy's budgets (`isolation`). Output goes
//! to stdout.

mod bench;
mod cases;
mod coverage;
mod diff;
mod eval;
mod fetch;
mod input;
mod isolation;
mod junit;
mod lines;
mod ordered;
mod outcome;
mod script;
mod urls;

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::PacOptions;
pub use isolation::IsolationArgs;

/// Exit status: a result was printed.
pub const EXIT_OK: i32 = 0;
/// Exit status: bad arguments or unreadable input.
pub const EXIT_USAGE: i32 = 1;
/// Exit status: the script failed to load or to answer.
pub const EXIT_SCRIPT: i32 = 2;
/// Exit status of `test` and `diff`: a case failed, an answer changed.
pub const EXIT_DIFFERENT: i32 = 1;

/// `waypost pac ...`
#[derive(Debug, clap::Subcommand)]
pub enum PacCommand {
    /// Evaluate FindProxyForURL for one or more URLs and print what the script returned.
    Eval(EvalArgs),
    /// Check a script against a file of cases (`URL EXPECTED` per line); exit 1 on a mismatch.
    Test(TestArgs),
    /// Evaluate two versions of a script over the same URLs and print the URLs whose answers differ.
    Diff(DiffArgs),
    /// Load a script, report syntax errors with line:column and list the PAC functions it uses.
    Check(CheckArgs),
    /// Measure evaluations per second, uncached and cached.
    Bench(BenchArgs),
}

/// Options shared by `eval` and `bench` that shape the script's environment.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ScriptEnvArgs {
    /// Pin myIpAddress() (the first) and myIpAddressEx() (all, `;`-joined).
    #[arg(long = "my-ip", value_name = "IP")]
    pub my_ip: Vec<String>,
    /// Answer DNS for NAME (first IPv4 for dnsResolve, all for dnsResolveEx).
    #[arg(long = "resolve", value_name = "NAME=IP[,IP...]")]
    pub resolve: Vec<String>,
    /// Resolve nothing but --resolve names and IP literals.
    #[arg(long = "no-dns")]
    pub no_dns: bool,
    /// Fix the clock seen by Date and the date/time predicates (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<String>,
    /// Time zone seen by the script (IANA name, e.g. Europe/Berlin).
    #[arg(long, value_name = "IANA_ZONE")]
    pub tz: Option<String>,
    /// Deadline for loading the script and for each call (e.g. 5s, 500ms).
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
}

/// `waypost pac eval`
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["urls", "urls_file"])))]
pub struct EvalArgs {
    /// PAC script: a file path or an http:// URL.
    #[arg(long, value_name = "FILE_OR_URL")]
    pub pac: String,
    /// URL to evaluate; repeat to evaluate several in order against one loaded script.
    #[arg(long = "url", value_name = "URL")]
    pub urls: Vec<String>,
    /// Host passed to the script (default: the URL's host); pairs with --url by position.
    #[arg(long = "host", value_name = "HOST", conflicts_with = "urls_file")]
    pub hosts: Vec<String>,
    /// Evaluate the URLs of FILE (`-`: standard input), one per line, optionally followed by
    /// the host to pass; `#` comments and blank lines skipped. Results stream in input order
    /// from a pool of workers (one per core).
    #[arg(long = "urls", value_name = "FILE")]
    pub urls_file: Option<String>,
    /// Apply the proxy's URL stripping (https -> origin, no credentials or fragment).
    #[arg(long)]
    pub sanitize: bool,
    /// Print one JSON object per URL.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub list: ListArgs,
    #[command(flatten)]
    pub env: ScriptEnvArgs,
    #[command(flatten)]
    pub isolation: IsolationArgs,
}

/// Options of the commands that evaluate a list (`eval --urls`, `test`, `diff`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ListArgs {
    /// Report which `return` statements and `if`/`?:` outcomes of the script the URLs reached,
    /// by line (`eval --urls`, `test`, `diff`).
    #[arg(long)]
    pub coverage: bool,
    /// Worker processes (or threads) evaluating the list (default: number of cores).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
}

/// `waypost pac test`
#[derive(Debug, Clone, clap::Args)]
pub struct TestArgs {
    /// Case file (`-`: standard input): `URL EXPECTED` per line, EXPECTED being the exact
    /// answer (everything after the first run of whitespace); `#` comments.
    #[arg(value_name = "CASES")]
    pub cases: String,
    /// PAC script: a file path or an http:// URL.
    #[arg(long, value_name = "FILE_OR_URL")]
    pub pac: String,
    /// Also write a JUnit XML report to FILE (for CI systems).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<String>,
    /// Apply the proxy's URL stripping (https -> origin, no credentials or fragment).
    #[arg(long)]
    pub sanitize: bool,
    #[command(flatten)]
    pub list: ListArgs,
    #[command(flatten)]
    pub env: ScriptEnvArgs,
    #[command(flatten)]
    pub isolation: IsolationArgs,
}

/// `waypost pac diff`
#[derive(Debug, Clone, clap::Args)]
pub struct DiffArgs {
    /// The script in service: a file path or an http:// URL.
    #[arg(value_name = "OLD")]
    pub old: String,
    /// The changed script: a file path or an http:// URL.
    #[arg(value_name = "NEW")]
    pub new: String,
    /// URLs to compare on (`-`: standard input): one per line, optionally followed by the host
    /// to pass; `#` comments and blank lines skipped.
    #[arg(long = "urls", value_name = "FILE")]
    pub urls: String,
    /// Apply the proxy's URL stripping (https -> origin, no credentials or fragment).
    #[arg(long)]
    pub sanitize: bool,
    /// Print one JSON object per changed URL, then one with the counts.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub list: ListArgs,
    #[command(flatten)]
    pub env: ScriptEnvArgs,
    #[command(flatten)]
    pub isolation: IsolationArgs,
}

/// `waypost pac check`
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// PAC script: a file path or an http:// URL.
    #[arg(value_name = "FILE")]
    pub file: String,
    #[command(flatten)]
    pub isolation: IsolationArgs,
}

/// `waypost pac bench`
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// PAC script: a file path or an http:// URL.
    #[arg(value_name = "FILE")]
    pub file: String,
    /// URL to evaluate (repeat for several; each is measured).
    #[arg(long = "url", value_name = "URL", required = true)]
    pub urls: Vec<String>,
    /// Evaluations per measurement.
    #[arg(long, default_value_t = 2000)]
    pub iterations: usize,
    /// Worker threads (default: number of cores).
    #[arg(long)]
    pub workers: Option<usize>,
    #[command(flatten)]
    pub env: ScriptEnvArgs,
    // where the script runs: pac-worker processes, as the running proxy (default; measures the
    // process boundary), or --in-process worker threads
    #[command(flatten)]
    pub isolation: IsolationArgs,
}

/// Runs a `waypost pac` subcommand; returns the exit status.
pub async fn run(cmd: PacCommand) -> i32 {
    match cmd {
        PacCommand::Eval(args) if args.urls_file.is_some() => urls::eval_urls(args).await,
        PacCommand::Eval(args) => eval::eval(args).await,
        PacCommand::Test(args) => cases::test(args).await,
        PacCommand::Diff(args) => diff::diff(args).await,
        PacCommand::Check(args) => eval::check(args).await,
        PacCommand::Bench(args) => bench::bench(args).await,
    }
}

/// A usage error: printed, exit 1.
pub(crate) fn usage(message: impl std::fmt::Display) -> i32 {
    println!("error: {message}");
    EXIT_USAGE
}

impl ListArgs {
    /// Engine options for evaluating a list: a pool of workers, no result cache, the
    /// environment and isolation flags applied; `Err` is a usage message.
    pub(crate) fn options(
        &self,
        env: &ScriptEnvArgs,
        isolation: &IsolationArgs,
    ) -> Result<PacOptions, String> {
        let mut options = PacOptions {
            cache_ttl: Duration::ZERO,
            ..PacOptions::default()
        };
        if let Some(w) = self.workers {
            options.workers = w.max(1);
        }
        env.apply(&mut options)?;
        isolation.apply(&mut options)?;
        Ok(options)
    }
}

/// Reads a script from a file or an http:// URL.
pub(crate) async fn read_script(location: &str, limit: usize) -> Result<String, String> {
    if location.starts_with("http://") {
        return fetch::fetch(location, limit, Duration::from_secs(30)).await;
    }
    if location.contains("://") {
        return Err(format!(
            "{location}: only file paths and http:// URLs are supported; download the file first"
        ));
    }
    let bytes = tokio::fs::read(location)
        .await
        .map_err(|e| format!("{location}: {e}"))?;
    Ok(fetch::decode(&bytes))
}

impl ScriptEnvArgs {
    /// Applies the arguments to `options`; `Err` is a usage message.
    pub(crate) fn apply(&self, options: &mut PacOptions) -> Result<(), String> {
        for ip in &self.my_ip {
            options.my_ip.push(
                ip.parse()
                    .map_err(|_| format!("--my-ip {ip:?} is not an IP address"))?,
            );
        }
        options.dns_fixed = parse_resolves(&self.resolve)?;
        options.no_dns = self.no_dns;
        if let Some(now) = &self.now {
            let ts: jiff::Timestamp = now.parse().map_err(|e| {
                format!("--now {now:?} is not RFC 3339 (e.g. 2024-05-07T09:30:00+02:00): {e}")
            })?;
            options.fixed_now_ms = Some(ts.as_millisecond());
        }
        if let Some(tz) = &self.tz {
            crate::clock::check_time_zone(tz).map_err(|e| format!("--tz: {e}"))?;
            options.time_zone = Some(tz.clone());
        }
        if let Some(t) = &self.timeout {
            let d = humantime::parse_duration(t)
                .map_err(|e| format!("--timeout {t:?}: {e} (try 5s or 500ms)"))?;
            options.call_timeout = d;
            options.load_timeout = d;
        }
        Ok(())
    }
}

fn parse_resolves(items: &[String]) -> Result<HashMap<String, Vec<IpAddr>>, String> {
    let mut map: HashMap<String, Vec<IpAddr>> = HashMap::new();
    for item in items {
        let (name, ips) = item
            .split_once('=')
            .ok_or_else(|| format!("--resolve {item:?}: expected NAME=IP[,IP...]"))?;
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty() {
            return Err(format!("--resolve {item:?}: empty name"));
        }
        let entry = map.entry(name).or_default();
        for ip in ips.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let ip = ip.trim_start_matches('[').trim_end_matches(']');
            entry.push(
                ip.parse()
                    .map_err(|_| format!("--resolve {item:?}: {ip:?} is not an IP address"))?,
            );
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_flags_accept_several_addresses_of_both_families() {
        let map = parse_resolves(&[
            "Intranet=10.0.0.1,[2001:db8::1]".into(),
            "intranet=10.0.0.2".into(),
        ])
        .unwrap();
        let ips: Vec<String> = map["intranet"].iter().map(ToString::to_string).collect();
        assert_eq!(ips, ["10.0.0.1", "2001:db8::1", "10.0.0.2"]);
        assert!(parse_resolves(&["nohost".into()]).is_err());
        assert!(parse_resolves(&["h=notip".into()]).is_err());
    }

    #[test]
    fn bad_environment_values_are_usage_errors_that_suggest_a_fix() {
        let mut o = PacOptions::default();
        let bad_now = ScriptEnvArgs {
            now: Some("yesterday".into()),
            ..Default::default()
        };
        assert!(bad_now.apply(&mut o).unwrap_err().contains("RFC 3339"));
        let bad_tz = ScriptEnvArgs {
            tz: Some("Mars/Olympus".into()),
            ..Default::default()
        };
        assert!(bad_tz.apply(&mut o).is_err());
        let bad_timeout = ScriptEnvArgs {
            timeout: Some("soon".into()),
            ..Default::default()
        };
        assert!(bad_timeout.apply(&mut o).unwrap_err().contains("try 5s"));
    }
}

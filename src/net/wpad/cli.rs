//! `waypost wpad discover`: runs WPAD discovery once and prints every attempt and the result.
//!
//! Raw flags are kept in [`DiscoverArgs`]; [`run_discover`] turns them into
//! [`WpadOptions`](super::WpadOptions), prints (text or `--json`) and returns the exit code:
//! 0 found, 1 not found. It neither fetches the PAC nor changes any state.

use std::io::Write;
use std::time::Duration;

use clap::Args;
use serde::Serialize;

use super::{discover, Attempt, Method, WpadOptions};

#[derive(Debug, Clone, Args)]
pub struct DiscoverArgs {
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// How long to wait for DHCP answers (option 252), e.g. 2s or 500ms.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    pub dhcp_timeout: Duration,
    /// Bound of each DNS lookup of wpad.<domain>.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    pub dns_timeout: Duration,
    /// Ask only this interface by DHCP (repeatable); default: every up, non-loopback IPv4 one.
    #[arg(long = "interface", short = 'i', value_name = "IFACE")]
    pub interfaces: Vec<String>,
    /// Devolve this DNS domain (repeatable); default: the search list of /etc/resolv.conf.
    #[arg(long = "domain", value_name = "DOMAIN")]
    pub domains: Vec<String>,
}

impl DiscoverArgs {
    pub fn options(&self) -> WpadOptions {
        WpadOptions {
            dhcp_timeout: self.dhcp_timeout,
            dns_timeout: self.dns_timeout,
            interfaces: (!self.interfaces.is_empty()).then(|| self.interfaces.clone()),
            search_domains: (!self.domains.is_empty()).then(|| self.domains.clone()),
        }
    }
}

#[derive(Serialize)]
struct Report<'a> {
    found: bool,
    url: Option<&'a str>,
    method: Option<Method>,
    source: Option<&'a str>,
    tried: &'a [Attempt],
}

/// Runs discovery and prints what it found and why; 0 when a URL was found, 1 otherwise.
pub async fn run_discover(args: DiscoverArgs) -> i32 {
    let result = discover(&args.options()).await;
    let (report, code) = match &result {
        Ok(d) => (
            Report {
                found: true,
                url: Some(&d.url),
                method: Some(d.method),
                source: Some(&d.source),
                tried: &d.tried,
            },
            0,
        ),
        Err(e) => (
            Report {
                found: false,
                url: None,
                method: None,
                source: None,
                tried: e.tried(),
            },
            1,
        ),
    };
    let text = if args.json {
        json(&report)
    } else {
        human(&report)
    };
    let mut out = std::io::stdout().lock();
    // a closed stdout (`| head`) changes nothing about the outcome
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
    code
}

fn json(report: &Report<'_>) -> String {
    match serde_json::to_string_pretty(report) {
        Ok(s) => s + "\n",
        Err(e) => format!("{{\"error\": \"cannot encode the report: {e}\"}}\n"),
    }
}

fn human(report: &Report<'_>) -> String {
    let mut s = String::new();
    for a in report.tried {
        s.push_str(&format!(
            "tried  {:<4} {:<40} {}\n",
            a.method, a.target, a.reason
        ));
    }
    match (report.url, report.method, report.source) {
        (Some(url), Some(method), Some(source)) => {
            s.push_str(&format!("found  {method:<4} {url}  ({source})\n"))
        }
        _ => {
            s.push_str("no WPAD URL found: DHCP gave no option 252 and no wpad.<domain> resolves\n")
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        args: DiscoverArgs,
    }

    #[test]
    fn flags_become_options() {
        let c = Cmd::parse_from([
            "x",
            "--dhcp-timeout",
            "500ms",
            "-i",
            "eth0",
            "--interface",
            "eth1",
            "--domain",
            "corp.example.com",
        ]);
        let o = c.args.options();
        assert_eq!(o.dhcp_timeout, Duration::from_millis(500));
        assert_eq!(o.dns_timeout, Duration::from_secs(2));
        assert_eq!(
            o.interfaces,
            Some(vec!["eth0".to_string(), "eth1".to_string()])
        );
        assert_eq!(o.search_domains, Some(vec!["corp.example.com".to_string()]));
        assert!(!c.args.json);
        assert_eq!(
            Cmd::parse_from(["x"]).args.options(),
            WpadOptions::default()
        );
    }

    #[test]
    fn the_text_report_lists_each_attempt_then_the_result() {
        let tried = [Attempt {
            method: Method::Dns,
            target: "wpad.a.example.com".into(),
            reason: "does not resolve (NXDOMAIN)".into(),
        }];
        let r = Report {
            found: true,
            url: Some("http://wpad.example.com/wpad.dat"),
            method: Some(Method::Dns),
            source: Some("wpad.example.com resolves to 10.0.0.1"),
            tried: &tried,
        };
        let text = human(&r);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].starts_with("tried  dns  wpad.a.example.com")
                && lines[0].ends_with("does not resolve (NXDOMAIN)")
        );
        assert_eq!(
            lines[1],
            "found  dns  http://wpad.example.com/wpad.dat  (wpad.example.com resolves to 10.0.0.1)"
        );
        let j: serde_json::Value = serde_json::from_str(&json(&r)).unwrap();
        assert_eq!(j["method"], "dns");
        assert_eq!(j["tried"][0]["target"], "wpad.a.example.com");
    }
}

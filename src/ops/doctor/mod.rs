//! `waypost doctor`: the checks a support engineer would run, each a verdict with the fix.
//!
//! In order: the configuration is valid; the running instance answers and is ready (skipped
//! with `--standalone`); the PAC script is found (by which method) and evaluates for a sample
//! URL; the route for that URL; per proxy on it: reachable, authentication works (scheme,
//! identity, SPN, ticket expiry), and the clock agrees with the proxy's `Date` (and with the
//! KDC's, when Kerberos is used: [`kdc`]); and TLS to the
//! sample origin through the chain (for an https sample URL). Later checks that depend on an
//! earlier failure say so instead of piling up errors.
//!
//! It builds the parts with the same code the proxy uses ([`App`]) and runs them in-process,
//! so what it reports is what requests would meet; it never binds a listener, never uses the
//! PAC copy kept on disk (that would hide a broken script), and prints no secret: URLs (the
//! sample URL, PAC sources) go through [`crate::redact`].

mod hop;
mod kdc;

use hop::{authenticate, clock, kdc_clock, tls};

use std::time::{Duration, Instant, SystemTime};

use crate::app::App;
use crate::config::Config;
use crate::error;
use crate::ops::ready;
use crate::route::Hop;
use crate::target::{Scheme, Target};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
    Skip,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Verdict {
    pub check: String,
    pub status: Status,
    pub detail: String,
    pub fix: Option<String>,
}

fn verdict(check: impl Into<String>, status: Status, detail: impl Into<String>) -> Verdict {
    Verdict {
        check: check.into(),
        status,
        detail: detail.into(),
        fix: None,
    }
}

impl Verdict {
    fn fix(mut self, fix: impl Into<String>) -> Verdict {
        self.fix = Some(fix.into());
        self
    }
}

pub struct Options {
    /// The running instance's admin URL; None = the first admin or listen address.
    pub admin: Option<String>,
    pub standalone: bool,
    /// The sample URL.
    pub url: String,
    /// The configuration file given (`--config`); None = the built-in defaults (and the
    /// environment), which messages say in their own words.
    pub config_file: Option<std::path::PathBuf>,
}

impl Options {
    /// The `config` check's detail: the file, or the defaults in words (not as a file name).
    fn config_valid(&self) -> String {
        match &self.config_file {
            Some(f) => format!("{} is valid", f.display()),
            None => "the configuration (built-in defaults, no file) is valid".into(),
        }
    }

    /// The command that starts an instance with this configuration.
    fn run_command(&self) -> String {
        match &self.config_file {
            Some(f) => format!("waypost run --config {}", f.display()),
            None => "waypost run".into(),
        }
    }
}

/// Runs every check. `cfg`: the loaded configuration, or every problem found in it.
pub async fn run(cfg: Result<Config, String>, opts: &Options) -> Vec<Verdict> {
    let mut out = Vec::new();
    let mut cfg = match cfg {
        Ok(c) => {
            out.push(verdict("config", Status::Ok, opts.config_valid()));
            c
        }
        Err(problems) => {
            out.push(
                verdict("config", Status::Fail, problems.trim_end().to_string()).fix(
                    "correct each line above (config/default.toml documents every key), then \
                     `waypost config check FILE`",
                ),
            );
            return out;
        }
    };
    if !opts.standalone {
        out.push(running(&cfg, opts).await);
    }
    if let Some(pac) = &mut cfg.pac {
        pac.cache_file = None;
    }
    let app = match App::new(cfg) {
        Ok(a) => a,
        Err(e) => {
            out.push(verdict("parts", Status::Fail, e));
            return out;
        }
    };
    checks(&app, opts, &mut out).await;
    app.shutdown.cancel();
    out
}

/// Asks the running instance's `/readyz`.
async fn running(cfg: &Config, opts: &Options) -> Verdict {
    let base = match &opts.admin {
        Some(a) if a.contains("://") => a.trim_end_matches('/').to_string(),
        Some(a) => format!("http://{}", a.trim_end_matches('/')),
        None => match cfg.admin_listen.first().or(cfg.listen.first()) {
            Some(a) if a.port() == 0 => {
                return verdict(
                    "listening",
                    Status::Skip,
                    format!("{a}: the port is chosen at start-up; pass --admin with the address waypost logged"),
                )
            }
            Some(a) => format!("http://{a}"),
            None => return verdict("listening", Status::Skip, "no listen address configured"),
        },
    };
    let client = match crate::upstream::standalone_client() {
        Ok(c) => c,
        Err(e) => return verdict("listening", Status::Fail, e),
    };
    let asked = tokio::time::timeout(
        Duration::from_secs(10),
        client.get(&format!("{base}/readyz"), "text/plain", 1 << 20),
    )
    .await;
    match asked {
        Ok(Ok(got)) if got.status == http::StatusCode::OK => verdict(
            "listening",
            Status::Ok,
            format!("waypost answers at {base} and is ready"),
        ),
        Ok(Ok(got)) => {
            let body = String::from_utf8_lossy(&got.body);
            let reasons: Vec<&str> = body.lines().filter(|l| l.starts_with("FAIL")).collect();
            verdict(
                "listening",
                Status::Warn,
                format!(
                    "waypost answers at {base} but is not ready: {}",
                    reasons.join("; ")
                ),
            )
            .fix("see the failing checks below")
        }
        Ok(Err(e)) => verdict(
            "listening",
            Status::Fail,
            format!("nothing answers at {base}: {e}"),
        )
        .fix(format!(
            "start it (`{}`), pass --admin with its address, or run `waypost doctor --standalone`",
            opts.run_command()
        )),
        Err(_) => verdict(
            "listening",
            Status::Fail,
            format!("{base} accepted but did not answer within 10s"),
        )
        .fix("is something else listening there?"),
    }
}

/// Whether proxies a WPAD or http:// PAC script names may get credentials here, and the risk
/// of the name-only rule (only with a PAC source: without one, the user named every proxy).
async fn network_trust(app: &App) -> Option<Verdict> {
    use waypost_auth::{AutologonPolicy, NetworkTrust};
    app.router.autoproxy.as_ref()?;
    let auth = &app.cfg.auth;
    if auth.policy == AutologonPolicy::Low {
        return Some(
            verdict("network trust", Status::Warn, "auth.policy = \"low\": any proxy a PAC script names gets credentials, on any network")
                .fix("a hostile network's WPAD script can name its own proxy and collect NTLM responses to crack offline: use \"medium\" (the default)"),
        );
    }
    if auth.network_trust == NetworkTrust::Names {
        return Some(
            verdict(
                "network trust",
                Status::Warn,
                "auth.network_trust = \"names\": proxies a WPAD script names get credentials by name on any network",
            )
            .fix("a hostile network can answer for the corporate proxy's name and collect a Kerberos AP-REQ or an NTLM response (crackable offline): remove it (the default \"proof\" sends credentials only where the realm's KDC or auth.trust_probe proves the network)"),
        );
    }
    let v = app.trust.decided().await;
    let status = if v.proven() { Status::Ok } else { Status::Warn };
    let out = verdict(
        "network trust",
        status,
        format!("this network: {}", v.describe()),
    );
    Some(match v.proven() {
        true => out,
        false => out.fix("proxies named by WPAD or http:// PAC scripts get no credentials here: with a Kerberos ticket (`kinit`) the realm's KDC proves the office network and the VPN; for sites without Kerberos set auth.trust_probe to an internal https:// URL"),
    })
}

/// With `pac.source = "auto"`: whether DHCP discovery can run (udp/68, or a system DHCP client
/// that knows option 252: the discovery itself reports the latter).
fn wpad_dhcp(app: &App) -> Option<Verdict> {
    let ap = app.router.autoproxy.as_ref()?;
    if !ap.settings.sources.iter().any(|s| s == "auto") {
        return None;
    }
    Some(match crate::net::wpad::dhcp::bind_denied() {
        false => verdict("wpad dhcp", Status::Ok, "udp/68 can be bound: DHCPINFORM asks for option 252"),
        true => verdict(
            "wpad dhcp",
            Status::Warn,
            "udp/68 cannot be bound (no root, no CAP_NET_BIND_SERVICE): only a system DHCP client's lease (NetworkManager, systemd-networkd, dhclient) can give option 252",
        )
        .fix(crate::net::wpad::DHCP_UNAVAILABLE),
    })
}

async fn checks(app: &App, opts: &Options, out: &mut Vec<Verdict>) {
    let uri: http::Uri = match opts.url.parse() {
        Ok(u) => u,
        Err(e) => {
            let url = crate::redact::url(&opts.url);
            out.push(verdict("url", Status::Fail, format!("{url}: {e}")));
            return;
        }
    };
    let target = match Target::from_absolute(&uri, false) {
        Ok(t) => t,
        Err(e) => {
            out.push(verdict("url", Status::Fail, e.detail));
            return;
        }
    };
    let cred = ready::credentials(app, SystemTime::now());
    out.push(Verdict {
        check: "credentials".into(),
        status: if cred.ok { Status::Ok } else { Status::Fail },
        fix: (!cred.ok).then(|| cred_fix(&cred.detail)),
        detail: cred.detail.clone(),
    });
    if let Some(v) = kdc_clock(app).await {
        out.push(v);
    }
    if let Some(v) = network_trust(app).await {
        out.push(v);
    }
    if let Some(v) = wpad_dhcp(app) {
        out.push(v);
    }
    let (v, pac_hops) = pac(app, &opts.url).await;
    let failed = v.status == Status::Fail;
    out.push(v);
    if failed
        && app
            .router
            .autoproxy
            .as_ref()
            .is_some_and(|a| a.settings.mandatory)
    {
        return;
    }
    let decision = match app.router.decide(&target, || opts.url.clone()).await {
        Ok(d) => d,
        Err(e) => {
            out.push(verdict("route", Status::Fail, error::chain(&e)));
            return;
        }
    };
    out.push(verdict(
        "route",
        Status::Ok,
        format!(
            "{} goes {} ({})",
            crate::redact::url(&opts.url),
            decision
                .hops
                .iter()
                .map(Hop::to_string)
                .collect::<Vec<_>>()
                .join(" -> "),
            decision.reason
        ),
    ));
    // the route's hops, then any other proxy the PAC names (a bypass rule may skip them for
    // this URL, but other URLs use them)
    let mut hops = decision.hops.clone();
    for h in pac_hops {
        if !hops.contains(&h) {
            hops.push(h);
        }
    }
    let speaker = app.await_trust(&decision).await;
    let mut tls_done = false;
    for hop in &hops {
        let Hop::Proxy(p) = hop else {
            if !tls_done && target.scheme == Scheme::Https {
                out.push(tls(app, hop, &target, speaker).await);
                tls_done = true;
            }
            continue;
        };
        let name = p.label();
        let started = Instant::now();
        match app.upstream.dialer.to_proxy(p).await {
            Ok(_) => out.push(verdict(
                format!("proxy {name}"),
                Status::Ok,
                format!("reachable ({} ms)", started.elapsed().as_millis()),
            )),
            Err(e) => {
                out.push(
                    verdict(format!("proxy {name}"), Status::Fail, format!("unreachable: {}", error::chain(&e)))
                        .fix(format!(
                            "check the proxy's host and port ({hop}) — DNS, firewall, VPN; waypost marks it bad for {}s and tries the next entry",
                            app.cfg.bad_proxy_retry.as_secs()
                        )),
                );
                continue;
            }
        }
        let (auth, date) = authenticate(app, hop, &target, &opts.url, &cred, speaker).await;
        let auth_ok = auth.status == Status::Ok;
        out.push(auth);
        if let Some(v) = date.and_then(|d| clock(&name, &d)) {
            out.push(v);
        }
        if auth_ok && !tls_done && target.scheme == Scheme::Https {
            out.push(tls(app, hop, &target, speaker).await);
            tls_done = true;
        }
    }
    if target.scheme == Scheme::Http {
        out.push(verdict(
            "tls",
            Status::Skip,
            format!(
                "{} is http; pass --url https://... to check TLS through the chain",
                crate::redact::url(&opts.url)
            ),
        ));
    }
}

fn cred_fix(detail: &str) -> String {
    if detail.contains("kinit") {
        "get a ticket: `kinit user@REALM` (or configure auth.password_file / auth.keytab)".into()
    } else if detail.contains("keytab") {
        "check auth.keytab: readable by waypost, with an AES key for auth.user (`klist -ket FILE`)"
            .into()
    } else {
        "check the [auth] section".into()
    }
}

/// The PAC check, and the hops its answer names.
async fn pac(app: &App, url: &str) -> (Verdict, Vec<Hop>) {
    let Some(ap) = &app.router.autoproxy else {
        let v = verdict(
            "pac",
            Status::Skip,
            "no PAC configured: static routing ([route])",
        );
        return (v, Vec::new());
    };
    ap.first_attempt().await;
    let src = &crate::redact::url(&ap.settings.source);
    match ap.find(url).await {
        Ok((loaded, answer)) => (
            verdict(
                "pac",
                Status::Ok,
                format!(
                    "found by {} at {}; for {} it answers \"{}\"",
                    loaded.method,
                    loaded.source,
                    crate::redact::url(url),
                    answer.raw
                ),
            ),
            crate::route::hops_from_pac(&answer.entries, |_| false),
        ),
        Err(e) => {
            let fix = if src == "auto" {
                "WPAD found no PAC here: set pac.source to the PAC URL your network publishes, or check DHCP option 252 / the wpad DNS name (`waypost wpad discover`)".to_string()
            } else if e.message.contains("cannot read")
                || e.message.contains("No such file")
                || e.message.contains("fetch")
                || e.message.contains("HTTP")
            {
                format!("check pac.source ({src}): it must be readable from here (a URL is fetched DIRECT)")
            } else {
                format!("fix the script: `waypost pac check {src}` shows each error with its line and column")
            };
            (
                verdict(
                    "pac",
                    Status::Fail,
                    crate::redact::text(&format!("{src}: {e}")),
                )
                .fix(fix),
                Vec::new(),
            )
        }
    }
}

/// One line per verdict, `ok` / `WARN` / `FAIL` / `skip`, the fix indented below.
pub fn render_text(v: &[Verdict]) -> String {
    let mut out = String::new();
    for x in v {
        let mark = match x.status {
            Status::Ok => "ok  ",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        };
        out.push_str(&format!(
            "{mark} {:<22} {}\n",
            x.check,
            x.detail.replace('\n', "\n     ")
        ));
        if let Some(f) = &x.fix {
            out.push_str(&format!("     fix: {f}\n"));
        }
    }
    let fails = v.iter().filter(|x| x.status == Status::Fail).count();
    out.push_str(&if fails == 0 {
        "verdict: healthy\n".to_string()
    } else {
        format!(
            "verdict: {fails} problem{} to fix\n",
            if fails == 1 { "" } else { "s" }
        )
    });
    out
}

#[cfg(test)]
mod tests {
    use super::Options;

    fn opts(file: Option<&str>) -> Options {
        Options {
            admin: None,
            standalone: true,
            url: "http://example.com/".into(),
            config_file: file.map(Into::into),
        }
    }

    #[test]
    fn without_a_config_file_the_messages_name_the_defaults_in_words_not_as_a_file() {
        let o = opts(None);
        assert_eq!(
            o.config_valid(),
            "the configuration (built-in defaults, no file) is valid"
        );
        assert_eq!(o.run_command(), "waypost run");
    }

    #[test]
    fn with_a_config_file_the_messages_name_the_file() {
        let o = opts(Some("/etc/waypost/waypost.toml"));
        assert_eq!(o.config_valid(), "/etc/waypost/waypost.toml is valid");
        assert_eq!(
            o.run_command(),
            "waypost run --config /etc/waypost/waypost.toml"
        );
    }
}

//! `waypost env`: the lines that point common tools at this waypost, for a shell to evaluate
//! (`eval "$(waypost env)"`): `http_proxy`/`https_proxy`/`no_proxy` in both cases, npm, pip,
//! the JVM's `-Dhttp.proxyHost` flags, and as comments git's and Docker's settings.
//!
//! The proxy address comes from the same configuration the proxy reads (its first `listen`
//! address; `0.0.0.0`/`::` become loopback), `no_proxy` from `route.bypass` plus loopback.
//! Rendering is pure ([`render`]); quoting follows each shell's rules, so any value survives.
//! With `client_auth` set the URLs carry no credentials unless asked (`--with-credentials`):
//! printing a password is the caller's choice, never a default.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::config::{BypassRule, Config};
use waypost_tls::pattern::HostPattern;

/// The shell whose syntax is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Fish,
    Powershell,
}

/// What the lines point at, derived from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `host:port` of the proxy as clients reach it.
    pub host: String,
    pub port: u16,
    /// `user:password@` (percent-encoded) when credentials are to be printed.
    pub userinfo: Option<String>,
    /// `client_auth` is set but its credentials are left out.
    pub credentials_left_out: bool,
    /// no_proxy entries (curl/Go syntax).
    pub no_proxy: Vec<String>,
    /// `-Dhttp.nonProxyHosts` entries (Java's wildcards).
    pub java_non_proxy: Vec<String>,
}

impl Settings {
    pub fn from_config(cfg: &Config, with_credentials: bool) -> Settings {
        let listen = cfg
            .listen
            .first()
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 3128)));
        let ip = match listen.ip() {
            IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let host = match ip {
            IpAddr::V6(v6) => format!("[{v6}]"),
            ip => ip.to_string(),
        };
        let userinfo = cfg
            .client_auth
            .as_ref()
            .filter(|_| with_credentials)
            .map(|a| format!("{}:{}@", encode(&a.username), encode(&a.password)));
        let mut no_proxy = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
        let mut java_non_proxy = vec!["localhost".to_string(), "127.*".into(), "[::1]".into()];
        for rule in &cfg.routes.bypass {
            match rule {
                BypassRule::All => {
                    no_proxy.push("*".into());
                    java_non_proxy.push("*".into());
                }
                // no tool has a spelling for "names without a dot"
                BypassRule::Local => {}
                BypassRule::Host(HostPattern::Exact(n)) => {
                    no_proxy.push(n.clone());
                    java_non_proxy.push(n.clone());
                }
                BypassRule::Host(HostPattern::Subdomains(s)) => {
                    no_proxy.push(format!(".{s}"));
                    java_non_proxy.push(format!("*.{s}"));
                }
                BypassRule::Host(HostPattern::Domain(s)) => {
                    no_proxy.push(s.clone());
                    java_non_proxy.push(s.clone());
                    java_non_proxy.push(format!("*.{s}"));
                }
                BypassRule::Host(HostPattern::Cidr(net)) => {
                    no_proxy.push(net.to_string());
                    if let Some(w) = java_wildcard(net) {
                        java_non_proxy.push(w);
                    }
                }
            }
        }
        no_proxy.dedup();
        java_non_proxy.dedup();
        Settings {
            host,
            port: listen.port(),
            userinfo,
            credentials_left_out: cfg.client_auth.is_some() && !with_credentials,
            no_proxy,
            java_non_proxy,
        }
    }

    pub fn url(&self) -> String {
        format!(
            "http://{}{}:{}",
            self.userinfo.as_deref().unwrap_or(""),
            self.host,
            self.port
        )
    }
}

/// Java's nonProxyHosts knows only `*` wildcards: whole-octet IPv4 blocks become `10.*`.
fn java_wildcard(net: &ipnet::IpNet) -> Option<String> {
    let ipnet::IpNet::V4(v4) = net else {
        return None;
    };
    let o = v4.network().octets();
    match v4.prefix_len() {
        32 => Some(v4.network().to_string()),
        24 => Some(format!("{}.{}.{}.*", o[0], o[1], o[2])),
        16 => Some(format!("{}.{}.*", o[0], o[1])),
        8 => Some(format!("{}.*", o[0])),
        _ => None,
    }
}

/// Percent-encodes a URL userinfo part.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|c| {
            if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
                (c as char).to_string()
            } else {
                format!("%{c:02X}")
            }
        })
        .collect()
}

/// Quotes `v` as a literal string for `shell`.
fn quote(shell: Shell, v: &str) -> String {
    match shell {
        Shell::Bash => format!("'{}'", v.replace('\'', "'\\''")),
        Shell::Fish => format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'")),
        Shell::Powershell => format!("'{}'", v.replace('\'', "''")),
    }
}

fn set(shell: Shell, name: &str, v: &str) -> String {
    let v = quote(shell, v);
    match shell {
        Shell::Bash => format!("export {name}={v}\n"),
        Shell::Fish => format!("set -gx {name} {v}\n"),
        Shell::Powershell => format!("$env:{name} = {v}\n"),
    }
}

/// The lines for `shell`.
pub fn render(s: &Settings, shell: Shell) -> String {
    let url = s.url();
    let no_proxy = s.no_proxy.join(",");
    let mut out = String::new();
    let comment = |out: &mut String, text: &str| {
        for line in text.lines() {
            out.push_str("# ");
            out.push_str(line);
            out.push('\n');
        }
    };
    comment(
        &mut out,
        &format!(
            "Point common tools at waypost ({}:{}). Apply with: {}",
            s.host,
            s.port,
            match shell {
                Shell::Bash => "eval \"$(waypost env)\"",
                Shell::Fish => "waypost env --shell fish | source",
                Shell::Powershell =>
                    "waypost env --shell powershell | Out-String | Invoke-Expression",
            }
        ),
    );
    if s.credentials_left_out {
        comment(
            &mut out,
            "waypost requires client credentials ([client_auth]); these URLs carry none.\n\
             Run `waypost env --with-credentials` to include them (they are then in your environment).",
        );
    }
    for name in ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"] {
        out.push_str(&set(shell, name, &url));
    }
    for name in ["no_proxy", "NO_PROXY"] {
        out.push_str(&set(shell, name, &no_proxy));
    }
    comment(&mut out, "npm and pip");
    out.push_str(&set(shell, "npm_config_proxy", &url));
    out.push_str(&set(shell, "npm_config_https_proxy", &url));
    out.push_str(&set(shell, "npm_config_noproxy", &no_proxy));
    out.push_str(&set(shell, "PIP_PROXY", &url));
    comment(&mut out, "Java (every JVM started from this shell)");
    let host = s.host.trim_start_matches('[').trim_end_matches(']');
    let java = format!(
        "-Dhttp.proxyHost={host} -Dhttp.proxyPort={port} -Dhttps.proxyHost={host} -Dhttps.proxyPort={port} -Dhttp.nonProxyHosts={non}",
        port = s.port,
        non = s.java_non_proxy.join("|"),
    );
    out.push_str(&set(shell, "JAVA_TOOL_OPTIONS", &java));
    comment(
        &mut out,
        &format!(
            "git reads http_proxy/https_proxy; to make it permanent:\n  git config --global http.proxy {url}\n\
             Docker: containers get these proxies from ~/.docker/config.json:\n  {}",
            serde_json::json!({
                "proxies": {
                    "default": {
                        "httpProxy": url,
                        "httpsProxy": url,
                        "noProxy": no_proxy,
                    }
                }
            })
        ),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(tweak: impl FnOnce(&mut crate::config::raw::RawConfig)) -> Settings {
        let mut raw = crate::config::raw::RawConfig::default();
        tweak(&mut raw);
        let cfg = crate::config::validate(&raw, &Default::default()).unwrap();
        Settings::from_config(&cfg, false)
    }

    #[test]
    fn no_proxy_lists_loopback_and_the_bypass_list() {
        let s = settings(|r| {
            r.route.bypass = vec!["*.corp.example".into(), "10.0.0.0/8".into(), "wiki".into()]
        });
        assert_eq!(
            s.no_proxy,
            [
                "localhost",
                "127.0.0.1",
                "::1",
                ".corp.example",
                "10.0.0.0/8",
                "wiki"
            ]
        );
        assert_eq!(
            s.java_non_proxy,
            [
                "localhost",
                "127.*",
                "[::1]",
                "*.corp.example",
                "10.*",
                "wiki"
            ]
        );
        assert_eq!(s.url(), "http://127.0.0.1:3128");
    }

    #[test]
    fn every_shell_gets_both_cases_and_the_jvm_flags() {
        let s = settings(|r| {
            r.listen = vec!["0.0.0.0:8080".into()];
            r.allow = vec!["127.0.0.0/8".into()];
        });
        for shell in [Shell::Bash, Shell::Fish, Shell::Powershell] {
            let out = render(&s, shell);
            for v in [
                "http_proxy",
                "HTTPS_PROXY",
                "no_proxy",
                "NO_PROXY",
                "PIP_PROXY",
                "npm_config_https_proxy",
            ] {
                assert!(out.contains(v), "{shell:?} lacks {v}:\n{out}");
            }
            assert!(out.contains("-Dhttps.proxyPort=8080"), "{out}");
            assert!(out.contains("http://127.0.0.1:8080"), "{out}");
            assert!(
                out.contains("\"httpsProxy\":\"http://127.0.0.1:8080\""),
                "{out}"
            );
        }
        assert!(render(&s, Shell::Fish).contains("set -gx HTTP_PROXY 'http://127.0.0.1:8080'"));
        assert!(render(&s, Shell::Powershell).contains("$env:HTTP_PROXY = 'http://127.0.0.1:8080'"));
    }

    #[test]
    fn quotes_survive_each_shell() {
        assert_eq!(quote(Shell::Bash, "a'b"), "'a'\\''b'");
        assert_eq!(quote(Shell::Fish, "a'b\\"), "'a\\'b\\\\'");
        assert_eq!(quote(Shell::Powershell, "a'b"), "'a''b'");
    }

    #[test]
    fn client_credentials_are_printed_only_when_asked() {
        let mut raw = crate::config::raw::RawConfig::default();
        raw.client_auth.username = "app".into();
        raw.client_auth.password = "p@ss:w".into();
        let cfg = crate::config::validate(&raw, &Default::default()).unwrap();
        let without = Settings::from_config(&cfg, false);
        assert_eq!(without.url(), "http://127.0.0.1:3128");
        assert!(render(&without, Shell::Bash).contains("--with-credentials"));
        assert_eq!(
            Settings::from_config(&cfg, true).url(),
            "http://app:p%40ss%3Aw@127.0.0.1:3128"
        );
    }
}

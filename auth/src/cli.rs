//! Command-line pieces the proxy binary flattens in: [`AuthFlags`] (credential flags of
//! `waypost run`) and [`AuthCommand`] (`waypost auth test`), which performs one
//! authenticated request through a proxy and prints each leg, the SPN and the outcome.
//! Prints sizes and schemes only, never tokens or secrets.

use std::path::PathBuf;
use std::sync::Arc;

use http::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::client::{authenticate_request, empty};
use crate::config::{AuthConfig, SchemeChoice};
use crate::context::{AuthContext, Authenticator, ProxyTarget};
use crate::handshake::AuthResult;

/// Credential flags (also settable in the config's `[auth]` table).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AuthFlags {
    /// User for upstream proxy authentication: user, DOMAIN\user or user@REALM.
    #[arg(long = "auth-user", value_name = "USER")]
    pub user: Option<String>,
    /// File whose first line is the password (must not be group/other-readable).
    #[arg(long = "auth-password-file", value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Keytab holding the key of --auth-user (user@REALM) for Kerberos.
    #[arg(long = "auth-keytab", value_name = "FILE")]
    pub keytab: Option<PathBuf>,
    /// Scheme to use with the upstream proxy.
    #[arg(long = "auth-scheme", value_enum, value_name = "SCHEME")]
    pub scheme: Option<SchemeChoice>,
}

impl AuthFlags {
    /// Flags override the config file.
    pub fn apply(&self, cfg: &mut AuthConfig) {
        if let Some(u) = &self.user {
            cfg.user = Some(u.clone());
        }
        if let Some(p) = &self.password_file {
            cfg.password_file = Some(p.clone());
            cfg.password = None;
        }
        if let Some(k) = &self.keytab {
            cfg.keytab = Some(k.clone());
        }
        if let Some(s) = self.scheme {
            cfg.scheme = s;
        }
    }
}

/// `waypost auth ...`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AuthCommand {
    /// Perform one authenticated request through a proxy and show the exchange.
    Test {
        /// The upstream proxy, e.g. http://proxy.example.com:3128
        #[arg(long, value_name = "URL")]
        proxy: String,
        /// What to fetch through it (https:// URLs are fetched with CONNECT).
        #[arg(long, value_name = "URL", default_value = "http://example.com/")]
        url: String,
        #[command(flatten)]
        flags: AuthFlags,
    },
    /// Show each identity (the default and every [[auth.proxies]] entry), where its
    /// credentials come from and, for Kerberos, the ticket's expiry. Never shows a secret.
    Status {
        /// Configuration file (TOML); without one, the defaults and the environment.
        #[arg(long, short = 'c', value_name = "FILE", env = "WAYPOST_CONFIG")]
        config: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `cmd` with a default config; exit status 0 only on success.
pub async fn run(cmd: AuthCommand) -> i32 {
    run_with_config(cmd, AuthConfig::default()).await
}

/// Runs `cmd` on top of `cfg` (flags override it).
pub async fn run_with_config(cmd: AuthCommand, mut cfg: AuthConfig) -> i32 {
    let (proxy, url, flags) = match cmd {
        AuthCommand::Test { proxy, url, flags } => (proxy, url, flags),
        AuthCommand::Status { json, .. } => return status(&cfg, json),
    };
    flags.apply(&mut cfg);
    let proxy_uri: Uri = match proxy.parse() {
        Ok(u) => u,
        Err(e) => return fail(&format!("--proxy {proxy:?}: {e}")),
    };
    if proxy_uri.scheme_str() == Some("https") {
        return fail(
            "--proxy: https:// proxies are not supported by `auth test` yet; use the proxy itself",
        );
    }
    let (Some(host), port) = (proxy_uri.host(), proxy_uri.port_u16().unwrap_or(8080)) else {
        return fail(&format!("--proxy {proxy:?}: no host"));
    };
    // The user named this proxy explicitly: it may receive credentials.
    cfg.allow_proxies.push(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
    );
    let auth = match Authenticator::from_config(&cfg, None) {
        Ok(a) => Arc::new(a),
        Err(e) => return fail(&e.to_string()),
    };
    let target: Uri = match url.parse() {
        Ok(u) => u,
        Err(e) => return fail(&format!("--url {url:?}: {e}")),
    };
    let connect = target.scheme_str() == Some("https");
    let authority = match target.authority() {
        Some(a) if connect && a.port().is_none() => format!("{}:443", a.host()),
        Some(a) => a.to_string(),
        None => return fail(&format!("--url {url:?}: not an absolute URL")),
    };
    let proxy_target = ProxyTarget::new(host, port);
    println!(
        "proxy     {}  identity {}",
        proxy_target.key(),
        auth.identity()
    );
    println!("spn       {}", auth.spn(&proxy_target));
    let ctx = AuthContext::new(auth.clone(), proxy_target);
    for _connection in 0..3 {
        let stream =
            match TcpStream::connect((host.trim_start_matches('[').trim_end_matches(']'), port))
                .await
            {
                Ok(s) => s,
                Err(e) => return fail(&format!("connect {host}:{port}: {e}")),
            };
        let (mut sender, conn) =
            match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
                Ok(x) => x,
                Err(e) => return fail(&format!("HTTP handshake with the proxy: {e}")),
            };
        tokio::spawn(conn.with_upgrades());
        let make = |_token| {
            let builder = if connect {
                Request::builder()
                    .method(Method::CONNECT)
                    .uri(authority.as_str())
                    .header("host", authority.as_str())
            } else {
                Request::builder()
                    .method(Method::GET)
                    .uri(target.clone())
                    .header("host", authority.as_str())
            };
            // Proof: method, URI (parsed above) and header values are all valid.
            builder
                .body(empty())
                .unwrap_or_else(|_| Request::new(empty()))
        };
        match authenticate_request(&mut sender, make, &ctx).await {
            Ok((resp, outcome)) => {
                for (i, leg) in outcome.legs.iter().enumerate() {
                    println!(
                        "leg {}     {} ({}) sent {} bytes -> {} {}",
                        i + 1,
                        leg.scheme,
                        leg.mech,
                        leg.sent_bytes,
                        leg.status.map_or("-".to_string(), |s| s.to_string()),
                        if leg.received_bytes > 0 {
                            format!("(+{} byte token)", leg.received_bytes)
                        } else {
                            String::new()
                        }
                    );
                }
                println!("status    {}", resp.status());
                let ok = outcome.is_success() && resp.status().is_success();
                let verdict = match &outcome.result {
                    AuthResult::Authenticated => "authenticated".to_string(),
                    AuthResult::NotRequired => "no authentication required".to_string(),
                    AuthResult::Rejected(r) => format!("rejected: {r}"),
                    AuthResult::Pending => "unfinished".to_string(),
                };
                println!("outcome   {verdict}");
                return if ok { 0 } else { 1 };
            }
            Err(e) if e.is_reconnect() => {
                println!("reconnect (the proxy closed the connection after its 407)");
                continue;
            }
            Err(e) => {
                return fail(&format!(
                    "{e}: {}",
                    std::error::Error::source(&e)
                        .map(|s| s.to_string())
                        .unwrap_or_default()
                ))
            }
        }
    }
    fail("the proxy kept closing the connection")
}

/// `waypost auth status` over `cfg` (the caller loaded the file); exit status 1 when an
/// identity cannot work as configured.
pub fn status(cfg: &AuthConfig, json: bool) -> i32 {
    let report = crate::status::report(
        cfg,
        &|k| std::env::var(k).ok(),
        std::time::SystemTime::now(),
    );
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => return fail(&e.to_string()),
        }
    } else {
        print!("{}", crate::status::render(&report));
        print!("{}", network_trust(cfg));
    }
    i32::from(report.iter().any(|s| s.problem.is_some()))
}

/// The network's trust as the running proxy decides it: the realm's KDC asked now.
fn network_trust(cfg: &AuthConfig) -> String {
    use crate::policy::{AutologonPolicy, NetworkTrust};
    let rule = match (cfg.policy, cfg.network_trust) {
        (AutologonPolicy::Low, _) => "policy low: any proxy gets credentials, on any network",
        (_, NetworkTrust::Names) => {
            "network_trust = \"names\": WPAD-named proxies are trusted by name on any network (unsafe on networks you do not control)"
        }
        (_, NetworkTrust::Proof) => {
            "proxies named by WPAD or http:// PAC scripts get credentials only on a proven network"
        }
    };
    let proof = match cfg.user.is_none() && cfg.keytab.is_none() && cfg.password.is_none() {
        true => {
            let p = crate::proof::prove_realm(
                cfg.ccache.as_deref(),
                cfg.kdc.as_deref(),
                std::time::Duration::from_millis(1500),
            );
            let verdict = if p.is_proven() {
                "proven"
            } else {
                "not proven"
            };
            format!("{verdict}: {}", p.describe())
        }
        false => "not proven by Kerberos (the identity has no ticket cache)".to_string(),
    };
    let probe = cfg
        .trust_probe
        .as_deref()
        .map(|u| {
            format!(
                "\n  probe     {} (checked by the running proxy)",
                u.split('?').next().unwrap_or(u)
            )
        })
        .unwrap_or_default();
    format!("network trust\n  rule      {rule}\n  here      {proof}{probe}\n")
}

fn fail(msg: &str) -> i32 {
    eprintln!("waypost auth test: {msg}");
    1
}

//! Configuration: load (file, environment, command line), validate, and hold the typed result.
//!
//! Sources, later ones winning: the built-in defaults, a TOML file, `WAYPOST_...` environment
//! variables (`__` separates levels: `WAYPOST_ROUTE__UPSTREAM`), then command-line flags. The
//! merged tree is deserialised into [`raw::RawConfig`] while every unknown key is collected;
//! [`validate`] then checks every value and reports all problems at once, each with its key path
//! and, when it comes from the file, the file and line.
//!
//! A problem never quotes what may be a secret ([`ConfigError::new`] is the one way to make a
//! report): values are shown through [`crate::redact::value`] (a secret key's value hidden,
//! URL userinfo and query redacted), every message passes [`crate::redact::text`], and a file
//! that is not valid TOML is reported by position, never by its text ([`syntax`]).

mod collect;
mod exposure;
mod locate;
mod pac;
mod problems;
pub mod raw;
pub mod routes;
pub mod scopes;
mod sections;
mod syntax;
mod validate;

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;

pub use pac::{PacIsolation, PacSettings, WpadOptions};
pub use routes::{BypassRule, StaticRoutes};
pub use scopes::{ConnOptions, Opt, ScopeRoute, Scopes};
pub use validate::validate;

/// The validated, typed configuration. Built once at start-up and shared read-only.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Vec<SocketAddr>,
    /// Listeners that serve only /metrics, /healthz and /explain (never proxy).
    pub admin_listen: Vec<SocketAddr>,
    /// SOCKS5 listeners for clients that cannot use an HTTP proxy (empty = none): routed like
    /// CONNECT, same `allow` list, `client_auth` and connection cap.
    pub socks_listen: Vec<SocketAddr>,
    pub allow: Vec<IpNet>,
    /// Clients the admin listeners serve (empty: the same as `allow`).
    pub admin_allow: Vec<IpNet>,
    /// Client connections and tunnels alive at once; each tunnel or upgrade holds its slot.
    pub max_client_connections: usize,
    /// Connections at once on the admin listeners (their own limit: /healthz answers when
    /// the proxy port is saturated).
    pub admin_max_connections: usize,
    pub via: bool,
    pub reject_userpwd_in_url: bool,
    pub shutdown_grace: Duration,
    pub log: LogConfig,
    pub routes: StaticRoutes,
    pub timeouts: Timeouts,
    pub limits: Limits,
    pub client_auth: Option<ClientAuth>,
    pub dns: DnsConfig,
    /// TLS policy for every connection waypost originates (validated; built in `App::new`).
    pub tls: waypost_tls::TlsConfig,
    /// The policy built from `tls` while validating (its files read once, at load).
    pub tls_policy: BuiltTlsPolicy,
    /// Username/password for SOCKS5 upstreams that ask for it (RFC 1929).
    pub socks_auth: Option<ClientAuth>,
    /// Autoproxy (None = no PAC: static routing only).
    pub pac: Option<PacSettings>,
    /// How long a failed proxy is tried last (also for static upstreams).
    pub bad_proxy_retry: Duration,
    /// Upstream proxy authentication (Negotiate, NTLM, Basic) and its credential policy.
    pub auth: waypost_auth::AuthConfig,
    /// Per-destination options (`[[scopes]]`, and the legacy TLS host lists) and the global ones.
    pub scopes: Scopes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
    pub access_log: bool,
}

/// Every network wait, from config. `None` means no limit (WinHTTP's INFINITE).
///
/// Which governs what: `resolve`, `connect`, `send` and `receive_response` apply to every
/// connection and request waypost makes. `receive` (WinHTTP's 30 s) bounds pauses in bodies
/// waypost reads for itself (PAC downloads, CRL fetches, a client's request body held for an
/// authentication replay); `relay_read` (squid's `read_timeout`, 15 min) bounds pauses in the
/// response bodies it relays to clients, so event streams and long polls survive.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub resolve: Option<Duration>,
    pub connect: Duration,
    pub send: Duration,
    pub receive: Duration,
    pub receive_response: Duration,
    pub relay_read: Duration,
    pub tunnel_idle: Duration,
    pub client_header: Duration,
    pub pool_idle: Duration,
}

#[derive(Debug, Clone)]
pub struct Limits {
    /// None = unlimited (WinHTTP's default, INFINITE).
    pub max_conns_per_server: Option<u32>,
    pub max_response_header_size: usize,
    pub max_request_header_size: usize,
    pub max_response_drain_size: u64,
    pub connect_retries: u32,
    pub max_idle_per_server: usize,
    /// Request bodies held in memory for authentication replays, all requests together.
    pub max_replay_memory: u64,
    /// The slowest a client may send a request body, after a grace period (None = no minimum).
    pub min_request_body_rate: Option<MinDataRate>,
    /// Keep connections to servers open for reuse (default true).
    pub keep_alive: bool,
}

/// The minimum request-body data rate (`limits.min_request_body_rate`, `min_request_body_grace`;
/// Kestrel's `MinRequestBodyDataRate`), enforced by `crate::upstream::body_rate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinDataRate {
    /// Bytes a second, averaged over the time spent waiting for the client.
    pub bytes_per_second: std::num::NonZeroU32,
    /// Waiting time before the rate is checked at all.
    pub grace: Duration,
}

/// The TLS policy built during validation; `Debug` does not print its internals.
#[derive(Clone)]
pub struct BuiltTlsPolicy(pub waypost_tls::TlsPolicy);

impl fmt::Debug for BuiltTlsPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsPolicy { .. }")
    }
}

/// Credentials clients must present to use the proxy (sidecar mode). `Debug` hides the password.
#[derive(Clone)]
pub struct ClientAuth {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAuth")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolverKind {
    /// hickory-resolver with the system's resolv.conf and hosts file.
    Hickory,
    /// The C library's getaddrinfo (honours nsswitch, nss_wrapper, ...).
    System,
}

#[derive(Debug, Clone)]
pub struct DnsConfig {
    pub resolver: ResolverKind,
    /// Name servers to ask instead of resolv.conf's (hickory only).
    pub servers: Vec<SocketAddr>,
    /// Static answers that win over DNS (`[dns.hosts] "proxy.corp" = ["10.0.0.1"]`).
    pub hosts: HashMap<String, Vec<IpAddr>>,
}

/// One problem found in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
    /// `file:line` (`file:line:column` for a syntax error) or `environment WAYPOST_...` when
    /// known.
    pub location: Option<String>,
}

/// Every problem found, reported together.
#[derive(Debug, Clone)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl ConfigError {
    /// The report of `problems`, each message swept by [`crate::redact::text`] (a URL a library
    /// quoted in its error loses its userinfo and query).
    pub fn new(problems: Vec<Problem>) -> ConfigError {
        let problems = problems
            .into_iter()
            .map(|p| Problem {
                message: crate::redact::text(&p.message),
                ..p
            })
            .collect();
        ConfigError { problems }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid configuration ({} problem{}):",
            self.problems.len(),
            if self.problems.len() == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            match &p.location {
                Some(loc) => writeln!(f, "  {loc}: {}: {}", p.key, p.message)?,
                None => writeln!(f, "  {}: {}", p.key, p.message)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// `WAYPOST_` variables that are not configuration keys: the config file's path, the log
/// filter, and the upstream credentials read by the auth crate.
pub const RESERVED_ENV: [&str; 4] = [
    "WAYPOST_CONFIG",
    "WAYPOST_LOG",
    "WAYPOST_AUTH_USER",
    "WAYPOST_AUTH_PASSWORD",
];

/// The keys whose value is a list of scalars: in the environment they are written
/// comma-separated (`WAYPOST_TLS__CONNECT_PORTS=443,8443`; one entry alone is a list of one,
/// an empty value the empty list). Every row of
/// docs/configuration.md whose default is a list must be here (`tests/integration/config_reference.rs`
/// sets each one from the environment). `pac.source` is not: a URL may hold a comma, so the
/// environment sets one source.
pub const LIST_KEYS: [&str; 18] = [
    "listen",
    "admin_listen",
    "admin_allow",
    "socks_listen",
    "allow",
    "route.bypass",
    "pac.my_ip",
    "pac.wpad_interfaces",
    "pac.wpad_domains",
    "auth.allow_proxies",
    "auth.intranet_suffixes",
    "tls.ca_files",
    "tls.crl_files",
    "tls.connect_ports",
    "tls.intercept.hosts",
    "tls.sni_rules.allow",
    "tls.sni_rules.deny",
    "dns.servers",
];

/// The dotted key a `WAYPOST_` variable sets (`WAYPOST_TLS__CONNECT_PORTS` -> `tls.connect_ports`).
fn env_key(var: &str) -> String {
    var.strip_prefix("WAYPOST_")
        .unwrap_or(var)
        .replace("__", ".")
        .to_lowercase()
}

/// Values given on the command line; they win over file and environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Vec<String>,
    pub upstream: Option<String>,
    pub pac: Option<String>,
    pub log_level: Option<String>,
}

/// Loads and validates: defaults < file < environment (`WAYPOST_`) < overrides.
pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
    load_with_env(file, overrides, std::env::vars().collect())
}

/// As [`load`], with the environment given explicitly (tests).
pub fn load_with_env(
    file: Option<&Path>,
    overrides: &Overrides,
    env: HashMap<String, String>,
) -> Result<Config, ConfigError> {
    // the file as read once: parsed from this text, and the text searched for lines (a
    // symlink swapped between two reads cannot mix two files)
    let file_text = match file {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => Some((p.to_path_buf(), t)),
            Err(e) => {
                return Err(single(
                    "config",
                    format!("cannot read {}: {e}", p.display()),
                    None,
                ));
            }
        },
        None => None,
    };
    let waypost_env: HashMap<String, String> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("WAYPOST_") && !RESERVED_ENV.contains(&k.as_str()))
        .collect();
    let mut builder = config::Config::builder();
    if let Some((path, text)) = &file_text {
        builder = builder
            .add_source(config::File::from_str(text, config::FileFormat::Toml).required(true));
        let _ = path;
    }
    // list keys are split here, not by the config crate: it parses a lone `443` or `true` as a
    // scalar before it looks for a list, and keeps an empty value as `[""]`
    let (env_lists, env_scalars): (Vec<_>, Vec<_>) = waypost_env
        .iter()
        .map(|(k, v)| (env_key(k), k, v))
        .partition(|(key, _, _)| LIST_KEYS.contains(&key.as_str()));
    builder = builder.add_source(
        config::Environment::with_prefix("WAYPOST")
            .prefix_separator("_")
            .separator("__")
            .try_parsing(true)
            .source(Some(
                env_scalars
                    .iter()
                    .map(|(_, k, v)| ((*k).clone(), (*v).clone()))
                    .collect(),
            )),
    );
    for (key, var, value) in &env_lists {
        let list: Vec<String> = value
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(String::from)
            .collect();
        builder = builder
            .set_override(key.as_str(), list)
            .map_err(|e| single(key, e.to_string(), Some(format!("environment {var}"))))?;
    }
    let set = |b: config::ConfigBuilder<config::builder::DefaultState>,
               k: &str,
               v: config::Value| { b.set_override(k, v) };
    if !overrides.listen.is_empty() {
        builder = set(builder, "listen", overrides.listen.clone().into())
            .map_err(|e| single("listen", e.to_string(), Some("command line".into())))?;
    }
    if let Some(u) = &overrides.upstream {
        builder = set(builder, "route.upstream", u.clone().into())
            .map_err(|e| single("route.upstream", e.to_string(), Some("command line".into())))?;
    }
    if let Some(p) = &overrides.pac {
        builder = set(builder, "pac.source", p.clone().into())
            .map_err(|e| single("pac.source", e.to_string(), Some("command line".into())))?;
    }
    if let Some(l) = &overrides.log_level {
        builder = set(builder, "log.level", l.clone().into())
            .map_err(|e| single("log.level", e.to_string(), Some("command line".into())))?;
    }
    let locate = |key: &str| locate::locate_key(file_text.as_ref(), &waypost_env, key);
    let merged = builder.build().map_err(|e| match (&file_text, &e) {
        (Some((path, text)), config::ConfigError::FileParse { .. }) => {
            ConfigError::new(vec![syntax::problem(path, text, &e)])
        }
        _ => single("config", e.to_string(), None),
    })?;
    let (raw, key_problems) = match collect::deserialize(merged.cache) {
        Ok((raw, problems)) => (Some(raw), problems),
        Err(problems) => (None, problems),
    };
    let mut problems: Vec<Problem> = key_problems
        .into_iter()
        .map(|p| Problem {
            location: locate(&p.key),
            key: p.key,
            message: p.message,
        })
        .collect();
    let Some(raw) = raw else {
        return Err(ConfigError::new(problems));
    };
    match validate(&raw, &env_for_routes()) {
        Ok(cfg) if problems.is_empty() => Ok(cfg),
        Ok(_) => {
            problems.sort_by_key(|p| file_line(p.location.as_deref()).unwrap_or(usize::MAX));
            Err(ConfigError::new(problems))
        }
        Err(mut more) => {
            for p in &mut more {
                if p.location.is_none() {
                    p.location = locate(&p.key);
                }
            }
            problems.extend(more);
            // in the order of the file, so the report reads top to bottom (stable: problems
            // without a line keep their order, after those with one)
            problems.sort_by_key(|p| file_line(p.location.as_deref()).unwrap_or(usize::MAX));
            Err(ConfigError::new(problems))
        }
    }
}

/// The line of a `file:line` location.
fn file_line(location: Option<&str>) -> Option<usize> {
    location?.rsplit_once(':')?.1.parse().ok()
}

fn env_for_routes() -> HashMap<String, String> {
    std::env::vars()
        .filter(|(k, _)| {
            matches!(
                k.to_ascii_uppercase().as_str(),
                "HTTP_PROXY" | "HTTPS_PROXY" | "NO_PROXY"
            )
        })
        .collect()
}

fn single(key: &str, message: String, location: Option<String>) -> ConfigError {
    ConfigError::new(vec![Problem {
        key: key.to_string(),
        message,
        location,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_auth_proxies_entry_is_reported_with_file_line_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("waypost.toml");
        std::fs::write(
            &path,
            "[auth]\n[[auth.proxies]]\nmatch = \"a.corp\"\nuser = \"a\"\npassword = \"p\"\n\
             [[auth.proxies]]\nmatch = \"b.corp:http\"\nuser = \"b\"\n\
             password_file = \"/nonexistent/pw\"\n",
        )
        .unwrap();
        let e = load_with_env(Some(&path), &Overrides::default(), HashMap::new()).unwrap_err();
        let at = |key: &str| {
            e.problems
                .iter()
                .find(|p| p.key == key)
                .and_then(|p| p.location.clone())
                .unwrap_or_else(|| panic!("no {key} in {e}"))
        };
        assert_eq!(at("auth.proxies[1].match"), format!("{}:7", path.display()));
        assert_eq!(
            at("auth.proxies[1].password_file"),
            format!("{}:9", path.display())
        );
        assert_eq!(e.problems.len(), 2, "{e}");
    }
}

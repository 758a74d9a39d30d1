//! The configuration as the user wrote it: plain strings and numbers, every key defaulted.
//!
//! These structs mirror `config/default.toml` one to one. They hold no meaning beyond the shape
//! of the file; [`super::validate`] turns them into the typed [`super::Config`]. Durations are
//! strings here (`"30s"`, `"5m"`, `"infinite"`) so that a bad one is reported with the others
//! instead of aborting the whole load.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RawConfig {
    pub listen: Vec<String>,
    pub admin_listen: Vec<String>,
    pub socks_listen: Vec<String>,
    pub allow: Vec<String>,
    pub admin_allow: Vec<String>,
    pub max_client_connections: usize,
    pub admin_max_connections: usize,
    pub via: bool,
    pub reject_userpwd_in_url: bool,
    pub shutdown_grace: String,
    pub log: RawLog,
    pub route: RawRoute,
    pub timeouts: RawTimeouts,
    pub limits: RawLimits,
    pub client_auth: RawClientAuth,
    pub dns: RawDns,
    pub tls: waypost_tls::TlsConfig,
    pub socks: RawSocks,
    pub pac: RawPac,
    pub auth: waypost_auth::AuthConfig,
    /// `[[scopes]]`: per-destination overrides, first match wins per option.
    pub scopes: Vec<RawScope>,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            listen: vec!["127.0.0.1:3128".into()],
            admin_listen: vec![],
            socks_listen: vec![],
            allow: vec![],
            admin_allow: vec![],
            max_client_connections: 1024,
            admin_max_connections: 16,
            via: false,
            reject_userpwd_in_url: false,
            shutdown_grace: "30s".into(),
            log: RawLog::default(),
            route: RawRoute::default(),
            timeouts: RawTimeouts::default(),
            limits: RawLimits::default(),
            client_auth: RawClientAuth::default(),
            dns: RawDns::default(),
            tls: waypost_tls::TlsConfig::default(),
            socks: RawSocks::default(),
            pac: RawPac::default(),
            auth: waypost_auth::AuthConfig::default(),
            scopes: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RawLog {
    pub level: String,
    pub format: String,
    pub access_log: bool,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            level: "info".into(),
            format: "text".into(),
            access_log: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RawRoute {
    pub upstream: String,
    pub https_upstream: String,
    pub bypass: Vec<String>,
    pub bypass_loopback: bool,
    pub use_env: bool,
}

impl Default for RawRoute {
    fn default() -> Self {
        RawRoute {
            upstream: String::new(),
            https_upstream: String::new(),
            bypass: vec![],
            bypass_loopback: true,
            use_env: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RawTimeouts {
    pub resolve: String,
    pub connect: String,
    pub send: String,
    pub receive: String,
    pub receive_response: String,
    pub relay_read: String,
    pub tunnel_idle: String,
    pub client_header: String,
    pub pool_idle: String,
}

impl Default for RawTimeouts {
    fn default() -> Self {
        RawTimeouts {
            resolve: "infinite".into(),
            connect: "60s".into(),
            send: "30s".into(),
            receive: "30s".into(),
            receive_response: "90s".into(),
            relay_read: "15m".into(),
            tunnel_idle: "10m".into(),
            client_header: "30s".into(),
            pool_idle: "90s".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RawLimits {
    pub max_conns_per_server: u32,
    pub max_response_header_size: usize,
    pub max_request_header_size: usize,
    pub max_response_drain_size: u64,
    pub connect_retries: u32,
    pub max_idle_per_server: usize,
    pub max_replay_memory: u64,
    pub min_request_body_rate: u32,
    pub min_request_body_grace: String,
    pub keep_alive: bool,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            max_conns_per_server: 0,
            max_response_header_size: 64 * 1024,
            max_request_header_size: 64 * 1024,
            max_response_drain_size: 1024 * 1024,
            connect_retries: 5,
            max_idle_per_server: 256,
            max_replay_memory: 64 * 1024 * 1024,
            min_request_body_rate: 240,
            min_request_body_grace: "5s".into(),
            keep_alive: true,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RawClientAuth {
    pub username: String,
    pub password: String,
    pub password_file: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RawDns {
    pub resolver: String,
    pub servers: Vec<String>,
    pub hosts: BTreeMap<String, Vec<String>>,
}

impl Default for RawDns {
    fn default() -> Self {
        RawDns {
            resolver: "hickory".into(),
            servers: vec![],
            hosts: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RawSocks {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RawPac {
    pub source: RawPacSource,
    pub mandatory: bool,
    pub refresh: String,
    pub first_load_wait: String,
    pub fetch_timeout: String,
    pub max_script_size: usize,
    pub cache_file: String,
    pub bad_proxy_retry: String,
    pub workers: usize,
    pub isolation: String,
    pub worker_exe: String,
    pub worker_memory_limit: u64,
    pub call_timeout: String,
    pub result_cache_ttl: String,
    pub my_ip: Vec<String>,
    pub wpad_dhcp_timeout: String,
    pub wpad_dns_timeout: String,
    pub wpad_interfaces: Vec<String>,
    pub wpad_domains: Vec<String>,
}

/// `pac.source`: one source, or a list tried in order (`["auto", "http://wpad.corp/proxy.pac"]`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum RawPacSource {
    One(String),
    List(Vec<String>),
}

impl Default for RawPacSource {
    fn default() -> Self {
        RawPacSource::One(String::new())
    }
}

impl From<&str> for RawPacSource {
    fn from(s: &str) -> Self {
        RawPacSource::One(s.to_string())
    }
}

impl From<String> for RawPacSource {
    fn from(s: String) -> Self {
        RawPacSource::One(s)
    }
}

impl RawPacSource {
    /// The entries, trimmed, empty ones left out.
    pub fn entries(&self) -> Vec<String> {
        let all: Vec<&String> = match self {
            RawPacSource::One(s) => vec![s],
            RawPacSource::List(l) => l.iter().collect(),
        };
        all.into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }
}

impl Default for RawPac {
    fn default() -> Self {
        RawPac {
            source: RawPacSource::default(),
            mandatory: false,
            refresh: "30m".into(),
            first_load_wait: "10s".into(),
            fetch_timeout: "15s".into(),
            max_script_size: 1024 * 1024,
            cache_file: "auto".into(),
            bad_proxy_retry: "5m".into(),
            workers: 0,
            isolation: "process".into(),
            worker_exe: String::new(),
            // one default for the proxy and `waypost pac eval`
            worker_memory_limit: waypost_pac::WorkerProcess::DEFAULT_MEMORY_LIMIT,
            call_timeout: "5s".into(),
            result_cache_ttl: "30s".into(),
            my_ip: vec![],
            wpad_dhcp_timeout: "2s".into(),
            wpad_dns_timeout: "2s".into(),
            wpad_interfaces: vec![],
            wpad_domains: vec![],
        }
    }
}

/// One `[[scopes]]` entry: the destinations it matches and the keys it overrides, under their
/// global names; a key left out is not overridden.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RawScope {
    #[serde(rename = "match")]
    pub matches: Vec<String>,
    pub timeouts: RawScopeTimeouts,
    pub limits: RawScopeLimits,
    pub tls: RawScopeTls,
    pub route: RawScopeRoute,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RawScopeTimeouts {
    pub resolve: Option<String>,
    pub connect: Option<String>,
    pub send: Option<String>,
    pub receive: Option<String>,
    pub receive_response: Option<String>,
    pub relay_read: Option<String>,
    pub tunnel_idle: Option<String>,
    /// Not per destination (read before one is known); refused with the reason.
    pub client_header: Option<String>,
    /// Not per destination (the pool's reaper); refused with the reason.
    pub pool_idle: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RawScopeLimits {
    pub max_conns_per_server: Option<u32>,
    pub connect_retries: Option<u32>,
    pub max_response_drain_size: Option<u64>,
    pub keep_alive: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RawScopeTls {
    pub min_version: Option<String>,
    /// Certificate defects accepted (the names of `tls.exceptions.allow`).
    pub allow: Option<Vec<String>>,
    pub client_cert: Option<RawClientCert>,
    pub check_revocation: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RawClientCert {
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RawScopeRoute {
    /// true: DIRECT, before the bypass list and the PAC.
    pub bypass: Option<bool>,
    /// Always this proxy (`http://`, `https://`, `socks5://` ...).
    pub via: Option<String>,
}

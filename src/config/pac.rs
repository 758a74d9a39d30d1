//! The autoproxy part of the configuration: `[pac]` and WPAD discovery settings, validated.
//!
//! Typed values only; [`crate::autoproxy`] and [`crate::net::wpad`] read them.

use std::path::PathBuf;
use std::time::Duration;

/// Validated `[pac]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PacSettings {
    /// The sources as one line (`auto, http://wpad.corp/proxy.pac`), redacted, for messages.
    pub source: String,
    /// Where the script comes from, tried in order: a path, `file://` or `http(s)://` URL, or
    /// `auto` (WPAD). Never empty. When none gives a script, `route.upstream` is used, else
    /// DIRECT (or a refusal under `pac.mandatory`).
    pub sources: Vec<String>,
    pub mandatory: bool,
    pub refresh: Duration,
    pub first_load_wait: Duration,
    pub fetch_timeout: Duration,
    pub max_script_size: usize,
    /// Where the last good script is kept (None = not kept).
    pub cache_file: Option<PathBuf>,
    pub bad_proxy_retry: Duration,
    pub workers: usize,
    /// Where scripts run.
    pub isolation: PacIsolation,
    pub call_timeout: Duration,
    pub result_cache_ttl: Duration,
    pub my_ip: Vec<std::net::IpAddr>,
    /// WPAD discovery settings for `source = "auto"`.
    pub wpad: WpadOptions,
}

/// `pac.isolation` (+ `pac.worker_exe`, `pac.worker_memory_limit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacIsolation {
    /// Worker threads inside the proxy (`"threads"`).
    Threads,
    /// Supervised `pac-worker` child processes (`"process"`, the default).
    Process {
        /// The binary to run with `pac-worker`; `None` = the proxy's own executable.
        exe: Option<PathBuf>,
        /// Address-space limit of each worker, in bytes.
        memory_limit: u64,
    },
}

/// Discovery settings. Build with [`WpadOptions::default`] and override fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WpadOptions {
    /// How long to wait for DHCPACKs (all interfaces are asked at once).
    pub dhcp_timeout: Duration,
    /// Bound of each DNS lookup.
    pub dns_timeout: Duration,
    /// Ask only these interfaces by DHCP; `None`: every eligible one.
    pub interfaces: Option<Vec<String>>,
    /// Domains to devolve; `None`: the `search`/`domain` of `/etc/resolv.conf`, then the
    /// domain names (option 15) that DHCP answers carried.
    pub search_domains: Option<Vec<String>>,
}

impl Default for WpadOptions {
    fn default() -> Self {
        WpadOptions {
            dhcp_timeout: Duration::from_secs(2),
            dns_timeout: Duration::from_secs(2),
            interfaces: None,
            search_domains: None,
        }
    }
}

//! Engine settings: one plain struct with defaults, read by the engine, the workers and the DNS
//! service. It holds values only; nothing here starts threads or touches the network.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::lookup::DnsLookup;

/// Everything that tunes a [`crate::PacEngine`]. Build it with `PacOptions::default()` and
/// change the fields you need.
#[derive(Clone)]
pub struct PacOptions {
    /// Number of worker threads, each with its own JS context (default: available cores).
    pub workers: usize,
    /// Deadline for loading (compiling and running the top level of) the script.
    pub load_timeout: Duration,
    /// Deadline for one `FindProxyForURL` call, queueing included.
    pub call_timeout: Duration,
    /// Scripts larger than this are rejected (default 1 MiB, as WinHTTP).
    pub max_script_bytes: usize,
    /// Results longer than this (in bytes) are a call error.
    pub max_result_bytes: usize,
    /// Per-frame loop iteration budget (boa's own; counts one frame's loops only).
    pub loop_iteration_limit: u64,
    /// Instruction budget of one load or call, in boa cost units ("cycles", ~1-3 per simple
    /// opcode) summed over every frame, so `for(;;) f();` is stopped too. Default 250M: about
    /// 2 s of a release build's CPU (a corporate script's call takes ~50k).
    pub instruction_budget: u64,
    /// `alert()` lines longer than this (bytes) are cut.
    pub alert_max_bytes: usize,
    /// `alert()` lines kept per evaluation; more are dropped.
    pub alert_max_per_call: u32,
    /// `alert()` lines kept per second per worker; more are dropped.
    pub alert_max_per_second: u32,
    /// Where scripts run: worker threads in this process (default), or supervised child
    /// processes (what the proxy and the `waypost pac` commands use: a hostile script cannot
    /// hurt the process).
    pub isolation: Isolation,
    /// Maximum JS call depth.
    pub recursion_limit: usize,
    /// DNS lookups allowed in one evaluation; further lookups answer "not resolvable".
    pub dns_budget: u32,
    /// Deadline for one DNS lookup made by the script.
    pub dns_timeout: Duration,
    /// How long a positive DNS answer is reused.
    pub dns_cache_ttl: Duration,
    /// How long a failed DNS lookup is remembered.
    pub dns_negative_ttl: Duration,
    /// Maximum number of names in the DNS cache.
    pub dns_cache_size: usize,
    /// Pinned local addresses: the first is `myIpAddress()`, all are `myIpAddressEx()`.
    pub my_ip: Vec<IpAddr>,
    /// Fixed DNS answers (lower-case name -> addresses), consulted before any lookup.
    pub dns_fixed: HashMap<String, Vec<IpAddr>>,
    /// With `no_dns`, only `dns_fixed` and IP literals resolve.
    pub no_dns: bool,
    /// Replace the DNS backend (tests, or a resolver shared with the proxy).
    pub dns_backend: Option<Arc<dyn DnsLookup>>,
    /// Fixed wall clock for the script (`Date`, `weekdayRange`, ...), in ms since the epoch.
    pub fixed_now_ms: Option<i64>,
    /// Time zone seen by the script (IANA name); `None` is the system zone.
    pub time_zone: Option<String>,
    /// How long a cached answer is reused; zero disables the result cache.
    pub cache_ttl: Duration,
    /// Maximum number of cached answers.
    pub cache_size: usize,
}

impl Default for PacOptions {
    fn default() -> Self {
        PacOptions {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            load_timeout: Duration::from_secs(10),
            call_timeout: Duration::from_secs(5),
            max_script_bytes: 1024 * 1024,
            max_result_bytes: 4096,
            loop_iteration_limit: 50_000_000,
            instruction_budget: 250_000_000,
            alert_max_bytes: 1024,
            alert_max_per_call: 32,
            alert_max_per_second: 64,
            isolation: Isolation::Threads,
            recursion_limit: 400,
            dns_budget: 16,
            dns_timeout: Duration::from_secs(2),
            dns_cache_ttl: Duration::from_secs(60),
            dns_negative_ttl: Duration::from_secs(10),
            dns_cache_size: 1024,
            my_ip: Vec::new(),
            dns_fixed: HashMap::new(),
            no_dns: false,
            dns_backend: None,
            fixed_now_ms: None,
            time_zone: None,
            cache_ttl: Duration::from_secs(30),
            cache_size: 4096,
        }
    }
}

impl std::fmt::Debug for PacOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacOptions")
            .field("workers", &self.workers)
            .field("load_timeout", &self.load_timeout)
            .field("call_timeout", &self.call_timeout)
            .field("max_script_bytes", &self.max_script_bytes)
            .field("dns_budget", &self.dns_budget)
            .field("no_dns", &self.no_dns)
            .field("isolation", &self.isolation)
            .field("instruction_budget", &self.instruction_budget)
            .field("cache_ttl", &self.cache_ttl)
            .finish_non_exhaustive()
    }
}

/// Where evaluation runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Isolation {
    /// Worker threads inside this process (`options.workers` of them).
    Threads,
    /// `options.workers` child processes, each running `program args...` (a binary that
    /// serves [`crate::isolate::worker_main`]), supervised by the engine.
    Process(WorkerProcess),
}

/// How to start a worker process, and its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerProcess {
    /// The executable: the proxy's own binary (`waypost`), or `waypost-pac`.
    pub program: std::path::PathBuf,
    /// Arguments that select the worker mode (`["pac-worker"]`).
    pub args: Vec<String>,
    /// Address-space limit of the process (RLIMIT_AS), in bytes.
    pub memory_limit: u64,
}

impl WorkerProcess {
    /// Default memory limit: 512 MiB of address space (a loaded 363 KB script with its boa
    /// heap uses ~60 MB; thread stacks and allocator arenas reserve more address space).
    pub const DEFAULT_MEMORY_LIMIT: u64 = 512 << 20;
    /// The smallest memory limit a JS engine can work in (64 MiB); smaller is refused.
    pub const MIN_MEMORY_LIMIT: u64 = 64 << 20;

    /// This process's own executable with `pac-worker`.
    pub fn current_exe() -> std::io::Result<WorkerProcess> {
        Ok(WorkerProcess {
            program: std::env::current_exe()?,
            args: vec!["pac-worker".into()],
            memory_limit: Self::DEFAULT_MEMORY_LIMIT,
        })
    }
}

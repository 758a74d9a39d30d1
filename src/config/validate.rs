//! Raw configuration to typed [`Config`], collecting every problem instead of stopping at one.
//! A message quotes a value only through [`crate::redact::value`] (`shown`): a secret key's
//! value is never shown, a URL's userinfo and query never.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Duration;

use ipnet::IpNet;

use super::raw::RawConfig;
use super::{BypassRule, PacIsolation, PacSettings, StaticRoutes, WpadOptions};
use super::{
    ClientAuth, Config, DnsConfig, Limits, LogConfig, LogFormat, MinDataRate, Problem,
    ResolverKind, Timeouts,
};
use crate::redact::value as shown;
use crate::target::ProxyAddr;

struct Problems(Vec<Problem>);

impl Problems {
    /// A duration that must be finite: None (and the problem noted) when it does not parse.
    fn duration(&mut self, key: &str, v: &str) -> Option<Duration> {
        match parse_duration(v, false) {
            Ok(d) => d,
            Err(e) => {
                self.add(key, e);
                None
            }
        }
    }

    /// A duration that may be `"infinite"` (`Some(None)`); None when it does not parse.
    fn duration_or_infinite(&mut self, key: &str, v: &str) -> Option<Option<Duration>> {
        match parse_duration(v, true) {
            Ok(d) => Some(d),
            Err(e) => {
                self.add(key, e);
                None
            }
        }
    }

    fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            message: message.into(),
            location: None,
        });
    }
}

/// Parses `"30s"`, `"5m"`, `"1h 30m"`, `"250ms"`; `"infinite"`/`"none"` give `None` when allowed.
pub fn parse_duration(s: &str, allow_infinite: bool) -> Result<Option<Duration>, String> {
    let t = s.trim();
    if allow_infinite && (t.eq_ignore_ascii_case("infinite") || t.eq_ignore_ascii_case("none")) {
        return Ok(None);
    }
    let d = humantime::parse_duration(t).map_err(|e| {
        format!(
            "invalid duration {s:?}: {e} (write e.g. \"30s\", \"5m\", \"250ms\"{})",
            if allow_infinite {
                " or \"infinite\""
            } else {
                ""
            }
        )
    })?;
    if d.is_zero() {
        return Err(format!("duration {s:?} must be greater than zero"));
    }
    Ok(Some(d))
}

/// Checks every value of `raw`; `env` holds HTTP_PROXY/HTTPS_PROXY/NO_PROXY for `route.use_env`.
pub fn validate(raw: &RawConfig, env: &HashMap<String, String>) -> Result<Config, Vec<Problem>> {
    let mut p = Problems(Vec::new());

    let mut listen = Vec::new();
    if raw.listen.is_empty() {
        p.add("listen", "at least one listen address is required");
    }
    for (i, l) in raw.listen.iter().enumerate() {
        match l.parse::<SocketAddr>() {
            Ok(a) => listen.push(a),
            Err(_) => p.add(
                format!("listen[{i}]"),
                format!(
                    "invalid address {} (write e.g. \"127.0.0.1:3128\" or \"[::1]:3128\")",
                    shown("listen", l)
                ),
            ),
        }
    }
    let mut admin_listen = Vec::new();
    for (i, l) in raw.admin_listen.iter().enumerate() {
        match l.parse::<SocketAddr>() {
            Ok(a) => admin_listen.push(a),
            Err(_) => p.add(
                format!("admin_listen[{i}]"),
                format!(
                    "invalid address {} (write e.g. \"0.0.0.0:9128\")",
                    shown("admin_listen", l)
                ),
            ),
        }
    }
    let mut socks_listen = Vec::new();
    for (i, l) in raw.socks_listen.iter().enumerate() {
        match l.parse::<SocketAddr>() {
            Ok(a) => socks_listen.push(a),
            Err(_) => p.add(
                format!("socks_listen[{i}]"),
                format!(
                    "invalid address {} (write e.g. \"127.0.0.1:1080\")",
                    shown("socks_listen", l)
                ),
            ),
        }
    }
    let allow = networks(&raw.allow, "allow", &mut p);
    let admin_allow = networks(&raw.admin_allow, "admin_allow", &mut p);
    // SOCKS listeners proxy too: beyond loopback they need the allow list as well
    let proxying: Vec<SocketAddr> = listen.iter().chain(&socks_listen).copied().collect();
    for (key, message) in
        super::exposure::problems(raw, &proxying, &allow, &admin_listen, &admin_allow)
    {
        p.add(key, message);
    }
    if raw.max_client_connections == 0 {
        p.add("max_client_connections", "must be at least 1");
    }
    if raw.admin_max_connections == 0 {
        p.add("admin_max_connections", "must be at least 1");
    }

    let shutdown_grace = p.duration("shutdown_grace", &raw.shutdown_grace);
    let timeouts = timeouts(&raw.timeouts, &mut p);
    let body_grace = p.duration(
        "limits.min_request_body_grace",
        &raw.limits.min_request_body_grace,
    );
    let pc = &raw.pac;
    let pac_times = pac_times(pc, &mut p);

    let format = match raw.log.format.as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            p.add(
                "log.format",
                format!(
                    "unknown format {} (expected \"text\" or \"json\")",
                    shown("log.format", other)
                ),
            );
            LogFormat::Text
        }
    };
    if tracing_subscriber::EnvFilter::try_new(&raw.log.level).is_err() {
        p.add(
            "log.level",
            format!(
                "invalid level {} (expected error, warn, info, debug, trace or a filter)",
                shown("log.level", &raw.log.level)
            ),
        );
    }

    let routes = validate_routes(raw, env, &mut p);

    let l = &raw.limits;
    if l.max_response_header_size < 1024 {
        p.add(
            "limits.max_response_header_size",
            "must be at least 1024 bytes",
        );
    }
    if l.max_request_header_size < 8192 {
        p.add(
            "limits.max_request_header_size",
            "must be at least 8192 bytes (hyper's minimum buffer)",
        );
    }
    if l.connect_retries == 0 {
        p.add("limits.connect_retries", "must be at least 1");
    }

    let client_auth = validate_client_auth(raw, &mut p);

    let resolver = match raw.dns.resolver.as_str() {
        "hickory" => ResolverKind::Hickory,
        "system" => ResolverKind::System,
        other => {
            p.add(
                "dns.resolver",
                format!(
                    "unknown resolver {} (expected \"hickory\" or \"system\")",
                    shown("dns.resolver", other)
                ),
            );
            ResolverKind::Hickory
        }
    };
    let mut servers = Vec::new();
    for (i, srv) in raw.dns.servers.iter().enumerate() {
        match srv
            .parse::<SocketAddr>()
            .or_else(|_| srv.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        {
            Ok(a) => servers.push(a),
            Err(_) => p.add(
                format!("dns.servers[{i}]"),
                format!(
                    "{} is not an address (write e.g. \"10.0.0.53\" or \"10.0.0.53:53\")",
                    shown("dns.servers", srv)
                ),
            ),
        }
    }
    if !servers.is_empty() && resolver == ResolverKind::System {
        p.add(
            "dns.servers",
            "custom name servers need resolver = \"hickory\"",
        );
    }
    let mut hosts = HashMap::new();
    for (name, addrs) in &raw.dns.hosts {
        let mut ips = Vec::new();
        for a in addrs {
            match a.parse::<IpAddr>() {
                Ok(ip) => ips.push(ip),
                Err(_) => p.add(
                    format!("dns.hosts.{name}"),
                    format!("{} is not an IP address", shown("dns.hosts", a)),
                ),
            }
        }
        hosts.insert(name.to_ascii_lowercase(), ips);
    }

    let mut my_ip = Vec::new();
    for (i, ip) in pc.my_ip.iter().enumerate() {
        match ip.parse::<IpAddr>() {
            Ok(a) => my_ip.push(a),
            Err(_) => p.add(
                format!("pac.my_ip[{i}]"),
                format!("{} is not an IP address", shown("pac.my_ip", ip)),
            ),
        }
    }
    let sources = pc.source.entries();
    let many = matches!(pc.source, super::raw::RawPacSource::List(_));
    for (i, source) in sources.iter().enumerate() {
        let key = if many {
            format!("pac.source[{i}]")
        } else {
            "pac.source".to_string()
        };
        if source != "auto" && !source.starts_with("http://") && !source.starts_with("https://") {
            let path = source.strip_prefix("file://").unwrap_or(source);
            if !std::path::Path::new(path).is_file() {
                p.add(
                    key,
                    format!(
                        "{} is neither \"auto\", an http(s):// URL, nor a readable file",
                        shown("pac.source", source)
                    ),
                );
            }
        }
        if sources[..i].contains(source) {
            p.add(
                format!("pac.source[{i}]"),
                format!("{} is listed twice", shown("pac.source", source)),
            );
        }
    }
    // for messages only: redacted (a PAC URL may carry userinfo or a token)
    let source = sources
        .iter()
        .map(|s| crate::redact::url(s))
        .collect::<Vec<_>>()
        .join(", ");
    let isolation = match pc.isolation.as_str() {
        "threads" => PacIsolation::Threads,
        "process" => PacIsolation::Process {
            exe: (!pc.worker_exe.trim().is_empty())
                .then(|| std::path::PathBuf::from(pc.worker_exe.trim())),
            memory_limit: pc.worker_memory_limit,
        },
        other => {
            p.add(
                "pac.isolation",
                format!(
                    "{} is neither \"process\" (worker processes) nor \"threads\"",
                    shown("pac.isolation", other)
                ),
            );
            PacIsolation::Threads
        }
    };
    let least = waypost_pac::WorkerProcess::MIN_MEMORY_LIMIT;
    if pc.isolation == "process" && pc.worker_memory_limit < least {
        p.add(
            "pac.worker_memory_limit",
            format!(
                "{} bytes is too small for a JS engine (write at least {least} = {} MiB)",
                pc.worker_memory_limit,
                least >> 20
            ),
        );
    }
    if pc.max_script_size == 0 {
        p.add("pac.max_script_size", "must be at least 1 byte");
    }
    let cache_file = match pc.cache_file.as_str() {
        "" | "none" => None,
        "auto" => std::env::var_os("XDG_CACHE_HOME")
            .map(std::path::PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache"))
            })
            .map(|d| d.join("waypost").join("last-good.pac")),
        path => Some(std::path::PathBuf::from(path)),
    };

    // Built once here (trust store, client certificates, CRLs read once); the app exposes its
    // metrics through its own registry.
    let tls_policy = waypost_tls::TlsPolicy::new(&raw.tls, None);
    if let Err(e) = &tls_policy {
        for problem in e.problems.clone() {
            let key = if problem.path.starts_with("tls") {
                problem.path
            } else {
                format!("tls.{}", problem.path)
            };
            p.add(key, problem.message);
        }
    }

    if let Err(e) = raw.auth.validate() {
        for problem in e.0 {
            p.add(format!("auth.{}", problem.key), problem.message);
        }
    }

    // every section that failed to parse has said why in `p`
    let (Some(shutdown_grace), Some(timeouts), Some(body_grace), Some(pac_times), Ok(tls_policy)) =
        (shutdown_grace, timeouts, body_grace, pac_times, tls_policy)
    else {
        return Err(p.0);
    };
    if !p.0.is_empty() {
        return Err(p.0);
    }
    Ok(Config {
        listen,
        admin_listen,
        socks_listen,
        allow,
        admin_allow,
        max_client_connections: raw.max_client_connections,
        admin_max_connections: raw.admin_max_connections,
        via: raw.via,
        reject_userpwd_in_url: raw.reject_userpwd_in_url,
        shutdown_grace,
        log: LogConfig {
            level: raw.log.level.clone(),
            format,
            access_log: raw.log.access_log,
        },
        routes,
        timeouts,
        limits: Limits {
            max_conns_per_server: (l.max_conns_per_server > 0).then_some(l.max_conns_per_server),
            max_response_header_size: l.max_response_header_size,
            max_request_header_size: l.max_request_header_size,
            max_response_drain_size: l.max_response_drain_size,
            connect_retries: l.connect_retries,
            max_idle_per_server: l.max_idle_per_server,
            max_replay_memory: l.max_replay_memory,
            min_request_body_rate: NonZeroU32::new(l.min_request_body_rate).map(|rate| {
                MinDataRate {
                    bytes_per_second: rate,
                    grace: body_grace,
                }
            }),
        },
        client_auth,
        dns: DnsConfig {
            resolver,
            servers,
            hosts,
        },
        tls: raw.tls.clone(),
        tls_policy: super::BuiltTlsPolicy(tls_policy),
        pac: (!source.is_empty()).then(|| PacSettings {
            source: source.clone(),
            sources,
            mandatory: pc.mandatory,
            refresh: pac_times.refresh,
            first_load_wait: pac_times.first_load_wait,
            fetch_timeout: pac_times.fetch_timeout,
            max_script_size: pc.max_script_size,
            cache_file,
            bad_proxy_retry: pac_times.bad_proxy_retry,
            workers: pc.workers,
            isolation,
            call_timeout: pac_times.call_timeout,
            result_cache_ttl: pac_times.result_cache_ttl,
            my_ip,
            wpad: WpadOptions {
                dhcp_timeout: pac_times.wpad_dhcp,
                dns_timeout: pac_times.wpad_dns,
                interfaces: (!pc.wpad_interfaces.is_empty()).then(|| pc.wpad_interfaces.clone()),
                search_domains: (!pc.wpad_domains.is_empty()).then(|| pc.wpad_domains.clone()),
            },
        }),
        bad_proxy_retry: pac_times.bad_proxy_retry,
        auth: raw.auth.clone(),
        socks_auth: (!raw.socks.username.is_empty()).then(|| ClientAuth {
            username: raw.socks.username.clone(),
            password: raw.socks.password.clone(),
        }),
    })
}

fn validate_routes(
    raw: &RawConfig,
    env: &HashMap<String, String>,
    p: &mut Problems,
) -> StaticRoutes {
    let r = &raw.route;
    let parse_upstream = |key: &str, v: &str, p: &mut Problems| -> Option<ProxyAddr> {
        if v.trim().is_empty() {
            return None;
        }
        match ProxyAddr::parse(v.trim()) {
            Ok(a) => Some(a),
            Err(e) => {
                p.add(key, e);
                None
            }
        }
    };
    let mut http_upstream = parse_upstream("route.upstream", &r.upstream, p);
    let mut https_upstream = parse_upstream("route.https_upstream", &r.https_upstream, p)
        .or_else(|| http_upstream.clone());
    let mut bypass = Vec::new();
    for (i, b) in r.bypass.iter().enumerate() {
        match BypassRule::parse(b) {
            Ok(rule) => bypass.push(rule),
            Err(e) => p.add(format!("route.bypass[{i}]"), e),
        }
    }
    if r.use_env {
        let get = |name: &str| {
            env.get(name)
                .or_else(|| env.get(&name.to_ascii_lowercase()))
                .filter(|v| !v.trim().is_empty())
                .cloned()
        };
        if http_upstream.is_none() {
            if let Some(v) = get("HTTP_PROXY") {
                http_upstream = parse_upstream("route.use_env (HTTP_PROXY)", &v, p);
            }
        }
        if let Some(v) = get("HTTPS_PROXY") {
            if r.https_upstream.trim().is_empty() && r.upstream.trim().is_empty() {
                https_upstream = parse_upstream("route.use_env (HTTPS_PROXY)", &v, p);
            }
        }
        if let Some(v) = get("NO_PROXY") {
            for entry in v.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                match BypassRule::parse_no_proxy(entry) {
                    Ok(rule) => bypass.push(rule),
                    Err(e) => p.add("route.use_env (NO_PROXY)", e),
                }
            }
        }
    }
    StaticRoutes {
        http_upstream,
        https_upstream,
        bypass,
        bypass_loopback: r.bypass_loopback,
    }
}

/// A list of networks (`10.0.0.0/8`, or a single address) under `key`.
fn networks(list: &[String], key: &str, p: &mut Problems) -> Vec<IpNet> {
    let mut out = Vec::new();
    for (i, a) in list.iter().enumerate() {
        match a
            .parse::<IpNet>()
            .or_else(|_| a.parse::<IpAddr>().map(IpNet::from))
        {
            Ok(n) => out.push(n),
            Err(_) => p.add(
                format!("{key}[{i}]"),
                format!(
                    "invalid network {} (write e.g. \"10.0.0.0/8\")",
                    shown(key, a)
                ),
            ),
        }
    }
    out
}

fn validate_client_auth(raw: &RawConfig, p: &mut Problems) -> Option<ClientAuth> {
    let a = &raw.client_auth;
    if a.username.is_empty() {
        if !a.password.is_empty() || !a.password_file.is_empty() {
            p.add("client_auth.username", "a password is set but no username");
        }
        return None;
    }
    let password = match (a.password.is_empty(), a.password_file.is_empty()) {
        (false, true) => a.password.clone(),
        // refused when group or others can read it, like auth.password_file
        (true, false) => {
            match waypost_auth::credentials::read_private_file(a.password_file.as_ref()) {
                Ok(s) => s.expose().trim_end_matches('\r').to_string(),
                Err(e) => {
                    p.add("client_auth.password_file", e);
                    return None;
                }
            }
        }
        (false, false) => {
            p.add(
                "client_auth.password",
                "set either password or password_file, not both",
            );
            return None;
        }
        (true, true) => {
            p.add(
                "client_auth.password",
                "a username is set but no password or password_file",
            );
            return None;
        }
    };
    if a.username.contains(':') {
        p.add("client_auth.username", "must not contain ':'");
    }
    Some(ClientAuth {
        username: a.username.clone(),
        password,
    })
}

/// `[timeouts]`, every value checked (each problem noted) before any is given up on.
fn timeouts(t: &super::raw::RawTimeouts, p: &mut Problems) -> Option<Timeouts> {
    let resolve = p.duration_or_infinite("timeouts.resolve", &t.resolve);
    let connect = p.duration("timeouts.connect", &t.connect);
    let send = p.duration("timeouts.send", &t.send);
    let receive = p.duration("timeouts.receive", &t.receive);
    let receive_response = p.duration("timeouts.receive_response", &t.receive_response);
    let relay_read = p.duration("timeouts.relay_read", &t.relay_read);
    let tunnel_idle = p.duration("timeouts.tunnel_idle", &t.tunnel_idle);
    let client_header = p.duration("timeouts.client_header", &t.client_header);
    let pool_idle = p.duration("timeouts.pool_idle", &t.pool_idle);
    Some(Timeouts {
        resolve: resolve?,
        connect: connect?,
        send: send?,
        receive: receive?,
        receive_response: receive_response?,
        relay_read: relay_read?,
        tunnel_idle: tunnel_idle?,
        client_header: client_header?,
        pool_idle: pool_idle?,
    })
}

/// The durations of `[pac]`.
struct PacTimes {
    refresh: Duration,
    first_load_wait: Duration,
    fetch_timeout: Duration,
    bad_proxy_retry: Duration,
    call_timeout: Duration,
    result_cache_ttl: Duration,
    wpad_dhcp: Duration,
    wpad_dns: Duration,
}

/// The durations of `[pac]`, every value checked before any is given up on.
fn pac_times(pc: &super::raw::RawPac, p: &mut Problems) -> Option<PacTimes> {
    let refresh = p.duration("pac.refresh", &pc.refresh);
    let first_load_wait = p.duration("pac.first_load_wait", &pc.first_load_wait);
    let fetch_timeout = p.duration("pac.fetch_timeout", &pc.fetch_timeout);
    let bad_proxy_retry = p.duration("pac.bad_proxy_retry", &pc.bad_proxy_retry);
    let call_timeout = p.duration("pac.call_timeout", &pc.call_timeout);
    let result_cache_ttl = p.duration("pac.result_cache_ttl", &pc.result_cache_ttl);
    let wpad_dhcp = p.duration("pac.wpad_dhcp_timeout", &pc.wpad_dhcp_timeout);
    let wpad_dns = p.duration("pac.wpad_dns_timeout", &pc.wpad_dns_timeout);
    Some(PacTimes {
        refresh: refresh?,
        first_load_wait: first_load_wait?,
        fetch_timeout: fetch_timeout?,
        bad_proxy_retry: bad_proxy_retry?,
        call_timeout: call_timeout?,
        result_cache_ttl: result_cache_ttl?,
        wpad_dhcp: wpad_dhcp?,
        wpad_dns: wpad_dns?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pac_evaluation_runs_in_worker_processes_unless_threads_are_asked_for() {
        let mut raw = RawConfig::default();
        raw.pac.source = "auto".into();
        let cfg = validate(&raw, &HashMap::new()).unwrap();
        assert!(matches!(
            cfg.pac.unwrap().isolation,
            PacIsolation::Process { exe: None, memory_limit } if memory_limit == 512 << 20
        ));
        raw.pac.isolation = "sandbox".into();
        raw.pac.worker_memory_limit = 1000;
        let problems = validate(&raw, &HashMap::new()).unwrap_err();
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"pac.isolation"), "{keys:?}");
        raw.pac.isolation = "process".into();
        let problems = validate(&raw, &HashMap::new()).unwrap_err();
        assert_eq!(problems[0].key, "pac.worker_memory_limit");
        raw.pac.isolation = "threads".into();
        let cfg = validate(&raw, &HashMap::new()).unwrap();
        assert_eq!(cfg.pac.unwrap().isolation, PacIsolation::Threads);
    }

    #[test]
    fn the_proxys_default_pac_budgets_are_those_of_waypost_pac_eval() {
        let mut raw = RawConfig::default();
        raw.pac.source = "auto".into();
        let pac = validate(&raw, &HashMap::new()).unwrap().pac.unwrap();
        let cli = waypost_pac::PacOptions::default();
        let mut cli_isolation = cli.clone();
        waypost_pac::cli::IsolationArgs::default()
            .apply(&mut cli_isolation)
            .unwrap();
        let waypost_pac::Isolation::Process(worker) = cli_isolation.isolation else {
            panic!("waypost pac eval runs in-process by default");
        };
        assert_eq!(
            pac.isolation,
            PacIsolation::Process {
                exe: None,
                memory_limit: worker.memory_limit
            }
        );
        assert_eq!(pac.call_timeout, cli.call_timeout);
    }

    #[test]
    fn pac_source_may_be_a_list_tried_in_order_and_each_entry_is_checked() {
        let mut raw = RawConfig::default();
        raw.pac.source = super::super::raw::RawPacSource::List(vec![
            "auto".into(),
            "http://wpad.corp.example/proxy.pac".into(),
        ]);
        let pac = validate(&raw, &HashMap::new()).unwrap().pac.unwrap();
        assert_eq!(pac.sources, ["auto", "http://wpad.corp.example/proxy.pac"]);
        assert_eq!(pac.source, "auto, http://wpad.corp.example/proxy.pac");
        raw.pac.source = super::super::raw::RawPacSource::List(vec![
            "auto".into(),
            "/no/such/file.pac".into(),
            "auto".into(),
        ]);
        let keys: Vec<String> = validate(&raw, &HashMap::new())
            .unwrap_err()
            .into_iter()
            .map(|p| p.key)
            .collect();
        assert_eq!(keys, ["pac.source[1]", "pac.source[2]"]);
    }

    #[test]
    fn every_bad_value_is_reported_at_once() {
        let mut raw = RawConfig::default();
        raw.timeouts.connect = "soon".into();
        raw.route.upstream = "ftp://x:1".into();
        raw.listen = vec!["nowhere".into()];
        let problems = validate(&raw, &HashMap::new()).unwrap_err();
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"timeouts.connect"), "{keys:?}");
        assert!(keys.contains(&"route.upstream"), "{keys:?}");
        assert!(keys.contains(&"listen[0]"), "{keys:?}");
    }

    #[test]
    fn the_request_body_rate_is_kestrels_by_default_and_zero_turns_it_off() {
        let mut raw = RawConfig::default();
        let rate = validate(&raw, &HashMap::new())
            .unwrap()
            .limits
            .min_request_body_rate
            .unwrap();
        assert_eq!(rate.bytes_per_second.get(), 240);
        assert_eq!(rate.grace, Duration::from_secs(5));
        raw.limits.min_request_body_rate = 0;
        let cfg = validate(&raw, &HashMap::new()).unwrap();
        assert!(cfg.limits.min_request_body_rate.is_none());
        raw.limits.min_request_body_grace = "0s".into();
        let problems = validate(&raw, &HashMap::new()).unwrap_err();
        assert_eq!(problems[0].key, "limits.min_request_body_grace");
    }

    #[test]
    fn listening_beyond_loopback_requires_an_allow_list() {
        let mut raw = RawConfig::default();
        raw.listen = vec!["0.0.0.0:3128".into()];
        let problems = validate(&raw, &HashMap::new()).unwrap_err();
        assert_eq!(problems[0].key, "allow");
        raw.allow = vec!["10.0.0.0/8".into()];
        assert!(validate(&raw, &HashMap::new()).is_ok());
    }

    #[test]
    fn environment_proxies_are_used_only_when_asked() {
        let env: HashMap<String, String> = [
            ("HTTP_PROXY".to_string(), "http://envproxy:3128".to_string()),
            (
                "NO_PROXY".to_string(),
                "corp.example,10.0.0.0/8".to_string(),
            ),
        ]
        .into();
        let mut raw = RawConfig::default();
        assert!(validate(&raw, &env).unwrap().routes.http_upstream.is_none());
        raw.route.use_env = true;
        let cfg = validate(&raw, &env).unwrap();
        assert_eq!(cfg.routes.http_upstream.unwrap().label(), "envproxy:3128");
        assert_eq!(cfg.routes.bypass.len(), 2);
    }

    #[test]
    fn infinite_is_accepted_only_where_documented() {
        assert_eq!(parse_duration("infinite", true).unwrap(), None);
        assert!(parse_duration("infinite", false).is_err());
        assert_eq!(
            parse_duration("250ms", false).unwrap(),
            Some(Duration::from_millis(250))
        );
    }
}

//! `[pac]`: the script's sources, how it runs (isolation, workers, budgets), WPAD discovery
//! and the last-good copy; its durations checked together.

use std::net::IpAddr;
use std::time::Duration;

use crate::config::problems::Problems;
use crate::config::raw::{RawConfig, RawPac, RawPacSource};
use crate::config::{PacIsolation, PacSettings, WpadOptions};
use crate::redact::value as shown;

/// `[pac]` as the proxy uses it.
pub struct PacSection {
    /// `None` when no source is configured.
    pub settings: Option<PacSettings>,
    /// How long a failed proxy is skipped (also for static upstreams).
    pub bad_proxy_retry: Duration,
}

/// `[pac]`, every value checked; `None` when a duration does not parse (its problem noted).
pub fn pac(raw: &RawConfig, p: &mut Problems) -> Option<PacSection> {
    let pc = &raw.pac;
    let pac_times = pac_times(pc, p);
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
    let many = matches!(pc.source, RawPacSource::List(_));
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

    let pac_times = pac_times?;
    let settings = (!source.is_empty()).then(|| PacSettings {
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
    });
    Some(PacSection {
        settings,
        bad_proxy_retry: pac_times.bad_proxy_retry,
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
fn pac_times(pc: &RawPac, p: &mut Problems) -> Option<PacTimes> {
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

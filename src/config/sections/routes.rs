//! `[route]`: the fixed upstreams and the bypass list, from the file and (when
//! `route.use_env`) from the environment's HTTP_PROXY, HTTPS_PROXY and NO_PROXY.

use std::collections::HashMap;

use crate::config::problems::Problems;
use crate::config::raw::RawConfig;
use crate::config::{BypassRule, StaticRoutes};
use crate::target::ProxyAddr;

/// `[route]`, each problem noted.
pub fn routes(raw: &RawConfig, env: &HashMap<String, String>, p: &mut Problems) -> StaticRoutes {
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

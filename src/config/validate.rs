//! Raw configuration to typed [`Config`]: each section built by its own builder
//! ([`super::sections`]), every problem collected instead of stopping at one. A message quotes
//! a value only through [`crate::redact::value`]: a secret key's value is never shown, a URL's
//! userinfo and query never.

use std::collections::HashMap;

use super::problems::Problems;
use super::raw::RawConfig;
use super::scopes::{ConnOptions, Scopes};
use super::sections::{
    auth, client_auth, dns, limits, listen, log, pac, routes, scopes, timeouts, tls,
};
use super::{Config, Problem};

/// The typed configuration of `raw` (`env`: the environment, for `route.use_env`), or every
/// problem found.
pub fn validate(raw: &RawConfig, env: &HashMap<String, String>) -> Result<Config, Vec<Problem>> {
    let mut p = Problems(Vec::new());
    let listeners = listen::listeners(raw, &mut p);
    let shutdown_grace = p.duration("shutdown_grace", &raw.shutdown_grace);
    let timeouts = timeouts::timeouts(&raw.timeouts, &mut p);
    let limits = limits::limits(raw, &mut p);
    let pac = pac::pac(raw, &mut p);
    let log = log::log(raw, &mut p);
    let routes = routes::routes(raw, env, &mut p);
    let client_auth = client_auth::client_auth(raw, &mut p);
    let dns = dns::dns(raw, &mut p);
    let scopes = scopes::scopes(raw, &mut p);
    let tls_policy = tls::tls_policy(raw, scopes.client_certs, &mut p);
    auth::check_auth(raw, &mut p);

    // every section that failed to build has said why in `p`
    let (Some(shutdown_grace), Some(timeouts), Some(limits), Some(pac), Some(tls_policy)) =
        (shutdown_grace, timeouts, limits, pac, tls_policy)
    else {
        return Err(p.0);
    };
    if !p.0.is_empty() {
        return Err(p.0);
    }
    let global = ConnOptions::global(&timeouts, &limits, tls_policy.global_settings().clone());
    let scopes = Scopes {
        list: scopes.list,
        global,
        notes: scopes.notes,
    };
    Ok(Config {
        listen: listeners.listen,
        admin_listen: listeners.admin_listen,
        socks_listen: listeners.socks_listen,
        allow: listeners.allow,
        admin_allow: listeners.admin_allow,
        max_client_connections: raw.max_client_connections,
        admin_max_connections: raw.admin_max_connections,
        via: raw.via,
        reject_userpwd_in_url: raw.reject_userpwd_in_url,
        shutdown_grace,
        log,
        routes,
        timeouts,
        limits,
        client_auth,
        dns,
        tls: raw.tls.clone(),
        tls_policy: super::BuiltTlsPolicy(tls_policy),
        pac: pac.settings,
        bad_proxy_retry: pac.bad_proxy_retry,
        auth: raw.auth.clone(),
        socks_auth: client_auth::socks_auth(raw),
        scopes,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::problems::parse_duration;
    use crate::config::PacIsolation;

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

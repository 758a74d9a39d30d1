//! The first-match-per-option rule, without sockets.

use std::collections::HashMap;
use std::time::Duration;

use super::*;
use crate::config::raw::{RawConfig, RawScope};

fn scope(matches: &[&str], tweak: impl FnOnce(&mut RawScope)) -> RawScope {
    let mut s = RawScope {
        matches: matches.iter().map(|m| m.to_string()).collect(),
        ..RawScope::default()
    };
    tweak(&mut s);
    s
}

fn scopes(list: Vec<RawScope>) -> Scopes {
    let raw = RawConfig {
        scopes: list,
        ..RawConfig::default()
    };
    crate::config::validate(&raw, &HashMap::new())
        .unwrap_or_else(|p| panic!("{p:?}"))
        .scopes
}

fn host(h: &str) -> Host {
    Host::parse(h).unwrap()
}

#[test]
fn an_option_the_first_matching_scope_leaves_out_falls_through_to_the_next_then_global() {
    let s = scopes(vec![
        scope(&["*.corp.example"], |s| {
            s.timeouts.receive_response = Some("10m".into())
        }),
        scope(&["slow.corp.example"], |s| {
            s.timeouts.receive_response = Some("1s".into());
            s.limits.max_conns_per_server = Some(2);
        }),
    ]);
    let o = s.resolve(&host("slow.corp.example"), 443);
    assert_eq!(o.receive_response, Duration::from_secs(600));
    assert_eq!(s.source_name(&o, Opt::ReceiveResponse), "scopes[0]");
    assert_eq!(o.max_conns_per_server, Some(2));
    assert_eq!(s.source_name(&o, Opt::MaxConnsPerServer), "scopes[1]");
    assert_eq!(o.connect, Duration::from_secs(60));
    assert_eq!(s.source_name(&o, Opt::Connect), "global");
    let other = s.resolve(&host("www.example.org"), 443);
    assert_eq!(other, s.global);
}

#[test]
fn a_port_pattern_and_a_cidr_match_only_their_destinations() {
    let s = scopes(vec![
        scope(&["api.example:8443"], |s| s.limits.keep_alive = Some(false)),
        scope(&["10.0.0.0/8"], |s| s.tls.min_version = Some("1.3".into())),
    ]);
    assert!(!s.resolve(&host("api.example"), 8443).keep_alive);
    assert!(s.resolve(&host("api.example"), 443).keep_alive);
    let ip = s.resolve(&host("10.2.3.4"), 443);
    assert_eq!(ip.tls.min_version, waypost_tls::config::MinVersion::Tls13);
}

#[test]
fn a_scope_route_is_the_first_matching_one_that_sets_a_route() {
    let s = scopes(vec![
        scope(&["*.corp.example"], |s| s.limits.connect_retries = Some(1)),
        scope(&["a.corp.example"], |s| s.route.bypass = Some(true)),
        scope(&["*.corp.example"], |s| {
            s.route.via = Some("http://proxy.corp.example:3128".into())
        }),
    ]);
    assert_eq!(
        s.route_for(&host("a.corp.example"), 80),
        Some((1, &ScopeRoute::Direct))
    );
    assert!(matches!(
        s.route_for(&host("b.corp.example"), 80),
        Some((2, ScopeRoute::Via(_)))
    ));
    assert_eq!(s.route_for(&host("example.org"), 80), None);
}

#[test]
fn legacy_tls_lists_load_as_scopes_after_the_scopes_with_a_deprecation_note() {
    let mut raw = RawConfig {
        scopes: vec![scope(&["a.example"], |s| {
            s.tls.allow = Some(vec!["cert-date-invalid".into()])
        })],
        ..RawConfig::default()
    };
    raw.tls.exceptions = vec![
        waypost_tls::config::ExceptionConfig {
            hosts: vec!["*.example".into()],
            allow: vec!["unknown-ca".into()],
        },
        waypost_tls::config::ExceptionConfig {
            hosts: vec!["b.example".into()],
            allow: vec!["cert-cn-invalid".into()],
        },
    ];
    let s = crate::config::validate(&raw, &HashMap::new())
        .unwrap()
        .scopes;
    let a = s.resolve(&host("a.example"), 443);
    assert_eq!(s.source_name(&a, Opt::TlsAllow), "scopes[0]");
    // the first matching exception wins; the second's defect is not added
    let b = s.resolve(&host("b.example"), 443);
    assert_eq!(s.source_name(&b, Opt::TlsAllow), "tls.exceptions[0]");
    assert_eq!(b.show(Opt::TlsAllow), "[unknown-ca]");
    let keys: Vec<&str> = s.notes.iter().map(|(k, _)| k.as_str()).collect();
    assert!(keys.contains(&"tls.exceptions[0]"), "{keys:?}");
    assert!(s.notes[0].1.contains("deprecated"), "{:?}", s.notes);
    // tls.exceptions[1] can never apply: tls.exceptions[0] matches b.example first
    assert!(
        s.notes
            .iter()
            .any(|(k, n)| k == "tls.exceptions[1]" && n.contains("never applies")),
        "{:?}",
        s.notes
    );
}

#[test]
fn bad_scope_keys_are_reported_with_their_key_paths() {
    let raw = RawConfig {
        scopes: vec![
            scope(&["ok.example"], |s| s.timeouts.connect = Some("1s".into())),
            scope(&["bad host", "x:0"], |s| {
                s.timeouts.receive_response = Some("soon".into());
                s.timeouts.client_header = Some("1s".into());
                s.limits.connect_retries = Some(0);
                s.tls.min_version = Some("1.1".into());
                s.tls.allow = Some(vec!["nope".into()]);
                s.route.via = Some("ftp://x".into());
            }),
            scope(&[], |s| s.limits.keep_alive = Some(false)),
        ],
        ..RawConfig::default()
    };
    let keys: Vec<String> = crate::config::validate(&raw, &HashMap::new())
        .unwrap_err()
        .into_iter()
        .map(|p| p.key)
        .collect();
    for k in [
        "scopes[1].match[0]",
        "scopes[1].match[1]",
        "scopes[1].timeouts.receive_response",
        "scopes[1].timeouts.client_header",
        "scopes[1].limits.connect_retries",
        "scopes[1].tls.min_version",
        "scopes[1].tls.allow[0]",
        "scopes[1].route.via",
        "scopes[2].match",
    ] {
        assert!(keys.iter().any(|x| x == k), "{k} not in {keys:?}");
    }
}

#[test]
fn a_scope_shadowed_by_an_earlier_one_or_setting_nothing_is_noted() {
    let s = scopes(vec![
        scope(&["*.corp.example"], |s| {
            s.timeouts.connect = Some("5s".into());
            s.limits.max_conns_per_server = Some(4);
        }),
        scope(&["a.corp.example:443"], |s| {
            s.timeouts.connect = Some("9s".into())
        }),
        scope(&["a.corp.example"], |s| s.timeouts.send = Some("9s".into())),
        scope(&["b.example"], |_| {}),
    ]);
    let noted: Vec<&str> = s.notes.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(noted, ["scopes[1]", "scopes[3]"], "{:?}", s.notes);
}

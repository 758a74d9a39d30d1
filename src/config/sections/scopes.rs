//! `[[scopes]]`: each entry's `match` list and overrides, typed, every problem noted under its
//! key path (`scopes[2].timeouts.receive_response`); the legacy `[[tls.exceptions]]` and
//! `[[tls.client_certs]]` entries loaded as scopes after them, each with a deprecation note;
//! and the notes `config check` shows for scopes that can never change anything (they set
//! nothing, or an earlier scope matches all their destinations and sets all they set).
//!
//! The rule these scopes are read by (first match wins, per option) is
//! [`crate::config::scopes`]'s.

use std::path::PathBuf;
use std::sync::Arc;

use waypost_tls::config::{defects_from, min_version_from, ClientCertConfig};
use waypost_tls::pattern::DestPattern;

use crate::config::problems::Problems;
use crate::config::raw::{RawConfig, RawScope};
use crate::config::scopes::{Opt, Overrides, Scope, ScopeRoute};
use crate::target::ProxyAddr;

/// The scopes of `raw` in order (`[[scopes]]`, then the legacy TLS lists), their client
/// certificates (key path, files) for the TLS policy to load after `tls.client_certs`, and the
/// notes for `config check`.
pub struct Built {
    pub list: Vec<Scope>,
    pub client_certs: Vec<(String, ClientCertConfig)>,
    pub notes: Vec<(String, String)>,
}

/// Builds every scope of `raw`, each problem noted.
pub fn scopes(raw: &RawConfig, p: &mut Problems) -> Built {
    let mut b = Built {
        list: Vec::new(),
        client_certs: Vec::new(),
        notes: Vec::new(),
    };
    for (i, s) in raw.scopes.iter().enumerate() {
        let name = format!("scopes[{i}]");
        let matches = patterns(&s.matches, &format!("{name}.match"), p);
        if s.matches.is_empty() {
            p.add(format!("{name}.match"), "empty: name the destinations of this scope (e.g. match = [\"*.corp.example\", \"legacy.example:8443\"])");
        }
        let legacy_certs = raw.tls.client_certs.len();
        let set = overrides(s, &name, legacy_certs, &mut b.client_certs, p);
        b.list.push(Scope { name, matches, set });
    }
    legacy(raw, &mut b);
    b.notes.extend(never_apply(&b.list));
    b
}

fn patterns(list: &[String], key: &str, p: &mut Problems) -> Vec<DestPattern> {
    let mut out = Vec::new();
    for (j, s) in list.iter().enumerate() {
        match s.parse::<DestPattern>() {
            Ok(d) => out.push(d),
            Err(e) => p.add(format!("{key}[{j}]"), e.to_string()),
        }
    }
    out
}

fn overrides(
    s: &RawScope,
    name: &str,
    legacy_certs: usize,
    certs: &mut Vec<(String, ClientCertConfig)>,
    p: &mut Problems,
) -> Overrides {
    let mut o = timeouts(s, name, p);
    let l = &s.limits;
    o.max_conns_per_server = l.max_conns_per_server.map(|m| (m > 0).then_some(m));
    if l.connect_retries == Some(0) {
        p.add(
            format!("{name}.limits.connect_retries"),
            "must be at least 1",
        );
    }
    o.connect_retries = l.connect_retries.filter(|r| *r > 0);
    o.max_response_drain_size = l.max_response_drain_size;
    o.keep_alive = l.keep_alive;
    tls(s, name, legacy_certs, certs, p, &mut o);
    o.route = route(s, name, p);
    o
}

/// The scope's `timeouts.*` (those that make sense per destination).
fn timeouts(s: &RawScope, name: &str, p: &mut Problems) -> Overrides {
    let t = &s.timeouts;
    let mut dur = |key: &str, v: &Option<String>| {
        v.as_ref()
            .and_then(|v| p.duration(&format!("{name}.timeouts.{key}"), v))
    };
    let mut o = Overrides {
        connect: dur("connect", &t.connect),
        send: dur("send", &t.send),
        receive: dur("receive", &t.receive),
        receive_response: dur("receive_response", &t.receive_response),
        relay_read: dur("relay_read", &t.relay_read),
        tunnel_idle: dur("tunnel_idle", &t.tunnel_idle),
        ..Overrides::default()
    };
    if let Some(v) = &t.resolve {
        o.resolve = p.duration_or_infinite(&format!("{name}.timeouts.resolve"), v);
    }
    for (key, v) in [
        ("client_header", &t.client_header),
        ("pool_idle", &t.pool_idle),
    ] {
        if v.is_some() {
            p.add(
                format!("{name}.timeouts.{key}"),
                "not a per-destination option (it applies before a destination is known, or to the whole pool): set it in [timeouts]",
            );
        }
    }
    o
}

/// The scope's `tls.*`; its client certificate is numbered after the `legacy_certs` of
/// `tls.client_certs` and the scopes' before it (`certs`).
fn tls(
    s: &RawScope,
    name: &str,
    legacy_certs: usize,
    certs: &mut Vec<(String, ClientCertConfig)>,
    p: &mut Problems,
    o: &mut Overrides,
) {
    let tls = &s.tls;
    if let Some(v) = &tls.min_version {
        match min_version_from(v) {
            Ok(m) => o.min_version = Some(m),
            Err(e) => p.add(format!("{name}.tls.min_version"), e),
        }
    }
    if let Some(list) = &tls.allow {
        let (set, bad) = defects_from(list);
        for (j, message) in bad {
            p.add(format!("{name}.tls.allow[{j}]"), message);
        }
        o.allow = Some(Arc::new(set));
    }
    if let Some(cc) = &tls.client_cert {
        let key = format!("{name}.tls.client_cert");
        if cc.cert.trim().is_empty() || cc.key.trim().is_empty() {
            p.add(&key, "needs both cert and key (PEM files)");
        } else {
            o.client_cert = Some(legacy_certs + certs.len());
            let files = ClientCertConfig {
                hosts: Vec::new(),
                cert: PathBuf::from(&cc.cert),
                key: PathBuf::from(&cc.key),
            };
            certs.push((key, files));
        }
    }
    o.check_revocation = tls.check_revocation;
}

fn route(s: &RawScope, name: &str, p: &mut Problems) -> Option<ScopeRoute> {
    let r = &s.route;
    let via = r.via.as_deref().map(str::trim).filter(|v| !v.is_empty());
    match (r.bypass, via) {
        (Some(true), Some(_)) => {
            p.add(
                format!("{name}.route"),
                "bypass and via both set: choose DIRECT (bypass = true) or one proxy (via)",
            );
            None
        }
        (Some(true), None) => Some(ScopeRoute::Direct),
        (_, Some(v)) => match ProxyAddr::parse(v) {
            Ok(a) => Some(ScopeRoute::Via(a)),
            Err(e) => {
                p.add(format!("{name}.route.via"), e);
                None
            }
        },
        _ => None,
    }
}

/// `[[tls.exceptions]]` and `[[tls.client_certs]]` as scopes (their problems are the TLS
/// policy's to report), each with a deprecation note.
fn legacy(raw: &RawConfig, b: &mut Built) {
    let parse = |hosts: &[String]| -> Vec<DestPattern> {
        hosts.iter().filter_map(|h| h.parse().ok()).collect()
    };
    for (i, ex) in raw.tls.exceptions.iter().enumerate() {
        let name = format!("tls.exceptions[{i}]");
        let set = Overrides {
            allow: Some(Arc::new(defects_from(&ex.allow).0)),
            ..Overrides::default()
        };
        b.notes.push((name.clone(), format!(
            "deprecated: write it as [[scopes]] match = {:?}, tls.allow = {:?}. It loads as a scope after the [[scopes]] entries; the first matching exception wins (the defects of several matching exceptions are not added up)",
            ex.hosts, ex.allow
        )));
        b.list.push(Scope {
            name,
            matches: parse(&ex.hosts),
            set,
        });
    }
    for (i, cc) in raw.tls.client_certs.iter().enumerate() {
        let name = format!("tls.client_certs[{i}]");
        b.notes.push((name.clone(), format!(
            "deprecated: write it as [[scopes]] match = {:?}, tls.client_cert = {{ cert = ..., key = ... }}. It loads as a scope after the [[scopes]] entries; the first matching entry wins",
            cc.hosts
        )));
        let set = Overrides {
            client_cert: Some(i),
            ..Overrides::default()
        };
        b.list.push(Scope {
            name,
            matches: parse(&cc.hosts),
            set,
        });
    }
}

/// The options a scope sets, as a bit set of [`Opt`].
fn sets(o: &Overrides) -> u32 {
    Opt::ALL
        .iter()
        .filter(|opt| o.sets(**opt))
        .fold(0, |acc, opt| acc | 1 << (*opt as u32))
}

/// Notes for scopes that can never change anything: they set nothing, or one earlier scope
/// matches every destination they match and sets every option they set (first match wins).
fn never_apply(list: &[Scope]) -> Vec<(String, String)> {
    let mut notes = Vec::new();
    for (j, s) in list.iter().enumerate() {
        let mine = sets(&s.set);
        if mine == 0 {
            notes.push((
                s.name.clone(),
                "sets no option: it never changes anything".into(),
            ));
            continue;
        }
        let shadow = list[..j].iter().find(|earlier| {
            mine & !sets(&earlier.set) == 0
                && !s.matches.is_empty()
                && s.matches
                    .iter()
                    .all(|m| earlier.matches.iter().any(|e| m.within(e)))
        });
        if let Some(e) = shadow {
            notes.push((
                s.name.clone(),
                format!(
                    "never applies: {} comes first, matches all its destinations and sets every option it sets (first match wins)",
                    e.name
                ),
            ));
        }
    }
    notes
}

#[cfg(test)]
#[path = "scopes_tests.rs"]
mod tests;

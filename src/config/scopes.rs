//! Option scopes, WinHTTP's connect-handle level: `[[scopes]]` entries, each a list of
//! destination patterns ([`DestPattern`]: the one syntax of every per-destination list) and the
//! options it overrides for them. [`Scopes::resolve`] is the one place that turns "this
//! destination" into "these options" ([`ConnOptions`], each with the scope it came from).
//!
//! The rule, the same for every option: **first match wins, per option**. For each option, the
//! first scope in the file that matches the destination *and sets that option* gives its
//! value; an option the first matching scope does not set falls through to the next matching
//! scope, then to the global value (`[timeouts]`, `[limits]`, `[tls]`). The legacy lists
//! `[[tls.exceptions]]` and `[[tls.client_certs]]` load as scopes after the `[[scopes]]`
//! entries, under their own names (`tls.exceptions[0]`), so among them too the first matching
//! entry wins (the accepted defects of two matching exceptions are no longer added up).
//!
//! Pure values: parsing lives in [`super::sections::scopes`]; nothing here does I/O.

use std::sync::Arc;
use std::time::Duration;

use waypost_tls::config::{DefectSet, MinVersion};
use waypost_tls::pattern::{DestPattern, HostPattern};
use waypost_tls::ConnSettings;

use crate::target::{Host, ProxyAddr};

/// Every option a scope may set, in the order explain lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opt {
    Resolve,
    Connect,
    Send,
    Receive,
    ReceiveResponse,
    RelayRead,
    TunnelIdle,
    MaxConnsPerServer,
    ConnectRetries,
    MaxResponseDrainSize,
    KeepAlive,
    TlsMinVersion,
    TlsAllow,
    TlsClientCert,
    TlsCheckRevocation,
    Route,
}

const N: usize = 16;

impl Opt {
    pub const ALL: [Opt; N] = [
        Opt::Resolve,
        Opt::Connect,
        Opt::Send,
        Opt::Receive,
        Opt::ReceiveResponse,
        Opt::RelayRead,
        Opt::TunnelIdle,
        Opt::MaxConnsPerServer,
        Opt::ConnectRetries,
        Opt::MaxResponseDrainSize,
        Opt::KeepAlive,
        Opt::TlsMinVersion,
        Opt::TlsAllow,
        Opt::TlsClientCert,
        Opt::TlsCheckRevocation,
        Opt::Route,
    ];

    /// The key as written in a scope (and, but for `tls.allow`, `tls.client_cert` and
    /// `route.*`, globally).
    pub fn key(self) -> &'static str {
        match self {
            Opt::Resolve => "timeouts.resolve",
            Opt::Connect => "timeouts.connect",
            Opt::Send => "timeouts.send",
            Opt::Receive => "timeouts.receive",
            Opt::ReceiveResponse => "timeouts.receive_response",
            Opt::RelayRead => "timeouts.relay_read",
            Opt::TunnelIdle => "timeouts.tunnel_idle",
            Opt::MaxConnsPerServer => "limits.max_conns_per_server",
            Opt::ConnectRetries => "limits.connect_retries",
            Opt::MaxResponseDrainSize => "limits.max_response_drain_size",
            Opt::KeepAlive => "limits.keep_alive",
            Opt::TlsMinVersion => "tls.min_version",
            Opt::TlsAllow => "tls.allow",
            Opt::TlsClientCert => "tls.client_cert",
            Opt::TlsCheckRevocation => "tls.check_revocation",
            Opt::Route => "route",
        }
    }
}

/// Where each option's value came from: a scope's place in [`Scopes::list`], or global.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sources([u16; N]);

const GLOBAL: u16 = u16::MAX;

impl Sources {
    /// The scope `opt` came from (None: global).
    pub fn of(&self, opt: Opt) -> Option<usize> {
        let s = self.0[opt as usize];
        (s != GLOBAL).then_some(s as usize)
    }
}

/// Routing for a scope's destinations, decided before the bypass list and the PAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeRoute {
    /// `route.bypass = true`: DIRECT.
    Direct,
    /// `route.via = "http://proxy:3128"`: always this hop.
    Via(ProxyAddr),
}

/// The options one scope sets (None: not set, the next matching scope or global decides).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    pub resolve: Option<Option<Duration>>,
    pub connect: Option<Duration>,
    pub send: Option<Duration>,
    pub receive: Option<Duration>,
    pub receive_response: Option<Duration>,
    pub relay_read: Option<Duration>,
    pub tunnel_idle: Option<Duration>,
    pub max_conns_per_server: Option<Option<u32>>,
    pub connect_retries: Option<u32>,
    pub max_response_drain_size: Option<u64>,
    pub keep_alive: Option<bool>,
    pub min_version: Option<MinVersion>,
    pub allow: Option<Arc<DefectSet>>,
    pub client_cert: Option<usize>,
    pub check_revocation: Option<bool>,
    pub route: Option<ScopeRoute>,
}

/// One scope: the destinations it matches, and what it sets for them.
#[derive(Debug, Clone, PartialEq)]
pub struct Scope {
    /// Its name in reports: `scopes[2]`, or `tls.exceptions[0]` for a legacy entry.
    pub name: String,
    pub matches: Vec<DestPattern>,
    pub set: Overrides,
}

impl Scope {
    /// Whether `host:port` is one of this scope's destinations.
    pub fn matches(&self, host: &Host, port: u16) -> bool {
        self.matches.iter().any(|p| dest_matches(p, host, port))
    }
}

/// Whether `p` matches `host:port` (the one matcher of every per-destination list).
pub fn dest_matches(p: &DestPattern, host: &Host, port: u16) -> bool {
    p.port.is_none_or(|want| want == port) && host_matches(&p.host, host)
}

/// Whether the host pattern `p` matches `host` (a name, or an IP literal).
pub fn host_matches(p: &HostPattern, host: &Host) -> bool {
    match host {
        Host::Name(n) => p.matches_name(n),
        Host::Ip(ip) => p.matches_ip(*ip),
    }
}

/// The effective options for one destination. Cheap to clone (the defect set is shared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnOptions {
    pub resolve: Option<Duration>,
    pub connect: Duration,
    pub send: Duration,
    pub receive: Duration,
    pub receive_response: Duration,
    pub relay_read: Duration,
    pub tunnel_idle: Duration,
    /// None = unlimited.
    pub max_conns_per_server: Option<u32>,
    pub connect_retries: u32,
    pub max_response_drain_size: u64,
    /// Keep the connection to the server open for the next request (WinHTTP's
    /// `WINHTTP_DISABLE_KEEP_ALIVE` when false).
    pub keep_alive: bool,
    /// TLS with the destination.
    pub tls: ConnSettings,
    pub sources: Sources,
}

/// Every scope in order, the global options, and the notes `config check` shows.
#[derive(Debug, Clone)]
pub struct Scopes {
    pub list: Vec<Scope>,
    pub global: ConnOptions,
    /// Warnings (key, message): deprecated syntax, scopes that never match or are shadowed.
    pub notes: Vec<(String, String)>,
}

/// `v` when it is set and `opt` has no source yet (which then becomes scope `i`).
fn claim<'a, T>(sources: &mut Sources, opt: Opt, i: usize, v: &'a Option<T>) -> Option<&'a T> {
    let v = v.as_ref()?;
    let slot = &mut sources.0[opt as usize];
    if *slot != GLOBAL {
        return None;
    }
    *slot = i as u16;
    Some(v)
}

/// Sets `to` from `from` when `from` is set and `opt` has no source yet (scope `i` becomes it).
fn put<T: Clone>(sources: &mut Sources, opt: Opt, i: usize, from: &Option<T>, to: &mut T) {
    if let Some(v) = claim(sources, opt, i, from) {
        *to = v.clone();
    }
}

impl Overrides {
    /// Whether this scope sets `opt` (an exhaustive match: a new option must say).
    pub fn sets(&self, opt: Opt) -> bool {
        match opt {
            Opt::Resolve => self.resolve.is_some(),
            Opt::Connect => self.connect.is_some(),
            Opt::Send => self.send.is_some(),
            Opt::Receive => self.receive.is_some(),
            Opt::ReceiveResponse => self.receive_response.is_some(),
            Opt::RelayRead => self.relay_read.is_some(),
            Opt::TunnelIdle => self.tunnel_idle.is_some(),
            Opt::MaxConnsPerServer => self.max_conns_per_server.is_some(),
            Opt::ConnectRetries => self.connect_retries.is_some(),
            Opt::MaxResponseDrainSize => self.max_response_drain_size.is_some(),
            Opt::KeepAlive => self.keep_alive.is_some(),
            Opt::TlsMinVersion => self.min_version.is_some(),
            Opt::TlsAllow => self.allow.is_some(),
            Opt::TlsClientCert => self.client_cert.is_some(),
            Opt::TlsCheckRevocation => self.check_revocation.is_some(),
            Opt::Route => self.route.is_some(),
        }
    }

    /// Gives `o` every option this scope (the `i`-th) sets that no earlier scope gave it.
    fn apply(&self, o: &mut ConnOptions, i: usize) {
        let src = &mut o.sources;
        put(src, Opt::Resolve, i, &self.resolve, &mut o.resolve);
        put(src, Opt::Connect, i, &self.connect, &mut o.connect);
        put(src, Opt::Send, i, &self.send, &mut o.send);
        put(src, Opt::Receive, i, &self.receive, &mut o.receive);
        put(
            src,
            Opt::ReceiveResponse,
            i,
            &self.receive_response,
            &mut o.receive_response,
        );
        put(src, Opt::RelayRead, i, &self.relay_read, &mut o.relay_read);
        put(
            src,
            Opt::TunnelIdle,
            i,
            &self.tunnel_idle,
            &mut o.tunnel_idle,
        );
        let max_conns = &mut o.max_conns_per_server;
        put(
            src,
            Opt::MaxConnsPerServer,
            i,
            &self.max_conns_per_server,
            max_conns,
        );
        put(
            src,
            Opt::ConnectRetries,
            i,
            &self.connect_retries,
            &mut o.connect_retries,
        );
        let drain = &mut o.max_response_drain_size;
        put(
            src,
            Opt::MaxResponseDrainSize,
            i,
            &self.max_response_drain_size,
            drain,
        );
        put(src, Opt::KeepAlive, i, &self.keep_alive, &mut o.keep_alive);
        let tls = &mut o.tls;
        put(
            src,
            Opt::TlsMinVersion,
            i,
            &self.min_version,
            &mut tls.min_version,
        );
        put(src, Opt::TlsAllow, i, &self.allow, &mut tls.allow);
        let cert = self.client_cert.map(Some);
        put(src, Opt::TlsClientCert, i, &cert, &mut tls.client_cert);
        let revocation = &mut tls.check_revocation;
        put(
            src,
            Opt::TlsCheckRevocation,
            i,
            &self.check_revocation,
            revocation,
        );
        // the route itself is read by `route_for`; only its source is recorded here
        if self.route.is_some() {
            claim(src, Opt::Route, i, &Some(()));
        }
    }
}

impl Scopes {
    /// No scopes: every destination gets `global`.
    pub fn new(global: ConnOptions) -> Scopes {
        Scopes {
            list: Vec::new(),
            global,
            notes: Vec::new(),
        }
    }

    /// The effective options for `host:port`: per option, the first matching scope that sets
    /// it, else the global value. Allocates nothing.
    pub fn resolve(&self, host: &Host, port: u16) -> ConnOptions {
        let mut o = self.global.clone();
        for (i, s) in self.list.iter().enumerate() {
            if !s.matches(host, port) {
                continue;
            }
            s.set.apply(&mut o, i);
        }
        o
    }

    /// The routing of the first matching scope that sets one, and that scope's place.
    pub fn route_for(&self, host: &Host, port: u16) -> Option<(usize, &ScopeRoute)> {
        self.list
            .iter()
            .enumerate()
            .filter(|(_, s)| s.set.route.is_some() && s.matches(host, port))
            .find_map(|(i, s)| s.set.route.as_ref().map(|r| (i, r)))
    }

    /// The name of where `opt`'s value came from in `o`: `global` or the scope's name.
    pub fn source_name(&self, o: &ConnOptions, opt: Opt) -> &str {
        match o.sources.of(opt).and_then(|i| self.list.get(i)) {
            Some(s) => &s.name,
            None => "global",
        }
    }
}

impl ConnOptions {
    /// The options of the global sections, every source global.
    pub fn global(t: &super::Timeouts, l: &super::Limits, tls: ConnSettings) -> ConnOptions {
        ConnOptions {
            resolve: t.resolve,
            connect: t.connect,
            send: t.send,
            receive: t.receive,
            receive_response: t.receive_response,
            relay_read: t.relay_read,
            tunnel_idle: t.tunnel_idle,
            max_conns_per_server: l.max_conns_per_server,
            connect_retries: l.connect_retries,
            max_response_drain_size: l.max_response_drain_size,
            keep_alive: l.keep_alive,
            tls,
            sources: Sources([GLOBAL; N]),
        }
    }

    /// `opt`'s value as explain shows it (`route` is the decision's, not an option value).
    pub fn show(&self, opt: Opt) -> String {
        let d = |d: Duration| humantime::format_duration(d).to_string();
        match opt {
            Opt::Resolve => self.resolve.map_or("infinite".into(), d),
            Opt::Connect => d(self.connect),
            Opt::Send => d(self.send),
            Opt::Receive => d(self.receive),
            Opt::ReceiveResponse => d(self.receive_response),
            Opt::RelayRead => d(self.relay_read),
            Opt::TunnelIdle => d(self.tunnel_idle),
            Opt::MaxConnsPerServer => self
                .max_conns_per_server
                .map_or("unlimited".into(), |m| m.to_string()),
            Opt::ConnectRetries => self.connect_retries.to_string(),
            Opt::MaxResponseDrainSize => self.max_response_drain_size.to_string(),
            Opt::KeepAlive => self.keep_alive.to_string(),
            Opt::TlsMinVersion => self.tls.min_version.as_str().into(),
            Opt::TlsAllow => {
                let names: Vec<&str> = self.tls.allow.iter().map(|d| d.as_str()).collect();
                format!("[{}]", names.join(", "))
            }
            Opt::TlsClientCert => self
                .tls
                .client_cert
                .map_or("none".into(), |i| format!("#{i}")),
            Opt::TlsCheckRevocation => self.tls.check_revocation.to_string(),
            Opt::Route => "decision".into(),
        }
    }
}

#[cfg(test)]
#[path = "scopes_tests.rs"]
mod tests;

//! The connect plan: one hop and a target turned into a value that says how to connect.
//!
//! [`plan`] is pure: which address to dial, through which proxy (HTTP, HTTPS, SOCKS4/4a/5),
//! whether waypost speaks TLS to the server on the resulting stream, absolute-form or
//! origin-form requests, which identity credentials may be sent as (the autologon policy is
//! applied here, once, through the `identity_for` argument), the effective options of the
//! destination (its scope's timeouts, limits and TLS settings: [`ConnOptions`]), and the pool
//! key, which holds what of those changes what a connection is. The I/O that
//! carries a plan out lives in [`crate::upstream`]; it makes no routing decisions.

use std::sync::Arc;

use waypost_auth::Grant;

use super::Hop;
use crate::config::ConnOptions;
use crate::target::{Host, ProxyAddr, ProxyKind, Scheme, Target};

/// What the connection will carry for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A CONNECT tunnel from the client: raw bytes to the target, never pooled.
    Tunnel,
    /// An HTTP request from the client (absolute-form, or decrypted from an intercepted tunnel).
    Request,
    /// An HTTP request that switches protocols (WebSocket): its own connection, never pooled.
    Upgrade,
}

/// How the stream to the server is obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Path {
    /// TCP straight to the target.
    Direct,
    /// A SOCKS4/4a/5 proxy opens the stream to the target.
    Socks(ProxyAddr),
    /// A CONNECT tunnel through an HTTP(S) proxy to the target (authenticated on the proxy
    /// connection when `identity` is set).
    Connect(ProxyAddr),
    /// Requests go to the HTTP(S) proxy itself, in absolute form.
    Forward(ProxyAddr),
}

/// Everything decided about one attempt before any I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectPlan {
    /// The hop this plan carries out (failover marks it).
    pub hop: Hop,
    pub path: Path,
    /// TLS with the server (`key.host`) on top of the stream.
    pub tls: bool,
    /// Requests are sent in absolute form (to a proxy) rather than origin form.
    pub absolute_form: bool,
    /// The identity waypost may authenticate as to the proxy on this path (None: send no
    /// credentials; for a SOCKS5 proxy, Some means the `[socks]` password may be sent).
    pub identity: Option<String>,
    /// What may be sent to the proxy on this path, and why not (None: no proxy that takes
    /// credentials). A 407 from a proxy whose credentials were withheld because the network
    /// named it unproven is answered as `auth-untrusted-proxy`, never relayed.
    pub grant: Option<Grant>,
    /// What makes connections carrying this plan interchangeable.
    pub key: PoolKey,
    /// The effective options for the target (first matching scope per option, else global):
    /// timeouts, connection limit, retries, drain size, keep-alive and TLS with the target.
    pub options: ConnOptions,
    /// The `Via` values the client's request arrived with. A CONNECT to an upstream proxy sends
    /// them on before this instance's own entry, so that a chain which leads back to any
    /// waypost on it is recognised there (a CONNECT has no other header to carry the mark).
    pub via: Vec<http::HeaderValue>,
}

impl ConnectPlan {
    /// The plan for a client on another machine: a direct connection may not reach this
    /// machine or link-local addresses ([`crate::route::destination`]), and is pooled apart from
    /// unrestricted ones.
    pub fn restricted(mut self) -> Self {
        self.key.restricted = true;
        self
    }

    /// Credentials were withheld because the network named this proxy and is not proven.
    pub fn untrusted(&self) -> bool {
        self.grant.is_some_and(Grant::withheld_by_network)
    }

    /// The proxy on the path, if any.
    pub fn proxy(&self) -> Option<&ProxyAddr> {
        match &self.path {
            Path::Direct => None,
            Path::Socks(p) | Path::Connect(p) | Path::Forward(p) => Some(p),
        }
    }
}

/// The plan for reaching `target` over `hop` for `purpose`. `identity_for` is the credential
/// rule and the per-proxy identity choice: the identity credentials may be sent as to that
/// proxy (host as named, port), or None, and what may be sent.
pub fn plan(
    hop: &Hop,
    target: &Target,
    purpose: Purpose,
    options: ConnOptions,
    identity_for: impl Fn(&ProxyAddr) -> (Option<String>, Grant),
) -> ConnectPlan {
    let https = target.scheme == Scheme::Https && purpose != Purpose::Tunnel;
    let (path, host, port, tls, absolute_form) = match hop {
        Hop::Direct => (Path::Direct, target.host.clone(), target.port, https, false),
        Hop::Proxy(p) if matches!(p.kind, ProxyKind::Socks4 | ProxyKind::Socks5) => (
            Path::Socks(p.clone()),
            target.host.clone(),
            target.port,
            https,
            false,
        ),
        // https:// through an HTTP(S) proxy: CONNECT with waypost's own TLS inside, so the TLS
        // policy holds for the origin. Tunnels: CONNECT, bytes relayed untouched.
        Hop::Proxy(p) if purpose == Purpose::Tunnel || https => (
            Path::Connect(p.clone()),
            target.host.clone(),
            target.port,
            https,
            false,
        ),
        Hop::Proxy(p) => (
            Path::Forward(p.clone()),
            p.host.clone(),
            p.port,
            p.kind == ProxyKind::Https,
            true,
        ),
    };
    // the SOCKS5 username/password too: only to a proxy the policy allows (SOCKS4 has none)
    let (identity, grant) = match &path {
        Path::Connect(p) | Path::Forward(p) => {
            let (identity, grant) = identity_for(p);
            (identity, Some(grant))
        }
        Path::Socks(p) if p.kind == ProxyKind::Socks5 => {
            let (identity, grant) = identity_for(p);
            (identity, Some(grant))
        }
        Path::Direct | Path::Socks(_) => (None, None),
    };
    let mut key = PoolKey::new(hop.clone(), host, port, tls, identity.clone());
    // TLS with the target is under its scope's settings; TLS with an HTTPS proxy carrying
    // absolute-form requests is the proxy's, under [tls] (None)
    key.tls_settings = (tls && !absolute_form).then(|| options.tls.clone());
    key.max_conns = options.max_conns_per_server;
    ConnectPlan {
        hop: hop.clone(),
        path,
        tls,
        absolute_form,
        identity,
        grant,
        key,
        options,
        via: Vec::new(),
    }
}

/// The first peer a connection is dialled to: what `max_conns_per_server` counts, under the
/// limit of the scope the connection was made for (connections under different limits are
/// counted apart).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerKey {
    pub host: Host,
    pub port: u16,
    /// None: unlimited.
    pub limit: Option<u32>,
}

/// What makes two upstream connections interchangeable. The metric label is derived from it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    /// How the connection leaves waypost: direct, or through which proxy.
    pub route: Hop,
    /// The server requests on it are addressed to (the origin, or the proxy for absolute-form).
    pub host: Host,
    pub port: u16,
    /// TLS with `host` on this connection.
    pub tls: bool,
    /// The authenticated identity on this connection (None = unauthenticated).
    pub identity: Option<String>,
    /// Opened for a client on another machine, under the destination checks for those.
    pub restricted: bool,
    /// The TLS settings of TLS with the target (None: no TLS with the target): a connection
    /// made under one scope's TLS settings is never reused under another's.
    pub tls_settings: Option<waypost_tls::ConnSettings>,
    /// The `max_conns_per_server` the connection counts under (None: unlimited).
    pub max_conns: Option<u32>,
    label: Arc<str>,
}

impl PoolKey {
    pub fn new(route: Hop, host: Host, port: u16, tls: bool, identity: Option<String>) -> Self {
        let label = Arc::from(route.label());
        PoolKey {
            route,
            host,
            port,
            tls,
            identity,
            restricted: false,
            tls_settings: None,
            max_conns: None,
            label,
        }
    }

    /// The bounded metric label: `direct` or the proxy's `host:port`.
    pub fn label(&self) -> &Arc<str> {
        &self.label
    }

    /// The server `max_conns_per_server` counts this connection against.
    pub fn server(&self) -> ServerKey {
        match &self.route {
            Hop::Proxy(p) => ServerKey {
                host: p.host.clone(),
                port: p.port,
                limit: self.max_conns,
            },
            Hop::Direct => ServerKey {
                host: self.host.clone(),
                port: self.port,
                limit: self.max_conns,
            },
        }
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;

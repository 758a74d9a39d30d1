//! May this client do this, now? The one answer, [`admit`], asked against the configuration
//! generation current at that moment by every entry path: at accept (a cheap refusal before
//! anything is read), for every HTTP request on a connection (proxied, CONNECT, upgrade, the
//! admin surface) and for every SOCKS5 login and CONNECT. Nothing else reads `allow`,
//! `admin_allow` or `client_auth` to let a client in.
//!
//! The rules, in order:
//! 1. The address: outside `allow` (admin listeners: `admin_allow`, or `allow` when that is
//!    empty; an empty list admits loopback only) is 403 `client-not-allowed`, and the
//!    connection is closed ([`crate::error::rescue`]). So a reload that narrows `allow` cuts a
//!    revoked client's keep-alive connection at its next request, and refuses its next tunnel.
//!    Tunnels and upgrades already open run until they end: their bytes are not requests.
//! 2. The admin surface (an origin-form request; an admin listener refuses anything else, as
//!    `client-not-allowed`): the `Host` must be `localhost` or an IP literal, so a web page
//!    cannot read it through DNS rebinding (a browser always sends the name it resolved; a
//!    missing or empty `Host` cannot come from one), except for the client PAC
//!    ([`ANY_HOST_PATHS`]); then, when `client_auth` is configured, its credentials as Basic in
//!    `Authorization` or `Proxy-Authorization`, except for the paths that reveal nothing
//!    ([`OPEN_PATHS`]: [`Grant::Admin`] says whether they came).
//! 3. A proxied request or a new tunnel: `client_auth` as Basic in `Proxy-Authorization` (407
//!    keeps the connection for the retry); a SOCKS5 login or CONNECT: its username and password.
//!
//! Pure: no I/O and no logging. Credentials are compared in constant time (a wrong guess learns
//! nothing from the timing) and never appear in an error.

use std::net::SocketAddr;

use base64::Engine;
use http::{header, HeaderMap, HeaderValue, Method, Request, Uri};
use subtle::ConstantTimeEq;

use crate::config::{ClientAuth, Config};
use crate::error::{ErrorKind, ProxyError};

/// Admin paths answered without `client_auth` credentials (they reveal nothing).
pub const OPEN_PATHS: &[&str] = &["/healthz", "/readyz", "/proxy.pac", "/wpad.dat"];

/// Admin paths answered whatever the `Host`: the client PAC is fetched by browsers and operating
/// systems under the name they were configured with (`http://wpad.corp/wpad.dat`,
/// `http://proxyhost:3128/proxy.pac`), and it tells a reader only what every client of this
/// proxy is told anyway (this proxy's address and the bypass list).
pub const ANY_HOST_PATHS: &[&str] = &["/proxy.pac", "/wpad.dat"];

/// The listener a client came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// HTTP proxy (and the admin surface for origin-form requests): `allow`.
    Proxy,
    /// The admin surface only (`admin_listen`): `admin_allow`, else `allow`.
    Admin,
    /// SOCKS5 (`socks_listen`): `allow`, as the proxy.
    Socks,
}

/// What a client asks for at the moment it is judged.
#[derive(Debug, Clone, Copy)]
pub enum Ask<'a> {
    /// To be served at all: a new connection, before anything is read.
    Connection,
    /// One HTTP request: proxied, CONNECT, upgrade, or the admin surface (by its form).
    Http {
        method: &'a Method,
        uri: &'a Uri,
        headers: &'a HeaderMap,
    },
    /// A SOCKS5 login, or a CONNECT with the login given at the greeting (`None`: none).
    Socks { login: Option<(&'a [u8], &'a [u8])> },
}

impl<'a> Ask<'a> {
    pub fn http<B>(req: &'a Request<B>) -> Ask<'a> {
        Ask::Http {
            method: req.method(),
            uri: req.uri(),
            headers: req.headers(),
        }
    }
}

/// What [`admit`] let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// A connection may be served; each of its requests is judged again.
    Connection,
    /// A proxied request or a new tunnel (CONNECT, upgrade, SOCKS5 CONNECT), or a SOCKS5 login.
    Proxy,
    /// An admin request. `authenticated`: it carries the `client_auth` credentials (or none are
    /// configured); false only for an [`OPEN_PATHS`] path asked without them.
    Admin { authenticated: bool },
}

/// The one decision: whether the client at `peer`, come through `entry`, may have what it asks
/// for under `cfg` (the generation current now). Err is the refusal to answer with.
pub fn admit(
    cfg: &Config,
    entry: Entry,
    peer: SocketAddr,
    ask: Ask<'_>,
) -> Result<Grant, ProxyError> {
    let (list, name) = match entry {
        Entry::Admin if !cfg.admin_allow.is_empty() => (&cfg.admin_allow, "admin_allow"),
        _ => (&cfg.allow, "allow"),
    };
    if !allowed(list, peer) {
        return Err(ProxyError::new(
            ErrorKind::Forbidden,
            format!("your address is not in waypost's {name} list"),
        ));
    }
    match ask {
        Ask::Connection => Ok(Grant::Connection),
        Ask::Http {
            method,
            uri,
            headers,
        } if is_admin(method, uri) => admin(cfg, uri.path(), headers),
        Ask::Http { .. } if entry == Entry::Admin => Err(ProxyError::new(
            ErrorKind::Forbidden,
            "this is waypost's admin port (admin_listen); it does not proxy",
        )),
        Ask::Http { headers, .. } => match &cfg.client_auth {
            Some(auth) if !basic_matches(auth, headers.get(header::PROXY_AUTHORIZATION)) => {
                Err(ProxyError::new(
                    ErrorKind::ClientAuthRequired,
                    "this proxy requires Basic credentials (Proxy-Authorization)",
                ))
            }
            _ => Ok(Grant::Proxy),
        },
        Ask::Socks { login } => match (&cfg.client_auth, login) {
            (None, _) => Ok(Grant::Proxy),
            (Some(auth), Some((user, pass))) if login_matches(auth, user, pass) => Ok(Grant::Proxy),
            (Some(_), _) => Err(ProxyError::new(
                ErrorKind::ClientAuthRequired,
                "this proxy requires the client_auth login (SOCKS5 username/password)",
            )),
        },
    }
}

/// An origin-form request (not CONNECT, no scheme, no authority) asks for the admin surface.
fn is_admin(method: &Method, uri: &Uri) -> bool {
    method != Method::CONNECT && uri.scheme().is_none() && uri.authority().is_none()
}

/// The admin surface's rules: the Host check, then `client_auth` (see the module comment).
fn admin(cfg: &Config, path: &str, headers: &HeaderMap) -> Result<Grant, ProxyError> {
    if !ANY_HOST_PATHS.contains(&path) && !host_allowed(headers.get(header::HOST)) {
        return Err(ProxyError::new(
            ErrorKind::AdminRefused,
            "waypost's admin paths answer only Host: localhost or an IP address (a web page \
             cannot reach them through DNS rebinding)",
        ));
    }
    let Some(auth) = &cfg.client_auth else {
        return Ok(Grant::Admin {
            authenticated: true,
        });
    };
    let ok = basic_matches(auth, headers.get(header::AUTHORIZATION))
        || basic_matches(auth, headers.get(header::PROXY_AUTHORIZATION));
    if ok || OPEN_PATHS.contains(&path) {
        return Ok(Grant::Admin { authenticated: ok });
    }
    Err(ProxyError::new(
        ErrorKind::AdminAuthRequired,
        "waypost's admin paths need the client_auth credentials (Basic, e.g. curl -u user:password)",
    ))
}

/// Without an allow list only loopback clients are served; with one, exactly its networks.
fn allowed(list: &[ipnet::IpNet], peer: SocketAddr) -> bool {
    let ip = crate::route::destination::canonical(peer.ip());
    if list.is_empty() {
        ip.is_loopback()
    } else {
        list.iter().any(|n| n.contains(&ip))
    }
}

/// Whether a `Host` value names this machine the way only a local tool would: `localhost`
/// (with any port), an IPv4 literal or a bracketed IPv6 literal; a missing or empty Host too.
pub fn host_allowed(host: Option<&HeaderValue>) -> bool {
    let Some(host) = host else { return true };
    let Ok(host) = host.to_str() else {
        return false;
    };
    let host = host.trim();
    if host.is_empty() {
        return true;
    }
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((v6, port)) if port.is_empty() || valid_port(port) => {
                return v6.parse::<std::net::Ipv6Addr>().is_ok()
            }
            _ => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if valid_port(port) => name,
            Some(_) => return false,
            None => host,
        },
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok()
}

fn valid_port(p: &str) -> bool {
    p.strip_prefix(':').unwrap_or(p).parse::<u16>().is_ok()
}

/// Whether `value` (an `Authorization` or `Proxy-Authorization` header) carries exactly the
/// `client_auth` credentials as Basic.
fn basic_matches(auth: &ClientAuth, value: Option<&HeaderValue>) -> bool {
    let Some(value) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some((scheme, b64)) = value.trim().split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return false;
    };
    let expected = format!("{}:{}", auth.username, auth.password);
    same_secret(&given, expected.as_bytes())
}

/// Whether a SOCKS5 login is the `client_auth` one (both parts always compared).
fn login_matches(auth: &ClientAuth, user: &[u8], pass: &[u8]) -> bool {
    let user_ok = same_secret(user, auth.username.as_bytes());
    let pass_ok = same_secret(pass, auth.password.as_bytes());
    user_ok & pass_ok
}

/// Whether `given` equals `expected`, in time that depends only on the lengths.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len() && bool::from(given.ct_eq(expected))
}

#[cfg(test)]
mod tests;

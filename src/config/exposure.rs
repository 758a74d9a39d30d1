//! Who can reach this waypost, checked at load: listening beyond loopback needs an allow list,
//! the admin listeners too, and a proxy open to other machines must not hand them the user's
//! credentials without `client_auth`.
//!
//! Pure: reads the raw and the parsed listen/allow values, returns problems (key, message).
//!
//! What counts as "credentials configured": an `[auth]` user, password, password file, NT
//! hash, keytab or ticket cache, or a `[socks]` username. (The user's default Kerberos ticket
//! cache is used for single sign-on even when none is configured; a gateway that must never
//! use it sets `auth.policy = "high"` with no `auth.allow_proxies`.)

use std::net::SocketAddr;

use ipnet::IpNet;

use super::raw::RawConfig;

/// Problems with the exposure of the listeners, as (key, message).
pub fn problems(
    raw: &RawConfig,
    listen: &[SocketAddr],
    allow: &[IpNet],
    admin_listen: &[SocketAddr],
    admin_allow: &[IpNet],
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if listen.iter().any(|a| !a.ip().is_loopback()) && allow.is_empty() {
        out.push((
            "allow",
            "listening beyond loopback needs an allow list of client networks (e.g. allow = [\"10.0.0.0/8\"]); \
             without one waypost would be an open relay"
                .to_string(),
        ));
    }
    if admin_listen.iter().any(|a| !a.ip().is_loopback())
        && admin_allow.is_empty()
        && allow.is_empty()
    {
        out.push((
            "admin_allow",
            "admin_listen beyond loopback needs admin_allow (or allow): the networks that may read \
             /metrics, /status and /explain (e.g. admin_allow = [\"10.0.0.0/8\"])"
                .to_string(),
        ));
    }
    let wide = allow.iter().any(|n| !n.network().is_loopback());
    if wide && raw.client_auth.username.is_empty() && has_credentials(raw) {
        out.push((
            "client_auth",
            "allow admits other machines and credentials are configured ([auth] or [socks]), but \
             client_auth is not set: anyone in allow could use those credentials. Set \
             client_auth.username and client_auth.password_file, or narrow allow to loopback"
                .to_string(),
        ));
    }
    out
}

/// Whether the config names credentials waypost would send upstream (see the module comment).
fn has_credentials(raw: &RawConfig) -> bool {
    let a = &raw.auth;
    a.user.is_some()
        || a.password.is_some()
        || a.password_file.is_some()
        || a.ntlm_hash.is_some()
        || a.keytab.is_some()
        || a.ccache.is_some()
        || !raw.socks.username.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(tweak: impl FnOnce(&mut RawConfig)) -> Vec<&'static str> {
        let mut raw = RawConfig::default();
        tweak(&mut raw);
        let parse = |v: &[String]| -> Vec<IpNet> { v.iter().map(|s| s.parse().unwrap()).collect() };
        let listen: Vec<SocketAddr> = raw.listen.iter().map(|s| s.parse().unwrap()).collect();
        let admin: Vec<SocketAddr> = raw
            .admin_listen
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        problems(
            &raw,
            &listen,
            &parse(&raw.allow),
            &admin,
            &parse(&raw.admin_allow),
        )
        .into_iter()
        .map(|(k, _)| k)
        .collect()
    }

    #[test]
    fn a_gateway_with_credentials_and_no_client_auth_refuses_to_start() {
        let keys = check(|r| {
            r.listen = vec!["0.0.0.0:3128".into()];
            r.allow = vec!["0.0.0.0/0".into()];
            r.auth.user = Some("EXAMPLE\\alice".into());
        });
        assert_eq!(keys, ["client_auth"]);
        let keys = check(|r| {
            r.listen = vec!["0.0.0.0:3128".into()];
            r.allow = vec!["10.0.0.0/8".into()];
            r.socks.username = "bob".into();
            r.client_auth.username = "client".into();
        });
        assert!(keys.is_empty(), "{keys:?}");
    }

    #[test]
    fn a_gateway_without_credentials_or_a_loopback_allow_list_starts() {
        assert!(check(|r| {
            r.listen = vec!["0.0.0.0:3128".into()];
            r.allow = vec!["10.0.0.0/8".into()];
        })
        .is_empty());
        assert!(check(|r| {
            r.allow = vec!["127.0.0.1/32".into()];
            r.auth.user = Some("alice".into());
        })
        .is_empty());
    }

    #[test]
    fn an_admin_listener_beyond_loopback_needs_an_allow_list() {
        assert_eq!(
            check(|r| r.admin_listen = vec!["0.0.0.0:9128".into()]),
            ["admin_allow"]
        );
        assert!(check(|r| {
            r.admin_listen = vec!["0.0.0.0:9128".into()];
            r.admin_allow = vec!["10.1.0.0/16".into()];
        })
        .is_empty());
    }
}

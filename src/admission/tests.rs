use std::collections::HashMap;

use super::*;
use crate::config::raw::RawConfig;

const LOOPBACK: &str = "127.0.0.1:40000";
const LAN: &str = "10.1.2.3:40000";

fn cfg(tweak: impl FnOnce(&mut RawConfig)) -> Config {
    let mut raw = RawConfig::default();
    tweak(&mut raw);
    crate::config::validate(&raw, &HashMap::new()).expect("valid test config")
}

fn with_login(raw: &mut RawConfig) {
    raw.client_auth.username = "app".into();
    raw.client_auth.password = "s3cret".into();
}

fn basic(user_pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
}

/// The verdict for one HTTP request: the grant, or the refusal's code.
fn http(
    cfg: &Config,
    entry: Entry,
    peer: &str,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
) -> Result<Grant, &'static str> {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(()).unwrap();
    admit(cfg, entry, peer.parse().unwrap(), Ask::http(&req)).map_err(|e| e.kind.code())
}

#[test]
fn every_entry_path_refuses_a_client_outside_allow_before_anything_else() {
    let narrowed = cfg(|r| {
        r.allow = vec!["10.0.0.0/8".into()];
        with_login(r);
    });
    let right = basic("app:s3cret");
    let with_creds = [
        ("proxy-authorization", right.as_str()),
        ("authorization", right.as_str()),
    ];
    let table: &[(Entry, &str, &str)] = &[
        (Entry::Proxy, "GET", "http://example.com/"),
        (Entry::Proxy, "CONNECT", "example.com:443"),
        (Entry::Proxy, "GET", "/metrics"),
        (Entry::Proxy, "GET", "/healthz"),
        (Entry::Proxy, "GET", "/proxy.pac"),
        (Entry::Admin, "GET", "/metrics"),
        (Entry::Admin, "GET", "http://example.com/"),
    ];
    for (entry, method, uri) in table {
        let got = http(&narrowed, *entry, LOOPBACK, method, uri, &with_creds);
        assert_eq!(got, Err("client-not-allowed"), "{entry:?} {method} {uri}");
        assert!(
            http(&narrowed, *entry, LAN, method, uri, &with_creds).is_ok()
                || *entry == Entry::Admin && uri.starts_with("http"),
            "{entry:?} {method} {uri} from inside allow"
        );
    }
    let loopback = LOOPBACK.parse().unwrap();
    let right_login = Some((&b"app"[..], &b"s3cret"[..]));
    for (entry, ask) in [
        (Entry::Proxy, Ask::Connection),
        (Entry::Admin, Ask::Connection),
        (Entry::Socks, Ask::Connection),
        (Entry::Socks, Ask::Socks { login: right_login }),
    ] {
        let got = admit(&narrowed, entry, loopback, ask).map_err(|e| e.kind.code());
        assert_eq!(got, Err("client-not-allowed"), "{entry:?} {ask:?}");
    }
}

#[test]
fn an_empty_allow_list_admits_loopback_only_and_admin_allow_governs_admin_listeners() {
    let default = cfg(|_| {});
    let lan = LAN.parse().unwrap();
    let loopback = LOOPBACK.parse().unwrap();
    assert!(admit(&default, Entry::Proxy, loopback, Ask::Connection).is_ok());
    assert!(admit(
        &default,
        Entry::Proxy,
        "[::ffff:127.0.0.1]:1".parse().unwrap(),
        Ask::Connection
    )
    .is_ok());
    assert!(admit(&default, Entry::Proxy, lan, Ask::Connection).is_err());
    let admin = cfg(|r| r.admin_allow = vec!["10.0.0.0/8".into()]);
    assert!(admit(&admin, Entry::Admin, lan, Ask::Connection).is_ok());
    let refused = admit(&admin, Entry::Admin, loopback, Ask::Connection).unwrap_err();
    assert!(refused.detail.contains("admin_allow"), "{refused}");
    // the proxy's own listener keeps `allow` (empty: loopback)
    assert!(admit(&admin, Entry::Proxy, loopback, Ask::Connection).is_ok());
}

#[test]
fn client_auth_is_asked_of_every_proxied_request_and_tunnel() {
    let c = cfg(with_login);
    let right = basic("app:s3cret");
    let wrong = basic("app:nope");
    for (method, uri) in [
        ("GET", "http://example.com/"),
        ("CONNECT", "example.com:443"),
    ] {
        let none = http(&c, Entry::Proxy, LOOPBACK, method, uri, &[]);
        assert_eq!(none, Err("client-auth-required"), "{method}");
        let bad = http(
            &c,
            Entry::Proxy,
            LOOPBACK,
            method,
            uri,
            &[("proxy-authorization", &wrong)],
        );
        assert_eq!(bad, Err("client-auth-required"), "{method}");
        // `Authorization` belongs to the origin, not to waypost
        let origin = http(
            &c,
            Entry::Proxy,
            LOOPBACK,
            method,
            uri,
            &[("authorization", &right)],
        );
        assert_eq!(origin, Err("client-auth-required"), "{method}");
        let ok = http(
            &c,
            Entry::Proxy,
            LOOPBACK,
            method,
            uri,
            &[("proxy-authorization", &right)],
        );
        assert_eq!(ok, Ok(Grant::Proxy), "{method}");
    }
    let open = cfg(|_| {});
    assert_eq!(
        http(&open, Entry::Proxy, LOOPBACK, "GET", "http://e.com/", &[]),
        Ok(Grant::Proxy)
    );
}

#[test]
fn the_admin_surface_wants_a_local_host_and_the_credentials_except_on_open_paths() {
    let c = cfg(with_login);
    let right = basic("app:s3cret");
    for entry in [Entry::Proxy, Entry::Admin] {
        let rebound = http(
            &c,
            entry,
            LOOPBACK,
            "GET",
            "/metrics",
            &[("host", "evil.example"), ("authorization", &right)],
        );
        assert_eq!(rebound, Err("admin-refused"));
        assert_eq!(
            http(&c, entry, LOOPBACK, "GET", "/metrics", &[]),
            Err("admin-auth-required")
        );
        let authed = http(
            &c,
            entry,
            LOOPBACK,
            "GET",
            "/metrics",
            &[("host", "localhost:3128"), ("authorization", &right)],
        );
        assert_eq!(
            authed,
            Ok(Grant::Admin {
                authenticated: true
            })
        );
        let probe = http(
            &c,
            entry,
            LOOPBACK,
            "GET",
            "/readyz",
            &[("host", "127.0.0.1")],
        );
        assert_eq!(
            probe,
            Ok(Grant::Admin {
                authenticated: false
            })
        );
        let pac = http(
            &c,
            entry,
            LOOPBACK,
            "GET",
            "/proxy.pac",
            &[("host", "wpad.corp")],
        );
        assert_eq!(
            pac,
            Ok(Grant::Admin {
                authenticated: false
            })
        );
    }
    let plain = cfg(|_| {});
    let status = http(&plain, Entry::Admin, LOOPBACK, "GET", "/status.json", &[]);
    assert_eq!(
        status,
        Ok(Grant::Admin {
            authenticated: true
        })
    );
    let proxied = http(
        &plain,
        Entry::Admin,
        LOOPBACK,
        "GET",
        "http://example.com/",
        &[],
    );
    assert_eq!(
        proxied,
        Err("client-not-allowed"),
        "an admin listener does not proxy"
    );
}

#[test]
fn a_socks_login_must_be_the_client_auth_one_whole() {
    let c = cfg(with_login);
    let peer = LOOPBACK.parse().unwrap();
    let socks = |login: Option<(&[u8], &[u8])>| {
        admit(&c, Entry::Socks, peer, Ask::Socks { login }).map_err(|e| e.kind.code())
    };
    assert_eq!(socks(Some((b"app", b"s3cret"))), Ok(Grant::Proxy));
    assert_eq!(socks(Some((b"app", b"s3cre"))), Err("client-auth-required"));
    assert_eq!(socks(Some((b"ap", b"s3cret"))), Err("client-auth-required"));
    assert_eq!(socks(None), Err("client-auth-required"));
    let open = cfg(|_| {});
    let any = admit(&open, Entry::Socks, peer, Ask::Socks { login: None });
    assert_eq!(any.map_err(|e| e.kind.code()), Ok(Grant::Proxy));
}

#[test]
fn only_localhost_and_ip_literals_are_admin_hosts() {
    let ok = |h: &str| host_allowed(Some(&HeaderValue::from_str(h).unwrap()));
    assert!(ok("localhost") && ok("LOCALHOST:3128") && ok("localhost.") && ok("127.0.0.1:1"));
    assert!(ok("[::1]") && ok("[::1]:3128") && ok("") && host_allowed(None));
    assert!(!ok("evil.example") && !ok("localhost.evil.example") && !ok("[::1]x") && !ok("a:b"));
}

//! The table of hop kinds x target schemes x purposes, without sockets.

use super::*;
use crate::target::Target;

fn target(url: &str) -> Target {
    if url.contains("://") {
        Target::from_absolute(&url.parse().unwrap(), false).unwrap()
    } else {
        Target::from_connect(url).unwrap()
    }
}

fn hop(s: &str) -> Hop {
    if s == "DIRECT" {
        Hop::Direct
    } else {
        Hop::Proxy(ProxyAddr::parse(s).unwrap())
    }
}

/// The autologon policy of these tests: credentials only for names ending in `.corp`.
fn corp_only(p: &ProxyAddr) -> (Option<String>, waypost_auth::Grant) {
    let corp = p.host.to_string().ends_with(".corp");
    let grant = match corp {
        true => waypost_auth::Grant::All,
        false => waypost_auth::Grant::Withheld(waypost_auth::Withheld::Policy),
    };
    (corp.then(|| "CORP\\alice".to_string()), grant)
}

/// The default options (no scopes).
fn opts() -> crate::config::ConnOptions {
    let raw = crate::config::raw::RawConfig::default();
    let cfg = crate::config::validate(&raw, &Default::default()).unwrap();
    cfg.scopes.global
}

/// (path kind, server host:port, tls, absolute form, identity)
fn row(hop_s: &str, url: &str, purpose: Purpose) -> (String, String, bool, bool, Option<String>) {
    let p = plan(&hop(hop_s), &target(url), purpose, opts(), corp_only);
    let kind = match &p.path {
        Path::Direct => "direct".to_string(),
        Path::Socks(x) => format!("socks {}", x.label()),
        Path::Connect(x) => format!("connect {}", x.label()),
        Path::Forward(x) => format!("forward {}", x.label()),
    };
    let server = format!("{}:{}", p.key.host.to_authority_host(), p.key.port);
    (kind, server, p.tls, p.absolute_form, p.identity)
}

fn r(
    kind: &str,
    server: &str,
    tls: bool,
    abs: bool,
    id: bool,
) -> (String, String, bool, bool, Option<String>) {
    (
        kind.into(),
        server.into(),
        tls,
        abs,
        id.then(|| "CORP\\alice".to_string()),
    )
}

#[test]
fn every_hop_kind_and_target_scheme_gets_its_plan() {
    use Purpose::*;
    let cases = [
        // hop, target, purpose => path, server, tls, absolute-form, identity
        (
            "DIRECT",
            "http://o.example/",
            Request,
            r("direct", "o.example:80", false, false, false),
        ),
        (
            "DIRECT",
            "https://o.example/",
            Request,
            r("direct", "o.example:443", true, false, false),
        ),
        (
            "DIRECT",
            "o.example:443",
            Tunnel,
            r("direct", "o.example:443", false, false, false),
        ),
        (
            "DIRECT",
            "http://o.example/",
            Upgrade,
            r("direct", "o.example:80", false, false, false),
        ),
        (
            "http://p.corp:3128",
            "http://o.example/",
            Request,
            r("forward p.corp:3128", "p.corp:3128", false, true, true),
        ),
        (
            "http://p.corp:3128",
            "http://o.example/",
            Upgrade,
            r("forward p.corp:3128", "p.corp:3128", false, true, true),
        ),
        (
            "http://p.corp:3128",
            "https://o.example/",
            Request,
            r("connect p.corp:3128", "o.example:443", true, false, true),
        ),
        (
            "http://p.corp:3128",
            "https://o.example/",
            Upgrade,
            r("connect p.corp:3128", "o.example:443", true, false, true),
        ),
        (
            "http://p.corp:3128",
            "o.example:443",
            Tunnel,
            r("connect p.corp:3128", "o.example:443", false, false, true),
        ),
        (
            "https://p.corp:443",
            "http://o.example/",
            Request,
            r("forward p.corp:443", "p.corp:443", true, true, true),
        ),
        (
            "https://p.corp:443",
            "o.example:22",
            Tunnel,
            r("connect p.corp:443", "o.example:22", false, false, true),
        ),
        (
            "http://evil.example:3128",
            "http://o.example/",
            Request,
            r(
                "forward evil.example:3128",
                "evil.example:3128",
                false,
                true,
                false,
            ),
        ),
        (
            "http://evil.example:3128",
            "o.example:443",
            Tunnel,
            r(
                "connect evil.example:3128",
                "o.example:443",
                false,
                false,
                false,
            ),
        ),
        (
            "socks5://s.corp:1080",
            "http://o.example/",
            Request,
            r("socks s.corp:1080", "o.example:80", false, false, true),
        ),
        (
            // the [socks] password only where the policy allows
            "socks5://s.example:1080",
            "http://o.example/",
            Request,
            r("socks s.example:1080", "o.example:80", false, false, false),
        ),
        (
            "socks5://s.corp:1080",
            "https://o.example/",
            Request,
            r("socks s.corp:1080", "o.example:443", true, false, true),
        ),
        (
            "socks4://s.corp:1080",
            "o.example:443",
            Tunnel,
            r("socks s.corp:1080", "o.example:443", false, false, false),
        ),
    ];
    for (h, url, purpose, want) in cases {
        assert_eq!(row(h, url, purpose), want, "{h} {url} {purpose:?}");
    }
}

#[test]
fn the_pool_key_names_the_proxy_the_connection_goes_through() {
    let t = target("http://o.example/");
    let a = plan(
        &hop("socks5://a:1080"),
        &t,
        Purpose::Request,
        opts(),
        corp_only,
    );
    let b = plan(
        &hop("socks5://b:1080"),
        &t,
        Purpose::Request,
        opts(),
        corp_only,
    );
    let d = plan(&Hop::Direct, &t, Purpose::Request, opts(), corp_only);
    assert_ne!(a.key, b.key);
    assert_ne!(a.key, d.key);
    assert_eq!(a.key.label().as_ref(), "a:1080");
    assert_eq!(d.key.label().as_ref(), "direct");
    // max_conns_per_server counts the first peer: the proxy, or the origin when direct
    assert_eq!(a.key.server().host.to_string(), "a");
    assert_eq!(d.key.server().host.to_string(), "o.example");
}

#[test]
fn the_identity_is_part_of_the_pool_key() {
    let t = target("http://o.example/");
    let with = plan(
        &hop("http://p.corp:3128"),
        &t,
        Purpose::Request,
        opts(),
        corp_only,
    );
    let without = plan(
        &hop("http://p.corp:3128"),
        &t,
        Purpose::Request,
        opts(),
        |_| {
            (
                None,
                waypost_auth::Grant::Withheld(waypost_auth::Withheld::UnprovenNetwork),
            )
        },
    );
    assert!(without.untrusted() && !with.untrusted());
    assert_ne!(with.key, without.key);
    assert_eq!(with.key.server(), without.key.server());
}

#[test]
fn the_pool_key_holds_the_target_s_tls_settings_and_limit_but_not_for_a_proxy_s_tls() {
    let mut o = opts();
    o.max_conns_per_server = Some(2);
    o.tls.min_version = waypost_tls::config::MinVersion::Tls13;
    let t = target("https://api.example/");
    let direct = plan(&Hop::Direct, &t, Purpose::Request, o.clone(), corp_only);
    assert_eq!(direct.key.tls_settings.as_ref(), Some(&o.tls));
    assert_eq!(direct.key.server().limit, Some(2));
    let http = target("http://api.example/");
    let forward = plan(
        &hop("https://p.corp:3128"),
        &http,
        Purpose::Request,
        o,
        corp_only,
    );
    assert!(forward.tls && forward.key.tls_settings.is_none());
}

//! Config loading errors with key paths, SNI peeking on real ClientHellos, and the tunnel
//! rules (SNI allow/deny, CONNECT ports).

use std::sync::Arc;

use waypost_tls::config::{ClientCertConfig, SniRulesConfig};
use waypost_tls::{parse_client_hello_sni, SniPeek, TlsConfig, TlsPolicy};

fn client_hello(server_name: &str) -> Vec<u8> {
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(server_name.to_string()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let mut out = Vec::new();
    conn.write_tls(&mut out).unwrap();
    out
}

#[test]
fn the_sni_of_a_real_client_hello_is_read() {
    let hello = client_hello("Video.Example.com");
    assert_eq!(
        parse_client_hello_sni(&hello),
        SniPeek::Complete(Some("video.example.com".into()))
    );
}

#[test]
fn a_partial_client_hello_asks_for_more_bytes() {
    let hello = client_hello("example.com");
    for cut in [0, 1, 4, 5, 10, hello.len() - 1] {
        assert_eq!(
            parse_client_hello_sni(&hello[..cut]),
            SniPeek::NeedMore,
            "cut at {cut}"
        );
    }
}

#[test]
fn a_client_hello_split_over_two_records_is_reassembled() {
    let hello = client_hello("split.example.com");
    let body = &hello[5..];
    let (a, b) = body.split_at(40);
    let mut two = Vec::new();
    for part in [a, b] {
        two.extend_from_slice(&[0x16, 0x03, 0x01]);
        two.extend_from_slice(&(part.len() as u16).to_be_bytes());
        two.extend_from_slice(part);
    }
    assert_eq!(parse_client_hello_sni(&two[..30]), SniPeek::NeedMore);
    assert_eq!(
        parse_client_hello_sni(&two),
        SniPeek::Complete(Some("split.example.com".into()))
    );
}

#[test]
fn a_client_hello_to_an_ip_address_has_no_sni() {
    assert_eq!(
        parse_client_hello_sni(&client_hello("192.0.2.7")),
        SniPeek::Complete(None)
    );
}

#[test]
fn plain_http_is_not_tls() {
    assert_eq!(
        parse_client_hello_sni(b"GET / HTTP/1.1\r\n"),
        SniPeek::NotTls
    );
    assert_eq!(parse_client_hello_sni(&[0x16, 0x01, 0x00]), SniPeek::NotTls);
}

fn base() -> TlsConfig {
    TlsConfig::default()
}

#[test]
fn sni_deny_wins_over_allow_and_allow_lists_are_exclusive() {
    let cfg = TlsConfig {
        sni_rules: SniRulesConfig {
            allow: vec![".example.com".into()],
            deny: vec!["bad.example.com".into()],
            require_sni: false,
        },
        ..base()
    };
    let p = TlsPolicy::new(&cfg, None).unwrap();
    assert!(p.sni_allowed(Some("a.example.com")));
    assert!(!p.sni_allowed(Some("bad.example.com")));
    assert!(!p.sni_allowed(Some("example.org")));
    assert!(!p.sni_allowed(None), "no SNI cannot match an allow list");
}

#[test]
fn without_rules_every_sni_passes_unless_sni_is_required() {
    let p = TlsPolicy::new(&base(), None).unwrap();
    assert!(p.sni_allowed(Some("anything.test")) && p.sni_allowed(None));
    let mut cfg = base();
    cfg.sni_rules.require_sni = true;
    assert!(!TlsPolicy::new(&cfg, None).unwrap().sni_allowed(None));
}

#[test]
fn connect_ports_are_443_and_8443_by_default_and_an_empty_list_allows_any() {
    let p = TlsPolicy::new(&base(), None).unwrap();
    assert!(p.port_allowed(443) && p.port_allowed(8443));
    for port in [22, 25, 80, 6379] {
        assert!(!p.port_allowed(port), "{port}");
    }
    let any = TlsConfig {
        connect_ports: vec![],
        ..base()
    };
    assert!(TlsPolicy::new(&any, None).unwrap().port_allowed(22));
}

#[test]
fn every_config_problem_is_reported_with_its_key_path() {
    let cfg = TlsConfig {
        min_version: "1.1".into(),
        ca_files: vec!["/nonexistent/bundle.pem".into()],
        exceptions: vec![waypost_tls::config::ExceptionConfig {
            hosts: vec!["a.test".into()],
            allow: vec!["unknown-ca".into(), "foo".into()],
        }],
        client_certs: vec![ClientCertConfig {
            hosts: vec!["a.test".into()],
            cert: "/x.pem".into(),
            key: "/x.key".into(),
        }],
        ..base()
    };
    let err = TlsPolicy::new(&cfg, None).unwrap_err();
    let paths: Vec<_> = err.problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "tls.min_version",
            "tls.exceptions[0].allow[1]",
            "tls.ca_files[0]",
            "tls.client_certs[0].cert",
            "tls.client_certs[0].key"
        ],
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("rustls does not speak"), "{text}");
    assert!(text.contains("tls.exceptions[0].allow[1]: unknown flag \"foo\" (expected one of unknown-ca, cert-date-invalid, cert-cn-invalid, cert-wrong-usage, weak-signature)"), "{text}");
    assert!(
        text.contains("tls.client_certs[0].cert: cannot read /x.pem: No such file"),
        "{text}"
    );
}

#[test]
fn metrics_are_registered_under_the_waypost_tls_prefix() {
    let reg = prometheus::Registry::new();
    let p = TlsPolicy::new(&base(), Some(&reg)).unwrap();
    p.metrics().handshake("ok", "1.3");
    let names: Vec<_> = reg.gather().iter().map(|f| f.name().to_string()).collect();
    assert!(
        !names.is_empty() && names.iter().all(|n| n.starts_with("waypost_tls_")),
        "{names:?}"
    );
    assert!(
        TlsPolicy::new(&base(), Some(&reg)).is_err(),
        "a second registration is reported, not a panic"
    );
}

//! Real tokio-rustls origins with rcgen certificates, each with one defect, reached through
//! `waypost_tls::connect`: each is refused with its own kind, and accepted under its own
//! exception only.

use crate::common;

use common::*;
use rcgen::ExtendedKeyUsagePurpose;
use waypost_tls::{TlsErrorKind, TlsPolicy};

const BOTH: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

struct Case {
    name: &'static str,
    leaf: Leaf,
    other_ca: bool,
    kind: TlsErrorKind,
    flag: &'static str,
    wrong_flag: &'static str,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "expired",
            leaf: Leaf {
                expired: true,
                ..Leaf::default()
            },
            other_ca: false,
            kind: TlsErrorKind::CertExpired,
            flag: "cert-date-invalid",
            wrong_flag: "unknown-ca",
        },
        Case {
            name: "wrong name",
            leaf: Leaf {
                names: vec!["elsewhere.test".into()],
                ..Leaf::default()
            },
            other_ca: false,
            kind: TlsErrorKind::NameMismatch,
            flag: "cert-cn-invalid",
            wrong_flag: "cert-date-invalid",
        },
        Case {
            name: "unknown ca",
            leaf: Leaf::default(),
            other_ca: true,
            kind: TlsErrorKind::UnknownCa,
            flag: "unknown-ca",
            wrong_flag: "cert-cn-invalid",
        },
        Case {
            name: "client-auth-only usage",
            leaf: Leaf {
                eku: ExtendedKeyUsagePurpose::ClientAuth,
                ..Leaf::default()
            },
            other_ca: false,
            kind: TlsErrorKind::WrongUsage,
            flag: "cert-wrong-usage",
            wrong_flag: "weak-signature",
        },
    ]
}

fn policy(files: &Files, ca: &TestCa, allow: &[&str]) -> TlsPolicy {
    let mut cfg = config_trusting(files, ca);
    if !allow.is_empty() {
        cfg.exceptions = vec![exception(&["*.test", "other.example"], allow)];
    }
    TlsPolicy::new(&cfg, None).unwrap()
}

#[tokio::test]
async fn a_valid_certificate_from_the_configured_ca_is_accepted() {
    let (ca, files) = (TestCa::new("test ca"), Files::new());
    let addr = serve(server_config(&Leaf::default().signed_by(&ca), BOTH)).await;
    assert_eq!(
        exchange(&policy(&files, &ca, &[]), addr).await,
        Ok("client=none\n".into())
    );
}

#[tokio::test]
async fn each_defect_is_refused_with_its_own_kind() {
    let (ca, other, files) = (
        TestCa::new("test ca"),
        TestCa::new("stranger ca"),
        Files::new(),
    );
    for c in cases() {
        let m = c.leaf.signed_by(if c.other_ca { &other } else { &ca });
        let addr = serve(server_config(&m, BOTH)).await;
        assert_eq!(
            exchange(&policy(&files, &ca, &[]), addr).await,
            Err(c.kind),
            "{}",
            c.name
        );
    }
}

#[tokio::test]
async fn each_defect_is_accepted_under_its_own_exception_only() {
    let (ca, other, files) = (
        TestCa::new("test ca"),
        TestCa::new("stranger ca"),
        Files::new(),
    );
    for c in cases() {
        let m = c.leaf.signed_by(if c.other_ca { &other } else { &ca });
        let addr = serve(server_config(&m, BOTH)).await;
        let ok = exchange(&policy(&files, &ca, &[c.flag]), addr).await;
        assert_eq!(
            ok,
            Ok("client=none\n".into()),
            "{} under {}",
            c.name,
            c.flag
        );
        let refused = exchange(&policy(&files, &ca, &[c.wrong_flag]), addr).await;
        assert_eq!(refused, Err(c.kind), "{} under {}", c.name, c.wrong_flag);
    }
}

#[tokio::test]
async fn an_exception_for_another_host_does_not_apply() {
    let (ca, files) = (TestCa::new("test ca"), Files::new());
    let addr = serve(server_config(
        &Leaf {
            expired: true,
            ..Leaf::default()
        }
        .signed_by(&ca),
        BOTH,
    ))
    .await;
    let mut cfg = config_trusting(&files, &ca);
    cfg.exceptions = vec![exception(&["other.example"], &["cert-date-invalid"])];
    let p = TlsPolicy::new(&cfg, None).unwrap();
    assert_eq!(exchange(&p, addr).await, Err(TlsErrorKind::CertExpired));
}

#[tokio::test]
async fn a_certificate_with_two_defects_needs_both_allowed() {
    let (ca, files) = (TestCa::new("test ca"), Files::new());
    let leaf = Leaf {
        expired: true,
        names: vec!["elsewhere.test".into()],
        ..Leaf::default()
    };
    let addr = serve(server_config(&leaf.signed_by(&ca), BOTH)).await;
    let only_date = exchange(&policy(&files, &ca, &["cert-date-invalid"]), addr).await;
    assert_eq!(only_date, Err(TlsErrorKind::NameMismatch));
    let only_name = exchange(&policy(&files, &ca, &["cert-cn-invalid"]), addr).await;
    assert_eq!(only_name, Err(TlsErrorKind::CertExpired));
    let both = exchange(
        &policy(&files, &ca, &["cert-cn-invalid", "cert-date-invalid"]),
        addr,
    )
    .await;
    assert_eq!(both, Ok("client=none\n".into()));
}

#[tokio::test]
async fn an_expired_certificate_from_an_unknown_ca_needs_unknown_ca_and_date() {
    let (ca, stranger, files) = (
        TestCa::new("test ca"),
        TestCa::new("stranger"),
        Files::new(),
    );
    let addr = serve(server_config(
        &Leaf {
            expired: true,
            ..Leaf::default()
        }
        .signed_by(&stranger),
        BOTH,
    ))
    .await;
    assert_eq!(
        exchange(&policy(&files, &ca, &["unknown-ca"]), addr).await,
        Err(TlsErrorKind::CertExpired)
    );
    let both = exchange(
        &policy(&files, &ca, &["unknown-ca", "cert-date-invalid"]),
        addr,
    )
    .await;
    assert_eq!(both, Ok("client=none\n".into()));
}

#[tokio::test]
async fn accepted_exceptions_are_counted_by_flag() {
    let (ca, files) = (TestCa::new("test ca"), Files::new());
    let addr = serve(server_config(
        &Leaf {
            expired: true,
            ..Leaf::default()
        }
        .signed_by(&ca),
        BOTH,
    ))
    .await;
    let mut cfg = config_trusting(&files, &ca);
    cfg.exceptions = vec![exception(&[".origin.test"], &["cert-date-invalid"])];
    let reg = prometheus::Registry::new();
    let p = TlsPolicy::new(&cfg, Some(&reg)).unwrap();
    assert!(exchange(&p, addr).await.is_ok());
    let text = metrics::text(&reg);
    assert_eq!(
        metric(
            &text,
            "waypost_tls_exceptions_used_total{flag=\"cert-date-invalid\"}"
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "waypost_tls_handshakes_total{outcome=\"ok\",version=\"1.3\"}"
        ),
        1.0,
        "{text}"
    );
}

#[tokio::test]
async fn minimum_tls_1_3_refuses_a_tls_1_2_only_origin() {
    let (ca, files) = (TestCa::new("test ca"), Files::new());
    let addr = serve(server_config(
        &Leaf::default().signed_by(&ca),
        &[&rustls::version::TLS12],
    ))
    .await;
    let mut cfg = config_trusting(&files, &ca);
    assert!(
        exchange(&TlsPolicy::new(&cfg, None).unwrap(), addr)
            .await
            .is_ok(),
        "1.2 allowed by default"
    );
    cfg.min_version = "1.3".into();
    assert_eq!(
        exchange(&TlsPolicy::new(&cfg, None).unwrap(), addr).await,
        Err(TlsErrorKind::Protocol)
    );
}

#[tokio::test]
async fn one_policy_serves_connections_under_different_settings() {
    let (ca, files) = (TestCa::new("test ca"), Files::new());
    let addr = serve(server_config(
        &Leaf::default().signed_by(&ca),
        &[&rustls::version::TLS12],
    ))
    .await;
    let p = TlsPolicy::new(&config_trusting(&files, &ca), None).unwrap();
    let lax = p.global_settings().clone();
    let strict = waypost_tls::ConnSettings {
        min_version: waypost_tls::config::MinVersion::Tls13,
        ..lax.clone()
    };
    assert_eq!(
        exchange_with(&p, addr, &strict).await,
        Err(TlsErrorKind::Protocol)
    );
    assert!(exchange_with(&p, addr, &lax).await.is_ok());
}

#[tokio::test]
async fn the_first_matching_exception_gives_the_accepted_defects() {
    let (ca, other, files) = (
        TestCa::new("test ca"),
        TestCa::new("stranger ca"),
        Files::new(),
    );
    let addr = serve(server_config(&Leaf::default().signed_by(&other), BOTH)).await;
    let mut cfg = config_trusting(&files, &ca);
    cfg.exceptions = vec![
        exception(&["*.test"], &["cert-date-invalid"]),
        exception(&[HOST], &["unknown-ca"]),
    ];
    let p = TlsPolicy::new(&cfg, None).unwrap();
    assert_eq!(exchange(&p, addr).await, Err(TlsErrorKind::UnknownCa));
    cfg.exceptions.reverse();
    let p = TlsPolicy::new(&cfg, None).unwrap();
    assert!(exchange(&p, addr).await.is_ok());
}

#[tokio::test]
async fn a_server_requiring_a_client_certificate_is_refused_without_one() {
    let (ca, files) = (TestCa::new("test ca"), Files::new());
    let addr = serve(server_config_requiring_client_cert(
        &Leaf::default().signed_by(&ca),
        &ca,
    ))
    .await;
    let p = TlsPolicy::new(&config_trusting(&files, &ca), None).unwrap();
    assert_eq!(
        exchange(&p, addr).await,
        Err(TlsErrorKind::ClientCertRequired)
    );
}

#[tokio::test]
async fn the_configured_client_certificate_is_presented_to_its_host() {
    let (ca, files) = (TestCa::new("test ca"), Files::new());
    let addr = serve(server_config_requiring_client_cert(
        &Leaf::default().signed_by(&ca),
        &ca,
    ))
    .await;
    let client = Leaf {
        cn: "waypost client".into(),
        eku: ExtendedKeyUsagePurpose::ClientAuth,
        ..Leaf::default()
    }
    .signed_by(&ca);
    let mut cfg = config_trusting(&files, &ca);
    cfg.client_certs = vec![waypost_tls::config::ClientCertConfig {
        hosts: vec!["*.test".into()],
        cert: files.write("client.pem", client.cert_pem.as_bytes()),
        key: files.write("client.key", client.key_pem.as_bytes()),
    }];
    let reg = prometheus::Registry::new();
    let p = TlsPolicy::new(&cfg, Some(&reg)).unwrap();
    assert_eq!(
        exchange(&p, addr).await,
        Ok("client=CN=waypost client\n".into())
    );
    let text = metrics::text(&reg);
    assert!(
        find(&text, "waypost_tls_client_cert_expiry_days{entry=\"0\"}").is_some(),
        "{text}"
    );
}

#[tokio::test]
async fn configs_are_shared_between_hosts_with_the_same_treatment() {
    let (ca, files) = (TestCa::new("test ca"), Files::new());
    let mut cfg = config_trusting(&files, &ca);
    cfg.exceptions = vec![exception(&["*.lab.test"], &["unknown-ca"])];
    let p = TlsPolicy::new(&cfg, None).unwrap();
    let a = p.client_config("a.lab.test", &[b"h2"]);
    assert!(std::sync::Arc::ptr_eq(
        &a,
        &p.client_config("b.lab.test", &[b"h2"])
    ));
    assert!(!std::sync::Arc::ptr_eq(
        &a,
        &p.client_config("c.other.test", &[b"h2"])
    ));
    assert!(!std::sync::Arc::ptr_eq(
        &a,
        &p.client_config("a.lab.test", &[b"http/1.1"])
    ));
    assert_eq!(a.alpn_protocols, vec![b"h2".to_vec()]);
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[tokio::test]
async fn a_sha1_signed_certificate_is_refused_as_weak_and_accepted_under_weak_signature_only() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let m = Minted {
        chain: CertificateDer::pem_file_iter(fixture("weak-leaf.pem"))
            .unwrap()
            .map(Result::unwrap)
            .collect(),
        key: PrivateKeyDer::from_pem_file(fixture("weak-leaf.key")).unwrap(),
        cert_pem: String::new(),
        key_pem: String::new(),
    };
    let addr = serve(server_config(&m, BOTH)).await;
    let policy = |allow: &[&str]| {
        let mut cfg = waypost_tls::TlsConfig {
            use_system_roots: false,
            ca_files: vec![fixture("weak-ca.pem")],
            ..waypost_tls::TlsConfig::default()
        };
        cfg.exceptions = vec![exception(&[HOST], allow)];
        TlsPolicy::new(&cfg, None).unwrap()
    };
    assert_eq!(
        exchange(&policy(&[]), addr).await,
        Err(TlsErrorKind::WeakSignature)
    );
    assert_eq!(
        exchange(&policy(&["unknown-ca"]), addr).await,
        Err(TlsErrorKind::WeakSignature)
    );
    assert_eq!(
        exchange(&policy(&["weak-signature"]), addr).await,
        Ok("client=none\n".into())
    );
}

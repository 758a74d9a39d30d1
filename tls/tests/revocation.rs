//! Revocation: CRLs from files and from distribution points served over http on
//! 127.0.0.1, the unknown-status policy, and that no exception accepts a revoked certificate.

mod common;

use std::sync::atomic::Ordering;

use common::*;
use waypost_tls::{TlsErrorKind, TlsPolicy};

const BOTH: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

#[tokio::test]
async fn a_certificate_listed_in_a_crl_file_is_refused_as_revoked_even_with_every_exception() {
    let (ca, files) = (TestCa::new("test ca"), Files::new());
    let addr = serve(server_config(
        &Leaf {
            serial: 7,
            ..Leaf::default()
        }
        .signed_by(&ca),
        BOTH,
    ))
    .await;
    let mut cfg = config_trusting(&files, &ca);
    cfg.check_revocation = true;
    cfg.crl_files = vec![files.write("ca.crl", &ca.crl(&[7]))];
    cfg.exceptions = vec![exception(
        &[HOST],
        &[
            "unknown-ca",
            "cert-date-invalid",
            "cert-cn-invalid",
            "cert-wrong-usage",
            "weak-signature",
        ],
    )];
    let p = TlsPolicy::new(&cfg, None).unwrap();
    assert_eq!(exchange(&p, addr).await, Err(TlsErrorKind::Revoked));
}

#[tokio::test]
async fn a_certificate_absent_from_the_crl_is_accepted() {
    let (ca, files) = (TestCa::new("test ca"), Files::new());
    let addr = serve(server_config(
        &Leaf {
            serial: 8,
            ..Leaf::default()
        }
        .signed_by(&ca),
        BOTH,
    ))
    .await;
    let mut cfg = config_trusting(&files, &ca);
    cfg.check_revocation = true;
    cfg.crl_files = vec![files.write("ca.crl", &ca.crl(&[7]))];
    assert!(exchange(&TlsPolicy::new(&cfg, None).unwrap(), addr)
        .await
        .is_ok());
}

#[tokio::test]
async fn unknown_revocation_status_fails_or_passes_as_configured() {
    let (ca, files) = (TestCa::new("test ca"), Files::new());
    let addr = serve(server_config(&Leaf::default().signed_by(&ca), BOTH)).await;
    let mut cfg = config_trusting(&files, &ca);
    cfg.check_revocation = true;
    assert_eq!(
        exchange(&TlsPolicy::new(&cfg, None).unwrap(), addr).await,
        Err(TlsErrorKind::Revoked)
    );
    cfg.revocation_unknown = "pass".into();
    assert!(exchange(&TlsPolicy::new(&cfg, None).unwrap(), addr)
        .await
        .is_ok());
}

#[tokio::test]
async fn crls_are_fetched_from_the_distribution_point_and_cached() {
    let (ca, files) = (TestCa::new("test ca"), Files::new());
    let (http, hits) = serve_http(ca.crl(&[9])).await;
    let url = format!("http://{http}/ca.crl");
    let revoked = Leaf {
        serial: 9,
        crl_url: Some(url.clone()),
        ..Leaf::default()
    }
    .signed_by(&ca);
    let good = Leaf {
        serial: 10,
        crl_url: Some(url),
        ..Leaf::default()
    }
    .signed_by(&ca);
    let revoked_addr = serve(server_config(&revoked, BOTH)).await;
    let good_addr = serve(server_config(&good, BOTH)).await;
    let mut cfg = config_trusting(&files, &ca);
    cfg.check_revocation = true;
    let p = TlsPolicy::new(&cfg, None).unwrap();
    assert_eq!(exchange(&p, revoked_addr).await, Err(TlsErrorKind::Revoked));
    assert!(exchange(&p, good_addr).await.is_ok());
    assert!(exchange(&p, good_addr).await.is_ok());
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "one download serves every later handshake"
    );
}

#[tokio::test]
async fn an_unreachable_distribution_point_leaves_the_status_unknown() {
    let (ca, files) = (TestCa::new("test ca"), Files::new());
    // Bind then drop a listener: the port is very likely closed now.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let leaf = Leaf {
        crl_url: Some(format!("http://{closed}/ca.crl")),
        ..Leaf::default()
    }
    .signed_by(&ca);
    let addr = serve(server_config(&leaf, BOTH)).await;
    let mut cfg = config_trusting(&files, &ca);
    cfg.check_revocation = true;
    assert_eq!(
        exchange(&TlsPolicy::new(&cfg, None).unwrap(), addr).await,
        Err(TlsErrorKind::Revoked)
    );
    cfg.revocation_unknown = "pass".into();
    assert!(exchange(&TlsPolicy::new(&cfg, None).unwrap(), addr)
        .await
        .is_ok());
}

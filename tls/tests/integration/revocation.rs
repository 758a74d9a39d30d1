//! Revocation: CRLs from files and from distribution points (downloaded through the installed
//! `CrlFetch`, here a fake; the proxy's HTTP client is tested in the root crate), the
//! unknown-status policy, and that no exception accepts a revoked certificate.

use crate::common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use waypost_tls::{TlsConfig, TlsErrorKind, TlsPolicy};

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
async fn crls_are_fetched_from_the_distribution_point_through_the_installed_fetcher_and_cached() {
    let (ca, files) = (TestCa::new("test ca"), Files::new());
    let url = "http://crl.test/ca.crl";
    let fetch = FakeCrlFetch::serving(url, ca.crl(&[9]));
    let leaf = |serial| {
        Leaf {
            serial,
            crl_url: Some(url.into()),
            ..Leaf::default()
        }
        .signed_by(&ca)
    };
    let revoked_addr = serve(server_config(&leaf(9), BOTH)).await;
    let good_addr = serve(server_config(&leaf(10), BOTH)).await;
    let mut cfg = config_trusting(&files, &ca);
    cfg.check_revocation = true;
    let p = TlsPolicy::new(&cfg, None).unwrap();
    p.clone().set_crl_fetcher(fetch.clone());
    assert_eq!(exchange(&p, revoked_addr).await, Err(TlsErrorKind::Revoked));
    assert!(exchange(&p, good_addr).await.is_ok());
    assert!(exchange(&p, good_addr).await.is_ok());
    assert_eq!(
        fetch.hits.load(Ordering::SeqCst),
        1,
        "one download (asked of the fetcher installed on a clone) serves every later handshake"
    );
}

/// A server whose leaf names `url` as its distribution point, and a config checking revocation
/// that trusts its CA (returned, to sign CRLs).
async fn leaf_naming(url: &str) -> (TlsConfig, std::net::SocketAddr, TestCa, Files) {
    let (ca, files) = (TestCa::new("test ca"), Files::new());
    let leaf = Leaf {
        crl_url: Some(url.into()),
        ..Leaf::default()
    }
    .signed_by(&ca);
    let addr = serve(server_config(&leaf, BOTH)).await;
    let mut cfg = config_trusting(&files, &ca);
    cfg.check_revocation = true;
    (cfg, addr, ca, files)
}

const URL: &str = "http://crl.test/ca.crl";

#[tokio::test]
async fn an_unreachable_distribution_point_leaves_the_status_unknown() {
    let (mut cfg, addr, _ca, _files) = leaf_naming(URL).await;
    let fetch = Arc::new(FakeCrlFetch::default());
    let p = TlsPolicy::new(&cfg, None).unwrap();
    p.set_crl_fetcher(fetch.clone());
    assert_eq!(exchange(&p, addr).await, Err(TlsErrorKind::Revoked));
    assert_eq!(fetch.hits.load(Ordering::SeqCst), 1);
    cfg.revocation_unknown = "pass".into();
    let p = TlsPolicy::new(&cfg, None).unwrap();
    p.set_crl_fetcher(fetch);
    assert!(exchange(&p, addr).await.is_ok());
}

#[tokio::test]
async fn without_an_installed_fetcher_distribution_points_are_not_downloaded() {
    let (cfg, addr, _ca, _files) = leaf_naming(URL).await;
    let p = TlsPolicy::new(&cfg, None).unwrap();
    assert_eq!(exchange(&p, addr).await, Err(TlsErrorKind::Revoked));
}

#[tokio::test]
async fn a_download_that_does_not_answer_within_the_timeout_leaves_the_status_unknown() {
    let (mut cfg, addr, _ca, _files) = leaf_naming(URL).await;
    cfg.crl_fetch.timeout = Duration::from_millis(300);
    let fetch = Arc::new(FakeCrlFetch {
        hang: true,
        ..FakeCrlFetch::default()
    });
    let p = TlsPolicy::new(&cfg, None).unwrap();
    p.set_crl_fetcher(fetch.clone());
    let outcome = tokio::time::timeout(Duration::from_secs(10), exchange(&p, addr))
        .await
        .expect("crl_fetch.timeout ends the wait");
    assert_eq!(outcome, Err(TlsErrorKind::Revoked));
    assert_eq!(fetch.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_crl_over_max_bytes_is_refused_whatever_the_fetcher_returns() {
    let (mut cfg, addr, ca, _files) = leaf_naming(URL).await;
    let crl = ca.crl(&[]);
    let p = TlsPolicy::new(&cfg, None).unwrap();
    p.set_crl_fetcher(FakeCrlFetch::serving(URL, crl.clone()));
    assert!(exchange(&p, addr).await.is_ok(), "the CRL itself is good");
    cfg.crl_fetch.max_bytes = crl.len() - 1;
    let p = TlsPolicy::new(&cfg, None).unwrap();
    p.set_crl_fetcher(FakeCrlFetch::serving(URL, crl));
    assert_eq!(exchange(&p, addr).await, Err(TlsErrorKind::Revoked));
}

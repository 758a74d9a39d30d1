//! The interception CA: creation rules, export, and leaves that verify for their host.

use crate::common;

use std::sync::Arc;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use waypost_tls::cli::{run, CaCommand};
use waypost_tls::{Ca, TlsConfig, TlsPolicy};

#[test]
fn ca_init_creates_a_private_key_readable_only_by_its_owner_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let cert = Ca::init(dir.path()).unwrap();
    assert!(cert.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let before = std::fs::read(dir.path().join("ca.key")).unwrap();
    assert!(matches!(
        Ca::init(dir.path()),
        Err(waypost_tls::intercept::CaError::Exists(_))
    ));
    assert_eq!(
        run(CaCommand::Init {
            dir: dir.path().to_path_buf()
        }),
        1
    );
    assert_eq!(
        std::fs::read(dir.path().join("ca.key")).unwrap(),
        before,
        "key untouched"
    );
}

#[test]
fn export_gives_the_certificate_that_init_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let cert = Ca::init(dir.path()).unwrap();
    let ca = Ca::load(dir.path()).unwrap();
    assert_eq!(ca.export_pem(), std::fs::read_to_string(cert).unwrap());
    assert!(ca.export_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(
        run(CaCommand::Export {
            dir: dir.path().to_path_buf()
        }),
        0
    );
    assert_eq!(
        run(CaCommand::Export {
            dir: dir.path().join("missing")
        }),
        1
    );
}

#[tokio::test]
async fn a_minted_leaf_verifies_against_the_ca_for_its_host_and_is_cached() {
    let dir = tempfile::tempdir().unwrap();
    let ca_pem = Ca::init(dir.path()).unwrap();
    let mut cfg = TlsConfig {
        use_system_roots: false,
        ca_files: vec![ca_pem],
        ..TlsConfig::default()
    };
    cfg.intercept.enabled = true;
    cfg.intercept.hosts = vec![".origin.test".into()];
    cfg.intercept.ca_dir = dir.path().to_path_buf();
    let reg = prometheus::Registry::new();
    let policy = TlsPolicy::new(&cfg, Some(&reg)).unwrap();
    assert!(policy.intercepts("origin.test") && !policy.intercepts("other.test"));
    let ca = policy.intercept_ca().unwrap();
    let server = ca.server_config_for(HOST).unwrap();
    assert!(
        Arc::ptr_eq(&server, &ca.server_config_for(HOST).unwrap()),
        "second call is served from cache"
    );
    assert_eq!(
        server.alpn_protocols,
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    );
    let addr = serve(server).await;
    assert_eq!(exchange(&policy, addr).await, Ok("client=none\n".into()));

    // The same leaf presented for another name is refused.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let err = waypost_tls::connect(&policy, "other.test", tcp, &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind, waypost_tls::TlsErrorKind::NameMismatch);
    assert_eq!(err.subject.as_deref(), Some("CN=origin.test"));

    let text = metrics::text(&reg);
    assert_eq!(
        metric(&text, "waypost_tls_intercept_certs_minted_total"),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "waypost_tls_intercept_cert_cache_hits_total"),
        1.0,
        "{text}"
    );
    // `ca init` makes a CA valid for ten years (3650 days)
    assert!(
        (3600.0..3700.0).contains(&metric(&text, "waypost_tls_ca_expiry_days")),
        "{text}"
    );
}

#[tokio::test]
async fn an_intercepted_client_negotiates_h2_with_the_minted_leaf() {
    let dir = tempfile::tempdir().unwrap();
    Ca::init(dir.path()).unwrap();
    let ca = Ca::load(dir.path()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(ca.server_config_for(HOST).unwrap());
    let server = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(sock).await.unwrap();
        let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        tls.write_all(b"ok").await.unwrap();
        tls.shutdown().await.unwrap();
        alpn
    });
    let files = Files::new();
    let cfg = TlsConfig {
        use_system_roots: false,
        ca_files: vec![files.write("ca.pem", ca.export_pem().as_bytes())],
        ..TlsConfig::default()
    };
    let policy = TlsPolicy::new(&cfg, None).unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = waypost_tls::connect(&policy, HOST, tcp, &[b"h2", b"http/1.1"])
        .await
        .unwrap();
    let mut buf = Vec::new();
    tls.read_to_end(&mut buf).await.unwrap();
    assert_eq!(server.await.unwrap(), Some(b"h2".to_vec()));
}

#[test]
fn enabling_interception_without_a_ca_names_the_command_that_makes_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TlsConfig {
        use_system_roots: false,
        ..TlsConfig::default()
    };
    cfg.ca_files = vec![];
    cfg.intercept.enabled = true;
    cfg.intercept.hosts = vec!["a.test".into()];
    cfg.intercept.ca_dir = dir.path().join("nothing");
    let err = TlsPolicy::new(&cfg, None).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("tls.intercept.ca_dir: ") && text.contains("waypost ca init --dir"),
        "{text}"
    );
}

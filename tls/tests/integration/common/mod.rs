//! Peers of the TLS suites: real tokio-rustls servers on 127.0.0.1:0, a client that goes
//! through `waypost_tls::connect`, configs trusting a test CA, and a fake CRL downloader. The
//! test PKI itself (CA, leaves, server configs, files) is the shared
//! `waypost_testsupport::ca`, re-exported here.
#![allow(dead_code, unused_imports)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rustls::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use waypost_tls::{CrlDownload, CrlFetch, TlsConfig, TlsErrorKind, TlsPolicy};

pub use waypost_testsupport::ca::{
    provider, server_config, server_config_requiring_client_cert, Files, Leaf, Minted, TestCa, HOST,
};
pub use waypost_testsupport::metrics::{self, find, metric};

/// A TLS server that answers one line per connection: `client=<subject of client cert or none>`.
pub async fn serve(cfg: Arc<ServerConfig>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(sock).await else {
                    return;
                };
                let who = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .map(|c| waypost_tls::certinfo::subject(&c[0]))
                    .unwrap_or_else(|| "none".into());
                let mut buf = [0u8; 64];
                let _ = tls.read(&mut buf).await;
                let _ = tls.write_all(format!("client={who}\n").as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

/// Connects through `waypost_tls::connect`, says hello and returns the server's line, or the
/// classified error from whichever step failed.
pub async fn exchange(policy: &TlsPolicy, addr: SocketAddr) -> Result<String, TlsErrorKind> {
    exchange_with(policy, addr, &policy.settings_for(HOST)).await
}

/// As [`exchange`], under the connection settings `settings`.
pub async fn exchange_with(
    policy: &TlsPolicy,
    addr: SocketAddr,
    settings: &waypost_tls::ConnSettings,
) -> Result<String, TlsErrorKind> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut tls = waypost_tls::connect_with(policy, HOST, tcp, &[], settings)
        .await
        .map_err(|e| e.kind)?;
    tls.write_all(b"hi\n")
        .await
        .map_err(|e| waypost_tls::classify(&e))?;
    let mut out = String::new();
    tls.read_to_string(&mut out)
        .await
        .map_err(|e| waypost_tls::classify(&e))?;
    Ok(out)
}

/// A config trusting only `ca` (no system roots).
pub fn config_trusting(files: &Files, ca: &TestCa) -> TlsConfig {
    TlsConfig {
        use_system_roots: false,
        ca_files: vec![files.write("ca.pem", ca.pem.as_bytes())],
        ..TlsConfig::default()
    }
}

pub fn exception(hosts: &[&str], allow: &[&str]) -> waypost_tls::config::ExceptionConfig {
    waypost_tls::config::ExceptionConfig {
        hosts: hosts.iter().map(|s| s.to_string()).collect(),
        allow: allow.iter().map(|s| s.to_string()).collect(),
    }
}

/// A CRL downloader for tests: serves fixed bodies by URL (any other URL fails as a refused
/// connection would), or never answers; counts the downloads asked of it.
#[derive(Default)]
pub struct FakeCrlFetch {
    pub bodies: HashMap<String, Vec<u8>>,
    pub hang: bool,
    pub hits: AtomicUsize,
}

impl FakeCrlFetch {
    pub fn serving(url: &str, body: Vec<u8>) -> Arc<FakeCrlFetch> {
        Arc::new(FakeCrlFetch {
            bodies: HashMap::from([(url.to_string(), body)]),
            ..FakeCrlFetch::default()
        })
    }
}

impl CrlFetch for FakeCrlFetch {
    fn get(&self, url: String, _max: usize) -> CrlDownload {
        self.hits.fetch_add(1, Ordering::SeqCst);
        if self.hang {
            return Box::pin(std::future::pending());
        }
        let answer = self
            .bodies
            .get(&url)
            .cloned()
            .ok_or_else(|| format!("connect to {url}: connection refused"));
        Box::pin(async move { answer })
    }
}

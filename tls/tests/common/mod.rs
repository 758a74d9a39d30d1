//! Peers of the TLS suites: real tokio-rustls servers on 127.0.0.1:0, a client that goes
//! through `waypost_tls::connect`, configs trusting a test CA, and a tiny HTTP server for
//! CRLs. The test PKI itself (CA, leaves, server configs, files) is the shared
//! `waypost_testsupport::ca`, re-exported here.
#![allow(dead_code, unused_imports)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rustls::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use waypost_tls::{TlsConfig, TlsErrorKind, TlsPolicy};

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
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut tls = waypost_tls::connect(policy, HOST, tcp, &[])
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

/// An HTTP server answering every GET with `body`; returns its address and a request counter.
pub async fn serve_http(body: Vec<u8>) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!("HTTP/1.0 200 OK\r\nContent-Type: application/pkix-crl\r\nContent-Length: {}\r\n\r\n", body.len());
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body).await;
            });
        }
    });
    (addr, hits)
}

//! In-process harness: start waypost on 127.0.0.1:0 with a config tweak, in-process origins,
//! and a small HTTP client that speaks to the proxy with hyper.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use waypost::body::{self, Body};
use waypost::config::{self, raw::RawConfig};
use waypost::listen::server::Running;

pub use waypost_testsupport::metrics::metric;

/// A TCP server on loopback that echoes what it reads (a tunnel's target).
pub async fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// A validated config listening on 127.0.0.1:0, after `tweak`. PAC scripts run in worker
/// processes of the built `waypost` binary (the test binary cannot serve `pac-worker`).
pub fn config(tweak: impl FnOnce(&mut RawConfig)) -> config::Config {
    let mut raw = RawConfig::default();
    raw.listen = vec!["127.0.0.1:0".into()];
    raw.pac.worker_exe = env!("CARGO_BIN_EXE_waypost").into();
    // test origins listen on ephemeral ports: any CONNECT port (tests of the default reset it)
    raw.tls.connect_ports = vec![];
    tweak(&mut raw);
    config::validate(&raw, &HashMap::new()).unwrap_or_else(|p| panic!("test config invalid: {p:?}"))
}

pub async fn start_proxy(tweak: impl FnOnce(&mut RawConfig)) -> Running {
    waypost::listen::server::start(config(tweak))
        .await
        .expect("proxy starts")
}

/// An in-process HTTP/1.1 origin that counts accepted connections.
pub struct Origin {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
}

impl Origin {
    pub async fn start<F, Fut>(handler: F) -> Origin
    where
        F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let h = handler.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let h = h.clone();
                        async move { Ok::<_, Infallible>(h(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Origin { addr, connections }
    }

    /// An origin that answers every request with 200 and a body naming method and path.
    pub async fn echo() -> Origin {
        Origin::start(|req: Request<Incoming>| async move {
            let mut text = format!("{} {}\n", req.method(), req.uri());
            for (k, v) in req.headers() {
                text.push_str(&format!("{k}: {}\n", v.to_str().unwrap_or("?")));
            }
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            text.push_str(&format!("body-len: {}\n", body.len()));
            Response::new(body::full(text))
        })
        .await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

/// A client connection to the proxy (keep-alive), speaking absolute-form HTTP/1.1.
pub struct Client {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Client {
    pub async fn connect(proxy: SocketAddr) -> Client {
        let tcp = TcpStream::connect(proxy).await.unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Client { sender }
    }

    pub async fn send(
        &mut self,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, hyper::Error> {
        self.sender.ready().await?;
        self.sender.send_request(req).await
    }

    pub async fn get(&mut self, url: &str) -> (u16, http::HeaderMap, String) {
        let req = Request::get(url)
            .header("host", host_of(url))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = self.send(req).await.expect("response");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }
}

/// The `Host` for `url`: its authority, or none for an origin-form path (an admin request,
/// whose query may hold a URL of its own).
pub fn host_of(url: &str) -> String {
    if url.starts_with('/') {
        return String::new();
    }
    url.split("://")
        .nth(1)
        .unwrap_or(url)
        .split('/')
        .next()
        .unwrap_or("")
        .to_string()
}

/// One GET through the proxy on a new connection.
pub async fn get(proxy: SocketAddr, url: &str) -> (u16, http::HeaderMap, String) {
    Client::connect(proxy).await.get(url).await
}

/// Sends raw bytes to `addr` and reads until the peer closes (or 10 s).
pub async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The proxy's `/metrics` text.
pub async fn metrics(proxy: SocketAddr) -> String {
    let (_, _, body) = get(proxy, "/metrics").await;
    body
}

/// The proxy's metrics read from its registry in-process, without a request: for conditions
/// that a request of its own would change (the connection cap, the active connections).
pub fn registry_metrics(proxy: &Running) -> String {
    waypost_testsupport::metrics::text(&proxy.app.metrics.registry)
}

/// A raw origin: accepts, reads the request head, then runs `then` on the socket.
pub async fn raw_origin<F, Fut>(then: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let then = then.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if s.read(&mut b).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(b[0]);
                }
                then(s).await;
            });
        }
    });
    addr
}

/// A TLS origin on 127.0.0.1 presenting `chain`, speaking only `versions`, answering 200
/// "secure" to one request per connection.
pub async fn tls_origin(
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> SocketAddr {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let mut buf = [0u8; 4096];
                    let _ = tls.read(&mut buf).await;
                    let _ = tls
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecure")
                        .await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    addr
}

//! The floors of bench/run.sh: the least a proxy on this machine can spend per request.
//!
//! `bench_floor relay LISTEN UPSTREAM` relays every accepted connection, byte for byte, to
//! UPSTREAM (`tokio::io::copy_bidirectional`): no HTTP at all, only the system calls and
//! wake-ups every proxy pays (a read and a write each way). `bench_floor hyper LISTEN UPSTREAM`
//! is the least HTTP proxy built on the libraries waypost uses: hyper's HTTP/1.1 server
//! for the client, one hyper client connection to UPSTREAM per client connection (driven by its
//! own task, as waypost's pooled connections are), the request target rewritten to origin form,
//! the response streamed back untouched: no routing, pool, logging, metrics or timeouts.
//!
//! Both run on tokio's multi-thread runtime (`TOKIO_WORKER_THREADS` as for waypost), set
//! `TCP_NODELAY` on both sides, and run until killed. They listen where they are told and
//! relay to one fixed upstream: benchmark tools for loopback, not proxies for anyone.

use std::sync::{Arc, Mutex};

use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

const USAGE: &str = "usage: bench_floor relay|hyper LISTEN UPSTREAM";

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, listen, upstream] = args.as_slice() else {
        return Err(USAGE.into());
    };
    let hyper_mode = match mode.as_str() {
        "relay" => false,
        "hyper" => true,
        _ => return Err(USAGE.into()),
    };
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("bench_floor: listen on {listen}: {e}"))?;
    let upstream: Arc<str> = upstream.as_str().into();
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let _ = client.set_nodelay(true);
        let upstream = upstream.clone();
        tokio::spawn(async move {
            if hyper_mode {
                serve_http(client, upstream).await;
            } else {
                relay(client, &upstream).await;
            }
        });
    }
}

async fn dial(upstream: &str) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect(upstream).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

async fn relay(mut client: TcpStream, upstream: &str) {
    if let Ok(mut up) = dial(upstream).await {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
    }
}

type Upstream = Arc<Mutex<Option<SendRequest<Incoming>>>>;

async fn serve_http(client: TcpStream, upstream: Arc<str>) {
    let conn: Upstream = Arc::new(Mutex::new(None));
    let svc = hyper::service::service_fn(move |req| forward(req, conn.clone(), upstream.clone()));
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(client), svc)
        .await;
}

async fn forward(
    mut req: hyper::Request<Incoming>,
    conn: Upstream,
    upstream: Arc<str>,
) -> Result<hyper::Response<Incoming>, Box<dyn std::error::Error + Send + Sync>> {
    let held = conn.lock().expect("not poisoned").take();
    let mut sender = match held {
        Some(s) if !s.is_closed() => s,
        _ => {
            let io = TokioIo::new(dial(&upstream).await?);
            let (sender, c) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(c);
            sender
        }
    };
    let origin_form = req.uri().path_and_query().map_or("/", |p| p.as_str());
    *req.uri_mut() = origin_form.parse()?;
    sender.ready().await?;
    let resp = sender.send_request(req).await?;
    *conn.lock().expect("not poisoned") = Some(sender);
    Ok(resp)
}

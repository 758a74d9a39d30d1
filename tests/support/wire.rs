//! Client-side wire helpers for request-path tests: raw response heads, a minimal WebSocket
//! client (RFC 6455 handshake and frames), streamed request bodies of known or unknown length,
//! and polling a condition with a deadline instead of sleeping.
//!
//! Like `harness`, this speaks to waypost only over sockets; it knows nothing of its internals.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The sample handshake of RFC 6455 section 1.3: this key must be answered with [`WS_ACCEPT`].
pub const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const WS_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// Reads a response head (up to the blank line) within `within`; panics on EOF or timeout.
pub async fn read_head(s: &mut TcpStream, within: Duration) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    let read = async {
        while !head.ends_with(b"\r\n\r\n") {
            let n = s.read(&mut byte).await.expect("read the response head");
            assert!(
                n > 0,
                "closed before the end of the response head: {:?}",
                String::from_utf8_lossy(&head)
            );
            head.push(byte[0]);
        }
    };
    if tokio::time::timeout(within, read).await.is_err() {
        panic!("no complete response head within {within:?}");
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// The status code of a raw response head (`HTTP/1.1 101 ...` -> 101; 0 when unparsable).
pub fn status_of(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The value of header `name` in a raw response head (case-insensitive name).
pub fn header_of<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Sends a WebSocket upgrade for `url` (absolute form, to a proxy) with [`WS_KEY`] and returns
/// the connection and the response head.
pub async fn websocket_upgrade(proxy: SocketAddr, url: &str) -> (TcpStream, String) {
    let host = super::harness::host_of(url);
    let mut s = TcpStream::connect(proxy)
        .await
        .expect("connect to the proxy");
    let req = format!(
        "GET {url} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("send the upgrade");
    let head = read_head(&mut s, Duration::from_secs(20)).await;
    (s, head)
}

/// A masked client frame (FIN set) with `opcode` and `payload` (< 64 KiB).
pub fn ws_client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut f = vec![0x80 | opcode];
    if payload.len() < 126 {
        f.push(0x80 | payload.len() as u8);
    } else {
        f.push(0x80 | 126);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Reads one unmasked server frame: (first byte = FIN|opcode, payload).
pub async fn ws_read_frame(s: &mut TcpStream, within: Duration) -> (u8, Vec<u8>) {
    let read = async {
        let mut h = [0u8; 2];
        s.read_exact(&mut h).await?;
        assert_eq!(h[1] & 0x80, 0, "server frames are not masked");
        let len = match h[1] & 0x7f {
            126 => {
                let mut l = [0u8; 2];
                s.read_exact(&mut l).await?;
                u16::from_be_bytes(l) as usize
            }
            127 => {
                let mut l = [0u8; 8];
                s.read_exact(&mut l).await?;
                u64::from_be_bytes(l) as usize
            }
            n => n as usize,
        };
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).await?;
        Ok::<_, std::io::Error>((h[0], payload))
    };
    match tokio::time::timeout(within, read).await {
        Ok(Ok(frame)) => frame,
        Ok(Err(e)) => panic!("the WebSocket connection broke before a whole frame came back: {e}"),
        Err(_) => panic!("no WebSocket frame came back within {within:?}"),
    }
}

/// A request body of `len` bytes that is not one repeated byte (so reordering shows).
pub fn patterned_body(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x2545_f491;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// SHA-256 of `data` in hex, by coreutils' `sha256sum` (no hashing crate needed).
pub fn sha256_hex(data: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run sha256sum (coreutils)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(data)
        .expect("feed sha256sum");
    let out = child.wait_with_output().expect("sha256sum output");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

type TestBody = BoxBody<Bytes, Infallible>;

/// POSTs `data` to `url` through `proxy` on a new connection: with `Content-Length` when
/// `chunked` is false, else as a stream of 64 KiB pieces of unknown length (chunked).
/// Returns status, headers and the response body as text.
pub async fn post(
    proxy: SocketAddr,
    url: &str,
    data: Vec<u8>,
    chunked: bool,
) -> Result<(u16, http::HeaderMap, String), String> {
    let data = Bytes::from(data);
    let body: TestBody = if chunked {
        let pieces: Vec<Result<Frame<Bytes>, Infallible>> = (0..data.len())
            .step_by(1 << 16)
            .map(|i| Ok(Frame::data(data.slice(i..(i + (1 << 16)).min(data.len())))))
            .collect();
        StreamBody::new(futures_util::stream::iter(pieces)).boxed()
    } else {
        Full::new(data).boxed()
    };
    let req = Request::post(url)
        .header("host", super::harness::host_of(url))
        .header("content-type", "application/octet-stream")
        .body(body)
        .unwrap();
    let resp = send(proxy, req)
        .await
        .map_err(|e| format!("no response: {e}"))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{status} response body broke: {e}"))?
        .to_bytes();
    Ok((status, headers, String::from_utf8_lossy(&body).into_owned()))
}

/// Sends one request on a new connection to `proxy` (hyper client, upgrades enabled).
pub async fn send(proxy: SocketAddr, req: Request<TestBody>) -> hyper::Result<Response<Incoming>> {
    let tcp = TcpStream::connect(proxy)
        .await
        .expect("connect to the proxy");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    sender.send_request(req).await
}

//! Targets for what the network and the user hand the proxy itself: request targets, SOCKS
//! replies, DHCP answers to WPAD discovery, and configuration files.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_socks::tcp::{Socks4Stream, Socks5Stream};
use waypost::config::{load_with_env, Overrides};
use waypost::net::wpad::dhcp::parse_dhcp_ack;
use waypost::target::{Host, ProxyAddr, Target};

/// Request targets as a client sends them: CONNECT authorities (`host:port`, `[v6]:port`) and
/// absolute-form URIs, plus proxy addresses as a PAC or the config names them. Any text must
/// parse or be refused (a 400 with a reason), never panic; a parsed CONNECT target printed back
/// as an authority must parse to the same target.
pub fn request_target(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(target) = Target::from_connect(text) {
        let again = Target::from_connect(&target.authority())
            .unwrap_or_else(|e| panic!("{:?} printed as {:?}: {e}", text, target.authority()));
        assert_eq!(again.host, target.host);
        assert_eq!(again.port, target.port);
        let _ = target.host_header();
    }
    if let Ok(uri) = text.parse::<http::Uri>() {
        for reject_userinfo in [false, true] {
            if let Ok(target) = Target::from_absolute(&uri, reject_userinfo) {
                let _ = target.host_header();
                let _ = target.host.is_loopback();
            }
        }
    }
    if let Ok(host) = Host::parse(text) {
        let _ = host.to_authority_host();
    }
    if let Ok(proxy) = ProxyAddr::parse(text) {
        let _ = proxy.label();
    }
}

/// DHCP replies to waypost's DHCPINFORM (any host on the LAN can send one): the WPAD option
/// reader must accept or refuse any datagram without panicking. The transaction id is taken
/// from the datagram itself so the input reaches the option parser, not only the xid check.
pub fn dhcp_ack(data: &[u8]) {
    let xid = match data.get(4..8) {
        Some(b) => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        None => 0,
    };
    if let Ok(ack) = parse_dhcp_ack(data, xid) {
        if let Some(url) = ack.wpad_url {
            assert!(!url.is_empty() && url.trim() == url, "{url:?}");
        }
    }
}

/// One scratch file per process (libFuzzer forks jobs as separate processes).
fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("waypost-fuzz-config-{}.toml", std::process::id()))
    })
}

/// The config loader, TOML text -> validated `Config`: a hand-edited or half-written file must
/// load or be refused with errors, never panic. The text goes through the same path as
/// `waypost --config FILE` (a file, no environment, no command-line overrides).
pub fn config_load(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = scratch();
    std::fs::write(path, text).expect("scratch file in the temp dir");
    match load_with_env(Some(path), &Overrides::default(), HashMap::new()) {
        Ok(config) => drop(config),
        Err(err) => assert!(!err.to_string().is_empty()),
    }
}

/// A peer that answers every read with the next input bytes (then EOF) and swallows writes.
struct Replay {
    input: Vec<u8>,
    at: usize,
}

impl AsyncRead for Replay {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let rest = &self.input[self.at..];
        let n = rest.len().min(buf.remaining());
        buf.put_slice(&rest[..n]);
        self.at += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// SOCKS proxy replies (method choice, RFC 1929 auth status, CONNECT reply; SOCKS4 reply): the
/// handshake waypost runs through tokio-socks over a stream that answers with the input bytes
/// must succeed or fail, never panic or wait for more than it was given. The first byte picks
/// the handshake: SOCKS5 without credentials, SOCKS5 with a password, SOCKS4a.
pub fn socks_reply(data: &[u8]) {
    let Some((&mode, reply)) = data.split_first() else {
        return;
    };
    let peer = Replay {
        input: reply.to_vec(),
        at: 0,
    };
    let target = ("intranet.example.test", 443);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime without drivers");
    runtime.block_on(async move {
        let _ = match mode % 3 {
            0 => Socks5Stream::connect_with_socket(peer, target)
                .await
                .map(|s| s.into_inner().at),
            1 => Socks5Stream::connect_with_password_and_socket(peer, target, "alice", "secret")
                .await
                .map(|s| s.into_inner().at),
            _ => Socks4Stream::connect_with_socket(peer, target)
                .await
                .map(|s| s.into_inner().at),
        };
    });
}

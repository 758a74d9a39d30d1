//! SOCKS proxy replies (method choice, RFC 1929 auth status, CONNECT reply; SOCKS4 reply): the
//! handshake waypost runs through tokio-socks over a stream that answers with the fuzzer's
//! bytes must succeed or fail, never panic or wait for more than it was given. The first byte
//! picks the handshake: SOCKS5 without credentials, SOCKS5 with a password, SOCKS4a.
#![no_main]

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_socks::tcp::{Socks4Stream, Socks5Stream};

/// A peer that answers every read with the next fuzzer bytes (then EOF) and swallows writes.
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

fuzz_target!(|data: &[u8]| {
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
});

//! Finding the plain TCP socket under a tunnel's stream, so that its bytes can be relayed
//! without passing through waypost's memory ([`super::splice`]).
//!
//! A tunnel's two ends arrive wrapped: the client's as hyper's upgraded connection (with the
//! bytes hyper had already read past the CONNECT head), maybe behind the SNI gate's replay; the
//! upstream's behind a send timeout, or as the upgraded connection of a CONNECT through an
//! upstream proxy. [`unwrap`] peels those layers and keeps what they held: bytes already read
//! (to be sent first) and the send timeout. A TLS layer (an HTTPS upstream proxy) cannot be
//! peeled: such a stream is handed back unchanged for the buffered relay.

use std::any::Any;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::io::Rewind;
use crate::upstream::io::{BoxIo, SendTimeout};

/// A plain socket with what its wrappers held.
#[derive(Debug)]
pub struct RawSide {
    /// The socket's registration for network changes: dropped before `tcp` closes.
    pub live: Option<crate::upstream::live::Registered>,
    pub tcp: TcpStream,
    /// Bytes already read from `tcp` that the other side has not been sent yet.
    pub pending: Bytes,
    /// Fail a write to `tcp` that makes no progress for this long.
    pub send_timeout: Option<Duration>,
}

impl RawSide {
    fn plain(tcp: TcpStream) -> Self {
        RawSide {
            live: None,
            tcp,
            pending: Bytes::new(),
            send_timeout: None,
        }
    }

    /// Bytes read before the ones already pending (an outer layer read them later).
    fn after(mut self, later: Bytes) -> Self {
        if self.pending.is_empty() {
            self.pending = later;
        } else if !later.is_empty() {
            let mut all = BytesMut::with_capacity(self.pending.len() + later.len());
            all.extend_from_slice(&self.pending);
            all.extend_from_slice(&later);
            self.pending = all.freeze();
        }
        self
    }

    /// Back to a stream for the buffered relay, replaying the pending bytes.
    pub fn into_io(self) -> BoxIo {
        // a registration only ever comes with a send timeout (both from `SendTimeout`)
        let io: BoxIo = match self.send_timeout {
            Some(t) => Box::new(SendTimeout::new(self.tcp, t).with_live(self.live)),
            None => Box::new(self.tcp),
        };
        match self.pending.is_empty() {
            true => io,
            false => Box::new(Rewind::new(self.pending, io)),
        }
    }
}

/// Takes `io` as a `T` when it is one.
fn take<T: Any>(io: BoxIo) -> Result<T, BoxIo> {
    if !io.as_any().is::<T>() {
        return Err(io);
    }
    match io.into_any().downcast::<T>() {
        Ok(t) => Ok(*t),
        // `is::<T>()` just said it is one
        Err(_) => unreachable!("a stream changed type"),
    }
}

/// The socket under `io`, or `io` itself when a layer cannot be peeled.
pub fn unwrap(io: BoxIo) -> Result<RawSide, BoxIo> {
    let io = match take::<TcpStream>(io) {
        Ok(tcp) => return Ok(RawSide::plain(tcp)),
        Err(io) => io,
    };
    let io = match take::<SendTimeout<TcpStream>>(io) {
        Ok(s) => {
            let (tcp, timeout, live) = s.into_parts();
            return Ok(RawSide {
                send_timeout: Some(timeout),
                live,
                ..RawSide::plain(tcp)
            });
        }
        Err(io) => io,
    };
    // a CONNECT tunnel through an upstream proxy: the send timeout around the upgraded stream
    let io = match take::<SendTimeout<BoxIo>>(io) {
        Ok(s) => return behind_timeout(s),
        Err(io) => io,
    };
    let io = match take::<TokioIo<Upgraded>>(io) {
        Ok(up) => return upgraded(up.into_inner()),
        Err(io) => io,
    };
    let io = match take::<Rewind<TokioIo<Upgraded>>>(io) {
        Ok(r) => {
            let (prefix, up) = r.into_parts();
            return match upgraded(up.into_inner()) {
                Ok(raw) => Ok(raw.after(prefix)),
                Err(inner) => Err(Box::new(Rewind::new(prefix, inner))),
            };
        }
        Err(io) => io,
    };
    match take::<Rewind<TcpStream>>(io) {
        Ok(r) => {
            let (prefix, tcp) = r.into_parts();
            Ok(RawSide::plain(tcp).after(prefix))
        }
        Err(io) => Err(io),
    }
}

/// The socket under a send timeout around another stream (the tunnel through an upstream
/// proxy, after its 2xx): the outer timeout holds for the socket; a registration for network
/// changes is kept from whichever layer made it. A stream that cannot be peeled is wrapped back.
fn behind_timeout(s: SendTimeout<BoxIo>) -> Result<RawSide, BoxIo> {
    let (inner, timeout, live) = s.into_parts();
    match unwrap(inner) {
        Ok(raw) => Ok(RawSide {
            send_timeout: Some(timeout),
            live: live.or(raw.live),
            ..raw
        }),
        Err(inner) => Err(Box::new(SendTimeout::new(inner, timeout).with_live(live))),
    }
}

/// The socket under a connection hyper handed over after CONNECT or 101: the client's own
/// socket, or the stream to an upstream proxy (peeled further).
fn upgraded(up: Upgraded) -> Result<RawSide, BoxIo> {
    let up = match up.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => return Ok(RawSide::plain(parts.io.into_inner()).after(parts.read_buf)),
        Err(up) => up,
    };
    match up.downcast::<TokioIo<BoxIo>>() {
        Ok(parts) => match unwrap(parts.io.into_inner()) {
            Ok(raw) => Ok(raw.after(parts.read_buf)),
            Err(inner) => Err(Box::new(Rewind::new(parts.read_buf, inner))),
        },
        Err(up) => Err(Box::new(TokioIo::new(up))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::socket_pair as pair;

    #[tokio::test]
    async fn a_socket_behind_a_send_timeout_is_found_with_its_timeout() {
        let (a, _b) = pair().await;
        let io: BoxIo = Box::new(SendTimeout::new(a, Duration::from_secs(7)));
        let Ok(raw) = unwrap(io) else {
            panic!("not found as a plain socket")
        };
        assert_eq!(raw.send_timeout, Some(Duration::from_secs(7)));
        assert!(raw.pending.is_empty());
    }

    #[tokio::test]
    async fn replayed_bytes_come_out_as_pending_in_order() {
        let (a, _b) = pair().await;
        let io: BoxIo = Box::new(Rewind::new(Bytes::from_static(b"hello"), a));
        let Ok(raw) = unwrap(io) else {
            panic!("not found as a plain socket")
        };
        assert_eq!(&raw.pending[..], b"hello");
        let raw = raw.after(Bytes::from_static(b" world"));
        assert_eq!(&raw.pending[..], b"hello world");
    }

    #[tokio::test]
    async fn a_socket_under_a_timeout_around_a_boxed_stream_is_found_with_the_outer_timeout() {
        // the shape of a tunnel through an upstream proxy: a send timeout around a boxed
        // stream, here a socket with replayed bytes (there: hyper's upgraded connection)
        let (a, _b) = pair().await;
        let replayed: BoxIo = Box::new(Rewind::new(Bytes::from_static(b"early"), a));
        let io: BoxIo = Box::new(SendTimeout::new(replayed, Duration::from_secs(9)));
        let Ok(raw) = unwrap(io) else {
            panic!("not found as a plain socket")
        };
        assert_eq!(raw.send_timeout, Some(Duration::from_secs(9)));
        assert_eq!(&raw.pending[..], b"early");
    }

    #[tokio::test]
    async fn a_stream_under_a_timeout_that_cannot_be_peeled_is_handed_back() {
        let (a, _b) = tokio::io::duplex(64);
        let io: BoxIo = Box::new(SendTimeout::new(
            Box::new(a) as BoxIo,
            Duration::from_secs(9),
        ));
        assert!(unwrap(io).is_err());
    }

    #[tokio::test]
    async fn a_stream_that_is_not_a_socket_is_handed_back() {
        let (a, _b) = tokio::io::duplex(64);
        let io: BoxIo = Box::new(a);
        assert!(unwrap(io).is_err());
    }
}

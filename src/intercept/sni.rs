//! The SNI gate for tunnels that are not intercepted: read the client's ClientHello (bounded in
//! size and time), ask the policy about its server name, and hand back a stream that replays
//! what was read so the relay forwards every byte. Nothing is decrypted.
//!
//! The decision itself is `TlsPolicy::sni_allowed`; this module only gathers its input. A tunnel
//! that does not start with a ClientHello (not TLS, or a server-first protocol whose client
//! stays silent until the timeout) is judged as "no SNI": it passes only when the rules accept a
//! missing SNI (no allow list and no `require_sni`).

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use waypost_tls::{parse_client_hello_sni, SniPeek};

use crate::app::App;
use crate::relay::io::Rewind;
use crate::upstream::io::BoxIo;

/// Most bytes read while looking for the end of the ClientHello.
pub const MAX_PEEK: usize = 16 * 1024;

/// What the start of a tunnel showed.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// A complete ClientHello with this server name (or none).
    Hello(Option<String>),
    /// Something other than a ClientHello, or silence until the timeout.
    NotTls,
}

/// Whether any SNI rule is configured (otherwise the gate reads nothing).
pub fn has_rules(app: &App) -> bool {
    let r = &app.cfg.tls.sni_rules;
    !r.allow.is_empty() || !r.deny.is_empty() || r.require_sni
}

/// Checks the SNI of the client's ClientHello against `tls.sni_rules`; returns a stream that
/// still yields every byte read from the client, or the reason for refusing the tunnel.
pub async fn gate<IO>(app: &App, mut io: IO) -> Result<BoxIo, String>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    if !has_rules(app) {
        return Ok(Box::new(io));
    }
    let mut buf = BytesMut::with_capacity(2048);
    let timeout = app.cfg.timeouts.client_header;
    let seen = match tokio::time::timeout(timeout, read_hello(&mut io, &mut buf)).await {
        Ok(seen) => seen?,
        Err(_) if buf.is_empty() => Seen::NotTls,
        Err(_) => {
            return Err(format!(
                "the client sent no complete ClientHello within {timeout:?}"
            ))
        }
    };
    let sni = match &seen {
        Seen::Hello(sni) => sni.as_deref(),
        Seen::NotTls => None,
    };
    if !app.tls.sni_allowed(sni) {
        return Err(match seen {
            Seen::Hello(Some(name)) => format!("SNI {name} is not allowed by tls.sni_rules"),
            Seen::Hello(None) => "a ClientHello without SNI is not allowed by tls.sni_rules".into(),
            Seen::NotTls => {
                "the tunnel did not start with a TLS ClientHello, so tls.sni_rules cannot pass it"
                    .into()
            }
        });
    }
    tracing::debug!(sni = ?sni, "tunnel passed the SNI rules");
    Ok(Box::new(Rewind::new(buf.freeze(), io)))
}

/// Reads into `buf` until the ClientHello is complete or clearly absent.
async fn read_hello<IO>(io: &mut IO, buf: &mut BytesMut) -> Result<Seen, String>
where
    IO: AsyncRead + Unpin,
{
    loop {
        match parse_client_hello_sni(buf) {
            SniPeek::Complete(sni) => return Ok(Seen::Hello(sni)),
            SniPeek::NotTls => return Ok(Seen::NotTls),
            SniPeek::NeedMore if buf.len() >= MAX_PEEK => {
                return Err(format!(
                    "the ClientHello is larger than {MAX_PEEK} bytes; refused unread"
                ))
            }
            SniPeek::NeedMore => {}
        }
        let room = MAX_PEEK - buf.len();
        let mut chunk = (&mut *io).take(room as u64);
        let n = chunk
            .read_buf(buf)
            .await
            .map_err(|e| format!("reading the ClientHello failed: {e}"))?;
        if n == 0 {
            return Err("the client closed the tunnel before its ClientHello was complete".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A minimal TLS 1.2 ClientHello carrying `name` as SNI.
    fn hello(name: &str) -> Vec<u8> {
        let n = name.as_bytes();
        let mut sni = Vec::new();
        sni.extend_from_slice(&((n.len() + 3) as u16).to_be_bytes());
        sni.push(0);
        sni.extend_from_slice(&(n.len() as u16).to_be_bytes());
        sni.extend_from_slice(n);
        let mut ext = vec![0, 0];
        ext.extend_from_slice(&(sni.len() as u16).to_be_bytes());
        ext.extend_from_slice(&sni);
        let mut body = vec![3, 3];
        body.extend_from_slice(&[0; 32]);
        body.push(0); // session id
        body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one cipher suite
        body.extend_from_slice(&[1, 0]); // null compression
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let mut hs = vec![1, 0];
        hs.extend_from_slice(&(body.len() as u16).to_be_bytes());
        hs.extend_from_slice(&body);
        let mut rec = vec![0x16, 3, 1];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }

    #[tokio::test]
    async fn a_hello_split_over_several_writes_is_read_whole() {
        let bytes = hello("split.example");
        let (mut client, mut server) = tokio::io::duplex(4096);
        let (a, b) = bytes.split_at(7);
        let (a, b) = (a.to_vec(), b.to_vec());
        tokio::spawn(async move {
            client.write_all(&a).await.unwrap();
            tokio::task::yield_now().await;
            client.write_all(&b).await.unwrap();
            client.write_all(b"rest").await.unwrap();
        });
        let mut buf = BytesMut::new();
        let seen = read_hello(&mut server, &mut buf).await.unwrap();
        assert_eq!(seen, Seen::Hello(Some("split.example".into())));
        assert!(buf.starts_with(&bytes));
    }

    #[tokio::test]
    async fn plaintext_is_recognised_as_not_tls_after_one_read() {
        let (mut client, mut server) = tokio::io::duplex(4096);
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let mut buf = BytesMut::new();
        assert_eq!(
            read_hello(&mut server, &mut buf).await.unwrap(),
            Seen::NotTls
        );
    }

    #[tokio::test]
    async fn a_client_that_closes_mid_hello_is_refused() {
        let (mut client, mut server) = tokio::io::duplex(4096);
        client.write_all(&hello("x.example")[..20]).await.unwrap();
        drop(client);
        let mut buf = BytesMut::new();
        assert!(read_hello(&mut server, &mut buf).await.is_err());
    }
}

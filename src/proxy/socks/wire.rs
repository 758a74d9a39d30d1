//! The SOCKS5 server side of the wire (RFC 1928 CONNECT, RFC 1929 username/password): the
//! greeting, the optional login and the request on a client connection, and the one reply.
//!
//! It owns bytes only: it decides nothing about routing and dials nothing (the CONNECT that
//! follows goes through the same pipeline as HTTP CONNECT, in `proxy::socks`). Written by hand
//! rather than with a crate: the protocol is ~100 lines, and the crate that fits
//! (fast-socks5) logs the client's password bytes at debug level through `log`, which
//! waypost's tracing subscriber would print with `-v`.
//!
//! Lifecycle of a connection: greeting (methods offered) -> method chosen: none, or
//! username/password when the caller asks for a login (judged by the caller's check; a wrong
//! one gets status 1 and the connection closes) -> request (only CONNECT; domain name, IPv4 or
//! IPv6), returned with the login given -> one reply: success, then the tunnel; or an error
//! code, then close.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::target::Host;

const VERSION: u8 = 5;
const NO_AUTH: u8 = 0x00;
const USER_PASS: u8 = 0x02;
const NO_ACCEPTABLE: u8 = 0xff;
const CMD_CONNECT: u8 = 0x01;
const ATYP_V4: u8 = 0x01;
const ATYP_NAME: u8 = 0x03;
const ATYP_V6: u8 = 0x04;

/// A reply code (RFC 1928 section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Succeeded = 0,
    GeneralFailure = 1,
    NotAllowed = 2,
    NetworkUnreachable = 3,
    HostUnreachable = 4,
    ConnectionRefused = 5,
    TtlExpired = 6,
    CommandNotSupported = 7,
    AddressTypeNotSupported = 8,
}

/// Why a SOCKS handshake ended without a CONNECT to carry out.
#[derive(Debug, thiserror::Error)]
pub enum SocksError {
    #[error("not a SOCKS5 client (version byte {0})")]
    Version(u8),
    #[error("the client offers no method waypost accepts ({0})")]
    NoAcceptableMethod(&'static str),
    #[error("wrong SOCKS username or password")]
    BadCredentials,
    #[error("malformed SOCKS message: {0}")]
    Malformed(&'static str),
    /// Answered with this reply code before closing.
    #[error("{1}")]
    Refused(Reply, String),
    #[error("client connection: {0}")]
    Io(#[from] std::io::Error),
}

/// The login a client gave (RFC 1929). Never printed: `Debug` shows the username's length only.
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    pub username: Vec<u8>,
    pub password: Vec<u8>,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Login({} bytes, password hidden)", self.username.len())
    }
}

/// How a client's login is judged (the caller's rule; this module only carries the bytes).
pub type LoginCheck<'a> = &'a (dyn Fn(&Login) -> bool + Sync);

/// What a client asked to reach, and the login it gave (when one was asked for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub host: Host,
    pub port: u16,
    pub login: Option<Login>,
}

/// Reads the greeting, the login (when `login` is set: it judges the one given) and the
/// request; answers every step but the last (the caller sends the one [`reply`]). Errors have
/// been answered already, where the protocol has an answer for them.
pub async fn handshake<IO>(
    io: &mut IO,
    login: Option<LoginCheck<'_>>,
) -> Result<Request, SocksError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let [version, n] = read_array(io).await?;
    if version != VERSION {
        return Err(SocksError::Version(version));
    }
    let mut methods = vec![0u8; n as usize];
    io.read_exact(&mut methods).await?;
    let want = if login.is_some() { USER_PASS } else { NO_AUTH };
    if !methods.contains(&want) {
        io.write_all(&[VERSION, NO_ACCEPTABLE]).await?;
        return Err(SocksError::NoAcceptableMethod(if login.is_some() {
            "username/password is required"
        } else {
            "waypost offers no authentication; set client_auth to require a login"
        }));
    }
    io.write_all(&[VERSION, want]).await?;
    let given = match login {
        Some(check) => Some(check_login(io, check).await?),
        None => None,
    };
    let (host, port) = read_request(io).await?;
    Ok(Request {
        host,
        port,
        login: given,
    })
}

/// RFC 1929: VER=1 ULEN UNAME PLEN PASSWD, answered VER=1 STATUS.
async fn check_login<IO>(io: &mut IO, check: LoginCheck<'_>) -> Result<Login, SocksError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let [ver, ulen] = read_array(io).await?;
    if ver != 1 {
        return Err(SocksError::Malformed("username/password version is not 1"));
    }
    let mut username = vec![0u8; ulen as usize];
    io.read_exact(&mut username).await?;
    let [plen] = read_array(io).await?;
    let mut password = vec![0u8; plen as usize];
    io.read_exact(&mut password).await?;
    let login = Login { username, password };
    if check(&login) {
        io.write_all(&[1, 0]).await?;
        Ok(login)
    } else {
        io.write_all(&[1, 1]).await?;
        Err(SocksError::BadCredentials)
    }
}

/// VER CMD RSV ATYP DST.ADDR DST.PORT.
async fn read_request<IO>(io: &mut IO) -> Result<(Host, u16), SocksError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let [version, cmd, _rsv, atyp] = read_array(io).await?;
    if version != VERSION {
        return Err(SocksError::Version(version));
    }
    let host = match atyp {
        ATYP_V4 => Host::Ip(IpAddr::V4(Ipv4Addr::from(read_array::<_, 4>(io).await?))),
        ATYP_V6 => Host::Ip(IpAddr::V6(Ipv6Addr::from(read_array::<_, 16>(io).await?))),
        ATYP_NAME => {
            let [len] = read_array(io).await?;
            let mut name = vec![0u8; len as usize];
            io.read_exact(&mut name).await?;
            let parsed = std::str::from_utf8(&name)
                .map_err(|_| "not UTF-8".to_string())
                .and_then(Host::parse);
            match parsed {
                Ok(h) => h,
                Err(why) => {
                    return refuse(
                        io,
                        Reply::HostUnreachable,
                        format!("invalid host name: {why}"),
                    )
                    .await
                }
            }
        }
        other => {
            return refuse(
                io,
                Reply::AddressTypeNotSupported,
                format!("address type {other} is not supported"),
            )
            .await
        }
    };
    let port = u16::from_be_bytes(read_array(io).await?);
    if cmd != CMD_CONNECT {
        let what = match cmd {
            2 => "BIND",
            3 => "UDP ASSOCIATE",
            _ => "unknown",
        };
        return refuse(
            io,
            Reply::CommandNotSupported,
            format!("SOCKS command {cmd} ({what}) is not supported; only CONNECT"),
        )
        .await;
    }
    if port == 0 {
        return refuse(
            io,
            Reply::NotAllowed,
            "port 0 is not a valid destination".into(),
        )
        .await;
    }
    Ok((host, port))
}

async fn refuse<IO, T>(io: &mut IO, code: Reply, why: String) -> Result<T, SocksError>
where
    IO: AsyncWrite + Unpin,
{
    reply(io, code).await?;
    Err(SocksError::Refused(code, why))
}

/// Sends the reply to the request. The bound address is not known (the tunnel may run through
/// proxies): 0.0.0.0:0, as many servers send.
pub async fn reply<IO>(io: &mut IO, code: Reply) -> std::io::Result<()>
where
    IO: AsyncWrite + Unpin,
{
    io.write_all(&[VERSION, code as u8, 0, ATYP_V4, 0, 0, 0, 0, 0, 0])
        .await?;
    io.flush().await
}

/// Answers a client refused before its greeting is served (outside the allow list, or over
/// the connection cap): no method is acceptable.
pub async fn refuse_greeting<IO>(io: &mut IO) -> std::io::Result<()>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = [0u8; 258];
    let _ = io.read(&mut buf).await?;
    io.write_all(&[VERSION, NO_ACCEPTABLE]).await?;
    io.shutdown().await
}

async fn read_array<IO, const N: usize>(io: &mut IO) -> std::io::Result<[u8; N]>
where
    IO: AsyncRead + Unpin,
{
    let mut b = [0u8; N];
    io.read_exact(&mut b).await?;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the handshake against `client_bytes`; returns its result and what it wrote.
    async fn run(
        client_bytes: &[u8],
        login: Option<LoginCheck<'_>>,
    ) -> (Result<Request, SocksError>, Vec<u8>) {
        let (mut client, mut server) = tokio::io::duplex(1024);
        client.write_all(client_bytes).await.unwrap();
        client.shutdown().await.unwrap();
        let r = handshake(&mut server, login).await;
        drop(server);
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.unwrap();
        (r, out)
    }

    fn app_s3cret(l: &Login) -> bool {
        l.username == b"app" && l.password == b"s3cret"
    }

    fn login() -> Option<LoginCheck<'static>> {
        Some(&app_s3cret)
    }

    #[tokio::test]
    async fn a_connect_to_a_domain_name_is_read_with_its_port() {
        let (r, out) = run(b"\x05\x01\x00\x05\x01\x00\x03\x0bexample.com\x01\xbb", None).await;
        assert_eq!(
            r.unwrap(),
            Request {
                host: Host::Name("example.com".into()),
                port: 443,
                login: None,
            }
        );
        assert_eq!(out, [5, 0]);
    }

    #[tokio::test]
    async fn ipv4_and_ipv6_addresses_are_read() {
        let (r, _) = run(
            b"\x05\x01\x00\x05\x01\x00\x01\x0a\x00\x00\x01\x00\x50",
            None,
        )
        .await;
        assert_eq!(r.unwrap().host, Host::Ip("10.0.0.1".parse().unwrap()));
        let mut m = b"\x05\x01\x00\x05\x01\x00\x04".to_vec();
        m.extend_from_slice(&"::1".parse::<Ipv6Addr>().unwrap().octets());
        m.extend_from_slice(&[0x1f, 0x90]);
        let r = run(&m, None).await.0.unwrap();
        assert_eq!((r.host, r.port), (Host::Ip("::1".parse().unwrap()), 8080));
    }

    #[tokio::test]
    async fn the_right_login_is_accepted_and_a_wrong_one_gets_status_1() {
        let ok = b"\x05\x02\x00\x02\x01\x03app\x06s3cret\x05\x01\x00\x03\x01a\x00\x50";
        let (r, out) = run(ok, login()).await;
        let r = r.unwrap();
        assert_eq!(r.port, 80);
        let given = r.login.expect("the login given is returned");
        assert_eq!(given.username, b"app");
        assert!(!format!("{given:?}").contains("s3cret"));
        assert_eq!(out, [5, 2, 1, 0]);
        let (r, out) = run(b"\x05\x01\x02\x01\x03app\x05wrong", login()).await;
        assert!(matches!(r, Err(SocksError::BadCredentials)), "{r:?}");
        assert_eq!(out, [5, 2, 1, 1]);
    }

    #[tokio::test]
    async fn a_client_without_a_login_is_refused_when_one_is_required() {
        let (r, out) = run(b"\x05\x01\x00", login()).await;
        assert!(matches!(r, Err(SocksError::NoAcceptableMethod(_))), "{r:?}");
        assert_eq!(out, [5, 0xff]);
    }

    #[tokio::test]
    async fn bind_and_udp_get_command_not_supported() {
        let (r, out) = run(
            b"\x05\x01\x00\x05\x02\x00\x01\x7f\x00\x00\x01\x00\x50",
            None,
        )
        .await;
        assert!(
            matches!(r, Err(SocksError::Refused(Reply::CommandNotSupported, _))),
            "{r:?}"
        );
        assert_eq!(out[2..4], [5, 7]);
    }

    #[tokio::test]
    async fn an_unknown_address_type_gets_its_reply_code() {
        let (r, out) = run(b"\x05\x01\x00\x05\x01\x00\x09", None).await;
        assert!(
            matches!(
                r,
                Err(SocksError::Refused(Reply::AddressTypeNotSupported, _))
            ),
            "{r:?}"
        );
        assert_eq!(out[2..4], [5, 8]);
    }

    #[tokio::test]
    async fn socks4_and_garbage_are_not_socks5() {
        let (r, out) = run(b"\x04\x01\x00\x50\x7f\x00\x00\x01\x00", None).await;
        assert!(matches!(r, Err(SocksError::Version(4))), "{r:?}");
        assert!(out.is_empty());
        let (r, _) = run(b"GET / HTTP/1.1\r\n\r\n", None).await;
        assert!(matches!(r, Err(SocksError::Version(b'G'))), "{r:?}");
    }

    #[tokio::test]
    async fn a_truncated_request_is_an_error_not_a_hang() {
        let (r, _) = run(b"\x05\x01\x00\x05\x01\x00\x03\x20short", None).await;
        assert!(matches!(r, Err(SocksError::Io(_))), "{r:?}");
    }
}

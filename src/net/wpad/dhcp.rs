//! WPAD by DHCP: a DHCPINFORM asking for option 252 ("auto-proxy-config"), as WinHTTP sends it.
//!
//! The packet codec ([`build_dhcp_inform`], [`parse_dhcp_ack`]) is pure and tested without
//! sockets. [`inform`] is the only I/O: one UDP socket per interface, bound to port 68 and to
//! the device, broadcasting to 255.255.255.255:67 and waiting (bounded) for the matching ACK.
//! It decides nothing beyond "this answer carries a usable URL"; the order of methods belongs
//! to [`super::discover`].

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use tokio::net::UdpSocket;

use super::iface::Iface;

/// DHCP option codes used here (RFC 2132, plus 252 from the WPAD draft).
const OPT_PAD: u8 = 0;
const OPT_DOMAIN_NAME: u8 = 15;
const OPT_OVERLOAD: u8 = 52;
const OPT_MESSAGE_TYPE: u8 = 53;
const OPT_SERVER_ID: u8 = 54;
const OPT_PARAMETER_REQUEST_LIST: u8 = 55;
const OPT_MAX_MESSAGE_SIZE: u8 = 57;
const OPT_CLIENT_ID: u8 = 61;
const OPT_WPAD: u8 = 252;
const OPT_END: u8 = 255;

const DHCPACK: u8 = 5;
const DHCPNAK: u8 = 6;
const DHCPINFORM: u8 = 8;

const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// Fixed BOOTP header length; options (after the cookie) start at 240.
const HEADER_LEN: usize = 236;
/// Some servers drop BOOTP messages shorter than this (RFC 1542 section 2.1).
const MIN_MESSAGE_LEN: usize = 300;

/// What a DHCPACK told us that matters for WPAD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpAck {
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// Option 252 with trailing NULs and whitespace removed; `None` when absent or empty.
    pub wpad_url: Option<String>,
    /// Option 15 (the connection-specific DNS suffix), used for DNS devolution too.
    pub domain: Option<String>,
}

/// Why a datagram is not an answer to our DHCPINFORM.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("shorter than a BOOTP header")]
    TooShort,
    #[error("not a BOOTREPLY")]
    NotAReply,
    #[error("transaction id {0:#010x} is not ours")]
    OtherTransaction(u32),
    #[error("no DHCP magic cookie")]
    NoMagicCookie,
    #[error("option {0} runs past the end of the message")]
    Truncated(u8),
    #[error("no DHCP message type")]
    NoMessageType,
    #[error("DHCPNAK")]
    Nak,
    #[error("DHCP message type {0}, not DHCPACK")]
    NotAnAck(u8),
}

/// A DHCPINFORM (RFC 2131 section 3.4) for a client that already has `ciaddr`, with hardware
/// address `hw` (Ethernet: 6 bytes; may be empty for interfaces without one), asking in
/// option 55 for the subnet mask, router, DNS servers, domain name, search list and WPAD URL.
pub fn build_dhcp_inform(xid: u32, ciaddr: Ipv4Addr, hw: &[u8]) -> Vec<u8> {
    let hw = &hw[..hw.len().min(16)];
    let mut m = Vec::with_capacity(MIN_MESSAGE_LEN);
    m.extend_from_slice(&[1, 1, hw.len() as u8, 0]); // op BOOTREQUEST, htype Ethernet, hlen, hops
    m.extend_from_slice(&xid.to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]); // secs, flags: no broadcast flag, the ACK comes to ciaddr
    m.extend_from_slice(&ciaddr.octets());
    m.extend_from_slice(&[0; 12]); // yiaddr, siaddr, giaddr
    let mut chaddr = [0u8; 16];
    chaddr[..hw.len()].copy_from_slice(hw);
    m.extend_from_slice(&chaddr);
    m.extend_from_slice(&[0; 64 + 128]); // sname, file
    debug_assert_eq!(m.len(), HEADER_LEN);
    m.extend_from_slice(&MAGIC_COOKIE);
    m.extend_from_slice(&[OPT_MESSAGE_TYPE, 1, DHCPINFORM]);
    if !hw.is_empty() {
        m.extend_from_slice(&[OPT_CLIENT_ID, hw.len() as u8 + 1, 1]);
        m.extend_from_slice(hw);
    }
    m.extend_from_slice(&[OPT_MAX_MESSAGE_SIZE, 2, 0x05, 0xdc]); // 1500
    m.extend_from_slice(&[
        OPT_PARAMETER_REQUEST_LIST,
        6,
        1,
        3,
        6,
        OPT_DOMAIN_NAME,
        119,
        OPT_WPAD,
    ]);
    m.push(OPT_END);
    if m.len() < MIN_MESSAGE_LEN {
        m.resize(MIN_MESSAGE_LEN, OPT_PAD);
    }
    m
}

/// Reads a DHCP reply to transaction `xid`. Options split over several instances (RFC 3396)
/// are joined, and option overload (52) into `file`/`sname` is honoured.
pub fn parse_dhcp_ack(msg: &[u8], xid: u32) -> Result<DhcpAck, ParseError> {
    if msg.len() < HEADER_LEN + 4 {
        return Err(ParseError::TooShort);
    }
    if msg[0] != 2 {
        return Err(ParseError::NotAReply);
    }
    let got = u32::from_be_bytes([msg[4], msg[5], msg[6], msg[7]]);
    if got != xid {
        return Err(ParseError::OtherTransaction(got));
    }
    if msg[HEADER_LEN..HEADER_LEN + 4] != MAGIC_COOKIE {
        return Err(ParseError::NoMagicCookie);
    }
    let mut opts: Vec<(u8, Vec<u8>)> = Vec::new();
    read_options(&msg[HEADER_LEN + 4..], &mut opts)?;
    let overload = find(&opts, OPT_OVERLOAD)
        .and_then(|v| v.first().copied())
        .unwrap_or(0);
    if overload & 1 != 0 {
        read_options(&msg[108..236], &mut opts)?; // file
    }
    if overload & 2 != 0 {
        read_options(&msg[44..108], &mut opts)?; // sname
    }
    match find(&opts, OPT_MESSAGE_TYPE).and_then(|v| v.first().copied()) {
        None => return Err(ParseError::NoMessageType),
        Some(DHCPACK) => {}
        Some(DHCPNAK) => return Err(ParseError::Nak),
        Some(other) => return Err(ParseError::NotAnAck(other)),
    }
    let server_id = find(&opts, OPT_SERVER_ID)
        .filter(|v| v.len() == 4)
        .map(|v| Ipv4Addr::new(v[0], v[1], v[2], v[3]));
    Ok(DhcpAck {
        server_id,
        wpad_url: find(&opts, OPT_WPAD).and_then(text),
        domain: find(&opts, OPT_DOMAIN_NAME).and_then(text),
    })
}

/// Appends the options of one option area to `opts`, joining repeated codes (RFC 3396).
fn read_options(area: &[u8], opts: &mut Vec<(u8, Vec<u8>)>) -> Result<(), ParseError> {
    let mut i = 0;
    while i < area.len() {
        let code = area[i];
        match code {
            OPT_PAD => i += 1,
            OPT_END => break,
            _ => {
                let len = *area.get(i + 1).ok_or(ParseError::Truncated(code))? as usize;
                let value = area
                    .get(i + 2..i + 2 + len)
                    .ok_or(ParseError::Truncated(code))?;
                match opts.iter_mut().find(|(c, _)| *c == code) {
                    Some((_, v)) => v.extend_from_slice(value),
                    None => opts.push((code, value.to_vec())),
                }
                i += 2 + len;
            }
        }
    }
    Ok(())
}

fn find(opts: &[(u8, Vec<u8>)], code: u8) -> Option<&[u8]> {
    opts.iter()
        .find(|(c, _)| *c == code)
        .map(|(_, v)| v.as_slice())
}

/// An option as text: UTF-8 if valid, else Latin-1; trailing NULs and whitespace trimmed.
fn text(raw: &[u8]) -> Option<String> {
    let s = match std::str::from_utf8(raw) {
        Ok(s) => s.to_string(),
        Err(_) => raw.iter().map(|&b| b as char).collect(),
    };
    let s = s
        .trim_matches(|c: char| c == '\0' || c.is_whitespace())
        .to_string();
    (!s.is_empty()).then_some(s)
}

/// A random transaction id (std only: `RandomState` is seeded from the OS per process and
/// varied per instance).
fn new_xid() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish() as u32
}

/// Sends a DHCPINFORM on `iface` and returns the first matching DHCPACK within `timeout`
/// (the request is repeated once halfway). `Err` says why nothing usable came back.
pub async fn inform(iface: &Iface, timeout: Duration) -> Result<DhcpAck, String> {
    let socket = client_socket(iface)?;
    let xid = new_xid();
    let packet = build_dhcp_inform(xid, iface.ipv4, &iface.hw);
    let server = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut resend_at = Some(tokio::time::Instant::now() + timeout / 2);
    socket
        .send_to(&packet, server)
        .await
        .map_err(|e| format!("cannot send DHCPINFORM: {e}"))?;
    let mut buf = vec![0u8; 1500];
    let mut nak = None;
    loop {
        let wake = resend_at.map_or(deadline, |r| r.min(deadline));
        match tokio::time::timeout_at(wake, socket.recv_from(&mut buf)).await {
            Ok(Ok((n, _peer))) => match parse_dhcp_ack(&buf[..n], xid) {
                Ok(ack) => return Ok(ack),
                Err(ParseError::Nak) => nak = Some("the server answered DHCPNAK".to_string()),
                Err(_) => {} // someone else's DHCP traffic
            },
            Ok(Err(e)) => return Err(format!("receiving on udp/68 failed: {e}")),
            Err(_elapsed) if tokio::time::Instant::now() >= deadline => {
                return Err(nak.unwrap_or_else(|| format!("no DHCPACK within {timeout:?}")));
            }
            Err(_elapsed) => {
                resend_at = None;
                socket
                    .send_to(&packet, server)
                    .await
                    .map_err(|e| format!("cannot resend DHCPINFORM: {e}"))?;
            }
        }
    }
}

/// Whether this process may not bind udp/68 (no root, no `CAP_NET_BIND_SERVICE`).
pub fn bind_denied() -> bool {
    use socket2::{Domain, Protocol, Socket, Type};
    let Ok(s) = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)) else {
        return false;
    };
    let _ = s.set_reuse_address(true);
    let any = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68);
    matches!(s.bind(&any.into()), Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied)
}

/// What a DHCPINFORM's failure says when udp/68 may not be bound.
pub const BIND_DENIED: &str = "needs root or CAP_NET_BIND_SERVICE";

/// UDP 0.0.0.0:68 bound to the device (so the broadcast leaves through `iface` with its
/// address, and a broadcast or unicast ACK comes back to us); without the privilege for
/// SO_BINDTODEVICE, bound to the interface address instead.
fn client_socket(iface: &Iface) -> Result<UdpSocket, String> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    let setup = || -> std::io::Result<()> {
        s.set_reuse_address(true)?;
        s.set_broadcast(true)?;
        s.set_nonblocking(true)
    };
    setup().map_err(|e| format!("cannot set up the UDP socket: {e}"))?;
    let local = match s.bind_device(Some(iface.name.as_bytes())) {
        Ok(()) => SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
        Err(_) => SocketAddrV4::new(iface.ipv4, 68),
    };
    s.bind(&local.into()).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => {
            format!("cannot bind udp/{local}: {BIND_DENIED}")
        }
        _ => format!("cannot bind udp/{local}: {e}"),
    })?;
    UdpSocket::from_std(s.into()).map_err(|e| format!("cannot register the UDP socket: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const XID: u32 = 0x1234_abcd;

    /// A DHCPACK as dnsmasq sends it to a DHCPINFORM.
    fn ack(options: &[u8]) -> Vec<u8> {
        let mut m = vec![0u8; HEADER_LEN];
        m[0] = 2;
        m[1] = 1;
        m[2] = 6;
        m[4..8].copy_from_slice(&XID.to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(options);
        m.push(OPT_END);
        m
    }

    fn opt(code: u8, value: &[u8]) -> Vec<u8> {
        let mut v = vec![code, value.len() as u8];
        v.extend_from_slice(value);
        v
    }

    #[test]
    fn inform_carries_ciaddr_mac_and_asks_for_option_252() {
        let mac = [0x02, 0, 0, 0xaa, 0xbb, 0xcc];
        let m = build_dhcp_inform(XID, Ipv4Addr::new(10, 1, 2, 3), &mac);
        assert!(m.len() >= MIN_MESSAGE_LEN);
        assert_eq!(&m[..4], &[1, 1, 6, 0]);
        assert_eq!(&m[4..8], &XID.to_be_bytes());
        assert_eq!(&m[10..12], &[0, 0], "no broadcast flag");
        assert_eq!(&m[12..16], &[10, 1, 2, 3], "ciaddr");
        assert_eq!(&m[28..34], &mac);
        assert_eq!(&m[236..240], &MAGIC_COOKIE);
        let mut opts = Vec::new();
        read_options(&m[240..], &mut opts).unwrap();
        assert_eq!(find(&opts, OPT_MESSAGE_TYPE), Some(&[DHCPINFORM][..]));
        assert!(find(&opts, OPT_PARAMETER_REQUEST_LIST)
            .unwrap()
            .contains(&OPT_WPAD));
        assert_eq!(
            find(&opts, OPT_CLIENT_ID),
            Some(&[1, 2, 0, 0, 0xaa, 0xbb, 0xcc][..])
        );
    }

    #[test]
    fn inform_without_a_hardware_address_has_no_client_id() {
        let m = build_dhcp_inform(XID, Ipv4Addr::new(10, 1, 2, 3), &[]);
        let mut opts = Vec::new();
        read_options(&m[240..], &mut opts).unwrap();
        assert_eq!(m[2], 0);
        assert_eq!(find(&opts, OPT_CLIENT_ID), None);
    }

    #[test]
    fn ack_yields_the_wpad_url_without_its_trailing_nul() {
        let mut o = opt(OPT_MESSAGE_TYPE, &[DHCPACK]);
        o.extend(opt(OPT_SERVER_ID, &[10, 213, 0, 1]));
        o.extend(opt(OPT_DOMAIN_NAME, b"corp.example.test"));
        o.extend(opt(OPT_WPAD, b"http://10.213.0.1/wpad.dat\0"));
        let a = parse_dhcp_ack(&ack(&o), XID).unwrap();
        assert_eq!(a.wpad_url.as_deref(), Some("http://10.213.0.1/wpad.dat"));
        assert_eq!(a.domain.as_deref(), Some("corp.example.test"));
        assert_eq!(a.server_id, Some(Ipv4Addr::new(10, 213, 0, 1)));
    }

    #[test]
    fn ack_without_option_252_has_no_url() {
        let a = parse_dhcp_ack(&ack(&opt(OPT_MESSAGE_TYPE, &[DHCPACK])), XID).unwrap();
        assert_eq!(a.wpad_url, None);
        let mut o = opt(OPT_MESSAGE_TYPE, &[DHCPACK]);
        o.extend(opt(OPT_WPAD, b"\0"));
        assert_eq!(
            parse_dhcp_ack(&ack(&o), XID).unwrap().wpad_url,
            None,
            "an empty option is no URL"
        );
    }

    #[test]
    fn long_option_252_split_over_two_instances_is_joined() {
        let url = format!("http://wpad.example.test/{}.dat", "x".repeat(300));
        let (a, b) = url.as_bytes().split_at(200);
        let mut o = opt(OPT_MESSAGE_TYPE, &[DHCPACK]);
        o.extend(opt(OPT_WPAD, a));
        o.extend(opt(OPT_WPAD, b));
        assert_eq!(parse_dhcp_ack(&ack(&o), XID).unwrap().wpad_url, Some(url));
    }

    #[test]
    fn option_252_overloaded_into_the_file_field_is_found() {
        let mut o = opt(OPT_MESSAGE_TYPE, &[DHCPACK]);
        o.extend(opt(OPT_OVERLOAD, &[1]));
        let mut m = ack(&o);
        let file = [opt(OPT_WPAD, b"http://10.0.0.1/p.pac"), vec![OPT_END]].concat();
        m[108..108 + file.len()].copy_from_slice(&file);
        assert_eq!(
            parse_dhcp_ack(&m, XID).unwrap().wpad_url.as_deref(),
            Some("http://10.0.0.1/p.pac")
        );
    }

    #[test]
    fn replies_to_other_transactions_naks_and_garbage_are_rejected() {
        let good = ack(&opt(OPT_MESSAGE_TYPE, &[DHCPACK]));
        assert_eq!(
            parse_dhcp_ack(&good, XID + 1),
            Err(ParseError::OtherTransaction(XID))
        );
        assert_eq!(parse_dhcp_ack(&good[..100], XID), Err(ParseError::TooShort));
        assert_eq!(
            parse_dhcp_ack(&ack(&opt(OPT_MESSAGE_TYPE, &[DHCPNAK])), XID),
            Err(ParseError::Nak)
        );
        assert_eq!(
            parse_dhcp_ack(&ack(&opt(OPT_MESSAGE_TYPE, &[2])), XID),
            Err(ParseError::NotAnAck(2))
        );
        assert_eq!(
            parse_dhcp_ack(&ack(&[]), XID),
            Err(ParseError::NoMessageType)
        );
        let mut truncated = ack(&opt(OPT_MESSAGE_TYPE, &[DHCPACK]));
        truncated.pop();
        truncated.extend_from_slice(&[OPT_WPAD, 40, b'h']);
        assert_eq!(
            parse_dhcp_ack(&truncated, XID),
            Err(ParseError::Truncated(OPT_WPAD))
        );
        let mut request = good.clone();
        request[0] = 1;
        assert_eq!(parse_dhcp_ack(&request, XID), Err(ParseError::NotAReply));
        let mut no_cookie = good;
        no_cookie[236] = 0;
        assert_eq!(
            parse_dhcp_ack(&no_cookie, XID),
            Err(ParseError::NoMagicCookie)
        );
    }

    #[test]
    fn a_latin1_option_is_decoded_and_trimmed() {
        assert_eq!(text(b"caf\xe9 \0\0").as_deref(), Some("caf\u{e9}"));
        assert_eq!(text(b" \0"), None);
    }
}

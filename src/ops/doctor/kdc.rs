//! The KDC's clock, for `waypost doctor`'s skew check: an AS-REQ without pre-authentication
//! for the user is answered by a KDC that requires it (Active Directory, MIT with `+preauth`)
//! with a KRB-ERROR carrying its time (`stime`). Nothing secret is sent or received: the
//! request names the user and realm only. The KDC comes from the realm's `kdc =` line of the
//! Kerberos configuration (`$KRB5_CONFIG`, else `/etc/krb5.conf`).

use std::net::UdpSocket;
use std::time::{Duration, SystemTime};

/// The realm's first KDC (`host:port`, port 88 when none is given) from krb5.conf.
pub fn kdc_for(realm: &str) -> Option<String> {
    let path = std::env::var("KRB5_CONFIG").unwrap_or_else(|_| "/etc/krb5.conf".into());
    let path = path
        .split(':')
        .next()
        .unwrap_or("/etc/krb5.conf")
        .to_string();
    let text = std::fs::read_to_string(path).ok()?;
    let mut in_realm = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with(realm) && line.contains('{') {
            in_realm = true;
        } else if in_realm && line.starts_with('}') {
            in_realm = false;
        } else if in_realm {
            if let Some(v) = line
                .strip_prefix("kdc")
                .map(str::trim)
                .and_then(|r| r.strip_prefix('='))
            {
                let v = v.trim();
                return Some(if v.contains(':') {
                    v.to_string()
                } else {
                    format!("{v}:88")
                });
            }
        }
    }
    None
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend([0x81, n as u8]);
    } else {
        out.extend([0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn int(v: u32) -> Vec<u8> {
    let b = v.to_be_bytes();
    let mut s: Vec<u8> = b.iter().copied().skip_while(|x| *x == 0).collect();
    if s.is_empty() || s[0] & 0x80 != 0 {
        s.insert(0, 0);
    }
    tlv(0x02, &s)
}

fn gstr(s: &str) -> Vec<u8> {
    tlv(0x1b, s.as_bytes())
}

fn principal(kind: u32, parts: &[&str]) -> Vec<u8> {
    let names: Vec<u8> = parts.iter().flat_map(|p| gstr(p)).collect();
    tlv(
        0x30,
        &[tlv(0xa0, &int(kind)), tlv(0xa1, &tlv(0x30, &names))].concat(),
    )
}

/// An AS-REQ for `user@realm` without pre-authentication.
fn as_req(user: &str, realm: &str, nonce: u32) -> Vec<u8> {
    let body = [
        tlv(0xa0, &tlv(0x03, &[0, 0x50, 0, 0, 0])),
        tlv(0xa1, &principal(1, &[user])),
        tlv(0xa2, &gstr(realm)),
        tlv(0xa3, &principal(2, &["krbtgt", realm])),
        tlv(0xa5, &tlv(0x18, b"20370913024805Z")),
        tlv(0xa7, &int(nonce)),
        tlv(0xa8, &tlv(0x30, &[int(18), int(17)].concat())),
    ]
    .concat();
    let req = [
        tlv(0xa1, &int(5)),
        tlv(0xa2, &int(10)),
        tlv(0xa4, &tlv(0x30, &body)),
    ]
    .concat();
    tlv(0x6a, &tlv(0x30, &req))
}

/// (tag, content, rest) of the first TLV in `b`.
fn next(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)? as usize;
    let (len, head) = match first {
        n if n < 0x80 => (n, 2),
        0x81 => (*b.get(2)? as usize, 3),
        0x82 => (((*b.get(2)? as usize) << 8) | *b.get(3)? as usize, 4),
        _ => return None,
    };
    let content = b.get(head..head + len)?;
    Some((tag, content, &b[head + len..]))
}

/// The `stime` of a KRB-ERROR.
fn error_time(reply: &[u8]) -> Option<SystemTime> {
    let (tag, inner, _) = next(reply)?;
    if tag != 0x7e {
        return None;
    }
    let (_, mut fields, _) = next(inner)?;
    while let Some((tag, content, rest)) = next(fields) {
        if tag == 0xa4 {
            let (_, t, _) = next(content)?;
            let t = std::str::from_utf8(t).ok()?.trim_end_matches('Z');
            let iso = format!(
                "{}-{}-{} {}:{}:{}",
                t.get(0..4)?,
                t.get(4..6)?,
                t.get(6..8)?,
                t.get(8..10)?,
                t.get(10..12)?,
                t.get(12..14)?
            );
            return humantime::parse_rfc3339_weak(&iso).ok();
        }
        fields = rest;
    }
    None
}

/// Asks `kdc` (UDP) for its time. Err says why it is not measurable.
pub fn kdc_time(kdc: &str, user: &str, realm: &str) -> Result<SystemTime, String> {
    let sock = UdpSocket::bind("0.0.0.0:0")
        .or_else(|_| UdpSocket::bind("[::]:0"))
        .map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    let nonce = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() & 0x7fff_ffff)
        .unwrap_or(1);
    sock.send_to(&as_req(user, realm, nonce), kdc)
        .map_err(|e| format!("cannot reach the KDC {kdc}: {e}"))?;
    let mut buf = [0u8; 4096];
    let n = sock
        .recv(&mut buf)
        .map_err(|e| format!("no answer from the KDC {kdc}: {e}"))?;
    error_time(&buf[..n]).ok_or_else(|| format!("the KDC {kdc} answered without its time"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_krb_error_yields_the_kdc_time() {
        let err = tlv(
            0x7e,
            &tlv(
                0x30,
                &[
                    tlv(0xa0, &int(5)),
                    tlv(0xa1, &int(30)),
                    tlv(0xa4, &tlv(0x18, b"20261129145502Z")),
                    tlv(0xa5, &int(1)),
                    tlv(0xa6, &int(25)),
                ]
                .concat(),
            ),
        );
        let t = error_time(&err).unwrap();
        assert_eq!(
            humantime::format_rfc3339(t).to_string(),
            "2026-11-29T14:55:02Z"
        );
        assert!(error_time(&as_req("u", "R", 1)).is_none());
    }
}

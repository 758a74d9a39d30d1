//! Reading a Kerberos ticket cache for its state — principal, and the ticket-granting ticket's
//! expiry — without using it: what readiness, the status page and `waypost doctor` report.
//!
//! Only `FILE:` caches (MIT format versions 3 and 4) are read; other kinds (`KEYRING:`, `KCM:`,
//! `DIR:`) are reported as not inspectable. No key or ticket bytes leave this module.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What a ticket cache holds, as far as readiness is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketState {
    /// A ticket-granting ticket for `principal`, valid until `expires`.
    Valid {
        principal: String,
        expires: SystemTime,
    },
    /// The cache's ticket-granting ticket has expired.
    Expired {
        principal: String,
        expired: SystemTime,
    },
    /// No cache file, or no ticket-granting ticket in it.
    Missing { cache: String, why: String },
    /// A kind of cache this reader does not inspect.
    NotInspectable { cache: String },
}

/// The cache name in use: `configured`, else `$KRB5CCNAME`, else `FILE:/tmp/krb5cc_<uid>`.
pub fn cache_name(configured: Option<&str>) -> String {
    if let Some(c) = configured {
        return c.to_string();
    }
    if let Ok(c) = std::env::var("KRB5CCNAME") {
        if !c.is_empty() {
            return c;
        }
    }
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0);
    format!("FILE:/tmp/krb5cc_{uid}")
}

/// Inspects the cache `configured` (or the default one) at time `now`.
pub fn inspect(configured: Option<&str>, now: SystemTime) -> TicketState {
    let cache = cache_name(configured);
    let path = match cache.split_once(':') {
        Some(("FILE", p)) => PathBuf::from(p),
        Some((kind, _)) if kind.len() > 1 => return TicketState::NotInspectable { cache },
        _ => PathBuf::from(&cache),
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            return TicketState::Missing {
                why: format!("{}: {e}", path.display()),
                cache,
            }
        }
    };
    match parse(&bytes) {
        Ok((principal, Some(end))) => {
            let at = UNIX_EPOCH + Duration::from_secs(end.into());
            if at > now {
                TicketState::Valid {
                    principal,
                    expires: at,
                }
            } else {
                TicketState::Expired {
                    principal,
                    expired: at,
                }
            }
        }
        Ok((principal, None)) => TicketState::Missing {
            why: format!("no ticket-granting ticket for {principal} in it"),
            cache,
        },
        Err(why) => TicketState::Missing {
            why: format!("unreadable ticket cache: {why}"),
            cache,
        },
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.b.len());
        let end = end.ok_or("truncated")?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        let s = self.take(2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Result<u32, String> {
        let s = self.take(4)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn data(&mut self) -> Result<&'a [u8], String> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    /// A principal as `comp/comp@REALM`.
    fn principal(&mut self) -> Result<String, String> {
        let _name_type = self.u32()?;
        let n = self.u32()?;
        if n > 64 {
            return Err("implausible principal".into());
        }
        let realm = String::from_utf8_lossy(self.data()?).into_owned();
        let mut comps = Vec::new();
        for _ in 0..n {
            comps.push(String::from_utf8_lossy(self.data()?).into_owned());
        }
        Ok(format!("{}@{realm}", comps.join("/")))
    }
}

/// (default principal, end time of its TGT for its own realm if any).
fn parse(b: &[u8]) -> Result<(String, Option<u32>), String> {
    let mut r = Reader { b, at: 0 };
    let version = r.u16()?;
    if version != 0x0504 && version != 0x0503 {
        return Err(format!(
            "ticket cache format {version:#06x} is not supported"
        ));
    }
    if version == 0x0504 {
        let n = r.u16()? as usize;
        r.take(n)?;
    }
    let principal = r.principal()?;
    let realm = principal.rsplit('@').next().unwrap_or("").to_string();
    let mut tgt_end = None;
    while r.at < b.len() {
        let _client = r.principal()?;
        let server = r.principal()?;
        let _enctype = r.u16()?;
        r.data()?; // key
        let _authtime = r.u32()?;
        let _starttime = r.u32()?;
        let endtime = r.u32()?;
        let _renew = r.u32()?;
        let _is_skey = r.u8()?;
        let _flags = r.u32()?;
        for _ in 0..r.u32()? {
            r.u16()?;
            r.data()?;
        }
        for _ in 0..r.u32()? {
            r.u16()?;
            r.data()?;
        }
        r.data()?; // ticket
        r.data()?; // second ticket
        if server == format!("krbtgt/{realm}@{realm}") {
            tgt_end = Some(tgt_end.map_or(endtime, |e: u32| e.max(endtime)));
        }
    }
    Ok((principal, tgt_end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(out: &mut Vec<u8>, realm: &str, comps: &[&str]) {
        out.extend(1u32.to_be_bytes());
        out.extend((comps.len() as u32).to_be_bytes());
        out.extend((realm.len() as u32).to_be_bytes());
        out.extend(realm.as_bytes());
        for c in comps {
            out.extend((c.len() as u32).to_be_bytes());
            out.extend(c.as_bytes());
        }
    }

    fn cache(end: u32) -> Vec<u8> {
        let mut b = vec![0x05, 0x04, 0, 0];
        principal(&mut b, "EXAMPLE.TEST", &["alice"]);
        principal(&mut b, "EXAMPLE.TEST", &["alice"]);
        principal(&mut b, "EXAMPLE.TEST", &["krbtgt", "EXAMPLE.TEST"]);
        b.extend(18u16.to_be_bytes());
        b.extend(2u32.to_be_bytes());
        b.extend([1, 2]);
        for t in [1u32, 1, end, end] {
            b.extend(t.to_be_bytes());
        }
        b.push(0);
        b.extend(0u32.to_be_bytes());
        b.extend(0u32.to_be_bytes());
        b.extend(0u32.to_be_bytes());
        b.extend(3u32.to_be_bytes());
        b.extend([9, 9, 9]);
        b.extend(0u32.to_be_bytes());
        b
    }

    #[test]
    fn a_cache_with_a_tgt_reports_its_principal_and_expiry() {
        assert_eq!(
            parse(&cache(2_000_000_000)).unwrap(),
            ("alice@EXAMPLE.TEST".to_string(), Some(2_000_000_000))
        );
    }

    #[test]
    fn an_expired_tgt_and_a_missing_cache_are_told_apart() {
        let dir = std::env::temp_dir().join(format!("wp-ccache-{}", std::process::id()));
        std::fs::write(&dir, cache(1000)).unwrap();
        let name = format!("FILE:{}", dir.display());
        assert!(matches!(
            inspect(Some(&name), SystemTime::now()),
            TicketState::Expired { .. }
        ));
        let _ = std::fs::remove_file(&dir);
        assert!(matches!(
            inspect(Some(&name), SystemTime::now()),
            TicketState::Missing { .. }
        ));
        assert!(matches!(
            inspect(Some("KEYRING:persistent:0"), SystemTime::now()),
            TicketState::NotInspectable { .. }
        ));
    }

    #[test]
    fn truncated_caches_are_errors_not_panics() {
        let c = cache(5);
        for n in 0..c.len() {
            let _ = parse(&c[..n]);
        }
    }
}

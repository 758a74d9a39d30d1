//! Reading a Kerberos ticket cache for its state — principal, and the ticket-granting ticket's
//! expiry — without using it: what readiness, the status page and `waypost doctor` report.
//!
//! Only `FILE:` caches (MIT format versions 3 and 4) are read; other kinds (`KEYRING:`, `KCM:`,
//! `DIR:`) are reported as not inspectable. Key and ticket bytes leave this module only for
//! [`crate::proof`] (the network proof asks the realm's KDC with the ticket-granting ticket),
//! through [`read_tgt`].

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

/// The ticket-granting ticket of a cache's default principal for its own realm: what a TGS
/// request needs (client name, session key, the ticket as DER).
pub(crate) struct Tgt {
    pub client_realm: String,
    pub client_name_type: u32,
    pub client_components: Vec<String>,
    /// The TGT's realm (`krbtgt/REALM@REALM`).
    pub realm: String,
    pub enctype: u16,
    pub key: Vec<u8>,
    pub ticket: Vec<u8>,
    pub endtime: u32,
}

impl std::fmt::Debug for Tgt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tgt")
            .field("client_realm", &self.client_realm)
            .field("realm", &self.realm)
            .field("enctype", &self.enctype)
            .finish_non_exhaustive()
    }
}

/// Reads the TGT of the cache `configured` (or the default one); only `FILE:` caches.
pub(crate) fn read_tgt(configured: Option<&str>) -> Result<Tgt, String> {
    let cache = cache_name(configured);
    let path = match cache.split_once(':') {
        Some(("FILE", p)) => PathBuf::from(p),
        Some((kind, _)) if kind.len() > 1 => {
            return Err(format!(
                "{kind}: caches cannot be read for the network proof (only FILE:)"
            ))
        }
        _ => PathBuf::from(&cache),
    };
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut tgt = None;
    walk(&bytes, |c| {
        if c.is_own_tgt {
            tgt = Some(c.into_tgt());
        }
    })?;
    tgt.ok_or_else(|| format!("no ticket-granting ticket in {cache}"))
}

/// One credential of a cache, as read.
struct Cred<'a> {
    realm: String,
    name_type: u32,
    components: Vec<String>,
    enctype: u16,
    key: &'a [u8],
    ticket: &'a [u8],
    endtime: u32,
    is_own_tgt: bool,
}

impl Cred<'_> {
    fn into_tgt(self) -> Tgt {
        Tgt {
            realm: self.realm.clone(),
            client_realm: self.realm,
            client_name_type: self.name_type,
            client_components: self.components,
            enctype: self.enctype,
            key: self.key.to_vec(),
            ticket: self.ticket.to_vec(),
            endtime: self.endtime,
        }
    }
}

/// Calls `each` for every credential; returns the default principal.
fn walk<'a>(b: &'a [u8], mut each: impl FnMut(Cred<'a>)) -> Result<String, String> {
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
    while r.at < b.len() {
        let client_at = r.at;
        let client = r.principal()?;
        let server = r.principal()?;
        let enctype = r.u16()?;
        let key = r.data()?;
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
        let ticket = r.data()?;
        r.data()?; // second ticket
        let is_own_tgt = client == principal && server == format!("krbtgt/{realm}@{realm}");
        let mut c = Reader { b, at: client_at };
        let name_type = c.u32()?;
        let n = c.u32()?;
        let _ = c.data()?;
        let mut components = Vec::new();
        for _ in 0..n {
            components.push(String::from_utf8_lossy(c.data()?).into_owned());
        }
        each(Cred {
            realm: realm.clone(),
            name_type,
            components,
            enctype,
            key,
            ticket,
            endtime,
            is_own_tgt,
        });
    }
    Ok(principal)
}

/// (default principal, end time of its TGT for its own realm if any).
fn parse(b: &[u8]) -> Result<(String, Option<u32>), String> {
    let mut tgt_end = None;
    let principal = walk(b, |c| {
        if c.is_own_tgt {
            tgt_end = Some(tgt_end.map_or(c.endtime, |e: u32| e.max(c.endtime)));
        }
    })?;
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

//! Reading the SNI from the first bytes a client sends through a tunnel, without
//! decrypting or consuming anything: the caller peeks, asks, and peeks more on `NeedMore`.
//! A ClientHello split over several records is reassembled. Pure parsing, no I/O.

/// Result of peeking at the start of a tunnel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SniPeek {
    /// A whole ClientHello was read; the server name, if it had one.
    Complete(Option<String>),
    /// More bytes are needed to decide.
    NeedMore,
    /// Not a TLS ClientHello (or a malformed one).
    NotTls,
}

/// Largest ClientHello accepted (post-quantum key shares make them ~2 KiB; 64 KiB is generous).
const MAX_HELLO: usize = 64 * 1024;

/// Parses the SNI out of the start of a TLS stream.
pub fn parse_client_hello_sni(buf: &[u8]) -> SniPeek {
    // Reassemble handshake bytes from consecutive handshake records.
    let mut hs = Vec::new();
    let mut rest = buf;
    loop {
        if rest.is_empty() {
            return SniPeek::NeedMore;
        }
        if rest[0] != 0x16 {
            return SniPeek::NotTls;
        }
        if rest.len() >= 2 && rest[1] != 0x03 {
            return SniPeek::NotTls;
        }
        if rest.len() < 5 {
            return SniPeek::NeedMore;
        }
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        if len == 0 || len > 16384 + 2048 {
            return SniPeek::NotTls;
        }
        let avail = rest.len().saturating_sub(5).min(len);
        hs.extend_from_slice(&rest[5..5 + avail]);
        if hs.len() >= 4 {
            if hs[0] != 0x01 {
                return SniPeek::NotTls;
            }
            let need =
                4 + (usize::from(hs[1]) << 16 | usize::from(hs[2]) << 8 | usize::from(hs[3]));
            if need > MAX_HELLO {
                return SniPeek::NotTls;
            }
            if hs.len() >= need {
                return match server_name(&hs[4..need]) {
                    Some(sni) => SniPeek::Complete(sni),
                    None => SniPeek::NotTls,
                };
            }
        }
        if avail < len {
            return SniPeek::NeedMore;
        }
        rest = &rest[5 + len..];
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| usize::from(b[0]))
    }
    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(n)
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(n)
    }
}

/// `None` when malformed; `Some(None)` when well-formed without SNI.
fn server_name(body: &[u8]) -> Option<Option<String>> {
    let mut r = Reader(body);
    r.take(2 + 32)?; // legacy_version, random
    r.vec8()?; // session id
    r.vec16()?; // cipher suites
    r.vec8()?; // compression methods
    if r.0.is_empty() {
        return Some(None);
    }
    let mut exts = Reader(r.vec16()?);
    while !exts.0.is_empty() {
        let ty = exts.u16()?;
        let data = exts.vec16()?;
        if ty != 0 {
            continue;
        }
        let mut list = Reader(Reader(data).vec16()?);
        while !list.0.is_empty() {
            let name_type = list.u8()?;
            let name = list.vec16()?;
            if name_type == 0 {
                let name = std::str::from_utf8(name).ok()?;
                let valid = !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
                return valid.then(|| Some(name.trim_end_matches('.').to_ascii_lowercase()));
            }
        }
        return Some(None);
    }
    Some(None)
}

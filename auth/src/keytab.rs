//! A minimal reader for MIT keytab files (format 0x0502): finds the long-term key of
//! one client principal, so sspi can pre-authenticate with it (sspi has no keytab file
//! reader). AES only (enctypes 17, 18), newest kvno, aes256 preferred. Keys never leave
//! this module except as the returned value; errors name the file and principal only.

use std::path::Path;

fn u16be(b: &[u8], at: &mut usize) -> Option<u16> {
    let v = b.get(*at..*at + 2)?;
    *at += 2;
    Some(u16::from_be_bytes([v[0], v[1]]))
}

fn u32be(b: &[u8], at: &mut usize) -> Option<u32> {
    let v = b.get(*at..*at + 4)?;
    *at += 4;
    Some(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
}

fn counted<'a>(b: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
    let n = u16be(b, at)? as usize;
    let v = b.get(*at..*at + n)?;
    *at += n;
    Some(v)
}

/// One keytab entry (principal components without the realm).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub realm: String,
    pub components: Vec<String>,
    pub kvno: u32,
    pub enctype: u16,
    key: Vec<u8>,
}

/// All entries of a keytab image.
pub fn parse(bytes: &[u8]) -> Result<Vec<Entry>, String> {
    if bytes.get(..2) != Some(&[0x05, 0x02][..]) {
        return Err("not an MIT keytab (version 0x0502)".into());
    }
    let mut at = 2;
    let mut out = Vec::new();
    while at < bytes.len() {
        let size = u32be(bytes, &mut at).ok_or("truncated entry size")? as i32;
        if size < 0 {
            at += size.unsigned_abs() as usize; // a deleted entry (hole)
            continue;
        }
        let end = at + size as usize;
        let entry = bytes.get(at..end).ok_or("truncated entry")?;
        at = end;
        let mut p = 0;
        let parsed = (|| {
            let n = u16be(entry, &mut p)?;
            let realm = String::from_utf8_lossy(counted(entry, &mut p)?).into_owned();
            let components = (0..n)
                .map(|_| counted(entry, &mut p).map(|c| String::from_utf8_lossy(c).into_owned()))
                .collect::<Option<Vec<_>>>()?;
            let _name_type = u32be(entry, &mut p)?;
            let _timestamp = u32be(entry, &mut p)?;
            let vno8 = *entry.get(p)?;
            p += 1;
            let enctype = u16be(entry, &mut p)?;
            let key = counted(entry, &mut p)?.to_vec();
            let kvno = if entry.len() >= p + 4 {
                u32be(entry, &mut p)?
            } else {
                u32::from(vno8)
            };
            Some(Entry {
                realm,
                components,
                kvno,
                enctype,
                key,
            })
        })();
        out.push(parsed.ok_or("malformed entry")?);
    }
    Ok(out)
}

/// The newest AES key of `user@realm` in the keytab at `path`: `(key, enctype)`.
pub fn find_key(path: &Path, user: &str, realm: &str) -> Result<(Vec<u8>, u16), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("keytab {}: {e}", path.display()))?;
    let entries = parse(&bytes).map_err(|e| format!("keytab {}: {e}", path.display()))?;
    let components: Vec<&str> = user.split('/').collect();
    entries
        .into_iter()
        .filter(|e| e.realm.eq_ignore_ascii_case(realm) && e.components == components)
        .filter(|e| matches!(e.enctype, 17 | 18))
        .max_by_key(|e| (e.kvno, e.enctype))
        .map(|e| (e.key, e.enctype))
        .ok_or_else(|| {
            format!(
                "keytab {} has no AES key for {user}@{realm}",
                path.display()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(realm: &str, comps: &[&str], kvno: u8, enctype: u16, key: &[u8]) -> Vec<u8> {
        let mut e = Vec::new();
        e.extend_from_slice(&(comps.len() as u16).to_be_bytes());
        e.extend_from_slice(&(realm.len() as u16).to_be_bytes());
        e.extend_from_slice(realm.as_bytes());
        for c in comps {
            e.extend_from_slice(&(c.len() as u16).to_be_bytes());
            e.extend_from_slice(c.as_bytes());
        }
        e.extend_from_slice(&1u32.to_be_bytes());
        e.extend_from_slice(&0u32.to_be_bytes());
        e.push(kvno);
        e.extend_from_slice(&enctype.to_be_bytes());
        e.extend_from_slice(&(key.len() as u16).to_be_bytes());
        e.extend_from_slice(key);
        let mut out = (e.len() as u32).to_be_bytes().to_vec();
        out.extend(e);
        out
    }

    #[test]
    fn the_newest_aes256_key_of_the_principal_is_chosen() {
        let mut kt = vec![0x05, 0x02];
        kt.extend(entry(
            "EXAMPLE.TEST",
            &["HTTP", "localhost"],
            2,
            18,
            &[9; 32],
        ));
        kt.extend(entry("EXAMPLE.TEST", &["user"], 1, 18, &[1; 32]));
        kt.extend(entry("EXAMPLE.TEST", &["user"], 2, 17, &[2; 16]));
        kt.extend(entry("EXAMPLE.TEST", &["user"], 2, 18, &[3; 32]));
        kt.extend((-8i32).to_be_bytes());
        kt.extend([0u8; 8]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kt");
        std::fs::write(&path, &kt).unwrap();
        assert_eq!(
            find_key(&path, "user", "EXAMPLE.TEST").unwrap(),
            (vec![3; 32], 18)
        );
        assert!(find_key(&path, "other", "EXAMPLE.TEST").is_err());
    }

    #[test]
    fn a_file_that_is_not_a_keytab_is_refused() {
        assert!(parse(b"hello").is_err());
    }
}

//! A proxy's canonical name, for its Kerberos SPN (as Chromium finds it with `AI_CANONNAME`):
//! the owner name of the address records a lookup ends at (CNAMEs followed, a short name
//! completed by the search domains), read from a hickory answer or from getaddrinfo's
//! `ai_canonname` (`resolver = "system"`), and a short per-name cache of the answers.
//!
//! [`crate::net::dns::Resolver::canonical_name`] does the lookup (bounded by the resolve timeout);
//! this module only reads answers and remembers them. A failed lookup is remembered as "none"
//! (the name as given) for a shorter time, so a broken DNS does not slow every request.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::sync::Mutex;
use std::time::Duration;

use hickory_resolver::proto::rr::Record;
use tokio::time::Instant;

/// How long a found canonical name is reused.
pub const FOUND_TTL: Duration = Duration::from_secs(60);
/// How long a failed lookup (name as given) is reused.
pub const FAILED_TTL: Duration = Duration::from_secs(10);
/// The lookup budget when `timeouts.resolve` is infinite.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(5);
/// At most this many names are remembered (the cache is emptied when full).
const MAX_NAMES: usize = 256;

/// `name` lower-cased without a trailing dot; `None` when nothing is left.
pub fn normalize(name: &str) -> Option<String> {
    let n = name.trim().trim_end_matches('.').to_ascii_lowercase();
    (!n.is_empty()).then_some(n)
}

/// The canonical name in a hickory answer: the owner of its first address record.
pub fn from_answers(answers: &[Record]) -> Option<String> {
    answers
        .iter()
        .find(|r| r.data.ip_addr().is_some())
        .and_then(|r| normalize(&r.name.to_utf8()))
}

/// getaddrinfo's canonical name for `name` (blocking: run it off the runtime).
pub fn getaddrinfo_canonical(name: &str) -> Option<String> {
    let c_name = CString::new(name).ok()?;
    // SAFETY: an all-zero addrinfo is a valid "no hints" value (null pointers, zero ints).
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_flags = libc::AI_CANONNAME;
    hints.ai_family = libc::AF_UNSPEC;
    hints.ai_socktype = libc::SOCK_STREAM;
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: c_name is NUL-terminated, hints lives across the call, res is an out pointer.
    let rc = unsafe { libc::getaddrinfo(c_name.as_ptr(), std::ptr::null(), &hints, &mut res) };
    if rc != 0 || res.is_null() {
        return None;
    }
    // SAFETY: res is the non-null list getaddrinfo returned; with AI_CANONNAME its first
    // entry's ai_canonname is null or a NUL-terminated string owned by the list, copied out
    // before the list is freed exactly once.
    let canonical = unsafe {
        let p = (*res).ai_canonname;
        let out = (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned());
        libc::freeaddrinfo(res);
        out
    };
    canonical.as_deref().and_then(normalize)
}

/// Remembered answers: name -> (until, canonical name or none).
#[derive(Default)]
pub struct Cache {
    names: Mutex<HashMap<String, (Instant, Option<String>)>>,
}

impl Cache {
    /// The remembered answer for `name` (`Some(None)`: the lookup failed), if still fresh.
    pub fn get(&self, name: &str, now: Instant) -> Option<Option<String>> {
        let names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        names
            .get(name)
            .filter(|(until, _)| *until > now)
            .map(|(_, c)| c.clone())
    }

    /// Remembers `answer` for `name` ([`FOUND_TTL`] or [`FAILED_TTL`]).
    pub fn put(&self, name: &str, answer: Option<String>, now: Instant) {
        let ttl = if answer.is_some() {
            FOUND_TTL
        } else {
            FAILED_TTL
        };
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        if names.len() >= MAX_NAMES && !names.contains_key(name) {
            names.clear();
        }
        names.insert(name.to_string(), (now + ttl, answer));
    }

    /// Forgets everything (a network change).
    pub fn clear(&self) {
        self.names.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::proto::rr::{rdata, Name, RData};

    fn record(owner: &str, data: RData) -> Record {
        Record::from_rdata(Name::from_ascii(owner).unwrap(), 60, data)
    }

    #[test]
    fn the_canonical_name_is_the_owner_of_the_address_record_after_the_cname_chain() {
        let answers = [
            record(
                "proxy.corp.example.",
                RData::CNAME(rdata::CNAME(
                    Name::from_ascii("px-01.corp.example.").unwrap(),
                )),
            ),
            record(
                "PX-01.corp.example.",
                RData::A(rdata::A("10.0.0.1".parse().unwrap())),
            ),
        ];
        assert_eq!(
            from_answers(&answers).as_deref(),
            Some("px-01.corp.example")
        );
    }

    #[test]
    fn an_answer_without_addresses_has_no_canonical_name() {
        let answers = [record(
            "proxy.corp.example.",
            RData::CNAME(rdata::CNAME(
                Name::from_ascii("px-01.corp.example.").unwrap(),
            )),
        )];
        assert_eq!(from_answers(&answers), None);
    }

    #[test]
    fn getaddrinfo_gives_localhost_a_name_and_an_unknown_name_none() {
        assert!(getaddrinfo_canonical("localhost").is_some());
        assert_eq!(getaddrinfo_canonical("no-such-host.invalid"), None);
        assert_eq!(getaddrinfo_canonical("nul\0inside"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn answers_are_remembered_for_a_short_time_failures_for_less() {
        let cache = Cache::default();
        let t0 = Instant::now();
        cache.put("proxy", Some("px-01.corp.example".into()), t0);
        cache.put("broken", None, t0);
        assert_eq!(
            cache.get("proxy", t0),
            Some(Some("px-01.corp.example".into()))
        );
        assert_eq!(cache.get("broken", t0), Some(None));
        let later = t0 + FAILED_TTL;
        assert_eq!(cache.get("broken", later), None);
        assert!(cache.get("proxy", later).is_some());
        assert_eq!(cache.get("proxy", t0 + FOUND_TTL), None);
        cache.clear();
        assert_eq!(cache.get("proxy", t0), None);
    }
}

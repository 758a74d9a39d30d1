//! Hop-by-hop header handling, both directions.
//!
//! Removes `Connection` and every header it names, `Proxy-Connection`, `Keep-Alive`, `TE`,
//! `Trailer`, `Transfer-Encoding` (hyper re-frames bodies), `Upgrade` unless the request is an
//! upgrade, and the client hop's own `Proxy-Authorization` / `Proxy-Authenticate`.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "proxy-authorization",
    "proxy-authenticate",
];

/// True when the request asks to switch protocols (`Connection: upgrade` + `Upgrade`).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Strips hop-by-hop headers; with `keep_upgrade`, `Upgrade` stays and `Connection: upgrade` is
/// set again.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        if keep_upgrade && name == header::UPGRADE {
            continue;
        }
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// Appends `Via: 1.1 <pseudonym>` (waypost's per-instance token, so a request that comes back
/// is recognised as a loop).
pub fn add_via(headers: &mut HeaderMap, version: http::Version, pseudonym: &str) {
    let v = match version {
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        _ => "1.1",
    };
    if let Ok(v) = HeaderValue::from_str(&format!("{v} {pseudonym}")) {
        headers.append(header::VIA, v);
    }
}

/// The `Via` values a request arrived with, to send on in a CONNECT to an upstream proxy: at
/// most 16 values of at most 1 KiB in all (a loop is stopped at its second visit, so a longer
/// chain is no loop of ours; what does not fit is left out, never cut mid-value).
pub fn incoming_via(headers: &HeaderMap) -> Vec<HeaderValue> {
    let mut size = 0;
    headers
        .get_all(header::VIA)
        .iter()
        .take(16)
        .take_while(|v| {
            size += v.len();
            size <= 1024
        })
        .cloned()
        .collect()
}

/// Whether a `Via` entry names `pseudonym` (this waypost's token: the request came back).
pub fn via_names(headers: &HeaderMap, pseudonym: &str) -> bool {
    headers
        .get_all(header::VIA)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|entry| entry.split_whitespace().nth(1) == Some(pseudonym))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn connection_listed_headers_and_fixed_hop_headers_are_removed() {
        let mut h = map(&[
            ("connection", "close, X-Secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic abc"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("x-kept", "yes"),
        ]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h["x-kept"], "yes");
    }

    #[test]
    fn a_via_entry_with_our_token_is_recognised_and_others_are_not() {
        let mut h = map(&[("via", "1.1 squid-1 (squid/5.7), 1.1 waypost-abc")]);
        assert!(via_names(&h, "waypost-abc"));
        assert!(!via_names(&h, "waypost-abd"));
        assert!(!via_names(&h, "squid/5.7"));
        add_via(&mut h, http::Version::HTTP_11, "waypost-xyz");
        assert!(via_names(&h, "waypost-xyz"));
    }

    #[test]
    fn upgrade_requests_keep_their_upgrade_header() {
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(is_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
    }
}

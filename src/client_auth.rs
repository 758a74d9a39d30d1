//! The clients' credentials (`client_auth`): the one check of a Basic `Authorization` or
//! `Proxy-Authorization` value against them, used by the proxy port and the admin surface
//! alike, and the comparison the SOCKS5 login uses too (constant time: a wrong guess learns
//! nothing from the timing).

use base64::Engine;
use subtle::ConstantTimeEq;

/// Whether `value` (an `Authorization` or `Proxy-Authorization` header) carries exactly the
/// `client_auth` credentials as Basic (constant-time comparison).
pub fn basic_matches(auth: &crate::config::ClientAuth, value: Option<&http::HeaderValue>) -> bool {
    let Some(value) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some((scheme, b64)) = value.trim().split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return false;
    };
    let expected = format!("{}:{}", auth.username, auth.password);
    same_secret(&given, expected.as_bytes())
}

/// Whether `given` equals `expected`, in time that depends only on the lengths.
pub fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len() && bool::from(given.ct_eq(expected))
}

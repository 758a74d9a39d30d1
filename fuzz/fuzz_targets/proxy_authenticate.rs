//! `Proxy-Authenticate` values as a hostile or broken proxy sends them: every header value
//! parses into challenges without panicking, and the accessors the 407 loop uses (scheme,
//! decoded token, realm) accept whatever came out.
#![no_main]

use libfuzzer_sys::fuzz_target;
use waypost_auth::challenge::{parse_header_value, parse_headers};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for challenge in parse_header_value(&text) {
        let _ = challenge.scheme();
        let _ = challenge.token();
        let _ = challenge.param("realm");
    }
    // The same bytes as header values (several headers, split at NUL), as hyper hands them over.
    let mut headers = http::HeaderMap::new();
    for part in data.split(|&b| b == 0) {
        if let Ok(value) = http::HeaderValue::from_bytes(part) {
            headers.append(http::header::PROXY_AUTHENTICATE, value);
        }
    }
    let _ = parse_headers(&headers);
});

//! Checks on a client's request head made before anything else, at the server edge: its size
//! against `limits.max_request_header_size` (exactly: hyper's read buffer alone lets heads
//! somewhat larger through) and its transfer codings (only `chunked`; a request with another
//! coding, such as `gzip, chunked`, gets 501 instead of having the coding silently dropped).
//!
//! Pure: reads the parsed head, returns the refusal.

use http::{header, Request};

use crate::error::{ErrorKind, ProxyError};

/// The request head's size on the wire as the client sent it (request line, each header line
/// with `: ` and CRLF, the blank line), up to insignificant whitespace.
pub fn head_size<B>(req: &Request<B>) -> usize {
    let line = req.method().as_str().len() + 1 + req.uri().to_string().len() + 1 + 8 + 2;
    let headers: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + 2 + v.len() + 2)
        .sum();
    line + headers + 2
}

/// Refuses a head larger than `limit` (431) or with a transfer coding other than chunked (501).
pub fn check<B>(req: &Request<B>, limit: usize) -> Result<(), ProxyError> {
    let size = head_size(req);
    if size > limit {
        return Err(ProxyError::new(
            ErrorKind::RequestHeadersTooLarge,
            format!("the request head is {size} bytes; limits.max_request_header_size is {limit}"),
        ));
    }
    for v in req.headers().get_all(header::TRANSFER_ENCODING) {
        let text = v.to_str().unwrap_or("?");
        let other = text
            .split(',')
            .map(str::trim)
            .find(|c| !c.is_empty() && !c.eq_ignore_ascii_case("chunked"));
        if let Some(coding) = other {
            return Err(ProxyError::new(
                ErrorKind::UnsupportedTransferCoding,
                format!("transfer coding {coding:?} is not supported (only chunked)"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::post("http://example.test/x");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn the_head_size_counts_every_byte_of_the_head() {
        // "POST http://example.test/x HTTP/1.1\r\n" + "host: a\r\n" + "\r\n"
        assert_eq!(head_size(&req(&[("host", "a")])), 37 + 9 + 2);
    }

    #[test]
    fn a_head_one_byte_over_the_limit_is_refused_with_431() {
        let r = req(&[("x-pad", &"a".repeat(100))]);
        let size = head_size(&r);
        assert!(check(&r, size).is_ok());
        let e = check(&r, size - 1).unwrap_err();
        assert_eq!(
            e.kind.status(),
            http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
    }

    #[test]
    fn codings_other_than_chunked_get_501() {
        assert!(check(&req(&[("transfer-encoding", "chunked")]), 1 << 16).is_ok());
        for te in ["gzip, chunked", "GZIP,chunked", "deflate"] {
            let e = check(&req(&[("transfer-encoding", te)]), 1 << 16).unwrap_err();
            assert_eq!(e.kind.status(), http::StatusCode::NOT_IMPLEMENTED, "{te}");
        }
    }
}

//! Getting a PAC script: from a file, or over http(s) with a size cap, a timeout and redirects.
//!
//! Downloads go DIRECT (as WinHTTP's do) under the TLS policy; redirects are followed up to 5
//! times, never from https to http. Text is UTF-8 when valid, else Latin-1.

use std::time::Duration;

use http::{header, Request, Uri};
use http_body_util::BodyExt;

use crate::app::App;
use crate::body;
use crate::target::{Scheme, Target};
use crate::upstream::{dial, handshake};

/// Reads `source` (a path, `file://` URL or `http(s)://` URL).
pub async fn fetch(
    app: &App,
    source: &str,
    timeout: Duration,
    max: usize,
) -> Result<String, String> {
    if let Some(path) = source.strip_prefix("file://") {
        return read_file(path, max);
    }
    if !(source.starts_with("http://") || source.starts_with("https://")) {
        return read_file(source, max);
    }
    tokio::time::timeout(timeout, fetch_url(app, source, max))
        .await
        .map_err(|_| format!("downloading {source} took longer than {timeout:?}"))?
}

fn read_file(path: &str, max: usize) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    if bytes.len() > max {
        return Err(format!(
            "{path} is {} bytes, over the {max}-byte limit",
            bytes.len()
        ));
    }
    Ok(decode(bytes))
}

/// UTF-8 when valid, else Latin-1 (each byte one code point), as browsers do for PAC files.
pub fn decode(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => e.into_bytes().iter().map(|b| *b as char).collect(),
    }
}

async fn fetch_url(app: &App, url: &str, max: usize) -> Result<String, String> {
    let mut current = url.to_string();
    for _ in 0..=5 {
        let uri: Uri = current
            .parse()
            .map_err(|e| format!("invalid PAC URL {current}: {e}"))?;
        let target = Target::from_absolute(&uri, false).map_err(|e| e.detail)?;
        let io = dial::stream(
            app,
            &target.host,
            target.port,
            target.scheme == Scheme::Https,
        )
        .await
        .map_err(|e| e.to_string())?;
        let mut sender = handshake(app, io, false, "PAC server")
            .await
            .map_err(|e| e.to_string())?;
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let req = Request::get(path)
            .header(header::HOST, target.host_header())
            .header(header::ACCEPT, "application/x-ns-proxy-autoconfig, */*")
            .header(
                header::USER_AGENT,
                concat!("waypost/", env!("CARGO_PKG_VERSION")),
            )
            .body(body::empty())
            .map_err(|e| e.to_string())?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("{current}: {e}"))?;
        let status = resp.status();
        if status.is_redirection() {
            let loc = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| format!("{current}: {status} without Location"))?;
            let next = if loc.starts_with("http://") || loc.starts_with("https://") {
                loc.to_string()
            } else {
                format!(
                    "{}://{}{}",
                    target.scheme.as_str(),
                    target.host_header(),
                    loc
                )
            };
            if target.scheme == Scheme::Https && next.starts_with("http://") {
                return Err(format!(
                    "{current} redirects from https to http ({next}); refused"
                ));
            }
            current = next;
            continue;
        }
        if !status.is_success() {
            return Err(format!("{current} answered {status}"));
        }
        let mut body = resp.into_body();
        let mut bytes = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("{current}: {e}"))?;
            if let Some(d) = frame.data_ref() {
                bytes.extend_from_slice(d);
                if bytes.len() > max {
                    return Err(format!("{current} is over the {max}-byte limit"));
                }
            }
        }
        return Ok(decode(bytes));
    }
    Err(format!("{url}: more than 5 redirects"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn latin1_scripts_are_decoded_when_not_utf8() {
        assert_eq!(super::decode(vec![b'a', 0xe9]), "a\u{e9}");
        assert_eq!(super::decode("é".as_bytes().to_vec()), "é");
    }
}

//! Getting a PAC script: from a file, or over http(s) with a size cap, a timeout and redirects.
//!
//! Downloads go DIRECT (as WinHTTP's do) through waypost's own [`HttpClient`] (the dialer's
//! timeouts and TLS policy); redirects are followed up to 5
//! times, never from https to http. Text is UTF-8 when valid, else Latin-1.

use std::time::Duration;

use http::{header, Uri};

use crate::upstream::client::HttpClient;

/// Reads `source` (a path, `file://` URL or `http(s)://` URL).
pub async fn fetch(
    client: &HttpClient,
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
    tokio::time::timeout(timeout, fetch_url(client, source, max))
        .await
        .map_err(|_| {
            format!(
                "downloading {} took longer than {timeout:?}",
                crate::redact::url(source)
            )
        })?
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

async fn fetch_url(client: &HttpClient, url: &str, max: usize) -> Result<String, String> {
    let mut current = url.to_string();
    for _ in 0..=5 {
        let got = client
            .get(&current, "application/x-ns-proxy-autoconfig, */*", max)
            .await?;
        let status = got.status;
        if status.is_redirection() {
            let uri: Uri = current
                .parse()
                .map_err(|e| format!("invalid PAC URL {}: {e}", crate::redact::url(&current)))?;
            let loc = got
                .headers
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    format!(
                        "{}: {status} without Location",
                        crate::redact::url(&current)
                    )
                })?;
            let next = resolve_location(&uri, loc).ok_or_else(|| {
                format!(
                    "{}: {status} to an unusable Location {:?}",
                    crate::redact::url(&current),
                    crate::redact::url(loc)
                )
            })?;
            if uri.scheme_str() == Some("https") && next.starts_with("http://") {
                return Err(format!(
                    "{} redirects from https to http ({}); refused",
                    crate::redact::url(&current),
                    crate::redact::url(&next)
                ));
            }
            current = next;
            continue;
        }
        if !status.is_success() {
            return Err(format!(
                "{} answered {status}",
                crate::redact::url(&current)
            ));
        }
        return Ok(decode(got.body.to_vec()));
    }
    Err(format!(
        "{}: more than 5 redirects",
        crate::redact::url(url)
    ))
}

/// The absolute URL a `Location` names, resolved against `base` (RFC 3986 section 5.2: an
/// absolute URL, `//authority/path`, `/path`, `?query` or a path relative to base's directory).
/// None for another scheme or a base without scheme and authority.
fn resolve_location(base: &Uri, loc: &str) -> Option<String> {
    let loc = loc.split('#').next().unwrap_or("").trim();
    let lower = loc.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        // the scheme in lower case, so "HTTP://" cannot slip past the https -> http check
        let colon = loc.find(':')?;
        return Some(format!("{}{}", &lower[..colon], &loc[colon..]));
    }
    let scheme = base.scheme_str()?;
    if loc.starts_with("//") {
        return Some(format!("{scheme}:{loc}"));
    }
    // any other "scheme:" is not ours to follow
    if let Some(colon) = loc.find(':') {
        if !loc[..colon].contains(['/', '?']) {
            return None;
        }
    }
    let origin = format!("{scheme}://{}", base.authority()?);
    let base_path = base.path();
    let (path, query) = match loc.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (loc, None),
    };
    let merged = if path.is_empty() {
        base_path.to_string()
    } else if path.starts_with('/') {
        path.to_string()
    } else {
        let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
        format!("{}{path}", if dir.is_empty() { "/" } else { dir })
    };
    let mut out = format!("{origin}{}", remove_dot_segments(&merged));
    match query {
        Some(q) => out.push_str(&format!("?{q}")),
        None if path.is_empty() => {
            if let Some(q) = base.query() {
                out.push_str(&format!("?{q}"));
            }
        }
        None => {}
    }
    Some(out)
}

fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *seg {
            "." => {
                if last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn redirect_locations_resolve_against_the_url_that_answered() {
        let base: http::Uri = "http://pac.example:8080/dir/sub/old.pac?v=1"
            .parse()
            .unwrap();
        let r = |loc: &str| super::resolve_location(&base, loc);
        let cases = [
            ("https://other.example/x.pac", "https://other.example/x.pac"),
            ("HTTP://Other.example/X.pac", "http://Other.example/X.pac"),
            ("//cdn.example/p.pac", "http://cdn.example/p.pac"),
            ("/root.pac", "http://pac.example:8080/root.pac"),
            ("new.pac", "http://pac.example:8080/dir/sub/new.pac"),
            ("../up.pac#frag", "http://pac.example:8080/dir/up.pac"),
            (
                "./same.pac?x=2",
                "http://pac.example:8080/dir/sub/same.pac?x=2",
            ),
            ("?v=2", "http://pac.example:8080/dir/sub/old.pac?v=2"),
        ];
        for (loc, want) in cases {
            assert_eq!(r(loc).as_deref(), Some(want), "Location: {loc}");
        }
        assert_eq!(r("ftp://files.example/p.pac"), None);
        assert_eq!(r("file:///etc/passwd"), None);
    }

    #[test]
    fn latin1_scripts_are_decoded_when_not_utf8() {
        assert_eq!(super::decode(vec![b'a', 0xe9]), "a\u{e9}");
        assert_eq!(super::decode("é".as_bytes().to_vec()), "é");
    }
}

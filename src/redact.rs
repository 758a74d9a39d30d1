//! Redaction of URLs before they are shown anywhere (logs, `config check`, `/explain`, the
//! status page, readiness reasons, the last-good PAC `.source` file): a PAC URL may carry a
//! user and password (`http://user:pw@host/`) or a token in its query (`?token=...`). One
//! function, [`url`], used by all of them.
//!
//! What is kept: scheme, host, port and path (enough to tell which script it is); the
//! userinfo becomes `***@`, the query `?***`, a fragment is dropped. Anything that is not a
//! URL (a file path, `auto`) is returned as is.

/// `s` with its userinfo and query replaced (see the module comment).
pub fn url(s: &str) -> String {
    let Some((scheme, rest)) = s.split_once("://") else {
        return s.to_string();
    };
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return s.to_string();
    }
    let rest = rest.split('#').next().unwrap_or("");
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host = match authority.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, _)) => format!("{path}?***"),
        None => tail.to_string(),
    };
    format!("{scheme}://{host}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_and_query_are_hidden_and_the_rest_kept() {
        assert_eq!(
            url("http://alice:s3cret@pac.corp.example:8080/proxy.pac?token=abc#x"),
            "http://***@pac.corp.example:8080/proxy.pac?***"
        );
        assert_eq!(
            url("https://pac.example/p.pac"),
            "https://pac.example/p.pac"
        );
        assert_eq!(url("https://pac.example?k=v"), "https://pac.example?***");
        assert_eq!(url("/etc/waypost/proxy.pac"), "/etc/waypost/proxy.pac");
        assert_eq!(url("auto"), "auto");
    }
}

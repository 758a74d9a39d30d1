//! What the script is shown (spec §5): credentials and fragments are always removed, https and
//! wss URLs are cut to their origin, and `host` has no port and no brackets. Pure string work.

use crate::PacError;

/// The `(url, host)` pair a script receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptInput {
    /// The URL as the script sees it.
    pub url: String,
    /// The host, lower-case, without port or brackets.
    pub host: String,
}

/// Sanitises a request URL the way the proxy does before asking the script.
pub fn sanitize(raw: &str) -> Result<ScriptInput, PacError> {
    let bad = |reason: &str| PacError::BadUrl {
        url: raw.to_string(),
        reason: reason.to_string(),
    };
    let mut url = url::Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
    // Each setter re-serialises the URL, so only those with something to strip run.
    // Setting credentials fails only for URLs that cannot have them; nothing to strip then.
    if !url.username().is_empty() {
        let _ = url.set_username("");
    }
    if url.password().is_some() {
        let _ = url.set_password(None);
    }
    if url.fragment().is_some() {
        url.set_fragment(None);
    }
    if matches!(url.scheme(), "https" | "wss") {
        if url.path() != "/" {
            url.set_path("/");
        }
        if url.query().is_some() {
            url.set_query(None);
        }
    }
    let host = host_of_url(&url).ok_or_else(|| bad("no host"))?;
    Ok(ScriptInput {
        url: url.into(),
        host,
    })
}

/// The host of a URL as given, for the unsanitised `eval_raw` path (`--host` default).
pub fn host_of(raw: &str) -> Option<String> {
    url::Url::parse(raw).ok().as_ref().and_then(host_of_url)
}

fn host_of_url(url: &url::Url) -> Option<String> {
    let host = url.host_str()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some(host.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(url: &str) -> (String, String) {
        let i = sanitize(url).unwrap();
        (i.url, i.host)
    }

    #[test]
    fn https_urls_are_cut_to_their_origin() {
        assert_eq!(
            s("https://Example.COM:8443/a/b?q=1#f"),
            ("https://example.com:8443/".into(), "example.com".into())
        );
        assert_eq!(s("wss://h/socket?x"), ("wss://h/".into(), "h".into()));
    }

    #[test]
    fn http_urls_keep_path_and_query_but_lose_credentials_and_fragment() {
        assert_eq!(
            s("http://user:pw@h.example/p?q=1#frag"),
            ("http://h.example/p?q=1".into(), "h.example".into())
        );
    }

    #[test]
    fn default_ports_are_dropped_and_ipv6_hosts_unbracketed() {
        assert_eq!(
            s("http://[::1]:80/x"),
            ("http://[::1]/x".into(), "::1".into())
        );
        assert_eq!(s("https://h:443/x"), ("https://h/".into(), "h".into()));
    }

    #[test]
    fn unparseable_urls_are_a_typed_error() {
        assert!(matches!(
            sanitize("not a url"),
            Err(PacError::BadUrl { .. })
        ));
    }

    #[test]
    fn host_of_keeps_the_url_as_given() {
        assert_eq!(
            host_of("http://[fe80::1]:8080/x").as_deref(),
            Some("fe80::1")
        );
    }
}

//! What of a URL, a configuration value or an error text may be shown: the one place that
//! decides it, for everything waypost shows (logs, `config check`, `doctor`, `/explain`,
//! `/status`, `/status.json`, readiness reasons, the last-good PAC `.source` file).
//!
//! A configuration can hold secrets in three ways, each with its function here:
//! - a URL carries a user and password (`http://user:pw@host/`) or a token in its query
//!   (`?token=...`): [`url`] keeps scheme, host, port and path (enough to tell which one it is),
//!   turns the userinfo into `***@` and the query into `?***`, and drops a fragment;
//! - a key holds a secret (`password`, `ntlm_hash`, ...: [`is_secret_key`]): [`value`] shows
//!   a value under such a key as [`HIDDEN`], any other value quoted and through [`url`];
//! - a message from a library may quote a URL it was given: [`text`] passes every URL inside a
//!   free text through [`url`] (the last sweep over a message, not a substitute for [`value`]:
//!   it cannot know a password that is not in a URL).
//!
//! Source text is the caller's to leave out: a file that does not parse may be a secret file
//! (a symlink swapped for the config or the PAC file), so parse errors name a file, line and
//! column, never quote the line (see `config::syntax`); a PAC script's load error keeps only
//! its error class ([`script_message`]; `waypost pac check FILE` shows the whole message to
//! whoever may read the file).
//!
//! Pure string work, no `crate::` import: every module may use it.

/// What is shown in place of a value under a secret-bearing key.
pub const HIDDEN: &str = "<hidden: the value of a secret key is never shown>";

/// `s` with its userinfo and query replaced (see the module comment). Anything that is not a
/// URL (a file path, `auto`) is returned as is.
pub fn url(s: &str) -> String {
    let lead = &s[..s.len() - s.trim_start().len()];
    let Some((scheme, rest)) = s.trim_start().split_once("://") else {
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
    format!("{lead}{scheme}://{host}{tail}")
}

/// True for a key whose value is a secret: its last part (`auth.proxies[1].password` ->
/// `password`) names a password (not a `password_file`: that is a path), a secret, a token or
/// a hash.
pub fn is_secret_key(key: &str) -> bool {
    let last = key
        .rsplit('.')
        .next()
        .unwrap_or(key)
        .split('[')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    (last.contains("password") && !last.ends_with("_file"))
        || last.contains("secret")
        || last.contains("token")
        || last.ends_with("hash")
}

/// The value `v` of the configuration key `key` as a message may show it: [`HIDDEN`] under a
/// secret key, else quoted (`"..."`) with URL userinfo and query redacted.
pub fn value(key: &str, v: &str) -> String {
    if is_secret_key(key) {
        HIDDEN.to_string()
    } else {
        format!("{:?}", url(v))
    }
}

/// `s` with every URL in it (`scheme://` up to a space, a quote or `<>`, less trailing
/// punctuation) through [`url`].
pub fn text(s: &str) -> String {
    let is_scheme = |c: char| c.is_ascii_alphanumeric() || "+-.".contains(c);
    let ends = |c: char| c.is_whitespace() || "\"'`<>\\".contains(c);
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let start = rest[..i]
            .char_indices()
            .rev()
            .find(|(_, c)| !is_scheme(*c))
            .map_or(0, |(j, c)| j + c.len_utf8());
        let after = i + "://".len();
        let mut end = rest[after..].find(ends).map_or(rest.len(), |e| after + e);
        end = after
            + rest[after..end]
                .trim_end_matches([':', ',', ';', '.', ')'])
                .len();
        out.push_str(&rest[..start]);
        out.push_str(&url(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// A JavaScript engine's message about a script that failed to load, cut to its error class
/// (`ReferenceError: <a word of the file> is not defined` -> `ReferenceError`): the rest may
/// quote the file.
pub fn script_message(message: &str) -> String {
    const CLASSES: [&str; 9] = [
        "Error",
        "EvalError",
        "RangeError",
        "ReferenceError",
        "SyntaxError",
        "TypeError",
        "URIError",
        "AggregateError",
        "InternalError",
    ];
    let class = message.split(':').next().unwrap_or("").trim();
    let known = CLASSES.contains(&class);
    format!(
        "{} (the engine's message is not shown: it may quote the file; `waypost pac check` on the script shows it)",
        if known { class } else { "an exception" }
    )
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
        assert_eq!(url(" http://u:pw@x/"), " http://***@x/");
        assert_eq!(url("/etc/waypost/proxy.pac"), "/etc/waypost/proxy.pac");
        assert_eq!(url("auto"), "auto");
    }

    #[test]
    fn values_of_secret_keys_are_hidden_and_others_shown_without_url_secrets() {
        for key in [
            "client_auth.password",
            "socks.password",
            "auth.password",
            "auth.proxies[1].password",
            "auth.ntlm_hash",
            "api_token",
        ] {
            assert!(is_secret_key(key), "{key}");
            assert_eq!(value(key, "hunter2"), HIDDEN, "{key}");
        }
        for key in [
            "auth.password_file",
            "client_auth.username",
            "route.upstream",
        ] {
            assert!(!is_secret_key(key), "{key}");
        }
        assert_eq!(
            value("route.upstream", "http://u:pw@proxy:3128/?token=t"),
            "\"http://***@proxy:3128/?***\""
        );
        assert_eq!(value("log.level", "loud"), "\"loud\"");
    }

    #[test]
    fn a_script_message_keeps_only_its_error_class() {
        let m = script_message("ReferenceError: CANARY is not defined");
        assert!(m.starts_with("ReferenceError ("), "{m}");
        let m = script_message("\"CANARY: x\"");
        assert!(m.starts_with("an exception ("), "{m}");
        assert!(!script_message("CANARYError: x").contains("CANARY"));
    }

    #[test]
    fn every_url_inside_a_text_is_redacted_and_the_words_around_it_kept() {
        assert_eq!(
            text("http://u:pw@a/x?t=1: refused; then \"https://b/?k=v\" (socks5://c:1)"),
            "http://***@a/x?***: refused; then \"https://b/?***\" (socks5://c:1)"
        );
        assert_eq!(text("no url here: a://"), "no url here: a://");
        assert_eq!(text("é://x?y"), "é://x?y", "not a scheme");
        assert_eq!(text("at http://a/?t=1."), "at http://a/?***.");
        assert_eq!(text("://x?y and ://"), "://x?y and ://");
    }
}

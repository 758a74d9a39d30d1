//! Static analysis of a script's text for the result cache: does `FindProxyForURL` ever read
//! its `url` argument? When it provably does not (most corporate scripts decide on `host`
//! alone), one cached answer serves every URL of a host, not only every URL of one origin.
//!
//! The test is lexical and conservative — any doubt answers "it reads the url". The url value
//! can only be reached through the parameter's name (inside the function or closures in it),
//! the `arguments` object, or a direct `eval` (boa makes `f.arguments` / `f.caller` throw). So
//! the script qualifies only when: it defines `function FindProxyForURL(P, ...)` and names
//! `FindProxyForURL` nowhere else (no redefinition) and never names `FindProxyForURLEx`; the
//! word `P` appears exactly once in the whole text (comments and strings included); the words
//! `arguments` and `eval` appear nowhere; and no `\u` escape (which could spell an identifier)
//! appears. A script that hides a redefinition behind computed names can defeat this; it then
//! only loses path-dependent answers for itself — it decides its own routing either way.

/// True when the script's entry point may read its `url` argument (the safe default).
pub(crate) fn reads_url(text: &str) -> bool {
    url_parameter_unused(text).is_none()
}

fn url_parameter_unused(text: &str) -> Option<()> {
    if text.contains("\\u") {
        return None;
    }
    let words = words(text);
    let count = |w: &str| words.iter().filter(|x| **x == w).count();
    if count("FindProxyForURL") != 1
        || count("FindProxyForURLEx") != 0
        || count("arguments") != 0
        || count("eval") != 0
    {
        return None;
    }
    // `function FindProxyForURL ( P , ...`
    let i = words.iter().position(|w| *w == "FindProxyForURL")?;
    if i == 0 || words[i - 1] != "function" {
        return None;
    }
    let at = text.find("FindProxyForURL")? + "FindProxyForURL".len();
    let rest = text[at..].trim_start().strip_prefix('(')?;
    let param: String = rest
        .trim_start()
        .chars()
        .take_while(|c| is_word_char(*c))
        .collect();
    if param.is_empty() || param.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        return None;
    }
    (count(&param) == 1).then_some(())
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// Every maximal run of identifier characters, in order.
fn words(text: &str) -> Vec<&str> {
    text.split(|c: char| !is_word_char(c))
        .filter(|w| !w.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::reads_url;

    #[test]
    fn a_script_deciding_on_host_alone_does_not_read_the_url() {
        let s = "function FindProxyForURL(url, host) {\n  if (dnsDomainIs(host, '.corp')) return 'DIRECT';\n  return 'PROXY p:8080';\n}";
        assert!(!reads_url(s));
    }

    #[test]
    fn any_use_of_the_url_or_a_way_around_the_name_counts_as_reading_it() {
        for s in [
            "function FindProxyForURL(url, host) { return shExpMatch(url, '*x*') ? 'DIRECT' : 'PROXY p:1'; }",
            "function FindProxyForURL(u, h) { function g() { return u; } return g(); }",
            "function FindProxyForURL(url, host) { return arguments[0]; }",
            "function FindProxyForURL(url, host) { return eval('ur' + 'l'); }",
            "function FindProxyForURL(url, host) { return 'DIRECT'; } FindProxyForURL = function (a, b) { return a; };",
            "function FindProxyForURLEx(url, host) { return 'DIRECT'; } function FindProxyForURL(url, host) { return 'DIRECT'; }",
            "function FindProxyForURL(\\u0075rl, host) { return 'DIRECT'; }",
            "function FindProxyForURL(url, url) { return url; }",
            "var FindProxyForURL = function (url, host) { return 'DIRECT'; };",
            "// the url is ignored\nfunction FindProxyForURL(url, host) { return 'DIRECT'; }",
        ] {
            assert!(reads_url(s), "{s}");
        }
    }
}

//! `Proxy-Authenticate` parsing: every header of a 407, and every challenge inside
//! one header (RFC 7235 `1#challenge`, e.g. `Basic realm="x", NTLM`), into typed
//! [`Challenge`] values. Pure functions over header values: no I/O, no decisions about
//! which scheme to use (that is `scheme`'s job). Unparseable fragments are skipped,
//! never fatal: a proxy's odd header must not stop us reading the others.

use base64::Engine;
use http::header::PROXY_AUTHENTICATE;
use http::HeaderMap;

use crate::scheme::Scheme;

/// One challenge: an auth scheme and either a token68 or auth-params.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme name as the proxy spelled it.
    pub scheme_name: String,
    /// `NTLM TlRM...`, `Negotiate YII...`: the opaque token, still base64.
    pub token68: Option<String>,
    /// `realm="x"` and friends, names lower-cased, values unquoted.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// The scheme, when it is one we know.
    pub fn scheme(&self) -> Option<Scheme> {
        self.scheme_name.parse().ok()
    }

    /// The decoded token of a Negotiate/NTLM challenge; `None` for a bare challenge or
    /// a token that is not base64 (treated like a bare one).
    pub fn token(&self) -> Option<Vec<u8>> {
        let t = self.token68.as_deref()?;
        base64::engine::general_purpose::STANDARD
            .decode(t)
            .ok()
            .filter(|t| !t.is_empty())
    }

    /// An auth-param by (case-insensitive) name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// All challenges of all `Proxy-Authenticate` headers, in order.
pub fn parse_headers(headers: &HeaderMap) -> Vec<Challenge> {
    headers
        .get_all(PROXY_AUTHENTICATE)
        .iter()
        .flat_map(|v| parse_header_value(&String::from_utf8_lossy(v.as_bytes())))
        .collect()
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

fn is_token68_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-._~+/".contains(&c)
}

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn skip_ws_and_commas(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.pos += 1;
        }
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> String {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.pos]).into_owned()
    }

    fn at_end_of_item(&self) -> bool {
        matches!(self.peek(), None | Some(b','))
    }

    /// `token BWS "=" BWS value` lies ahead (a token68's `=` padding is not).
    fn param_ahead(&self) -> bool {
        let mut probe = Cursor {
            s: self.s,
            pos: self.pos,
        };
        if probe.take_while(is_tchar).is_empty() {
            return false;
        }
        probe.skip_ws();
        if probe.peek() != Some(b'=') {
            return false;
        }
        probe.pos += 1;
        probe.skip_ws();
        // `abc=` at the end of an item is a padded token68, not a parameter.
        probe.peek().is_some_and(|c| c == b'"' || is_tchar(c))
    }

    fn quoted_string(&mut self) -> String {
        let mut out = Vec::new();
        self.pos += 1; // opening quote
        while let Some(c) = self.peek() {
            self.pos += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    if let Some(n) = self.peek() {
                        out.push(n);
                        self.pos += 1;
                    }
                }
                _ => out.push(c),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// The challenges in one header value (`Negotiate, NTLM, Basic realm="x"`).
pub fn parse_header_value(value: &str) -> Vec<Challenge> {
    let mut cur = Cursor {
        s: value.as_bytes(),
        pos: 0,
    };
    let mut out = Vec::new();
    loop {
        cur.skip_ws_and_commas();
        if cur.peek().is_none() {
            return out;
        }
        let scheme_name = cur.take_while(is_tchar);
        if scheme_name.is_empty() {
            cur.pos += 1; // junk byte: skip it and resynchronise
            continue;
        }
        let mut challenge = Challenge {
            scheme_name,
            token68: None,
            params: Vec::new(),
        };
        cur.skip_ws();
        if !cur.at_end_of_item() && !cur.param_ahead() {
            let start = cur.pos;
            let mut t = cur.take_while(is_token68_char);
            t.push_str(&cur.take_while(|c| c == b'='));
            cur.skip_ws();
            if !t.is_empty() && cur.at_end_of_item() {
                challenge.token68 = Some(t);
            } else {
                cur.pos = start;
            }
        }
        if challenge.token68.is_none() {
            parse_params(&mut cur, &mut challenge.params);
        }
        out.push(challenge);
    }
}

/// `#auth-param` after a scheme; stops before the next challenge's scheme.
fn parse_params(cur: &mut Cursor<'_>, params: &mut Vec<(String, String)>) {
    loop {
        cur.skip_ws();
        if !cur.param_ahead() {
            // Not a parameter: skip to the next comma (junk) unless at the end.
            while !cur.at_end_of_item() {
                cur.pos += 1;
            }
            return;
        }
        let name = cur.take_while(is_tchar).to_ascii_lowercase();
        cur.skip_ws();
        cur.pos += 1; // '='
        cur.skip_ws();
        let value = if cur.peek() == Some(b'"') {
            cur.quoted_string()
        } else {
            cur.take_while(is_tchar)
        };
        params.push((name, value));
        cur.skip_ws();
        // A comma either separates params of this challenge or starts the next one.
        let before = cur.pos;
        cur.skip_ws_and_commas();
        if !cur.param_ahead() {
            cur.pos = before;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn names(v: &[Challenge]) -> Vec<&str> {
        v.iter().map(|c| c.scheme_name.as_str()).collect()
    }

    #[test]
    fn one_header_per_scheme_is_read_in_order() {
        let mut h = HeaderMap::new();
        h.append(PROXY_AUTHENTICATE, HeaderValue::from_static("Negotiate"));
        h.append(PROXY_AUTHENTICATE, HeaderValue::from_static("NTLM"));
        h.append(
            PROXY_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"Testbed corporate proxy\""),
        );
        let c = parse_headers(&h);
        assert_eq!(names(&c), ["Negotiate", "NTLM", "Basic"]);
        assert_eq!(c[2].param("realm"), Some("Testbed corporate proxy"));
    }

    #[test]
    fn comma_separated_challenges_with_params_are_split() {
        let c = parse_header_value("Basic realm=\"x, y\", charset=UTF-8, NTLM, Negotiate");
        assert_eq!(names(&c), ["Basic", "NTLM", "Negotiate"]);
        assert_eq!(c[0].param("realm"), Some("x, y"));
        assert_eq!(c[0].param("charset"), Some("UTF-8"));
    }

    #[test]
    fn a_token68_with_padding_is_kept_whole() {
        let c = parse_header_value("NTLM TlRMTVNTUAACAAAAAQI=, Basic realm=r");
        assert_eq!(c[0].token68.as_deref(), Some("TlRMTVNTUAACAAAAAQI="));
        assert_eq!(
            c[0].token().as_deref(),
            Some(&b"NTLMSSP\0\x02\0\0\0\x01\x02"[..])
        );
        assert_eq!(c[1].param("realm"), Some("r"));
    }

    #[test]
    fn scheme_names_are_case_insensitive() {
        let c = parse_header_value("negotiate, ntlm, BASIC realm=a");
        let schemes: Vec<_> = c.iter().map(|c| c.scheme()).collect();
        assert_eq!(
            schemes,
            [
                Some(Scheme::Negotiate),
                Some(Scheme::Ntlm),
                Some(Scheme::Basic)
            ]
        );
    }

    #[test]
    fn a_bare_challenge_has_no_token() {
        let c = parse_header_value("NTLM");
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].token(), None);
    }

    #[test]
    fn quoted_strings_unescape_backslashes() {
        let c = parse_header_value(r#"Basic realm="a \"quoted\" realm""#);
        assert_eq!(c[0].param("realm"), Some(r#"a "quoted" realm"#));
    }

    #[test]
    fn junk_is_skipped_without_losing_later_challenges() {
        let c = parse_header_value(
            " , ;;; , Digest realm=\"r\", nonce=\"n\", qop=\"auth\" , Unknown ,NTLM abc=",
        );
        assert_eq!(names(&c), ["Digest", "Unknown", "NTLM"]);
        assert_eq!(c[0].params.len(), 3);
        assert_eq!(c[2].token68.as_deref(), Some("abc="));
        assert!(c[1].scheme().is_none());
    }
}

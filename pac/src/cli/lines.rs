//! The line formats of the list commands, parsed by pure functions: a URL list (`eval --urls`,
//! `diff --urls`) has `URL [HOST]` per line; a case file (`test`) has `URL EXPECTED`, where
//! EXPECTED is everything after the first run of whitespace (`PROXY a.corp:8080; DIRECT`).
//! Blank lines and lines starting with `#` are skipped in both. Errors name the file and line
//! (`cases.txt:12: expected URL then answer`), and a file's errors are reported all at once.

use crate::sanitize::{host_of, sanitize};

/// What the script is called with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub url: String,
    pub host: String,
}

/// Builds the `(url, host)` pair: `host` as given, else the URL's own host; with `sanitize`,
/// the proxy's URL stripping first. `hint` ends the message of a URL without a host.
pub(crate) fn request(
    url: &str,
    host: Option<&str>,
    sanitize_url: bool,
    hint: &str,
) -> Result<Request, String> {
    let (url, default_host) = if sanitize_url {
        let s = sanitize(url).map_err(|e| e.to_string())?;
        (s.url, Some(s.host))
    } else {
        (url.to_string(), host_of(url))
    };
    let host = match host {
        Some(h) => h.to_string(),
        None => default_host.ok_or_else(|| format!("cannot find a host in {url:?}{hint}"))?,
    };
    Ok(Request { url, host })
}

/// A problem with one line of an input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LineError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// The content of a line, or `None` for a blank line or a comment.
fn content(line: &str) -> Option<&str> {
    let line = line.trim();
    (!line.is_empty() && !line.starts_with('#')).then_some(line)
}

/// One line of a URL list: `Ok(None)` for blank lines and comments.
pub(crate) fn url_line(line: &str, sanitize_url: bool) -> Result<Option<Request>, String> {
    let Some(line) = content(line) else {
        return Ok(None);
    };
    let mut fields = line.split_whitespace();
    let (Some(url), host) = (fields.next(), fields.next()) else {
        return Ok(None);
    };
    if fields.next().is_some() {
        return Err("expected URL, optionally followed by the host to pass".into());
    }
    request(
        url,
        host,
        sanitize_url,
        "; put the host to pass after the URL",
    )
    .map(Some)
}

/// A case of a case file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Case {
    /// Line number in the file (from 1).
    pub line: usize,
    pub request: Request,
    pub expected: String,
}

/// Parses a whole case file named `file`; every bad line is reported.
pub(crate) fn cases(
    file: &str,
    text: &str,
    sanitize_url: bool,
) -> Result<Vec<Case>, Vec<LineError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some(line) = content(line) else {
            continue;
        };
        let error = |message: String| LineError {
            file: file.to_string(),
            line: i + 1,
            message,
        };
        let Some((url, expected)) = line.split_once(char::is_whitespace) else {
            errors.push(error("expected URL then answer".into()));
            continue;
        };
        match request(url, None, sanitize_url, "") {
            Ok(request) => out.push(Case {
                line: i + 1,
                request,
                expected: expected.trim().to_string(),
            }),
            Err(message) => errors.push(error(message)),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Parses a whole URL list named `file` (numbered lines, in order); every bad line is reported.
pub(crate) fn url_list(
    file: &str,
    text: &str,
    sanitize_url: bool,
) -> Result<Vec<(usize, Request)>, Vec<LineError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        match url_line(line, sanitize_url) {
            Ok(Some(r)) => out.push((i + 1, r)),
            Ok(None) => {}
            Err(message) => errors.push(LineError {
                file: file.to_string(),
                line: i + 1,
                message,
            }),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(url: &str, host: &str) -> Request {
        Request {
            url: url.into(),
            host: host.into(),
        }
    }

    #[test]
    fn a_url_line_is_a_url_and_an_optional_host() {
        assert_eq!(
            url_line("  http://a.example/x  ", false),
            Ok(Some(req("http://a.example/x", "a.example")))
        );
        assert_eq!(
            url_line("http://a.example/x\tgiven.example", false),
            Ok(Some(req("http://a.example/x", "given.example")))
        );
        assert_eq!(url_line("   ", false), Ok(None));
        assert_eq!(url_line("# http://skipped/", false), Ok(None));
        assert!(url_line("http://a/ b c", false)
            .unwrap_err()
            .contains("expected URL"));
        assert!(url_line("nohost", false)
            .unwrap_err()
            .contains("cannot find a host in \"nohost\"; put the host"));
        assert_eq!(url_line("nohost h", false), Ok(Some(req("nohost", "h"))));
    }

    #[test]
    fn sanitize_strips_urls_of_both_formats_as_the_proxy_does() {
        assert_eq!(
            url_line("https://u:p@h.example/secret?q", true),
            Ok(Some(req("https://h.example/", "h.example")))
        );
        let parsed = cases("c", "https://h.example/x DIRECT", true).unwrap();
        assert_eq!(parsed[0].request.url, "https://h.example/");
    }

    #[test]
    fn the_expected_answer_is_everything_after_the_first_run_of_whitespace() {
        let text =
            "# corp cases\n\nhttp://a.example/  PROXY a.corp:8080; DIRECT  \nhttp://b/\tDIRECT\n";
        let parsed = cases("cases.txt", text, false).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].line, 3);
        assert_eq!(parsed[0].expected, "PROXY a.corp:8080; DIRECT");
        assert_eq!(parsed[0].request, req("http://a.example/", "a.example"));
        assert_eq!(parsed[1].expected, "DIRECT");
    }

    #[test]
    fn every_bad_line_is_reported_with_its_file_and_line() {
        let text = "http://a/ DIRECT\nhttp://lonely/\n\nnot-a-url DIRECT\n";
        let errors: Vec<String> = cases("cases.txt", text, false)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0], "cases.txt:2: expected URL then answer");
        assert!(
            errors[1].starts_with("cases.txt:4: cannot find a host"),
            "{}",
            errors[1]
        );
        let errors = url_list("urls.txt", "http://a/\nx y z\n", false).unwrap_err();
        assert_eq!(errors[0].line, 2);
        assert_eq!(
            url_list("urls.txt", "# c\nhttp://a/\n\nhttp://b/ h\n", false).unwrap(),
            [(2, req("http://a/", "a")), (4, req("http://b/", "h"))]
        );
    }
}

//! The JUnit XML report of `waypost pac test --junit FILE`, the format CI systems (Jenkins,
//! GitLab, GitHub actions) read: one `<testsuite>` per case file, one `<testcase>` per case
//! named by its URL and line, `<failure>` for a wrong answer, `<error>` for an evaluation that
//! failed or a script that did not load. Pure rendering.

use std::fmt::Write as _;

/// What went wrong with one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Problem {
    /// The script answered something else.
    Failure { message: String, detail: String },
    /// The evaluation (or the load) failed.
    Error { message: String, detail: String },
}

/// One `<testcase>`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TestCase {
    pub name: String,
    pub seconds: f64,
    pub problem: Option<Problem>,
}

/// The whole report: one suite named `suite` (the case file).
pub(crate) fn render(suite: &str, cases: &[TestCase], seconds: f64) -> String {
    let failures = cases
        .iter()
        .filter(|c| matches!(c.problem, Some(Problem::Failure { .. })))
        .count();
    let errors = cases
        .iter()
        .filter(|c| matches!(c.problem, Some(Problem::Error { .. })))
        .count();
    let totals = format!(
        "tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{seconds:.3}\"",
        cases.len()
    );
    let suite = escape(suite);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(out, "<testsuites name=\"waypost pac test\" {totals}>");
    let _ = writeln!(out, "  <testsuite name=\"{suite}\" {totals}>");
    for case in cases {
        let _ = write!(
            out,
            "    <testcase classname=\"{suite}\" name=\"{}\" time=\"{:.6}\"",
            escape(&case.name),
            case.seconds
        );
        let (tag, message, detail) = match &case.problem {
            None => {
                out.push_str("/>\n");
                continue;
            }
            Some(Problem::Failure { message, detail }) => ("failure", message, detail),
            Some(Problem::Error { message, detail }) => ("error", message, detail),
        };
        let _ = write!(
            out,
            ">\n      <{tag} message=\"{}\">{}</{tag}>\n    </testcase>\n",
            escape(message),
            escape(detail)
        );
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

/// XML text: markup characters escaped, characters XML 1.0 cannot hold replaced.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_counts_failures_and_errors_and_escapes_what_it_quotes() {
        let cases = [
            TestCase {
                name: "http://a/?x=1&y=<2> (line 1)".into(),
                seconds: 0.001,
                problem: None,
            },
            TestCase {
                name: "http://b/ (line 2)".into(),
                seconds: 0.002,
                problem: Some(Problem::Failure {
                    message: "expected \"DIRECT\", got \"PROXY p:1\"".into(),
                    detail: "expected: DIRECT\nactual:   PROXY p:1".into(),
                }),
            },
            TestCase {
                name: "http://c/ (line 3)".into(),
                seconds: 0.0,
                problem: Some(Problem::Error {
                    message: "error (call): boom\u{0}".into(),
                    detail: String::new(),
                }),
            },
        ];
        let xml = render("cases.txt", &cases, 0.5);
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"waypost pac test\" tests=\"3\" failures=\"1\" errors=\"1\" time=\"0.500\">\n"));
        assert!(xml.contains(
            "<testcase classname=\"cases.txt\" name=\"http://a/?x=1&amp;y=&lt;2&gt; (line 1)\" time=\"0.001000\"/>"
        ));
        assert!(xml.contains(
            "<failure message=\"expected &quot;DIRECT&quot;, got &quot;PROXY p:1&quot;\">expected: DIRECT&#10;actual:   PROXY p:1</failure>"
        ));
        assert!(xml.contains("<error message=\"error (call): boom\u{FFFD}\"></error>"));
        assert!(xml.ends_with("  </testsuite>\n</testsuites>\n"));
    }
}

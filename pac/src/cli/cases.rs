//! `waypost pac test CASES --pac FILE`: every case of the case file through a pool of workers
//! (with the pinning flags for the whole run), compared with the expected answer exactly
//! (surrounding whitespace aside). Prints each mismatch — the case's line, URL, expected and
//! actual answers — then a summary line; `--junit FILE` also writes a JUnit report. Exit
//! status: 0 all passed, 1 a case failed (or the case file is bad: every bad line is listed
//! before anything runs), 2 the script does not load.

use std::time::Instant;

use super::input::{display_name, read_all};
use super::junit::{self, Problem, TestCase};
use super::lines::{cases, Case};
use super::ordered::{feed, in_order};
use super::outcome::{self, emitln, JsonError};
use super::script::{load, Failure};
use super::{usage, TestArgs, EXIT_DIFFERENT, EXIT_OK, EXIT_SCRIPT, EXIT_USAGE};

pub(crate) async fn test(args: TestArgs) -> i32 {
    let options = match args.list.options(&args.env, &args.isolation) {
        Ok(o) => o,
        Err(e) => return usage(e),
    };
    let width = options.workers * 2;
    let file = display_name(&args.cases).to_string();
    let text = match read_all(&args.cases).await {
        Ok(t) => t,
        Err(e) => return usage(e),
    };
    let parsed = match cases(&file, &text, args.sanitize) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors {
                emitln!("error: {e}");
            }
            return EXIT_USAGE;
        }
    };
    let started = Instant::now();
    let script = match load(&args.pac, options, args.list.coverage).await {
        Ok(s) => s,
        Err(Failure::Usage(e)) => return usage(e),
        Err(Failure::Script(err)) => {
            emitln!("error: {}: {err}", args.pac);
            let load = TestCase {
                name: format!("load {}", args.pac),
                seconds: started.elapsed().as_secs_f64(),
                problem: Some(Problem::Error {
                    message: err.to_string(),
                    detail: String::new(),
                }),
            };
            write_junit(&args, &file, &[load], started.elapsed().as_secs_f64());
            return EXIT_SCRIPT;
        }
    };
    let total = parsed.len();
    let mut report = Vec::with_capacity(total);
    let admit = |_: &Case| {
        let script = script.clone();
        async move { script.permit().await }
    };
    let work = |case: Case, permit| {
        let script = script.clone();
        async move {
            let t = Instant::now();
            let result = script.eval(&case.request, permit).await;
            (case, result, t.elapsed().as_secs_f64())
        }
    };
    in_order(
        feed(parsed),
        width,
        admit,
        work,
        |(case, result, seconds)| {
            let actual = match &result {
                Ok(a) => Ok((a.raw.as_str(), a.entries.as_slice())),
                Err(e) => Err(JsonError::from(e)),
            };
            let problem = judge(&case, &actual);
            if problem.is_some() {
                emitln!("FAIL {file}:{}: {}", case.line, case.request.url);
                emitln!("  expected: {}", case.expected);
                emitln!("  actual:   {}", outcome::text(&actual));
            }
            report.push(TestCase {
                name: format!("{} (line {})", case.request.url, case.line),
                seconds,
                problem,
            });
        },
    )
    .await;
    let failed = report.iter().filter(|c| c.problem.is_some()).count();
    let seconds = started.elapsed().as_secs_f64();
    emitln!(
        "{file}: {total} cases, {} passed, {failed} failed ({seconds:.2} s)",
        total - failed
    );
    write_junit(&args, &file, &report, seconds);
    if let Some(c) = script.coverage() {
        emitln!("\n{}", c.text().trim_end());
    }
    if failed > 0 {
        EXIT_DIFFERENT
    } else {
        EXIT_OK
    }
}

/// `None` when the answer is the expected one.
fn judge(case: &Case, actual: &outcome::Shown<'_>) -> Option<Problem> {
    let detail = format!(
        "expected: {}\nactual:   {}",
        case.expected,
        outcome::text(actual)
    );
    match actual {
        Ok((raw, _)) if raw.trim() == case.expected => None,
        Ok((raw, _)) => Some(Problem::Failure {
            message: format!("expected {:?}, got {:?}", case.expected, raw),
            detail,
        }),
        Err(e) => Some(Problem::Error {
            message: outcome::text(&Err(e.clone())),
            detail,
        }),
    }
}

fn write_junit(args: &TestArgs, suite: &str, cases: &[TestCase], seconds: f64) {
    let Some(path) = &args.junit else {
        return;
    };
    if let Err(e) = std::fs::write(path, junit::render(suite, cases, seconds)) {
        emitln!("error: {path}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::lines::Request;

    fn case(expected: &str) -> Case {
        Case {
            line: 3,
            request: Request {
                url: "http://a/".into(),
                host: "a".into(),
            },
            expected: expected.into(),
        }
    }

    #[test]
    fn an_answer_matches_exactly_apart_from_surrounding_whitespace() {
        assert_eq!(
            judge(
                &case("PROXY a:1; DIRECT"),
                &Ok((" PROXY a:1; DIRECT ", &[]))
            ),
            None
        );
        let Some(Problem::Failure { message, .. }) =
            judge(&case("PROXY a:1; DIRECT"), &Ok(("PROXY a:1;DIRECT", &[])))
        else {
            panic!("spacing inside the answer counts");
        };
        assert_eq!(
            message,
            "expected \"PROXY a:1; DIRECT\", got \"PROXY a:1;DIRECT\""
        );
        let failed = judge(&case("DIRECT"), &Err(JsonError::input("x".into())));
        assert!(matches!(failed, Some(Problem::Error { .. })));
    }
}

//! `waypost pac diff OLD NEW --urls FILE`: both scripts, each in its own pool of workers with
//! the same pinning, over the same URLs; prints only the URLs whose outcome differs
//! (`URL: OLD-ANSWER -> NEW-ANSWER`, an error shown as `error (KIND): ...`), in input order,
//! then the counts. Answers are compared as the strings the scripts returned. Exit status: 0
//! when no outcome changed, 1 otherwise (or a bad URL file: every bad line is listed before
//! anything runs), 2 when a script does not load.

use super::input::{display_name, read_all};
use super::lines::{url_list, Request};
use super::ordered::{feed, in_order};
use super::outcome::{self, emitln, JsonError, Side};
use super::script::{load, Answer, Failure};
use super::{usage, DiffArgs, EXIT_DIFFERENT, EXIT_OK, EXIT_SCRIPT, EXIT_USAGE};
use crate::PacError;

/// How one URL compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Same,
    Changed,
    /// One side or both failed; `bool`: the outcomes differ.
    Error(bool),
}

fn compare(old: &Result<Answer, PacError>, new: &Result<Answer, PacError>) -> Verdict {
    match (old, new) {
        (Ok(a), Ok(b)) if a.raw == b.raw => Verdict::Same,
        (Ok(_), Ok(_)) => Verdict::Changed,
        (Err(a), Err(b)) => Verdict::Error(a != b),
        _ => Verdict::Error(true),
    }
}

/// The counts printed at the end.
#[derive(Debug, Default, serde::Serialize)]
struct Counts {
    urls: usize,
    same: usize,
    changed: usize,
    /// URLs where either script failed.
    errors: usize,
    old_errors: usize,
    new_errors: usize,
    /// URLs whose outcome differs (changed, or errors that differ): what the exit status says.
    different: usize,
}

impl Counts {
    fn add(&mut self, verdict: Verdict, old_failed: bool, new_failed: bool) {
        self.urls += 1;
        match verdict {
            Verdict::Same => self.same += 1,
            Verdict::Changed => self.changed += 1,
            Verdict::Error(_) => self.errors += 1,
        }
        self.old_errors += usize::from(old_failed);
        self.new_errors += usize::from(new_failed);
        self.different += usize::from(matches!(verdict, Verdict::Changed | Verdict::Error(true)));
    }
}

pub(crate) async fn diff(args: DiffArgs) -> i32 {
    let options = match args.list.options(&args.env, &args.isolation) {
        Ok(o) => o,
        Err(e) => return usage(e),
    };
    let width = options.workers * 2;
    let file = display_name(&args.urls).to_string();
    let text = match read_all(&args.urls).await {
        Ok(t) => t,
        Err(e) => return usage(e),
    };
    let requests = match url_list(&file, &text, args.sanitize) {
        Ok(r) => r,
        Err(errors) => {
            for e in &errors {
                emitln!("error: {e}");
            }
            return EXIT_USAGE;
        }
    };
    let coverage = args.list.coverage;
    let (old, new) = tokio::join!(
        load(&args.old, options.clone(), coverage),
        load(&args.new, options, coverage)
    );
    let (old, new) = match (old, new) {
        (Ok(old), Ok(new)) => (old, new),
        (old, new) => {
            for (name, side) in [(&args.old, old.err()), (&args.new, new.err())] {
                match side {
                    Some(Failure::Usage(e)) => emitln!("error: {e}"),
                    Some(Failure::Script(err)) => emitln!("error: {name}: {err}"),
                    None => {}
                }
            }
            return EXIT_SCRIPT;
        }
    };
    let mut counts = Counts::default();
    let admit = |_: &(usize, Request)| {
        let (old, new) = (old.clone(), new.clone());
        async move { (old.permit().await, new.permit().await) }
    };
    let work = |(_, request): (usize, Request), (p, q)| {
        let (old, new) = (old.clone(), new.clone());
        async move {
            let (a, b) = tokio::join!(old.eval(&request, p), new.eval(&request, q));
            (request, a, b)
        }
    };
    in_order(feed(requests), width, admit, work, |(request, a, b)| {
        let verdict = compare(&a, &b);
        counts.add(verdict, a.is_err(), b.is_err());
        if matches!(verdict, Verdict::Changed | Verdict::Error(true)) {
            print_change(&args, &request, &a, &b);
        }
    })
    .await;
    print_counts(&args, &file, &counts);
    for c in [old.coverage(), new.coverage()].into_iter().flatten() {
        if args.json {
            outcome::emit(&serde_json::json!({ "coverage": c.json() }).to_string());
        } else {
            emitln!("\n{}", c.text().trim_end());
        }
    }
    if counts.different > 0 {
        EXIT_DIFFERENT
    } else {
        EXIT_OK
    }
}

fn shown(result: &Result<Answer, PacError>) -> outcome::Shown<'_> {
    match result {
        Ok(a) => Ok((a.raw.as_str(), a.entries.as_slice())),
        Err(e) => Err(JsonError::from(e)),
    }
}

fn print_change(
    args: &DiffArgs,
    r: &Request,
    old: &Result<Answer, PacError>,
    new: &Result<Answer, PacError>,
) {
    if !args.json {
        let (a, b) = (outcome::text(&shown(old)), outcome::text(&shown(new)));
        emitln!("{}: {a} -> {b}", r.url);
        return;
    }
    let line = DiffLine {
        url: &r.url,
        host: &r.host,
        old: Side::from(shown(old)),
        new: Side::from(shown(new)),
    };
    outcome::emit(&serde_json::to_string(&line).unwrap_or_default());
}

/// One `--json` line of a changed URL.
#[derive(serde::Serialize)]
struct DiffLine<'a> {
    url: &'a str,
    host: &'a str,
    old: Side<'a>,
    new: Side<'a>,
}

fn print_counts(args: &DiffArgs, file: &str, c: &Counts) {
    if args.json {
        #[derive(serde::Serialize)]
        struct Line<'a> {
            summary: &'a Counts,
        }
        outcome::emit(&serde_json::to_string(&Line { summary: c }).unwrap_or_default());
        return;
    }
    emitln!(
        "{file}: {} URLs: {} same, {} changed, {} with errors (old {}, new {})",
        c.urls,
        c.same,
        c.changed,
        c.errors,
        c.old_errors,
        c.new_errors
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> Result<Answer, PacError> {
        Ok(Answer {
            raw: raw.into(),
            entries: crate::parse_result(raw),
        })
    }

    #[test]
    fn outcomes_compare_by_the_returned_string_and_errors_by_their_message() {
        let boom = || Err(PacError::NoEntryPoint);
        assert_eq!(compare(&ok("DIRECT"), &ok("DIRECT")), Verdict::Same);
        assert_eq!(compare(&ok("DIRECT"), &ok("DIRECT;")), Verdict::Changed);
        assert_eq!(compare(&ok("DIRECT"), &boom()), Verdict::Error(true));
        assert_eq!(compare(&boom(), &boom()), Verdict::Error(false));
        let mut c = Counts::default();
        c.add(Verdict::Same, false, false);
        c.add(Verdict::Changed, false, false);
        c.add(Verdict::Error(false), true, true);
        c.add(Verdict::Error(true), false, true);
        assert_eq!(
            (
                c.urls,
                c.same,
                c.changed,
                c.errors,
                c.old_errors,
                c.new_errors,
                c.different
            ),
            (4, 1, 1, 2, 1, 2, 2)
        );
    }
}

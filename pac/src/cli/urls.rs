//! `waypost pac eval --urls FILE`: a list of URLs (a file, or a pipe with `-`) through a pool
//! of workers, one result line per URL in input order, printed as soon as it and those before
//! it are known: `URL ANSWER` (so the output of a list without hosts is a case file for
//! `test`), or a JSON object per line with `--json`. Workers do not share globals, so unlike `eval --url` state set by one URL is
//! not seen by the next. A bad line is reported in its place (`error (input): urls.txt:12:
//! ...`) and the list goes on. Exit status: 1 if a line was bad, else 2 if an evaluation
//! failed, else 0.

use std::time::Instant;

use super::input::{display_name, lines};
use super::lines::{url_line, Request};
use super::ordered::in_order;
use super::outcome::{self, emitln, JsonError};
use super::script::{load, Answer, Failure, Loaded, Permit};
use super::{usage, EvalArgs, EXIT_OK, EXIT_SCRIPT, EXIT_USAGE};
use crate::PacError;

/// One line's result, as it is printed.
struct Row {
    request: Request,
    result: Result<Answer, JsonError>,
    failed_eval: bool,
    micros: u128,
}

pub(crate) async fn eval_urls(args: EvalArgs) -> i32 {
    let Some(path) = args.urls_file.clone() else {
        return usage("--urls FILE is required");
    };
    let options = match args.list.options(&args.env, &args.isolation) {
        Ok(o) => o,
        Err(e) => return usage(e),
    };
    let width = options.workers * 2;
    let input = match lines(&path).await {
        Ok(rx) => rx,
        Err(e) => return usage(e),
    };
    let script = match load(&args.pac, options, args.list.coverage).await {
        Ok(s) => s,
        Err(Failure::Usage(e)) => return usage(e),
        Err(Failure::Script(err)) => {
            emitln!("error: {}: {err}", args.pac);
            return EXIT_SCRIPT;
        }
    };
    let name = display_name(&path).to_string();
    let sanitize = args.sanitize;
    let (mut bad_lines, mut failed) = (false, false);
    let (tx, items) = tokio::sync::mpsc::channel(1024);
    let parse = async move {
        let mut input = input;
        while let Some((number, line)) = input.recv().await {
            let item = match line {
                Ok(text) => match url_line(&text, sanitize) {
                    Ok(None) => continue,
                    Ok(Some(r)) => Ok(r),
                    Err(e) => Err((text.trim().to_string(), format!("{name}:{number}: {e}"))),
                },
                Err(e) => Err((String::new(), e)),
            };
            if tx.send(item).await.is_err() {
                return;
            }
        }
    };
    // a worker for each URL; none for a bad line
    let admit = |item: &Result<Request, (String, String)>| {
        let script = item.is_ok().then(|| script.clone());
        async move {
            match script {
                Some(s) => Some(s.permit().await),
                None => None,
            }
        }
    };
    let work = |item, permit| evaluate(script.clone(), item, permit);
    let sink = |row: Row| {
        bad_lines |= row.result.is_err() && !row.failed_eval;
        failed |= row.failed_eval;
        print_row(&args, row);
    };
    tokio::join!(parse, in_order(items, width, admit, work, sink));
    if let Some(c) = script.coverage() {
        if args.json {
            outcome::emit(&serde_json::json!({ "coverage": c.json() }).to_string());
        } else {
            emitln!("\n{}", c.text().trim_end());
        }
    }
    if bad_lines {
        EXIT_USAGE
    } else if failed {
        EXIT_SCRIPT
    } else {
        EXIT_OK
    }
}

async fn evaluate(
    script: Loaded,
    item: Result<Request, (String, String)>,
    permit: Option<Permit>,
) -> Row {
    let (request, permit) = match (item, permit) {
        (Ok(r), Some(p)) => (r, p),
        (Ok(r), None) => (r, script.permit().await),
        (Err((line, message)), _) => {
            return Row {
                request: Request {
                    url: line,
                    host: String::new(),
                },
                result: Err(JsonError::input(message)),
                failed_eval: false,
                micros: 0,
            }
        }
    };
    let started = Instant::now();
    let result = script.eval(&request, permit).await;
    Row {
        micros: started.elapsed().as_micros(),
        failed_eval: result.is_err(),
        result: result.map_err(|e: PacError| JsonError::from(&e)),
        request,
    }
}

fn print_row(args: &EvalArgs, row: Row) {
    let shown = match &row.result {
        Ok(a) => Ok((a.raw.as_str(), a.entries.as_slice())),
        Err(e) => Err(e.clone()),
    };
    let r = &row.request;
    if args.json {
        outcome::emit(&outcome::json(&r.url, &r.host, shown, row.micros));
    } else {
        emitln!("{} {}", r.url, outcome::text(&shown));
    }
}

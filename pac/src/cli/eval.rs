//! `waypost pac eval` and `waypost pac check`: load one script into one worker (a `pac-worker`
//! process under the proxy's budgets, unless `--in-process`), so global state carries from URL
//! to URL as in the proxy, and print one line per URL. A URL whose call kills the worker (memory
//! limit, deadline, crash) gets that error on its line; the next URL runs in a fresh worker
//! (with fresh globals). Nothing a script does ends the command early.

use std::time::Instant;

use super::lines::{request, Request};
use super::outcome::{self, JsonError};
use super::{read_script, usage, CheckArgs, EvalArgs, EXIT_OK, EXIT_SCRIPT};
use crate::{PacEngine, PacError, PacOptions, ProxyEntry, PAC_FUNCTIONS};

fn requests(args: &EvalArgs) -> Result<Vec<Request>, String> {
    if args.hosts.len() > args.urls.len() {
        return Err(format!(
            "{} --host values for {} --url values; give at most one --host per --url",
            args.hosts.len(),
            args.urls.len()
        ));
    }
    args.urls
        .iter()
        .enumerate()
        .map(|(i, url)| {
            let host = args.hosts.get(i).map(String::as_str);
            request(url, host, args.sanitize, "; pass --host")
        })
        .collect()
}

pub(crate) async fn eval(args: EvalArgs) -> i32 {
    if args.list.coverage || args.list.workers.is_some() {
        return usage("--coverage and --workers go with --urls FILE");
    }
    let mut options = PacOptions {
        workers: 1,
        cache_ttl: std::time::Duration::ZERO,
        ..PacOptions::default()
    };
    if let Err(e) = args
        .env
        .apply(&mut options)
        .and_then(|()| args.isolation.apply(&mut options))
    {
        return usage(e);
    }
    let requests = match requests(&args) {
        Ok(r) => r,
        Err(e) => return usage(e),
    };
    let text = match read_script(&args.pac, options.max_script_bytes).await {
        Ok(t) => t,
        Err(e) => return usage(e),
    };
    let engine = match PacEngine::new(&text, options, None).await {
        Ok(e) => e,
        Err(err) => {
            for r in &requests {
                print_line(&args, r, Err(&err), 0);
            }
            return EXIT_SCRIPT;
        }
    };
    let mut status = EXIT_OK;
    for r in &requests {
        let started = Instant::now();
        let result = engine.eval_raw(&r.url, &r.host).await;
        let micros = started.elapsed().as_micros();
        if result.is_err() {
            status = EXIT_SCRIPT;
        }
        print_line(
            &args,
            r,
            result
                .as_ref()
                .map(|a| (a.raw.as_str(), a.entries.as_slice())),
            micros,
        );
    }
    status
}

fn print_line(
    args: &EvalArgs,
    r: &Request,
    result: Result<(&str, &[ProxyEntry]), &PacError>,
    micros: u128,
) {
    let shown = result.map_err(JsonError::from);
    if args.json {
        println!("{}", outcome::json(&r.url, &r.host, shown, micros));
    } else {
        println!("{}", outcome::text(&shown));
    }
}

/// Names of PAC functions (and entry points) the script mentions, in `PAC_FUNCTIONS` order.
pub fn functions_used(text: &str) -> Vec<&'static str> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$';
    let words: std::collections::HashSet<&str> = text.split(|c: char| !is_ident(c)).collect();
    ["FindProxyForURL", "FindProxyForURLEx"]
        .iter()
        .chain(PAC_FUNCTIONS)
        .copied()
        .filter(|f| words.contains(f))
        .collect()
}

pub(crate) async fn check(args: CheckArgs) -> i32 {
    let mut options = PacOptions {
        workers: 1,
        no_dns: true,
        ..PacOptions::default()
    };
    if let Err(e) = args.isolation.apply(&mut options) {
        return usage(e);
    }
    let text = match read_script(&args.file, options.max_script_bytes).await {
        Ok(t) => t,
        Err(e) => return usage(e),
    };
    let started = Instant::now();
    let result = PacEngine::new(&text, options, None).await;
    let used = functions_used(&text).join(", ");
    match result {
        Ok(_) => {
            println!(
                "ok: {} loaded ({} bytes) in {:.1} ms",
                args.file,
                text.len(),
                started.elapsed().as_secs_f64() * 1e3
            );
            println!("uses: {used}");
            EXIT_OK
        }
        Err(err) => {
            match err.position() {
                Some(p) => println!("error: {}:{}: {err}", args.file, p),
                None => println!("error: {}: {err}", args.file),
            }
            println!("uses: {used}");
            EXIT_SCRIPT
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_use_is_found_by_whole_identifier() {
        let text = "function FindProxyForURL(u,h){ if (isInNet(h,'1.2.3.4','255.0.0.0') || my_isInNetEx) return 'DIRECT'; }";
        assert_eq!(functions_used(text), ["FindProxyForURL", "isInNet"]);
    }
}

//! PAC targets: the result grammar a script's answer is parsed with, and whole scripts loaded
//! into the in-process engine.

use std::sync::OnceLock;
use std::time::Duration;

use waypost_pac::{format_result, parse_result, PacEngine, PacOptions};

/// The PAC result grammar (`"PROXY a:80; SOCKS5 [::1]:1080; DIRECT"`): any string a script
/// returns must parse without panicking, never into an empty list, and what we print back
/// must parse to the same entries (the `.source` file and `/explain` show the printed form).
pub fn pac_verdict(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let entries = parse_result(text);
    assert!(!entries.is_empty(), "an answer is never empty");
    let printed = format_result(&entries);
    assert_eq!(parse_result(&printed), entries, "printed form {printed:?}");
}

struct Harness {
    runtime: tokio::runtime::Runtime,
    engine: PacEngine,
}

/// One engine (one worker thread) for every input of this process.
fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let options = PacOptions {
            workers: 1,
            load_timeout: Duration::from_millis(500),
            call_timeout: Duration::from_millis(500),
            instruction_budget: 5_000_000,
            loop_iteration_limit: 1_000_000,
            no_dns: true,
            cache_ttl: Duration::ZERO,
            fixed_now_ms: Some(1_700_000_000_000),
            time_zone: Some("UTC".into()),
            ..PacOptions::default()
        };
        let engine = runtime
            .block_on(PacEngine::new(
                "function FindProxyForURL(url, host) { return 'DIRECT'; }",
                options,
                None,
            ))
            .expect("the seed script loads");
        Harness { runtime, engine }
    })
}

/// PAC scripts: load any text as a script into the in-process engine and make one
/// `FindProxyForURL` call. Loading and the call must end (answer or error) within their
/// budgets, never panic or hang. Each input replaces the script, as a PAC refresh does. DNS is
/// off (only literals resolve), so inputs stay fast and offline.
pub fn pac_script(data: &[u8]) {
    let Ok(script) = std::str::from_utf8(data) else {
        return;
    };
    let h = harness();
    h.runtime.block_on(async {
        if h.engine.replace_script(script).await.is_ok() {
            let _ = h
                .engine
                .find_proxy("http://intranet.example.test/a?b=c")
                .await;
        }
    });
}

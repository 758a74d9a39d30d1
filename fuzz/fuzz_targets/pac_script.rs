//! PAC scripts: load any text as a script into the in-process engine and make one
//! `FindProxyForURL` call. Loading and the call must end (answer or error) within their
//! budgets, never panic or hang. One engine (one worker thread) serves every input; each input
//! replaces its script, as a PAC refresh does. DNS is off (only literals resolve), so inputs
//! stay fast and offline.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use waypost_pac::{PacEngine, PacOptions};

struct Harness {
    runtime: tokio::runtime::Runtime,
    engine: PacEngine,
}

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

fuzz_target!(|data: &[u8]| {
    let Ok(script) = std::str::from_utf8(data) else {
        return;
    };
    let h = harness();
    h.runtime.block_on(async {
        if h.engine.replace_script(script).await.is_ok() {
            if let Ok(answer) = h
                .engine
                .find_proxy("http://intranet.example.test/a?b=c")
                .await
            {
                let _ = answer;
            }
        }
    });
});

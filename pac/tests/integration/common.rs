//! Shared helpers for the integration suites: build an engine with test-friendly options
//! (no system DNS, short deadlines) and evaluate JS expressions through a one-line script.
#![allow(dead_code)]

use std::net::IpAddr;
use std::time::Duration;

use waypost_pac::{PacEngine, PacError, PacOptions};

pub fn options() -> PacOptions {
    let mut o = PacOptions {
        workers: 2,
        no_dns: true,
        call_timeout: Duration::from_secs(2),
        load_timeout: Duration::from_secs(5),
        my_ip: vec![
            "192.0.2.10".parse().unwrap(),
            "2001:db8::10".parse().unwrap(),
        ],
        ..PacOptions::default()
    };
    let fixed: [(&str, &[&str]); 3] = [
        ("intranet.example", &["10.1.2.3"]),
        ("dual.example", &["2001:db8::5", "10.9.9.9"]),
        ("v6only.example", &["2001:db8::6"]),
    ];
    for (name, ips) in fixed {
        o.dns_fixed.insert(
            name.into(),
            ips.iter().map(|s| s.parse::<IpAddr>().unwrap()).collect(),
        );
    }
    o
}

pub async fn engine(script: &str) -> PacEngine {
    PacEngine::new(script, options(), None)
        .await
        .expect("script loads")
}

/// Evaluates `expr` inside FindProxyForURL and returns JSON-ish `String(value)` with the type.
pub async fn js_with(expr: &str, options: PacOptions) -> Result<String, PacError> {
    let script = format!(
        "function FindProxyForURL(url, host) {{ var v = ({expr}); return typeof v + ':' + String(v); }}"
    );
    let e = PacEngine::new(&script, options, None).await?;
    e.eval_raw("http://x/", "x").await.map(|a| a.raw)
}

pub async fn js(expr: &str) -> String {
    js_with(expr, options())
        .await
        .unwrap_or_else(|e| format!("error:{e}"))
}

/// `options()` with evaluation in worker processes of the crate's own binary.
pub fn process_options() -> PacOptions {
    PacOptions {
        isolation: waypost_pac::Isolation::Process(waypost_pac::WorkerProcess {
            program: env!("CARGO_BIN_EXE_waypost-pac").into(),
            args: vec!["pac-worker".into()],
            memory_limit: waypost_pac::WorkerProcess::DEFAULT_MEMORY_LIMIT,
        }),
        ..options()
    }
}

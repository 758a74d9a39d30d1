//! Hostile scripts: endless loops at load and call, deep recursion, huge strings, DNS floods,
//! slow DNS and throwing getters. Each test shows the service stays up and keeps answering.

use crate::common;

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::options;
use waypost_pac::{DnsLookup, LookupFuture, PacEngine, PacError, PacOptions};

fn hostile_options() -> PacOptions {
    PacOptions {
        call_timeout: Duration::from_millis(400),
        load_timeout: Duration::from_millis(800),
        loop_iteration_limit: 2_000_000,
        ..options()
    }
}

const LOOP_ON_DEMAND: &str = r#"
    function FindProxyForURL(url, host) {
        if (host == 'loop') { while (true) {} }
        if (host == 'catchloop') { for (;;) { try { isPlainHostName('x'); while (true) {} } catch (e) {} } }
        return 'PROXY ok.example:1';
    }"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_loop_at_load_is_aborted_by_the_deadline() {
    let started = Instant::now();
    let err = PacEngine::new(
        "while (true) {} function FindProxyForURL(){ return 'DIRECT'; }",
        hostile_options(),
        None,
    )
    .await
    .err()
    .unwrap();
    // two budgets race here (the load deadline and the iteration limit): on a busy machine
    // either may fire first, and both stop the script
    assert!(
        matches!(
            err,
            PacError::Timeout(_) | PacError::Load { .. } | PacError::LoopLimit { .. }
        ),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_loop_in_a_call_is_aborted_and_its_worker_replaced() {
    let registry = prometheus::Registry::new();
    // no iteration budget: the call deadline, not the interpreter, stops this loop (with a
    // budget, whichever fires first depends on the machine's speed)
    let o = PacOptions {
        loop_iteration_limit: u64::MAX,
        ..hostile_options()
    };
    let e = PacEngine::new(LOOP_ON_DEMAND, o, Some(&registry))
        .await
        .unwrap();
    let err = e.eval_raw("http://loop/", "loop").await.unwrap_err();
    assert!(matches!(err, PacError::Timeout(_)), "{err:?}");
    assert_eq!(e.workers(), 2, "the wedged worker was replaced");
    for i in 0..6 {
        let host = format!("h{i}");
        assert_eq!(
            e.eval_raw("http://h/", &host).await.unwrap().raw,
            "PROXY ok.example:1"
        );
    }
    let restarts = registry
        .gather()
        .into_iter()
        .find(|f| f.name() == "waypost_pac_worker_restarts_total")
        .map(|f| f.get_metric()[0].get_counter().get_value());
    assert_eq!(restarts, Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_calls_are_answered_while_a_loop_runs() {
    // no iteration budget: the loop runs until the call deadline stops it
    let o = PacOptions {
        call_timeout: Duration::from_secs(3),
        loop_iteration_limit: u64::MAX,
        ..hostile_options()
    };
    let e = PacEngine::new(LOOP_ON_DEMAND, o, None).await.unwrap();
    let looping = tokio::spawn({
        let e = e.clone();
        async move { e.eval_raw("http://loop/", "loop").await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    for _ in 0..5 {
        assert!(e.eval_raw("http://a/", "a").await.is_ok());
    }
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "answered while the loop ran"
    );
    let r = looping.await.unwrap();
    assert!(matches!(r, Err(PacError::Timeout(_))), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loops_that_catch_every_error_still_time_out_and_the_service_recovers() {
    let e = PacEngine::new(LOOP_ON_DEMAND, hostile_options(), None)
        .await
        .unwrap();
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let e = e.clone();
            tokio::spawn(async move { e.eval_raw("http://catchloop/", "catchloop").await })
        })
        .collect();
    for c in calls {
        // the call deadline and the iteration limit race (either may fire first on a busy
        // machine); both are budgets no `catch` can swallow
        let r = c.await.unwrap();
        assert!(
            matches!(r, Err(PacError::Timeout(_) | PacError::LoopLimit { .. })),
            "{r:?}"
        );
    }
    assert_eq!(
        e.eval_raw("http://a/", "a").await.unwrap().raw,
        "PROXY ok.example:1"
    );
    assert_eq!(e.workers(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_recursion_is_a_call_error_not_a_crash() {
    let e = PacEngine::new(
        "function f(n) { return f(n + 1) + 1; } function FindProxyForURL(u, h) { if (h == 'deep') f(0); return 'DIRECT'; }",
        hostile_options(),
        None,
    )
    .await
    .unwrap();
    let err = e.eval_raw("http://deep/", "deep").await.unwrap_err();
    assert!(matches!(err, PacError::Call { .. }), "{err:?}");
    assert_eq!(e.eval_raw("http://a/", "a").await.unwrap().raw, "DIRECT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_strings_fail_the_call_but_not_the_engine() {
    let o = PacOptions {
        call_timeout: Duration::from_secs(10),
        ..hostile_options()
    };
    let e = PacEngine::new(
        r#"function FindProxyForURL(u, h) {
            if (h == 'big') { var s = 'x'; for (var i = 0; i < 22; i++) s += s; return s; }
            if (h == 'repeat') return 'x'.repeat(1e12);
            return 'DIRECT';
        }"#,
        o,
        None,
    )
    .await
    .unwrap();
    let big = e.eval_raw("http://big/", "big").await;
    assert!(
        matches!(big, Err(PacError::ResultTooLong { .. })),
        "{big:?}"
    );
    assert!(matches!(
        e.eval_raw("http://r/", "repeat").await,
        Err(PacError::Call { .. })
    ));
    assert_eq!(e.eval_raw("http://a/", "a").await.unwrap().raw, "DIRECT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throwing_getters_fail_load_or_call_cleanly() {
    let at_load = "Object.defineProperty(this, 'FindProxyForURL', { get: function () { throw new Error('getter'); } });";
    let err = PacEngine::new(at_load, hostile_options(), None)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, PacError::Load { .. }), "{err:?}");

    let at_call = r#"var reads = 0;
        Object.defineProperty(this, 'FindProxyForURL', { get: function () {
            if (++reads > 1) throw new Error('getter at call');
            return function () { return 'DIRECT'; };
        } });"#;
    let mut o = hostile_options();
    o.workers = 1;
    let e = PacEngine::new(at_call, o, None).await.unwrap();
    let err = e.eval_raw("http://a/", "a").await.unwrap_err();
    assert!(
        matches!(err, PacError::Call { .. }) && err.to_string().contains("getter at call"),
        "{err:?}"
    );

    let e = PacEngine::new(
        "function FindProxyForURL(){ alert({ toString: function () { throw 'no' } }); return 'DIRECT'; }",
        hostile_options(),
        None,
    )
    .await
    .unwrap();
    assert!(matches!(
        e.eval_raw("http://a/", "a").await,
        Err(PacError::Call { .. })
    ));
}

/// A DNS backend that counts lookups and answers after a delay.
struct CountingDns {
    lookups: AtomicUsize,
    delay: Duration,
}

impl DnsLookup for CountingDns {
    fn lookup<'a>(&'a self, name: &'a str) -> LookupFuture<'a> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let delay = if name.starts_with("slow") {
            self.delay
        } else {
            Duration::ZERO
        };
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            Ok(vec![IpAddr::from([10, 0, 0, 7])])
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_flood_stops_at_the_lookup_budget() {
    let dns = Arc::new(CountingDns {
        lookups: AtomicUsize::new(0),
        delay: Duration::ZERO,
    });
    let o = PacOptions {
        no_dns: false,
        dns_backend: Some(dns.clone()),
        dns_budget: 8,
        ..hostile_options()
    };
    let e = PacEngine::new(
        "function FindProxyForURL(){ var n = 0; for (var i = 0; i < 1000; i++) if (dnsResolve('h' + i + '.example')) n++; return 'PROXY p' + n + ':1'; }",
        o,
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        e.eval_raw("http://a/", "a").await.unwrap().raw,
        "PROXY p8:1"
    );
    assert_eq!(dns.lookups.load(Ordering::SeqCst), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_dns_server_does_not_stall_other_evaluations() {
    let dns = Arc::new(CountingDns {
        lookups: AtomicUsize::new(0),
        delay: Duration::from_secs(2),
    });
    let o = PacOptions {
        no_dns: false,
        dns_backend: Some(dns),
        dns_timeout: Duration::from_secs(4),
        call_timeout: Duration::from_secs(6),
        ..hostile_options()
    };
    let e = PacEngine::new(
        "function FindProxyForURL(u, h){ return h == 'slow' ? 'PROXY ' + dnsResolve('slow.example') + ':1' : 'DIRECT'; }",
        o,
        None,
    )
    .await
    .unwrap();
    let slow = tokio::spawn({
        let e = e.clone();
        async move { e.eval_raw("http://slow/", "slow").await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    for _ in 0..5 {
        assert_eq!(e.eval_raw("http://a/", "a").await.unwrap().raw, "DIRECT");
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "not stalled: {:?}",
        started.elapsed()
    );
    assert_eq!(slow.await.unwrap().unwrap().raw, "PROXY 10.0.0.7:1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_system_resolver_answers_localhost_from_loopback() {
    let o = PacOptions {
        no_dns: false,
        dns_fixed: Default::default(),
        ..hostile_options()
    };
    let e = PacEngine::new(
        "function FindProxyForURL(){ return 'PROXY ' + dnsResolve('localhost') + ':1'; }",
        o,
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        e.eval_raw("http://a/", "a").await.unwrap().raw,
        "PROXY 127.0.0.1:1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_stopped_by_the_iteration_limit_is_reported_as_a_timeout_not_a_script_error() {
    let o = PacOptions {
        call_timeout: Duration::from_secs(20),
        load_timeout: Duration::from_secs(20),
        loop_iteration_limit: 10_000,
        ..options()
    };
    let e = PacEngine::new(LOOP_ON_DEMAND, o.clone(), None)
        .await
        .unwrap();
    let err = e.eval_raw("http://loop/", "loop").await.unwrap_err();
    assert!(matches!(err, PacError::LoopLimit { .. }), "{err:?}");
    assert_eq!(err.kind().as_str(), "timeout");
    assert_eq!(
        e.eval_raw("http://h/", "h").await.unwrap().raw,
        "PROXY ok.example:1",
        "the engine keeps answering"
    );
    let err = PacEngine::new(
        "for (var i = 0; ; i++) {} function FindProxyForURL(){ return 'DIRECT'; }",
        o,
        None,
    )
    .await
    .err()
    .unwrap();
    assert_eq!(err.kind().as_str(), "timeout", "{err:?}");
}

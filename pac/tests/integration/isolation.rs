//! Evaluation in worker processes: the same answers as in-process, and hostile scripts that
//! take down only their worker — which is named, counted and replaced while calls go on.

use crate::common;

use std::time::{Duration, Instant};

use common::{options, process_options};
use waypost_pac::{KillReason, PacEngine, PacError, PacOptions};

const HOSTILE: &str = r#"
    var hits = 0;
    function f() { var x = 0; for (var i = 0; i < 1000; i++) { x += i; } return x; }
    function deep(n) { return deep(n + 1) + 1; }
    function FindProxyForURL(url, host) {
        hits++;
        if (host == 'bomb') { var s = 'x'; var keep = []; for (;;) { s = s + s; keep.push(s); } }
        if (host == 'arrays') { var c = []; for (var i = 0; i < 10000; i++) c.push(i); var a = []; for (;;) { a.push(c.concat()); } }
        if (host == 'spin') { while (true) {} }
        if (host == 'calls') { for (;;) f(); }
        if (host == 'deep') { return deep(0); }
        if (host == 'alerts') { var big = 'A'; for (var j = 0; j < 20; j++) big += big; for (var k = 0; k < 10; k++) alert(big); }
        if (host == 'dns') { return 'PROXY ' + dnsResolve('intranet.example') + ':3128'; }
        if (host == 'slow') { var t = 0; for (var i = 0; i < 500000; i++) { t += i; } return 'PROXY slow.example:1'; }
        return 'PROXY ok.example:1; DIRECT';
    }"#;

fn hostile_options(base: PacOptions) -> PacOptions {
    PacOptions {
        call_timeout: Duration::from_millis(1500),
        ..base
    }
}

fn kills(registry: &prometheus::Registry, reason: &str) -> f64 {
    registry
        .gather()
        .into_iter()
        .find(|f| f.name() == "waypost_pac_worker_kills_total")
        .and_then(|f| {
            f.get_metric()
                .iter()
                .find(|m| m.get_label().iter().any(|l| l.value() == reason))
                .map(|m| m.get_counter().get_value())
        })
        .unwrap_or(0.0)
}

async fn still_answers(e: &PacEngine) {
    for i in 0..4 {
        let host = format!("h{i}");
        let answer = e.eval_raw("http://h/", &host).await.unwrap();
        assert_eq!(answer.raw, "PROXY ok.example:1; DIRECT");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_process_answers_as_the_threads_do_with_dns_from_the_parent() {
    let threads = PacEngine::new(HOSTILE, options(), None).await.unwrap();
    let process = PacEngine::new(HOSTILE, process_options(), None)
        .await
        .unwrap();
    for host in ["dns", "a"] {
        let a = threads.eval_raw("http://x/", host).await.unwrap();
        let b = process.eval_raw("http://x/", host).await.unwrap();
        assert_eq!(a.raw, b.raw);
    }
    assert_eq!(
        process.eval_raw("http://x/", "dns").await.unwrap().raw,
        "PROXY 10.1.2.3:3128"
    );
    assert_eq!(process.workers(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_kills_only_its_worker_which_is_replaced() {
    let registry = prometheus::Registry::new();
    let mut o = PacOptions {
        call_timeout: Duration::from_secs(5),
        ..process_options()
    };
    if let waypost_pac::Isolation::Process(p) = &mut o.isolation {
        p.memory_limit = 256 << 20;
    }
    let e = PacEngine::new(HOSTILE, o, Some(&registry)).await.unwrap();
    let err = e.eval_raw("http://x/", "bomb").await.unwrap_err();
    assert!(
        matches!(err, PacError::WorkerKilled(KillReason::Memory { .. })),
        "{err:?}"
    );
    still_answers(&e).await;
    assert_eq!(kills(&registry, "memory"), 1.0);
    // many small objects: boa's collector slows the growth down, so the limit or the
    // deadline ends it, whichever comes first
    let err = e.eval_raw("http://x/", "arrays").await.unwrap_err();
    assert!(matches!(err, PacError::WorkerKilled(_)), "{err:?}");
    still_answers(&e).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_worker_is_stopped_by_the_budget_or_killed_at_the_deadline() {
    let registry = prometheus::Registry::new();
    // the interpreter budget off: only the parent's deadline can stop it
    let o = PacOptions {
        instruction_budget: u64::MAX,
        loop_iteration_limit: u64::MAX,
        ..hostile_options(process_options())
    };
    let e = PacEngine::new(HOSTILE, o, Some(&registry)).await.unwrap();
    for host in ["spin", "calls"] {
        let started = Instant::now();
        let err = e.eval_raw("http://x/", host).await.unwrap_err();
        assert!(
            matches!(
                err,
                PacError::WorkerKilled(KillReason::Deadline(_)) | PacError::Timeout(_)
            ),
            "{host}: {err:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(4), "{host}");
        still_answers(&e).await;
    }
    assert!(kills(&registry, "deadline") >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_an_endless_loop_are_stopped_by_the_instruction_budget_in_both_paths() {
    for o in [options(), process_options()] {
        let o = PacOptions {
            instruction_budget: 5_000_000,
            call_timeout: Duration::from_secs(30),
            ..o
        };
        let e = PacEngine::new(HOSTILE, o, None).await.unwrap();
        let started = Instant::now();
        let err = e.eval_raw("http://x/", "calls").await.unwrap_err();
        assert!(matches!(err, PacError::Budget { .. }), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
        still_answers(&e).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_recursion_and_an_alert_flood_leave_the_worker_serving() {
    let registry = prometheus::Registry::new();
    let e = PacEngine::new(HOSTILE, process_options(), Some(&registry))
        .await
        .unwrap();
    let err = e.eval_raw("http://x/", "deep").await.unwrap_err();
    assert!(matches!(err, PacError::Call { .. }), "{err:?}");
    let answer = e.eval_raw("http://x/", "alerts").await.unwrap();
    assert_eq!(answer.raw, "PROXY ok.example:1; DIRECT");
    still_answers(&e).await;
    assert_eq!(kills(&registry, "crash") + kills(&registry, "memory"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_program_that_is_not_waypost_is_a_load_error_naming_it() {
    let mut o = process_options();
    if let waypost_pac::Isolation::Process(p) = &mut o.isolation {
        p.program = "/bin/cat".into();
        p.args = vec![];
    }
    let started = Instant::now();
    let err = PacEngine::new(HOSTILE, o, None).await.err().unwrap();
    assert!(
        err.to_string().contains("/bin/cat") || matches!(err, PacError::WorkerKilled(_)),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_script_that_explodes_at_load_is_refused_and_the_old_one_stays() {
    let e = PacEngine::new(HOSTILE, process_options(), None)
        .await
        .unwrap();
    let bomb = "var s = 'x'; var k = []; for (;;) { s = s + s; k.push(s); } function FindProxyForURL() { return 'DIRECT'; }";
    let err = e.replace_script(bomb).await.unwrap_err();
    assert!(matches!(err, PacError::WorkerKilled(_)), "{err:?}");
    still_answers(&e).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_call_given_up_midway_is_finished_aside_and_its_worker_serves_on() {
    let registry = prometheus::Registry::new();
    // the slow call takes ~1 s in a debug build: a deadline it cannot meet by accident
    let o = PacOptions {
        call_timeout: Duration::from_secs(60),
        ..process_options()
    };
    let e = PacEngine::new(HOSTILE, o, Some(&registry)).await.unwrap();
    // a lone call talks to its worker from the caller's task; the caller stops waiting while
    // the script still runs (half a million loop turns: over 10 ms in boa, even optimised)
    let gave_up =
        tokio::time::timeout(Duration::from_millis(1), e.eval_raw("http://slow/", "slow")).await;
    assert!(gave_up.is_err(), "the slow call answered within 1 ms");
    // the rest of that exchange is read aside: the next calls get their own answers, from the
    // same worker (nothing killed)
    still_answers(&e).await;
    for reason in ["memory", "deadline", "crash"] {
        assert_eq!(kills(&registry, reason), 0.0, "{reason}");
    }
    let slow = e.eval_raw("http://slow/", "slow").await.unwrap();
    assert_eq!(slow.raw, "PROXY slow.example:1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_queued_while_a_lone_call_holds_one_worker_runs_on_the_other() {
    let o = PacOptions {
        call_timeout: Duration::from_secs(120),
        ..process_options()
    };
    let e = PacEngine::new(HOSTILE, o, None).await.unwrap();
    // the lone call borrows a worker and keeps it (an endless loop, ended only by the budget
    // after seconds, or by dropping the engine); the second call is queued meanwhile and must
    // not wait for that worker while the other one is free
    let stuck = e.eval_raw("http://spin/", "spin");
    let queued = e.eval_raw("http://h/", "h1");
    tokio::pin!(stuck, queued);
    let answer = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::select! {
            biased;
            end = &mut stuck => panic!("the endless call ended first: {end:?}"),
            answer = &mut queued => answer,
        }
    })
    .await
    .expect("the queued call waited for the lent worker");
    assert_eq!(answer.unwrap().raw, "PROXY ok.example:1; DIRECT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_engine_ends_its_worker_processes() {
    let mut o = process_options();
    let tag = format!("--tag=drop-{}", std::process::id());
    if let waypost_pac::Isolation::Process(p) = &mut o.isolation {
        p.args.push(tag.clone());
    }
    let e = PacEngine::new(HOSTILE, o, None).await.unwrap();
    still_answers(&e).await;
    // live processes started with this test's tag (a zombie's command line is empty)
    let children = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|d| std::fs::read(d.ok()?.path().join("cmdline")).ok())
            .filter(|cmdline| String::from_utf8_lossy(cmdline).contains(&tag))
            .count()
    };
    assert!(children() >= 2);
    drop(e);
    let deadline = Instant::now() + Duration::from_secs(5);
    while children() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(children(), 0);
}

//! No stale verdicts: evaluations raced against script replacements and network changes. A
//! verdict comes from the script (and inputs) in force when it is returned, never from one
//! replaced while it was in flight, and the result cache never serves a replaced script.
//!
//! The scripts call `dnsResolve`, answered by the test's own DNS backend: a gate that holds
//! an evaluation in flight until the test has switched the script, or a recorder that notes
//! which switch had completed when each evaluation reached its end.

use crate::common;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};
use waypost_pac::engine::ATTEMPTS;
use waypost_pac::{DnsLookup, LookupFuture, PacEngine, PacError, PacOptions};

/// Options whose DNS goes to `dns` alone, uncached (every `dnsResolve` reaches it).
fn with_dns(base: PacOptions, dns: Arc<dyn DnsLookup>) -> PacOptions {
    PacOptions {
        no_dns: false,
        dns_backend: Some(dns),
        dns_cache_size: 0,
        dns_timeout: Duration::from_secs(20),
        call_timeout: Duration::from_secs(20),
        load_timeout: Duration::from_secs(20),
        ..base
    }
}

/// Holds every lookup of `gate.test` until the test releases it, telling the test first.
struct Gate {
    entered: mpsc::UnboundedSender<()>,
    release: Semaphore,
}

impl DnsLookup for Gate {
    fn lookup<'a>(&'a self, name: &'a str) -> LookupFuture<'a> {
        Box::pin(async move {
            if name == "gate.test" {
                let _ = self.entered.send(());
                self.release
                    .acquire()
                    .await
                    .map_err(|e| e.to_string())?
                    .forget();
            }
            Ok(vec![IpAddr::from([10, 0, 0, 1])])
        })
    }
}

fn gate() -> (Arc<Gate>, mpsc::UnboundedReceiver<()>) {
    let (entered, rx) = mpsc::unbounded_channel();
    let gate = Gate {
        entered,
        release: Semaphore::new(0),
    };
    (Arc::new(gate), rx)
}

/// Waits (bounded) until an evaluation is held at the gate.
async fn at_gate(entered: &mut mpsc::UnboundedReceiver<()>) {
    tokio::time::timeout(Duration::from_secs(30), entered.recv())
        .await
        .expect("an evaluation reaches the gate within 30 s")
        .expect("the gate is alive");
}

/// A script that waits at the gate, then answers `PROXY <name>:1`.
fn gated(name: &str) -> String {
    format!(
        "function FindProxyForURL(u, h) {{ dnsResolve('gate.test'); return 'PROXY {name}:1'; }}"
    )
}

async fn a_verdict_overtaken_by_a_new_script_is_evaluated_again(base: PacOptions) {
    let (gate, mut entered) = gate();
    let e = PacEngine::new(&gated("a.example"), with_dns(base, gate.clone()), None)
        .await
        .unwrap();
    let call = tokio::spawn({
        let e = e.clone();
        async move { e.find_proxy("http://x.example/").await }
    });
    at_gate(&mut entered).await;
    // script A is in flight, held at the gate: B goes into service, then A may finish
    e.replace_script("function FindProxyForURL(u, h) { return 'PROXY b.example:1'; }")
        .await
        .unwrap();
    gate.release.add_permits(1);
    let answer = call.await.unwrap().unwrap();
    assert_eq!(
        answer.raw, "PROXY b.example:1",
        "A's verdict was used after B was installed"
    );
    assert_eq!(answer.generation, 1);
    let again = e.find_proxy("http://x.example/").await.unwrap();
    assert_eq!(
        (again.raw.as_str(), again.cached),
        ("PROXY b.example:1", true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verdict_of_a_script_replaced_during_its_evaluation_is_redone_with_the_new_one() {
    a_verdict_overtaken_by_a_new_script_is_evaluated_again(common::options()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_verdict_of_a_replaced_script_is_redone_with_the_new_one() {
    a_verdict_overtaken_by_a_new_script_is_evaluated_again(common::process_options()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verdict_evaluated_across_a_network_change_is_redone_and_not_cached_stale() {
    let (gate, mut entered) = gate();
    let e = PacEngine::new(
        &gated("a.example"),
        with_dns(common::options(), gate.clone()),
        None,
    )
    .await
    .unwrap();
    let call = tokio::spawn({
        let e = e.clone();
        async move { e.find_proxy("http://x.example/").await }
    });
    at_gate(&mut entered).await;
    e.network_changed();
    gate.release.add_permits(1);
    // the first evaluation saw the old network: it is evaluated again
    at_gate(&mut entered).await;
    gate.release.add_permits(1);
    let answer = call.await.unwrap().unwrap();
    assert_eq!(
        answer.generation, 1,
        "the verdict carries the new network's generation"
    );
    assert_eq!(e.generation(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_that_keeps_changing_fails_the_call_instead_of_looping() {
    let (gate, mut entered) = gate();
    let e = PacEngine::new(
        &gated("a0.example"),
        with_dns(common::options(), gate.clone()),
        None,
    )
    .await
    .unwrap();
    let call = tokio::spawn({
        let e = e.clone();
        async move { e.find_proxy("http://x.example/").await }
    });
    for i in 1..=ATTEMPTS {
        at_gate(&mut entered).await;
        e.replace_script(&gated(&format!("a{i}.example")))
            .await
            .unwrap();
        gate.release.add_permits(1);
    }
    let result = call.await.unwrap();
    assert_eq!(result, Err(PacError::Superseded { attempts: ATTEMPTS }));
    assert!(entered.try_recv().is_err(), "no evaluation past the bound");
    // the script in force answers the next call
    gate.release.add_permits(1);
    let answer = e.find_proxy("http://x.example/").await.unwrap();
    assert_eq!(answer.raw, format!("PROXY a{ATTEMPTS}.example:1"));
}

/// Notes, per host looked up, the number of the last switch completed at that moment.
#[derive(Default)]
struct Recorder {
    switches: AtomicU64,
    seen: Mutex<HashMap<String, Vec<u64>>>,
}

impl DnsLookup for Recorder {
    fn lookup<'a>(&'a self, name: &'a str) -> LookupFuture<'a> {
        let switches = self.switches.load(Ordering::SeqCst);
        self.seen
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_default()
            .push(switches);
        Box::pin(async { Ok(vec![IpAddr::from([10, 0, 0, 1])]) })
    }
}

/// Busy for a few milliseconds, then (for hosts `u…`) tells the recorder it is at its end.
fn racing(answer: &str) -> String {
    format!(
        "function FindProxyForURL(u, h) {{ \
           var x = 0; for (var i = 0; i < 4000; i++) {{ x += i; }} \
           if (h.charAt(0) == 'u') dnsResolve(h); \
           return 'PROXY {answer}:1'; }}"
    )
}

/// Script A is in force after an even number of switches, B after an odd one.
fn answer_of(generation: u64) -> &'static str {
    if generation % 2 == 0 {
        "PROXY a.example:1"
    } else {
        "PROXY b.example:1"
    }
}

const ROUNDS: u64 = 200;
const CALLERS: u64 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_raced_against_script_switches_always_come_from_the_script_in_force() {
    let recorder = Arc::new(Recorder::default());
    let options = PacOptions {
        workers: 2,
        ..with_dns(common::options(), recorder.clone())
    };
    let e = PacEngine::new(&racing("a.example"), options, None)
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicU64::new(0));
    let mut callers = Vec::new();
    for c in 0..CALLERS {
        let (e, recorder, stop, finished) =
            (e.clone(), recorder.clone(), stop.clone(), finished.clone());
        callers.push(tokio::spawn(async move {
            let (mut cached, mut superseded) = (0u64, 0u64);
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                // every third call asks for one of a few shared hosts (served by the cache)
                let host = if n % 3 == 0 {
                    format!("s{}.example", n % 4)
                } else {
                    format!("u{c}-{n}.example")
                };
                let started_after = recorder.switches.load(Ordering::SeqCst);
                let result = e.find_proxy(&format!("http://{host}/")).await;
                finished.fetch_add(1, Ordering::SeqCst);
                let answer = match result {
                    Ok(answer) => answer,
                    Err(PacError::Superseded { .. }) => {
                        superseded += 1;
                        continue;
                    }
                    Err(other) => panic!("{host}: {other}"),
                };
                let g = answer.generation;
                assert_eq!(
                    answer.raw,
                    answer_of(g),
                    "{host}: the verdict does not come from the script of its generation {g} (cached: {})",
                    answer.cached
                );
                assert!(
                    g >= started_after,
                    "{host}: asked after switch {started_after}, answered by generation {g} (cached: {})",
                    answer.cached
                );
                if answer.cached {
                    cached += 1;
                } else if host.starts_with('u') {
                    let ended_after = *recorder.seen.lock().unwrap()[&host].last().unwrap();
                    assert!(
                        g >= ended_after,
                        "{host}: the script ran to its end after switch {ended_after}, yet its verdict of generation {g} was used"
                    );
                }
            }
            (cached, superseded)
        }));
    }
    let switching = async {
        for round in 1..=ROUNDS {
            let next = if round % 2 == 1 {
                "b.example"
            } else {
                "a.example"
            };
            e.replace_script(&racing(next)).await.unwrap();
            assert_eq!(e.generation(), round);
            recorder.switches.store(round, Ordering::SeqCst);
            // let a few calls finish under this script while others are in flight
            let until = finished.load(Ordering::SeqCst) + 3;
            while finished.load(Ordering::SeqCst) < until {
                if callers.iter().any(|c| c.is_finished()) {
                    return; // a caller failed: its panic is reported below
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), switching)
        .await
        .expect("200 switches within two minutes");
    stop.store(true, Ordering::SeqCst);
    let (mut cached, mut superseded) = (0, 0);
    for c in callers {
        let (hits, lost) = c.await.unwrap();
        cached += hits;
        superseded += lost;
    }
    // the race was real: some evaluations were overtaken by a switch and evaluated again
    let redone = recorder
        .seen
        .lock()
        .unwrap()
        .values()
        .filter(|ends| ends.len() > 1)
        .count();
    assert!(redone > 0, "no evaluation was in flight during a switch");
    assert!(cached > 0, "the cache served no call");
    eprintln!(
        "{} calls, {redone} evaluated again, {cached} cached, {superseded} superseded",
        finished.load(Ordering::SeqCst)
    );
}

//! The trust follower with a scripted prover and tokio's paused clock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::*;

/// Answers from a script of verdicts (the last one repeats), counting calls.
struct Scripted {
    answers: Mutex<Vec<bool>>,
    calls: Arc<AtomicUsize>,
    delay: Duration,
}

impl Prove for Scripted {
    async fn prove(&self) -> (bool, String) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        let mut a = self.answers.lock().unwrap();
        let v = if a.len() > 1 { a.remove(0) } else { a[0] };
        (
            v,
            if v {
                "scripted proof".into()
            } else {
                "scripted refusal".into()
            },
        )
    }
}

fn id(addr: &str) -> Arc<NetworkId> {
    Arc::new(NetworkId {
        interfaces: vec![format!("addr eth0 {addr}")],
        ..NetworkId::default()
    })
}

fn start(
    answers: Vec<bool>,
    delay: Duration,
) -> (Arc<Trust>, watch::Sender<Arc<NetworkId>>, Arc<AtomicUsize>) {
    let (tx, rx) = watch::channel(id("10.0.0.2"));
    let calls = Arc::new(AtomicUsize::new(0));
    let prover = Scripted {
        answers: Mutex::new(answers),
        calls: calls.clone(),
        delay,
    };
    let trust = Trust::start(prover, rx, tokio_util::sync::CancellationToken::new());
    (trust, tx, calls)
}

#[tokio::test(start_paused = true)]
async fn a_network_is_pending_until_its_proof_ends_and_decided_again_after_a_change() {
    let (trust, tx, calls) = start(vec![true, false], Duration::from_millis(300));
    assert!(matches!(trust.verdict(), Verdict::Pending { .. }));
    assert!(!trust.proven(), "pending is not proven");
    let v = trust.decided().await;
    assert!(v.proven(), "{v:?}");
    tx.send_replace(id("192.168.1.5"));
    // the new network is pending at once, before the follower has even run: the old proof
    // does not carry over to the network just joined
    assert!(!trust.proven());
    assert!(matches!(trust.verdict(), Verdict::Pending { .. }));
    let v = trust.decided().await;
    assert!(!v.proven(), "{v:?}");
    assert!(matches!(&v, Verdict::Decided { how, .. } if how == "scripted refusal"));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_change_during_a_proof_restarts_it_for_the_new_network() {
    let (trust, tx, calls) = start(vec![true], Duration::from_millis(800));
    tokio::time::sleep(Duration::from_millis(100)).await;
    tx.send_replace(id("172.16.0.9"));
    let v = trust.decided().await;
    let fp = id("172.16.0.9").fingerprint();
    assert!(
        matches!(&v, Verdict::Decided { network, proven: true, .. } if *network == fp),
        "{v:?}"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the first proof was abandoned"
    );
}

#[tokio::test(start_paused = true)]
async fn an_unproven_network_is_asked_again_and_a_proven_one_is_not() {
    let (trust, _tx, calls) = start(vec![false, true], Duration::from_millis(10));
    assert!(!trust.decided().await.proven());
    tokio::time::sleep(RETRY_UNPROVEN + Duration::from_secs(1)).await;
    assert!(trust.decided().await.proven());
    tokio::time::sleep(RETRY_UNPROVEN * 3).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2, "no retry once proven");
}

#[tokio::test(start_paused = true)]
async fn waiting_for_a_proof_is_bounded() {
    let (trust, _tx, _) = start(vec![true], Duration::from_secs(3600));
    let v = trust.decided().await;
    assert!(
        matches!(&v, Verdict::Decided { proven: false, how, .. } if how.contains("no proof within")),
        "{v:?}"
    );
    assert!(Trust::not_needed().decided().await == Verdict::NotNeeded);
}

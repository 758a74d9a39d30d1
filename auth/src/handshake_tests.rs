//! State-machine tests with fake mechanisms: plan choice, legs, close-then-reconnect,
//! rejection without loops, the attempt cap, fallback and pre-emptive tokens.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::header::PROXY_AUTHENTICATE;

use super::*;
use crate::mech::{MechError, Step};

#[derive(Default)]
struct Fake {
    unavailable: Vec<Mech>,
    created: AtomicUsize,
}

struct FakeMech(Mech, u8);

impl Mechanism for FakeMech {
    fn step(&mut self, input: Option<&[u8]>) -> Result<Step, crate::mech::MechError> {
        self.1 += 1;
        Ok(match (self.0, input) {
            (Mech::Ntlm, None) => Step {
                token: b"type1".to_vec(),
                complete: false,
            },
            (Mech::Ntlm, Some(_)) => Step {
                token: b"type3".to_vec(),
                complete: true,
            },
            (Mech::Kerberos, _) => Step {
                token: b"krb-ap-req".to_vec(),
                complete: true,
            },
            (Mech::Basic, _) => Step {
                token: b"user:pw".to_vec(),
                complete: true,
            },
        })
    }
}

impl MechanismFactory for Fake {
    fn create(&self, mech: Mech, _t: &MechTarget) -> Result<Box<dyn Mechanism>, MechError> {
        self.created.fetch_add(1, Ordering::SeqCst);
        if self.unavailable.contains(&mech) {
            return Err(MechError::new(
                mech,
                MechErrorKind::Unavailable,
                "no ticket",
            ));
        }
        Ok(Box::new(FakeMech(mech, 0)))
    }
}

struct Bed {
    factory: Arc<Fake>,
    memory: Arc<SchemeMemory>,
    lockout: Arc<Lockout>,
}

impl Bed {
    fn new(unavailable: &[Mech]) -> Bed {
        Bed {
            factory: Arc::new(Fake {
                unavailable: unavailable.to_vec(),
                ..Default::default()
            }),
            memory: Arc::new(SchemeMemory::new()),
            lockout: Arc::new(Lockout::new(2, Duration::from_secs(60))),
        }
    }

    fn hs(&self, usable: Usable) -> Handshake {
        let params = HandshakeParams {
            proxy_key: "proxy.example.test:3128".into(),
            usable,
            spn: "HTTP/proxy.example.test".into(),
            channel_bindings: None,
            max_attempts: 5,
            identity: "EXAMPLE\\user".into(),
            preemptive: true,
            refuse: None,
        };
        Handshake::new(
            params,
            self.factory.clone(),
            self.memory.clone(),
            self.lockout.clone(),
        )
    }
}

const ALL: Usable = Usable {
    kerberos: true,
    ntlm: true,
    basic: true,
    negotiate_only: false,
    basic_needs_tls: false,
};
const NTLM_ONLY: Usable = Usable {
    kerberos: false,
    ntlm: true,
    basic: false,
    negotiate_only: false,
    basic_needs_tls: false,
};

fn h407(challenges: &[&str]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for c in challenges {
        h.append(PROXY_AUTHENTICATE, HeaderValue::from_str(c).unwrap());
    }
    h
}

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn token(a: &Action) -> String {
    match a {
        Action::SendToken(h) => {
            assert!(h.is_sensitive(), "tokens are marked sensitive");
            h.to_str().unwrap().to_string()
        }
        other => panic!("expected a token, got {other:?}"),
    }
}

const S407: StatusCode = StatusCode::PROXY_AUTHENTICATION_REQUIRED;

#[test]
fn ntlm_runs_two_legs_then_done_and_is_remembered() {
    let bed = Bed::new(&[]);
    let mut hs = bed.hs(NTLM_ONLY);
    assert_eq!(hs.start(), None);
    let a = hs.on_response(
        S407,
        &h407(&["Negotiate", "NTLM", "Basic realm=\"x\""]),
        false,
    );
    assert_eq!(token(&a), format!("NTLM {}", b64(b"type1")));
    assert!(hs.mid_handshake());
    let a = hs.on_response(S407, &h407(&[&format!("NTLM {}", b64(b"type2"))]), false);
    assert_eq!(token(&a), format!("NTLM {}", b64(b"type3")));
    assert_eq!(
        hs.on_response(StatusCode::OK, &HeaderMap::new(), false),
        Action::Done
    );
    assert_eq!(hs.result(), AuthResult::Authenticated);
    assert_eq!(
        bed.memory.get("proxy.example.test:3128"),
        Some(Plan {
            scheme: Scheme::Ntlm,
            mech: Mech::Ntlm
        })
    );
    let legs = hs.legs();
    assert_eq!(legs.len(), 2);
    assert_eq!((legs[0].status, legs[0].received_bytes), (Some(407), 5));
    assert_eq!(legs[1].status, Some(200));
}

#[test]
fn negotiate_with_kerberos_is_preferred_and_done_on_200_without_a_token() {
    let bed = Bed::new(&[]);
    let mut hs = bed.hs(ALL);
    let a = hs.on_response(S407, &h407(&["Basic realm=x, NTLM, Negotiate"]), false);
    assert_eq!(token(&a), format!("Negotiate {}", b64(b"krb-ap-req")));
    assert_eq!(
        hs.on_response(StatusCode::OK, &HeaderMap::new(), false),
        Action::Done
    );
    assert_eq!(hs.plan().map(|p| p.mech), Some(Mech::Kerberos));
}

#[test]
fn no_ticket_falls_back_from_kerberos_to_ntlm() {
    let bed = Bed::new(&[Mech::Kerberos]);
    let mut hs = bed.hs(ALL);
    let a = hs.on_response(S407, &h407(&["Negotiate", "NTLM"]), false);
    assert_eq!(token(&a), format!("NTLM {}", b64(b"type1")));
}

#[test]
fn only_negotiate_offered_and_no_kerberos_sends_raw_ntlm_under_negotiate() {
    let bed = Bed::new(&[Mech::Kerberos]);
    let mut hs = bed.hs(ALL);
    let a = hs.on_response(S407, &h407(&["Negotiate"]), false);
    assert_eq!(token(&a), format!("Negotiate {}", b64(b"type1")));
    let a = hs.on_response(
        S407,
        &h407(&[&format!("Negotiate {}", b64(b"type2"))]),
        false,
    );
    assert_eq!(token(&a), format!("Negotiate {}", b64(b"type3")));
}

#[test]
fn a_kerberos_ticket_refused_by_the_proxy_falls_back_to_ntlm_once() {
    let bed = Bed::new(&[]);
    let mut hs = bed.hs(ALL);
    hs.on_response(S407, &h407(&["Negotiate", "NTLM"]), false);
    let a = hs.on_response(S407, &h407(&["Negotiate", "NTLM"]), false);
    assert_eq!(token(&a), format!("NTLM {}", b64(b"type1")));
    hs.on_response(S407, &h407(&[&format!("NTLM {}", b64(b"t2"))]), false);
    let a = hs.on_response(S407, &h407(&["Negotiate", "NTLM"]), false);
    assert_eq!(
        a,
        Action::Rejected {
            reason: RejectReason::CredentialsRejected
        }
    );
}

#[test]
fn a_bare_407_after_the_final_token_is_a_rejection_and_never_loops() {
    let bed = Bed::new(&[]);
    let mut hs = bed.hs(NTLM_ONLY);
    hs.on_response(S407, &h407(&["NTLM"]), false);
    hs.on_response(S407, &h407(&[&format!("NTLM {}", b64(b"t2"))]), false);
    let a = hs.on_response(S407, &h407(&["NTLM"]), false);
    assert_eq!(
        a,
        Action::Rejected {
            reason: RejectReason::CredentialsRejected
        }
    );
    // Further responses repeat the verdict; no new context is made.
    let made = bed.factory.created.load(Ordering::SeqCst);
    assert_eq!(hs.on_response(S407, &h407(&["NTLM"]), false), a);
    assert_eq!(hs.start(), None);
    assert_eq!(bed.factory.created.load(Ordering::SeqCst), made);
}

#[tokio::test(start_paused = true)]
async fn rejections_count_towards_the_lockout() {
    let bed = Bed::new(&[]);
    for _ in 0..2 {
        let mut hs = bed.hs(Usable {
            basic: true,
            ..Default::default()
        });
        hs.on_response(S407, &h407(&["Basic realm=x"]), false);
        assert!(matches!(
            hs.on_response(S407, &h407(&["Basic realm=x"]), false),
            Action::Rejected { .. }
        ));
    }
    assert!(bed.lockout.locked("EXAMPLE\\user").is_some());
}

#[test]
fn a_407_that_closes_the_connection_restarts_on_a_new_one() {
    let bed = Bed::new(&[]);
    let mut hs = bed.hs(NTLM_ONLY);
    assert_eq!(hs.start(), None);
    assert_eq!(
        hs.on_response(S407, &h407(&["Negotiate", "NTLM"]), true),
        Action::Reconnect
    );
    // new connection: the first token goes with the first request
    let first = hs.start().expect("first token on the new connection");
    assert_eq!(first.to_str().unwrap(), format!("NTLM {}", b64(b"type1")));
    let a = hs.on_response(S407, &h407(&[&format!("NTLM {}", b64(b"t2"))]), false);
    assert_eq!(token(&a), format!("NTLM {}", b64(b"type3")));
    assert_eq!(
        hs.on_response(StatusCode::OK, &HeaderMap::new(), false),
        Action::Done
    );
}

#[test]
fn a_close_in_the_middle_of_a_handshake_restarts_at_most_once() {
    let bed = Bed::new(&[]);
    let mut hs = bed.hs(NTLM_ONLY);
    hs.on_response(S407, &h407(&["NTLM"]), false);
    let t2 = format!("NTLM {}", b64(b"t2"));
    assert_eq!(hs.on_response(S407, &h407(&[&t2]), true), Action::Reconnect);
    assert!(hs.start().is_some());
    assert_eq!(
        hs.on_response(S407, &h407(&[&t2]), true),
        Action::Rejected {
            reason: RejectReason::ConnectionLost
        }
    );
}

#[test]
fn the_number_of_407s_is_capped() {
    let bed = Bed::new(&[]);
    let mut hs = bed.hs(NTLM_ONLY);
    let t2 = format!("NTLM {}", b64(b"t2"));
    let mut last = Action::Done;
    for _ in 0..10 {
        last = hs.on_response(S407, &h407(&["NTLM", &t2]), false);
        if !matches!(last, Action::SendToken(_)) {
            break;
        }
    }
    assert!(matches!(last, Action::Rejected { .. }), "{last:?}");
    assert!(hs.legs().len() <= 5);
}

#[test]
fn a_remembered_scheme_sends_its_first_token_pre_emptively() {
    let bed = Bed::new(&[]);
    bed.memory.remember(
        "proxy.example.test:3128",
        Plan {
            scheme: Scheme::Ntlm,
            mech: Mech::Ntlm,
        },
    );
    let mut hs = bed.hs(NTLM_ONLY);
    assert_eq!(
        hs.start().unwrap().to_str().unwrap(),
        format!("NTLM {}", b64(b"type1"))
    );
    let a = hs.on_response(S407, &h407(&[&format!("NTLM {}", b64(b"t2"))]), false);
    assert_eq!(token(&a), format!("NTLM {}", b64(b"type3")));
}

#[test]
fn no_usable_scheme_relays_the_407() {
    let bed = Bed::new(&[]);
    let mut hs = bed.hs(NTLM_ONLY);
    assert_eq!(
        hs.on_response(S407, &h407(&["Basic realm=x", "Digest realm=y"]), false),
        Action::Rejected {
            reason: RejectReason::NoUsableScheme
        }
    );
}

#[test]
fn a_policy_refusal_sends_no_credentials_at_all() {
    let bed = Bed::new(&[]);
    let mut hs = bed.hs(ALL);
    hs.params.refuse = Some(RejectReason::PolicyRefused);
    assert_eq!(hs.start(), None);
    assert_eq!(
        hs.on_response(S407, &h407(&["NTLM"]), false),
        Action::Rejected {
            reason: RejectReason::PolicyRefused
        }
    );
    assert_eq!(bed.factory.created.load(Ordering::SeqCst), 0);
}

#[test]
fn a_proxy_that_never_asks_needs_no_authentication() {
    let bed = Bed::new(&[]);
    let mut hs = bed.hs(ALL);
    assert_eq!(
        hs.on_response(StatusCode::OK, &HeaderMap::new(), false),
        Action::Done
    );
    assert_eq!(hs.result(), AuthResult::NotRequired);
}

#[tokio::test(start_paused = true)]
async fn basic_over_plain_http_under_auto_is_refused_with_its_own_reason() {
    let bed = Bed::new(&[]);
    let mut hs = bed.hs(Usable {
        basic_needs_tls: true,
        ..Default::default()
    });
    let action = hs.on_response(S407, &h407(&["Basic realm=x"]), false);
    assert!(
        matches!(
            &action,
            Action::Rejected {
                reason: RejectReason::CleartextBasic
            }
        ),
        "{action:?}"
    );
    assert_eq!(
        RejectReason::CleartextBasic.code(),
        "auth-basic-cleartext-refused"
    );
}

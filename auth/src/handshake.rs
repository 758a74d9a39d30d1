//! The 407 state machine of one request, sans I/O: fed each response's status, headers
//! and whether the connection closes, it answers with the next [`Action`]. It picks a
//! plan (scheme + mechanism), falls back Kerberos -> NTLM when Kerberos is impossible or
//! refused by the proxy, treats a token-less 407 after our final token as a rejection
//! (no loops), caps the number of 407s, and updates the shared [`SchemeMemory`] and
//! [`Lockout`]. It never touches a socket; mechanism steps may block on a KDC
//! (Kerberos), so drivers call it where blocking is allowed.
//!
//! # Lifecycle
//!
//! ```text
//!            start() on each connection
//!  Idle ──────────────────────────────► Sent        (pre-emptive token: scheme remembered)
//!   │ 407 + challenges                   │ 407 + token      -> next leg: SendToken, stay Sent
//!   ├─► pick plan, first token ─────────►│ 407, no token    -> Rejected (or Kerberos -> NTLM once)
//!   │   (407 says close: Pending)        │ non-407          -> Done (Authenticated)
//!   │ non-407 -> Done (NotRequired)      │ 407 + close mid-handshake -> Pending (restart once)
//!  Pending ── start() on the new connection returns the saved first token ──► Sent
//!  Done / Rejected: terminal; further calls repeat the verdict.
//! ```

use std::sync::Arc;

use base64::Engine;
use http::{HeaderMap, HeaderValue, StatusCode};
use tracing::{debug, trace};

use crate::challenge::{parse_headers, Challenge};
use crate::mech::{MechErrorKind, MechTarget, Mechanism, MechanismFactory};
use crate::policy::Lockout;
use crate::scheme::{plans, Mech, Plan, Scheme, SchemeMemory, Usable};

/// What the driver does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send the request again on the same connection with this `Proxy-Authorization`.
    SendToken(HeaderValue),
    /// The proxy closes this connection: open a new one and call [`Handshake::start`].
    Reconnect,
    /// Finished: relay the response (authenticated, or no authentication needed).
    Done,
    /// Give up: relay the 407 to the client.
    Rejected { reason: RejectReason },
}

/// Why a handshake gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejectReason {
    /// A token-less 407 after our final token: the proxy refused the credentials.
    CredentialsRejected,
    /// No offered scheme matches credentials we hold (or none is offered).
    NoUsableScheme,
    /// The autologon policy forbids sending credentials to this proxy.
    PolicyRefused,
    /// The network named this proxy and has not proven itself: nothing is sent.
    UntrustedNetwork,
    /// Too many recent rejections for this identity.
    LockedOut,
    /// More 407s than `max_attempts`.
    AttemptsExhausted,
    /// The proxy closed the connection in the middle of a handshake twice.
    ConnectionLost,
    /// The mechanism failed (message from the library, no secrets).
    MechanismFailed(String),
    /// Only Basic was usable, over plain HTTP with `scheme = "auto"`: the password is not
    /// sent in clear unless `scheme = "basic"` says so (or the proxy is reached over TLS).
    CleartextBasic,
}

impl RejectReason {
    /// The `X-Waypost-Error` value of a 407 relayed for this reason.
    pub fn code(&self) -> &'static str {
        match self {
            RejectReason::CleartextBasic => "auth-basic-cleartext-refused",
            RejectReason::PolicyRefused => "auth-policy-refused",
            RejectReason::UntrustedNetwork => "auth-untrusted-proxy",
            _ => "auth-rejected",
        }
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RejectReason::CredentialsRejected => f.write_str("credentials rejected by the proxy"),
            RejectReason::NoUsableScheme => {
                f.write_str("no offered scheme matches the configured credentials")
            }
            RejectReason::PolicyRefused => {
                f.write_str("the autologon policy forbids credentials for this proxy")
            }
            RejectReason::UntrustedNetwork => f.write_str(
                "the network named this proxy and has not proven itself (no Kerberos proof, no \
                 trust probe): no credential is sent",
            ),
            RejectReason::LockedOut => f.write_str("identity locked out after repeated rejections"),
            RejectReason::AttemptsExhausted => f.write_str("too many 407 responses"),
            RejectReason::ConnectionLost => {
                f.write_str("the proxy kept closing the connection mid-handshake")
            }
            RejectReason::MechanismFailed(m) => write!(f, "mechanism failed: {m}"),
            RejectReason::CleartextBasic => f.write_str(
                "the proxy offers only Basic, which would send the password in clear over plain \
                 HTTP; use an https:// proxy or set auth.scheme = \"basic\" to allow it",
            ),
        }
    }
}

/// How a handshake ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthResult {
    /// The proxy never asked (no 407).
    NotRequired,
    Authenticated,
    Rejected(RejectReason),
    /// Still running.
    Pending,
}

/// One leg as seen on the wire (for `auth test` and logs): sizes only, never tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leg {
    pub scheme: Scheme,
    pub mech: Mech,
    pub sent_bytes: usize,
    pub status: Option<u16>,
    pub received_bytes: usize,
}

/// Fixed inputs of one handshake.
#[derive(Debug, Clone)]
pub struct HandshakeParams {
    /// `host:port` of the proxy as configured (memory key).
    pub proxy_key: String,
    pub usable: Usable,
    pub spn: String,
    pub channel_bindings: Option<Vec<u8>>,
    pub max_attempts: u32,
    pub identity: String,
    /// Send a remembered scheme's first token before any 407.
    pub preemptive: bool,
    /// Decided before any traffic (policy, lockout): never send credentials.
    pub refuse: Option<RejectReason>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Idle,
    Sent { complete: bool },
    Pending { header: HeaderValue, complete: bool },
    Finished(AuthResult),
}

/// The per-request handshake (see the module docs for its lifecycle).
pub struct Handshake {
    params: HandshakeParams,
    factory: Arc<dyn MechanismFactory>,
    memory: Arc<SchemeMemory>,
    lockout: Arc<Lockout>,
    state: State,
    plans: Vec<Plan>,
    plan_idx: usize,
    current: Option<Plan>,
    mech: Option<Box<dyn Mechanism>>,
    responses_407: u32,
    restarts: u32,
    fell_back: bool,
    legs: Vec<Leg>,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("proxy", &self.params.proxy_key)
            .field("state", &self.state)
            .field("plan", &self.current)
            .field("legs", &self.legs.len())
            .finish()
    }
}

fn encode(plan: Plan, token: &[u8]) -> HeaderValue {
    let value = format!(
        "{} {}",
        plan.scheme.as_str(),
        base64::engine::general_purpose::STANDARD.encode(token)
    );
    // Proof: the scheme name and base64 are visible ASCII, always a valid header value.
    let mut v = HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""));
    v.set_sensitive(true);
    v
}

impl Handshake {
    pub fn new(
        params: HandshakeParams,
        factory: Arc<dyn MechanismFactory>,
        memory: Arc<SchemeMemory>,
        lockout: Arc<Lockout>,
    ) -> Self {
        Handshake {
            params,
            factory,
            memory,
            lockout,
            state: State::Idle,
            plans: Vec::new(),
            plan_idx: 0,
            current: None,
            mech: None,
            responses_407: 0,
            restarts: 0,
            fell_back: false,
            legs: Vec::new(),
        }
    }

    pub fn params(&self) -> &HandshakeParams {
        &self.params
    }

    pub fn legs(&self) -> &[Leg] {
        &self.legs
    }

    /// The plan in use (or last used).
    pub fn plan(&self) -> Option<Plan> {
        self.current
    }

    pub fn result(&self) -> AuthResult {
        match &self.state {
            State::Finished(r) => r.clone(),
            _ => AuthResult::Pending,
        }
    }

    /// Whether the next step may wait on something outside the process: only Kerberos does
    /// (the system GSSAPI can ask a KDC for a service ticket). Basic and NTLM are a few
    /// microseconds of computation, run inline by the driver rather than moving the async
    /// worker thread aside for them.
    pub fn may_block(&self) -> bool {
        if !self.params.usable.kerberos {
            return false;
        }
        let known = self
            .current
            .or_else(|| self.memory.get(&self.params.proxy_key));
        !matches!(known, Some(p) if p.mech != Mech::Kerberos)
    }

    /// Whether a token went out on the current connection and no verdict came yet: such a
    /// connection must never be pooled.
    /// Why this handshake will send nothing, when it was refused before it began.
    pub fn refused(&self) -> Option<&RejectReason> {
        self.params.refuse.as_ref()
    }

    pub fn mid_handshake(&self) -> bool {
        matches!(self.state, State::Sent { .. })
    }

    /// Call once per connection before its first request: the `Proxy-Authorization` to
    /// send with it, if any (a pending restart after a close, or a pre-emptive first
    /// token when this proxy's scheme is remembered).
    pub fn start(&mut self) -> Option<HeaderValue> {
        if self.params.refuse.is_some() {
            return None;
        }
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Pending { header, complete } => {
                self.state = State::Sent { complete };
                return Some(header);
            }
            State::Finished(r) => {
                self.state = State::Finished(r);
                return None;
            }
            State::Idle | State::Sent { .. } => {}
        }
        if !self.params.preemptive {
            return None;
        }
        let plan = self.memory.get(&self.params.proxy_key)?;
        let usable = plans(&[plan.scheme], self.params.usable);
        if !usable.contains(&plan) {
            return None;
        }
        self.plans = vec![plan];
        self.plan_idx = 0;
        match self.first_token() {
            Ok(Some((header, complete))) => {
                debug!(proxy = %self.params.proxy_key, %plan, "pre-emptive first token");
                self.state = State::Sent { complete };
                Some(header)
            }
            _ => {
                self.plans.clear();
                self.state = State::Idle;
                None
            }
        }
    }

    fn finish(&mut self, result: AuthResult) -> Action {
        let action = match &result {
            AuthResult::Rejected(reason) => Action::Rejected {
                reason: reason.clone(),
            },
            _ => Action::Done,
        };
        if result == AuthResult::Authenticated {
            if let Some(plan) = self.current {
                self.memory.remember(&self.params.proxy_key, plan);
            }
            self.lockout.record_success(&self.params.identity);
        }
        self.state = State::Finished(result);
        action
    }

    fn reject_credentials(&mut self) -> Action {
        if self.lockout.record_rejection(&self.params.identity) {
            debug!(identity = %self.params.identity, "identity locked out after repeated rejections");
        }
        self.finish(AuthResult::Rejected(RejectReason::CredentialsRejected))
    }

    /// First token of `plans[plan_idx..]`, falling back while a mechanism is unavailable.
    /// `Ok(None)`: no plan left.
    fn first_token(&mut self) -> Result<Option<(HeaderValue, bool)>, RejectReason> {
        let target = MechTarget {
            spn: self.params.spn.clone(),
            channel_bindings: self.params.channel_bindings.clone(),
        };
        while let Some(&plan) = self.plans.get(self.plan_idx) {
            let started = self
                .factory
                .create(plan.mech, &target)
                .and_then(|mut m| m.step(None).map(|s| (m, s)));
            match started {
                Ok((mech, step)) => {
                    trace!(%plan, bytes = step.token.len(), "first token");
                    self.legs.push(Leg {
                        scheme: plan.scheme,
                        mech: plan.mech,
                        sent_bytes: step.token.len(),
                        status: None,
                        received_bytes: 0,
                    });
                    self.current = Some(plan);
                    self.mech = Some(mech);
                    return Ok(Some((encode(plan, &step.token), step.complete)));
                }
                Err(e) if e.kind == MechErrorKind::Unavailable => {
                    debug!(%plan, error = %e, "mechanism unavailable; trying the next plan");
                    self.plan_idx += 1;
                }
                Err(e) if e.kind == MechErrorKind::CredentialsRejected => {
                    if self.lockout.record_rejection(&self.params.identity) {
                        debug!(identity = %self.params.identity, "identity locked out");
                    }
                    return Err(RejectReason::CredentialsRejected);
                }
                Err(e) => return Err(RejectReason::MechanismFailed(e.to_string())),
            }
        }
        Ok(None)
    }

    /// Starts plans for `offered` at `from`; the action for a connection that `closes` or not.
    fn begin(&mut self, offered: &[Scheme], skip_kerberos: bool, closes: bool) -> Action {
        self.plans = plans(offered, self.params.usable);
        if skip_kerberos {
            self.plans.retain(|p| p.mech != Mech::Kerberos);
        }
        self.plan_idx = 0;
        match self.first_token() {
            Ok(Some((header, complete))) if closes => {
                self.state = State::Pending { header, complete };
                Action::Reconnect
            }
            Ok(Some((header, complete))) => {
                self.state = State::Sent { complete };
                Action::SendToken(header)
            }
            Ok(None) if self.params.usable.basic_needs_tls && offered.contains(&Scheme::Basic) => {
                self.finish(AuthResult::Rejected(RejectReason::CleartextBasic))
            }
            Ok(None) => self.finish(AuthResult::Rejected(RejectReason::NoUsableScheme)),
            Err(reason) => self.finish(AuthResult::Rejected(reason)),
        }
    }

    /// Feeds one response. `closes`: the proxy closes the connection after it.
    pub fn on_response(&mut self, status: StatusCode, headers: &HeaderMap, closes: bool) -> Action {
        if let Some(leg) = self.legs.last_mut().filter(|l| l.status.is_none()) {
            leg.status = Some(status.as_u16());
        }
        if let State::Finished(r) = &self.state {
            let r = r.clone();
            return match r {
                AuthResult::Rejected(reason) => Action::Rejected { reason },
                _ => Action::Done,
            };
        }
        if status != StatusCode::PROXY_AUTHENTICATION_REQUIRED {
            let result = if matches!(self.state, State::Sent { .. }) {
                AuthResult::Authenticated
            } else {
                AuthResult::NotRequired
            };
            return self.finish(result);
        }
        if let Some(reason) = self.params.refuse.clone() {
            return self.finish(AuthResult::Rejected(reason));
        }
        self.responses_407 += 1;
        if self.responses_407 > self.params.max_attempts {
            return self.finish(AuthResult::Rejected(RejectReason::AttemptsExhausted));
        }
        let challenges = parse_headers(headers);
        let offered: Vec<Scheme> = challenges.iter().filter_map(Challenge::scheme).collect();
        trace!(?offered, closes, "407");
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Idle | State::Pending { .. } => self.begin(&offered, false, closes),
            State::Sent { complete } => self.next_leg(&challenges, &offered, complete, closes),
            State::Finished(_) => Action::Done, // handled above
        }
    }

    fn next_leg(
        &mut self,
        challenges: &[Challenge],
        offered: &[Scheme],
        complete: bool,
        closes: bool,
    ) -> Action {
        let Some(plan) = self.current else {
            return self.begin(offered, false, closes);
        };
        let token = challenges
            .iter()
            .find(|c| c.scheme() == Some(plan.scheme))
            .and_then(Challenge::token);
        if let Some(leg) = self.legs.last_mut() {
            leg.received_bytes = token.as_ref().map_or(0, Vec::len);
        }
        match token {
            Some(_) if closes => {
                // The context lives on the connection: restart from scratch, once.
                self.restarts += 1;
                if self.restarts > 1 {
                    return self.finish(AuthResult::Rejected(RejectReason::ConnectionLost));
                }
                self.begin(offered, self.fell_back, true)
            }
            Some(token) if !complete => {
                let step = match self.mech.as_mut() {
                    Some(m) => m.step(Some(&token)),
                    None => return self.finish(AuthResult::Rejected(RejectReason::NoUsableScheme)),
                };
                match step {
                    Ok(step) if !step.token.is_empty() => {
                        self.legs.push(Leg {
                            scheme: plan.scheme,
                            mech: plan.mech,
                            sent_bytes: step.token.len(),
                            status: None,
                            received_bytes: 0,
                        });
                        self.state = State::Sent {
                            complete: step.complete,
                        };
                        Action::SendToken(encode(plan, &step.token))
                    }
                    Ok(_) => self.reject_credentials(),
                    Err(e) => self.finish(AuthResult::Rejected(RejectReason::MechanismFailed(
                        e.to_string(),
                    ))),
                }
            }
            _ if !complete && self.restarts == 0 => {
                // A bare 407 after a first (non-final) token, e.g. a pre-emptive NTLM type 1
                // the proxy ignored: start over from this 407's challenges, once.
                self.restarts += 1;
                self.begin(offered, self.fell_back, closes)
            }
            _ if plan.mech == Mech::Kerberos && !self.fell_back => {
                // The proxy refused the Kerberos ticket (unknown SPN, no key): try NTLM once.
                self.fell_back = true;
                debug!(proxy = %self.params.proxy_key, "Kerberos refused by the proxy; falling back to NTLM");
                self.begin(offered, true, closes)
            }
            _ => self.reject_credentials(),
        }
    }
}

#[cfg(test)]
#[path = "handshake_tests.rs"]
mod tests;

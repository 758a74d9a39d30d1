//! Mechanisms: what turns credentials (and the proxy's tokens) into our tokens. Each
//! one sits behind the small [`Mechanism`] trait (`step(input) -> Step{token, complete}`)
//! so the 407 state machine never knows which library is underneath, and tests can
//! swap in fakes. Kerberos steps may block on the KDC (callers run them where blocking
//! is allowed); NTLM and Basic only compute. Mechanisms never log secrets: errors carry
//! the library's message, which names users and principals but no keys.

mod basic;
#[cfg(feature = "gssapi")]
pub(crate) mod gss;
mod kerberos;
mod ntlm;
pub mod renew;

use std::sync::Arc;

pub use basic::BasicMech;
pub(crate) use kerberos::tcp_round_trip;
pub use kerberos::{KdcClient, SspiKerberos};
pub use ntlm::SspiNtlm;

use self::renew::KeytabTickets;
use crate::credentials::{Credentials, KerberosSource};
use crate::live::LiveCredentials;
use crate::scheme::Mech;

/// Result of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The token to send (raw bytes, before base64); may be empty only when `complete`.
    pub token: Vec<u8>,
    /// The mechanism has nothing more to send after this token.
    pub complete: bool,
}

/// Why a mechanism could not produce a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MechErrorKind {
    /// Not possible here (no ticket, KDC unreachable, no SPN): fall back to another mechanism.
    Unavailable,
    /// The credentials themselves were refused (KDC pre-auth failed): counts towards lockout.
    CredentialsRejected,
    /// Anything else (malformed token from the proxy, library error).
    Failed,
}

/// A mechanism's failure; `message` never contains secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{mech}: {message}")]
pub struct MechError {
    pub mech: Mech,
    pub kind: MechErrorKind,
    pub message: String,
}

impl MechError {
    pub fn new(mech: Mech, kind: MechErrorKind, message: impl Into<String>) -> Self {
        MechError {
            mech,
            kind,
            message: message.into(),
        }
    }
}

/// One security context: fed the proxy's tokens, yields ours.
pub trait Mechanism: Send {
    /// `input` is `None` for the first token, then the proxy's decoded token.
    fn step(&mut self, input: Option<&[u8]>) -> Result<Step, MechError>;
}

/// What a new context is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MechTarget {
    /// `HTTP/proxy.example.test` (no realm).
    pub spn: String,
    /// `tls-server-end-point:<hash>` application data when we speak TLS to the proxy.
    pub channel_bindings: Option<Vec<u8>>,
}

/// Makes new contexts. The default is [`CredentialMechanisms`]; tests use fakes.
pub trait MechanismFactory: Send + Sync {
    fn create(&self, mech: Mech, target: &MechTarget) -> Result<Box<dyn Mechanism>, MechError>;
}

/// The real mechanisms over a set of [`Credentials`]: Kerberos from the ticket cache
/// through the system GSSAPI (feature `gssapi`) or from a password/keytab through sspi,
/// NTLMv2 through sspi, Basic by hand.
pub struct CredentialMechanisms {
    live: Arc<LiveCredentials>,
    kdc: KdcClient,
    /// With a keytab: the ticket cache waypost keeps renewed ([`renew`]).
    tickets: Option<Arc<KeytabTickets>>,
}

impl CredentialMechanisms {
    /// Over credentials that may change (a re-read password file): each new context takes
    /// the current ones.
    pub fn new(live: Arc<LiveCredentials>) -> Self {
        let creds = live.current();
        let kdc = KdcClient::new(creds.kdc.clone());
        let tickets = match creds.kerberos_source() {
            Some(KerberosSource::Keytab { path, user, realm }) if cfg!(feature = "gssapi") => {
                KeytabTickets::start(&path, &format!("{user}@{realm}"))
                    .map_err(|e| tracing::warn!(error = %e, "cannot start keytab ticket renewal; a ticket is obtained per handshake"))
                    .ok()
            }
            _ => None,
        };
        CredentialMechanisms { live, kdc, tickets }
    }

    /// The renewed ticket cache of a keytab identity, if any.
    pub fn keytab_tickets(&self) -> Option<&Arc<KeytabTickets>> {
        self.tickets.as_ref()
    }
}

impl MechanismFactory for CredentialMechanisms {
    fn create(&self, mech: Mech, target: &MechTarget) -> Result<Box<dyn Mechanism>, MechError> {
        let unavailable = |msg: &str| MechError::new(mech, MechErrorKind::Unavailable, msg);
        let creds: Arc<Credentials> = self.live.current();
        match mech {
            Mech::Basic => Ok(Box::new(
                BasicMech::new(&creds).ok_or_else(|| unavailable("no password"))?,
            )),
            Mech::Ntlm => Ok(Box::new(SspiNtlm::new(&creds, target)?)),
            Mech::Kerberos => match creds.kerberos_source() {
                // a keytab identity with a renewed ticket: only a service ticket is needed
                #[cfg(feature = "gssapi")]
                Some(KerberosSource::Keytab { .. })
                    if self.tickets.as_ref().and_then(|t| t.ccache()).is_some() =>
                {
                    let cache = self.tickets.as_ref().and_then(|t| t.ccache());
                    Ok(Box::new(gss::GssKerberos::new(cache.as_deref(), target)?))
                }
                Some(KerberosSource::TicketCache(ccache)) => {
                    #[cfg(feature = "gssapi")]
                    {
                        Ok(Box::new(gss::GssKerberos::new(ccache.as_deref(), target)?))
                    }
                    #[cfg(not(feature = "gssapi"))]
                    {
                        let _ = ccache;
                        Err(unavailable(
                            "ticket cache single sign-on needs the `gssapi` feature",
                        ))
                    }
                }
                Some(source) => Ok(Box::new(SspiKerberos::new(
                    source,
                    target,
                    self.kdc.clone(),
                )?)),
                None => Err(unavailable("no Kerberos credentials")),
            },
        }
    }
}

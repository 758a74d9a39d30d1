//! Upstream proxy authentication for waypost: Negotiate (Kerberos/SPNEGO), NTLMv2 and
//! Basic answers to a proxy's 407, the way WinHTTP does it.
//!
//! Module map, in the order a request meets them:
//! - [`config`]: the `[auth]` table (serde) and its validation;
//! - [`credentials`]: user, password / NT hash / keytab / ticket cache, redacted;
//!   [`live`]: the password file re-read when it changes; [`mech::renew`]: keytab tickets
//!   obtained and renewed inside waypost;
//! - [`identities`]: the default identity and `[[auth.proxies]]`, chosen per proxy;
//! - [`policy`]: autologon policy (which proxies get credentials, and on which networks) and
//!   lockout; [`proof`]: the realm's KDC proving itself from the network the machine is on;
//! - [`spn`]: `HTTP/<proxy host>` and its options;
//! - [`challenge`]: `Proxy-Authenticate` parsing; [`scheme`]: choosing a plan;
//! - [`handshake`]: the sans-I/O 407 state machine; [`mech`]: the token makers
//!   (sspi NTLMv2 + Kerberos, system GSSAPI for SSO, Basic) behind one trait;
//! - [`context`]: the shared [`Authenticator`] and per-request [`AuthContext`];
//! - [`client`]: the hyper driver [`authenticate_request`]; [`metrics`]; [`cli`];
//!   [`status`]: each identity, its source and ticket expiry (`waypost auth status`).
//!
//! The flow of one request: the proxy builds an [`AuthContext`] for the upstream hop,
//! calls [`authenticate_request`] on a fresh (or pooled) connection, reconnects and
//! calls again on [`AuthError::Reconnect`], and pools the connection under
//! [`Authenticator::identity`] when the outcome allows it.

pub mod cbt;
pub mod ccache;
pub mod challenge;
pub mod cli;
pub mod client;
pub mod config;
pub mod context;
pub mod credentials;
pub mod handshake;
pub mod identities;
pub mod keyring;
pub mod keytab;
pub mod live;
pub mod mech;
pub mod metrics;
pub mod pattern;
pub mod policy;
pub mod proof;
pub mod scheme;
pub mod secret;
pub mod spn;
pub mod status;

pub use client::{authenticate_request, response_closes, AuthError, AuthOutcome, X_WAYPOST_ERROR};
pub use config::{AuthConfig, ConfigErrors, SchemeChoice};
pub use context::{AuthContext, Authenticator, ProxyTarget};
pub use credentials::Credentials;
pub use handshake::{Action, AuthResult, Handshake, RejectReason};
pub use identities::{Authenticators, ProxyPattern};
pub use policy::{AutologonPolicy, Grant, NetworkTrust, Speaker, Withheld};
pub use scheme::{Mech, Plan, Scheme, SchemeMemory};

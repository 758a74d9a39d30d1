//! waypost's TLS policy, as a library the proxy wires in.
//!
//! Module map, in the order a connection meets them:
//! - [`config`]: the `[tls]` section as typed (`TlsConfig`) and its validation, every bad key
//!   reported with its path; [`pattern`]: destination patterns (`host`, `*.suffix`, `.suffix`,
//!   IP, CIDR, with an optional port), the one syntax of every per-destination list;
//!   [`settings`]: the TLS settings of one connection.
//! - [`policy`]: `TlsPolicy`, built once, hands out rustls client configs cached per
//!   treatment, and answers the tunnel questions (`sni_allowed`, `port_allowed`,
//!   `intercepts`).
//! - `verifier`: webpki verification with named, per-host exceptions that each accept one
//!   defect only; `revocation`: CRLs from files and distribution points (async fetch, cache),
//!   downloaded through the [`CrlFetch`] the proxy installs (its HTTP client).
//! - [`connect()`]: one handshake over any stream, classified on failure ([`error`]).
//! - [`sni`]: the SNI of a tunnelled ClientHello, without decrypting.
//! - [`intercept`]: the local CA minting per-host leaves; [`cli`]: `waypost ca init|export`.
//! - [`metrics`]: every `waypost_tls_*` metric, registered into the proxy's registry.
//!
//! Only `connect` and the CA's file writes do I/O (CRL downloads are the installed
//! [`CrlFetch`]'s); the rest decides.

pub mod certinfo;
pub mod cli;
pub mod config;
mod connect;
pub mod error;
pub mod intercept;
mod legacy;
mod material;
pub mod metrics;
pub mod pattern;
pub mod policy;
mod revocation;
pub mod settings;
pub mod sni;
mod verifier;

pub use config::{Defect, TlsConfig, TlsConfigError};
pub use connect::{connect, connect_with};
pub use error::{classify, TlsError, TlsErrorKind};
pub use intercept::Ca;
pub use policy::TlsPolicy;
pub use revocation::{CrlDownload, CrlFetch};
pub use settings::ConnSettings;
pub use sni::{parse_client_hello_sni, SniPeek};
pub use tokio_rustls;
pub use tokio_rustls::client::TlsStream;

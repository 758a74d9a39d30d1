//! One builder per section of the configuration: each turns its raw (serde) section into the
//! typed value the proxy uses, noting every problem with its key path in the one
//! [`Problems`](super::problems::Problems) list instead of stopping at the first;
//! [`super::validate`] composes them. They read only the raw config (and the environment for
//! routes); none touches the network.

pub mod auth;
pub mod client_auth;
pub mod dns;
pub mod limits;
pub mod listen;
pub mod log;
pub mod pac;
pub mod routes;
pub mod scopes;
pub mod timeouts;
pub mod tls;

//! waypost-pac: the PAC (proxy auto-config) engine.
//!
//! Module map, in the order a request flows through them:
//! - [`engine`]: `PacEngine` — sanitise the URL ([`sanitize`]), consult the result cache
//!   (`cache`), queue the job to a worker, enforce the deadline, parse the verdict.
//! - `worker`: threads that each own a boa `Context` with the script loaded.
//! - `bindings`: the PAC functions as native JS functions (+ `prelude.js` for the date
//!   predicates), backed by the pure logic in [`helpers`] and DNS in [`dns`].
//! - [`verdict`]: the return-string grammar -> `Vec<ProxyEntry>`.
//! - `clock`: the wall clock and time zone scripts see; `metrics`: registered into the
//!   caller's registry; [`cli`]: the `waypost pac` command.
//!
//! Behaviour follows `shared/PAC-SPEC.md`; deviations are listed in `pac/README.md`.

mod bindings;
mod cache;
pub mod cli;
mod clock;
pub mod dns;
pub mod engine;
pub mod error;
pub mod helpers;
mod metrics;
pub mod options;
pub mod sanitize;
pub mod verdict;
mod worker;

pub use bindings::PAC_FUNCTIONS;
pub use dns::{DnsLookup, HickoryLookup, LookupFuture};
pub use engine::{PacAnswer, PacEngine};
pub use error::{ErrorKind, PacError, Position};
pub use options::PacOptions;
pub use sanitize::{sanitize, ScriptInput};
pub use verdict::{format_result, parse_result, EntryError, ProxyEntry, ProxyKind};

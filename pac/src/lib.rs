//! waypost-pac: the PAC (proxy auto-config) engine.
//!
//! Module map, in the order a request flows through them:
//! - [`engine`]: `PacEngine` — sanitise the URL ([`sanitize`]), consult the result cache
//!   (`cache`), hand the call to a backend (`backend`), parse the verdict.
//! - `pool` + `worker`: the in-process backend, threads that each own a boa `Context`;
//!   [`isolate`]: the process backend, supervised `pac-worker` child processes; `hot`: how a
//!   lone call waits for its answer (polling a moment before it parks its thread).
//! - `interp`: one loaded script in one context, under budgets — what both backends run.
//! - `bindings`: the PAC functions as native JS functions (+ `prelude.js` for the date
//!   predicates), backed by the pure logic in [`helpers`] and DNS in [`dns`] (its backend seam:
//!   [`lookup`]).
//! - [`verdict`]: the return-string grammar -> `Vec<ProxyEntry>`.
//! - `clock`: the wall clock and time zone scripts see; `metrics`: registered into the
//!   caller's registry; [`cli`]: the `waypost pac` command.
//!
//! Behaviour follows `shared/PAC-SPEC.md`; deviations are listed in `pac/README.md`.

mod analysis;
mod backend;
mod bindings;
mod cache;
pub mod cli;
mod clock;
pub mod dns;
pub mod engine;
pub mod error;
pub mod helpers;
mod hot;
mod interp;
pub mod isolate;
pub mod lookup;
mod metrics;
pub mod options;
mod pool;
pub mod sanitize;
pub mod verdict;
mod worker;

pub use bindings::PAC_FUNCTIONS;
pub use dns::{DnsLookup, HickoryLookup, LookupFuture};
pub use engine::{PacAnswer, PacEngine};
pub use error::{ErrorKind, KillReason, PacError, Position};
pub use isolate::{worker_main, worker_main_with};
pub use options::{Isolation, PacOptions, WorkerProcess};
pub use sanitize::{sanitize, ScriptInput};
pub use verdict::{format_result, parse_result, EntryError, ProxyEntry, ProxyKind};

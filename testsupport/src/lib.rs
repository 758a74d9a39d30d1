//! Helpers shared by waypost's test suites (the root crate's `tests/`, `auth/tests`,
//! `tls/tests`), so each exists once:
//!
//! - [`eventually`] / [`eventually_blocking`]: poll a condition until a deadline instead of
//!   sleeping and hoping; the failure names the caller and the last value seen.
//! - [`curl`]: the curl client the suites drive (status codes, headers, bodies, in a netns).
//! - [`ca`]: a test CA minted with rcgen, leaves with chosen defects, rustls server configs,
//!   and [`ca::Files`] for the PEM files a test hands to the code under test.
//! - [`metrics`]: Prometheus text from a registry, and the value of one series in it.
//! - [`procfs`]: a process's state, parent and CPU time from `/proc`, and its children.
//! - [`peers`]: real third-party peers (squid, KDC, SOCKS5, a python origin, a WPAD lab)
//!   started by the scripts in `tests/peers/`, and [`free_port`].
//!
//! This crate knows nothing about waypost: it depends on no waypost crate, so the crates under
//! test can dev-depend on it without being built twice.

pub mod ca;
pub mod curl;
mod eventually;
pub mod metrics;
pub mod peers;
pub mod procfs;

pub use eventually::{eventually, eventually_blocking, POLL_INTERVAL};
pub use peers::free_port;

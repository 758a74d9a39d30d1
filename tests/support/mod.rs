//! Helpers shared by the integration tests: `tests/integration/main.rs` declares this module
//! once (`use crate::support;` in each of its modules), and the suites with binaries of their
//! own (`tests/pac_isolation.rs`, `tests/proxy_auth_kerberos.rs`) declare it with `mod support;`.
//! Not every test uses every helper.
//!
//! `harness` is the root crate's own (waypost in-process, origins, a hyper client); `peers`
//! and everything else shared with `auth/tests` and `tls/tests` (eventually, curl, the test
//! CA, metric readers) live in the `waypost-testsupport` crate.
#![allow(dead_code, unused_imports)]

pub mod harness;
pub mod netns;
pub mod peers;
pub mod process;
pub mod scenario;
pub mod wire;

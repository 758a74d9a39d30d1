//! Helpers shared by the integration tests (`mod support;` at the top of a test file).
//! Not every test file uses every helper.
//!
//! `harness` is the root crate's own (waypost in-process, origins, a hyper client); `peers`
//! and everything else shared with `auth/tests` and `tls/tests` (eventually, curl, the test
//! CA, metric readers) live in the `waypost-testsupport` crate.
#![allow(dead_code, unused_imports)]

pub mod harness;
pub mod netns;
pub mod peers;
pub mod process;
pub mod wire;

//! Real peers (squid, KDC, SOCKS5, the python origin, WPAD labs): they live in the shared
//! test crate (`waypost_testsupport::peers`, also used by `auth/tests`); this module keeps the
//! `support::peers::...` paths of the root crate's tests.

pub use waypost_testsupport::peers::*;

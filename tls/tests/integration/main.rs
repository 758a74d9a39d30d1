//! The TLS policy's integration tests, one binary (linked once) with a module per subject:
//! interception, the policy's options, revocation (CRLs) and certificate verification, each
//! against real tokio-rustls peers on loopback.

mod common;

mod intercept;
mod policy;
mod revocation;
mod verify;

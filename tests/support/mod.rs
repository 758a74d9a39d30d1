//! Helpers shared by the integration tests (`mod support;` at the top of a test file).
//! Not every test file uses every helper.
#![allow(dead_code)]

pub mod harness;
pub mod peers;
pub mod wire;

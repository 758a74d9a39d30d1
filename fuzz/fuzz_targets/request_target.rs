//! libFuzzer entry for `request_target` (the body and what it checks: `waypost_fuzz::request_target`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| waypost_fuzz::request_target(data));

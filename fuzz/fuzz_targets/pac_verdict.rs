//! libFuzzer entry for `pac_verdict` (the body and what it checks: `waypost_fuzz::pac_verdict`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| waypost_fuzz::pac_verdict(data));

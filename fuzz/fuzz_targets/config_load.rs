//! libFuzzer entry for `config_load` (the body and what it checks: `waypost_fuzz::config_load`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| waypost_fuzz::config_load(data));

//! libFuzzer entry for `pac_script` (the body and what it checks: `waypost_fuzz::pac_script`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| waypost_fuzz::pac_script(data));

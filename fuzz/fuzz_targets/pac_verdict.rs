//! The PAC result grammar (`"PROXY a:80; SOCKS5 [::1]:1080; DIRECT"`): any string a script
//! returns must parse without panicking, never into an empty list, and what we print back
//! must parse to the same entries (the `.source` file and `/explain` show the printed form).
#![no_main]

use libfuzzer_sys::fuzz_target;
use waypost_pac::{format_result, parse_result};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let entries = parse_result(text);
    assert!(!entries.is_empty(), "an answer is never empty");
    let printed = format_result(&entries);
    assert_eq!(parse_result(&printed), entries, "printed form {printed:?}");
});

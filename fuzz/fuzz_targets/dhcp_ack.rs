//! DHCP replies to waypost's DHCPINFORM (any host on the LAN can send one): the WPAD option
//! reader must accept or refuse any datagram without panicking. The transaction id is taken
//! from the datagram itself so the fuzzer reaches the option parser, not only the xid check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use waypost::wpad::dhcp::parse_dhcp_ack;

fuzz_target!(|data: &[u8]| {
    let xid = match data.get(4..8) {
        Some(b) => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        None => 0,
    };
    if let Ok(ack) = parse_dhcp_ack(data, xid) {
        if let Some(url) = ack.wpad_url {
            assert!(!url.is_empty() && url.trim() == url, "{url:?}");
        }
    }
});

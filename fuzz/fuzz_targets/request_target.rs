//! Request targets as a client sends them: CONNECT authorities (`host:port`, `[v6]:port`) and
//! absolute-form URIs, plus proxy addresses as a PAC or the config names them. Any text must
//! parse or be refused (a 400 with a reason), never panic; a parsed CONNECT target printed back
//! as an authority must parse to the same target.
#![no_main]

use libfuzzer_sys::fuzz_target;
use waypost::target::{Host, ProxyAddr, Target};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(target) = Target::from_connect(text) {
        let again = Target::from_connect(&target.authority())
            .unwrap_or_else(|e| panic!("{:?} printed as {:?}: {e}", text, target.authority()));
        assert_eq!(again.host, target.host);
        assert_eq!(again.port, target.port);
        let _ = target.host_header();
    }
    if let Ok(uri) = text.parse::<http::Uri>() {
        for reject_userinfo in [false, true] {
            if let Ok(target) = Target::from_absolute(&uri, reject_userinfo) {
                let _ = target.host_header();
                let _ = target.host.is_loopback();
            }
        }
    }
    if let Ok(host) = Host::parse(text) {
        let _ = host.to_authority_host();
    }
    if let Ok(proxy) = ProxyAddr::parse(text) {
        let _ = proxy.label();
    }
});

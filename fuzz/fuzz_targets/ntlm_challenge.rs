//! NTLM CHALLENGE messages from a proxy (any proxy a PAC names can send one): after our
//! NEGOTIATE, sspi must turn any bytes into an AUTHENTICATE message or an error, never a panic
//! or a runaway allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use waypost_auth::credentials::Credentials;
use waypost_auth::mech::{MechTarget, Mechanism, SspiNtlm};

fuzz_target!(|data: &[u8]| {
    let creds = Credentials::with_password("alice", "secret").with_domain("EXAMPLE");
    let target = MechTarget {
        spn: "HTTP/proxy.example.test".into(),
        // Odd inputs flip channel bindings on, as for a TLS proxy hop.
        channel_bindings: (data.len() % 2 == 1).then(|| b"tls-server-end-point:0123".to_vec()),
    };
    let Ok(mut ntlm) = SspiNtlm::new(&creds, &target) else {
        return;
    };
    let negotiate = ntlm.step(None).expect("NEGOTIATE needs no input");
    assert!(!negotiate.token.is_empty());
    let _ = ntlm.step(Some(data));
});

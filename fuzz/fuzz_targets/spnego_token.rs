//! SPNEGO and Kerberos messages waypost's Negotiate client decodes from the network: the
//! proxy's `Negotiate` reply token (NegTokenTarg, carrying an AP-REP or a KRB-ERROR) and the
//! KDC's answers (AS-REP, TGS-REP, KRB-ERROR). Decoding is picky-krb's, as sspi's client runs
//! it; any bytes must decode or fail, never panic.
//!
//! Not fuzzed: `ApplicationTag0<GssApiNegInit>` (a NegTokenInit). picky-krb 0.13.1 unwraps its
//! inner decode (gss_api.rs:336), so any DER element that is not a NegTokenInit panics (found
//! in 2 runs here). Only sspi's *server* side decodes it; a client like waypost never does.
//!
//! Skipped: DER lengths of 8 or more bytes (0x88..=0x8f). picky-asn1-der 0.5.7 adds the header
//! length to such a length unchecked (de/mod.rs:90, raw DER such as NegTokenTarg's negResult):
//! "attempt to add with overflow" with overflow checks on (debug builds, this fuzzer); release
//! builds wrap and then fail to read that many bytes, an error. No real token is 2^56 bytes
//! long, so skipping these inputs keeps the target looking for other faults.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picky_krb::gss_api::NegTokenTarg1;
use picky_krb::messages::{ApRep, AsRep, KrbError, TgsRep};

fuzz_target!(|data: &[u8]| {
    if data.iter().any(|b| (0x88..=0x8f).contains(b)) {
        return;
    }
    if let Ok(targ) = picky_asn1_der::from_bytes::<NegTokenTarg1>(data) {
        if let Some(token) = targ.0.response_token.0.as_ref() {
            let inner = &token.0 .0;
            let _ = picky_asn1_der::from_bytes::<ApRep>(inner);
            let _ = picky_asn1_der::from_bytes::<KrbError>(inner);
            // Kerberos inside a GSS-API wrapper (OID + TOK_ID + message), as in a mutual-auth reply.
            if inner.len() > 2 {
                let _ = picky_asn1_der::from_bytes::<ApRep>(&inner[2..]);
            }
        }
    }
    let _ = picky_asn1_der::from_bytes::<AsRep>(data);
    let _ = picky_asn1_der::from_bytes::<TgsRep>(data);
    let _ = picky_asn1_der::from_bytes::<KrbError>(data);
});

//! Authentication targets: what a proxy (any proxy a PAC names) or a KDC sends back during a
//! handshake: `Proxy-Authenticate` values, NTLM CHALLENGE messages, SPNEGO and Kerberos replies.

use picky_krb::gss_api::NegTokenTarg1;
use picky_krb::messages::{ApRep, AsRep, KrbError, TgsRep};
use waypost_auth::challenge::{parse_header_value, parse_headers};
use waypost_auth::credentials::Credentials;
use waypost_auth::mech::{MechTarget, Mechanism, SspiNtlm};

/// `Proxy-Authenticate` values as a hostile or broken proxy sends them: every header value
/// parses into challenges without panicking, and the accessors the 407 loop uses (scheme,
/// decoded token, realm) accept whatever came out.
pub fn proxy_authenticate(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for challenge in parse_header_value(&text) {
        let _ = challenge.scheme();
        let _ = challenge.token();
        let _ = challenge.param("realm");
    }
    // The same bytes as header values (several headers, split at NUL), as hyper hands them over.
    let mut headers = http::HeaderMap::new();
    for part in data.split(|&b| b == 0) {
        if let Ok(value) = http::HeaderValue::from_bytes(part) {
            headers.append(http::header::PROXY_AUTHENTICATE, value);
        }
    }
    let _ = parse_headers(&headers);
}

/// NTLM CHALLENGE messages from a proxy: after our NEGOTIATE, sspi must turn any bytes into an
/// AUTHENTICATE message or an error, never a panic or a runaway allocation.
pub fn ntlm_challenge(data: &[u8]) {
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
}

/// SPNEGO and Kerberos messages waypost's Negotiate client decodes from the network: the
/// proxy's `Negotiate` reply token (NegTokenTarg, carrying an AP-REP or a KRB-ERROR) and the
/// KDC's answers (AS-REP, TGS-REP, KRB-ERROR). Decoding is picky-krb's, as sspi's client runs
/// it; any bytes must decode or fail, never panic.
///
/// Not fuzzed: `ApplicationTag0<GssApiNegInit>` (a NegTokenInit). picky-krb 0.13.1 unwraps its
/// inner decode (gss_api.rs:336), so any DER element that is not a NegTokenInit panics (found
/// in 2 runs here). Only sspi's *server* side decodes it; a client like waypost never does.
///
/// Skipped: DER lengths of 8 or more bytes (0x88..=0x8f). picky-asn1-der 0.5.7 adds the header
/// length to such a length unchecked (de/mod.rs:90, raw DER such as NegTokenTarg's negResult):
/// "attempt to add with overflow" with overflow checks on (debug builds, this fuzzer); release
/// builds wrap and then fail to read that many bytes, an error. No real token is 2^56 bytes
/// long, so skipping these inputs keeps the target looking for other faults.
pub fn spnego_token(data: &[u8]) {
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
}

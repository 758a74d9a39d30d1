//! Proof that the realm's real KDC answers from the network the machine is on: the one thing an
//! attacker who controls DHCP, DNS and every host of a network cannot fake.
//!
//! With the ticket-granting ticket of the user's cache, [`prove_realm`] sends a fresh TGS
//! request (for `krbtgt/REALM`, which every KDC knows) to the realm's KDC — `auth.kdc` when
//! configured, else as MIT and sspi find it (`$KRB5_CONFIG`/`/etc/krb5.conf`, DNS SRV) — and
//! accepts the answer only when its encrypted part opens with the TGT's session key and carries
//! the request's nonce. Only the real KDC knows that key; a forged KDC can only answer with an
//! error or garbage. Nothing the attacker sees helps it: the TGT is sealed with the KDC's own
//! key, the authenticator with a random session key (neither can be cracked offline like a
//! password-derived NTLM response). The request is never answered from the ticket cache, and
//! the new ticket is not stored.
//!
//! This module only asks; what a proof is worth (and per which network) is decided by the
//! caller. Blocking: run it on a blocking thread. `FILE:` caches only (see [`crate::ccache`]).

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use picky_asn1::date::GeneralizedTime;
use picky_asn1::restricted_string::IA5String;
use picky_asn1::wrapper::{
    Asn1SequenceOf, ExplicitContextTag0, ExplicitContextTag1, ExplicitContextTag2,
    ExplicitContextTag4, ExplicitContextTag5, GeneralizedTimeAsn1, IntegerAsn1, Optional,
};
use picky_krb::constants::key_usages::TGS_REP_ENC_SESSION_KEY;
use picky_krb::crypto::CipherSuite;
use picky_krb::data_types::{
    Authenticator, AuthenticatorInner, KerberosStringAsn1, PrincipalName, Ticket,
};
use picky_krb::messages::{EncAsRepPart, EncTgsRepPart, KrbError, TgsRep};
use sspi::kerberos::client::generators::{generate_tgs_req, GenerateTgsReqOptions};
use sspi::kerberos::EncryptionParams;
use sspi::{ClientRequestFlags, Secret};

use crate::ccache;

/// What asking the realm's KDC showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// The realm's KDC answered and proved it knows the TGT's session key.
    Proven { realm: String, kdc: String },
    /// Something answered as the KDC and could not prove it (an error, a reply that does not
    /// open with the session key, a wrong nonce): the network is not the realm's.
    Refuted {
        realm: String,
        kdc: String,
        why: String,
    },
    /// No answer (no KDC address, refused, timed out): the realm is not reachable from here.
    Unreachable { realm: String, why: String },
    /// Nothing to prove with: no readable ticket-granting ticket.
    NoTicket { why: String },
}

impl Proof {
    pub fn is_proven(&self) -> bool {
        matches!(self, Proof::Proven { .. })
    }

    /// One line for logs, `explain` and the status page (no secret in any variant).
    pub fn describe(&self) -> String {
        match self {
            Proof::Proven { realm, kdc } => format!("the KDC of {realm} ({kdc}) proved itself"),
            Proof::Refuted { realm, kdc, why } => {
                format!("a server answering as the KDC of {realm} ({kdc}) failed the proof: {why}")
            }
            Proof::Unreachable { realm, why } => {
                format!("the KDC of {realm} is not reachable: {why}")
            }
            Proof::NoTicket { why } => {
                format!("no Kerberos ticket to prove the network with: {why}")
            }
        }
    }
}

/// Asks the realm of the TGT in `ccache` (or the default cache) to prove itself, within
/// `timeout` in all. `kdc`: `host:port` (or `tcp://host:port`) instead of the realm's own.
pub fn prove_realm(ccache: Option<&str>, kdc: Option<&str>, timeout: Duration) -> Proof {
    let tgt = match ccache::read_tgt(ccache) {
        Ok(t) => t,
        Err(why) => return Proof::NoTicket { why },
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if u64::from(tgt.endtime) <= now {
        return Proof::NoTicket {
            why: "the ticket-granting ticket has expired".into(),
        };
    }
    let realm = tgt.realm.clone();
    let kdc = match kdc
        .map(str::to_string)
        .or_else(|| sspi::detect_kdc_host(&realm))
    {
        Some(k) => k,
        None => {
            return Proof::Unreachable {
                realm,
                why: "no KDC address (krb5.conf has none for the realm, DNS has no SRV record)"
                    .into(),
            }
        }
    };
    let (request, nonce) = match tgs_request(&tgt) {
        Ok(r) => r,
        Err(why) => return Proof::NoTicket { why },
    };
    let reply = match exchange(&kdc, &request, timeout) {
        Ok(r) => r,
        Err(why) => {
            return Proof::Unreachable {
                realm,
                why: format!("{kdc}: {why}"),
            }
        }
    };
    match check_reply(&tgt, &reply, &nonce) {
        Ok(()) => Proof::Proven { realm, kdc },
        Err(why) => Proof::Refuted { realm, kdc, why },
    }
}

/// The DER TGS-REQ for `krbtgt/REALM` and its nonce (DER integer bytes).
fn tgs_request(tgt: &ccache::Tgt) -> Result<(Vec<u8>, Vec<u8>), String> {
    let ia5 = |s: &str| {
        IA5String::from_string(s.to_string())
            .map(KerberosStringAsn1::from)
            .map_err(|e| format!("name {s:?}: {e}"))
    };
    let ticket: Ticket =
        picky_asn1_der::from_bytes(&tgt.ticket).map_err(|e| format!("the cached TGT: {e}"))?;
    let suite = CipherSuite::try_from(usize::from(tgt.enctype)).map_err(|_| {
        format!(
            "the TGT's session key type {} is not supported",
            tgt.enctype
        )
    })?;
    let now = time::OffsetDateTime::now_utc();
    let components = tgt
        .client_components
        .iter()
        .map(|c| ia5(c))
        .collect::<Result<Vec<_>, _>>()?;
    let mut authenticator = Authenticator::from(AuthenticatorInner {
        authenticator_vno: ExplicitContextTag0::from(IntegerAsn1::from(vec![5])),
        crealm: ExplicitContextTag1::from(ia5(&tgt.client_realm)?),
        cname: ExplicitContextTag2::from(PrincipalName {
            name_type: ExplicitContextTag0::from(IntegerAsn1::from(
                (tgt.client_name_type as u8).to_be_bytes().to_vec(),
            )),
            name_string: ExplicitContextTag1::from(Asn1SequenceOf::from(components)),
        }),
        cksum: Optional::from(None),
        cusec: ExplicitContextTag4::from(IntegerAsn1::from_bytes_be_unsigned(
            now.microsecond().to_be_bytes().to_vec(),
        )),
        ctime: ExplicitContextTag5::from(GeneralizedTimeAsn1::from(GeneralizedTime::from(now))),
        subkey: Optional::from(None),
        seq_number: Optional::from(None),
        authorization_data: Optional::from(None),
    });
    let session_key = Secret::new(tgt.key.clone());
    let mut params = EncryptionParams::default_for_client();
    params.encryption_type = Some(suite);
    let service = format!("krbtgt/{}", tgt.realm);
    let req = generate_tgs_req(GenerateTgsReqOptions {
        realm: &tgt.realm,
        service_principal: &service,
        session_key: &session_key,
        ticket,
        authenticator: &mut authenticator,
        additional_tickets: None,
        enc_params: &params,
        context_requirements: ClientRequestFlags::empty(),
    })
    .map_err(|e| format!("building the TGS request: {e}"))?;
    let nonce = req.0.req_body.0.nonce.0.as_unsigned_bytes_be().to_vec();
    let der = picky_asn1_der::to_vec(&req).map_err(|e| format!("encoding: {e}"))?;
    Ok((der, nonce))
}

/// Sends `request` over TCP (RFC 4120 7.2.2 framing) to each address of `kdc` in turn.
fn exchange(kdc: &str, request: &[u8], timeout: Duration) -> Result<Vec<u8>, String> {
    let hostport = kdc
        .trim_start_matches("tcp://")
        .trim_start_matches("udp://")
        .trim_end_matches('/');
    let with_port = if hostport
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && !h.ends_with(':') && p.parse::<u16>().is_ok())
    {
        hostport.to_string()
    } else {
        format!("{hostport}:88")
    };
    let deadline = Instant::now() + timeout;
    let addrs: Vec<SocketAddr> = with_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve: {e}"))?
        .collect();
    let mut last = String::from("no address");
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no answer within {timeout:?}"));
        }
        match ask(addr, request, left) {
            Ok(reply) => return Ok(reply),
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(last)
}

fn ask(addr: SocketAddr, request: &[u8], timeout: Duration) -> std::io::Result<Vec<u8>> {
    let mut framed = (request.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(request);
    let mut reply = crate::mech::tcp_round_trip(addr, &framed, timeout)?;
    reply.drain(..4);
    Ok(reply)
}

/// Accepts a TGS-REP whose encrypted part opens with the TGT's session key and carries `nonce`.
fn check_reply(tgt: &ccache::Tgt, reply: &[u8], nonce: &[u8]) -> Result<(), String> {
    let rep: TgsRep = match picky_asn1_der::from_bytes(reply) {
        Ok(r) => r,
        Err(_) => {
            return Err(match picky_asn1_der::from_bytes::<KrbError>(reply) {
                Ok(e) => format!("it answered with Kerberos error {}", e.0.error_code.0),
                Err(_) => "its answer is not a Kerberos reply".into(),
            })
        }
    };
    let suite = CipherSuite::try_from(usize::from(tgt.enctype))
        .map_err(|_| "unsupported session key type".to_string())?;
    let plain = suite
        .cipher()
        .decrypt(
            &tgt.key,
            TGS_REP_ENC_SESSION_KEY,
            &rep.0.enc_part.0.cipher.0 .0,
        )
        .map_err(|_| "its reply does not open with the ticket's session key".to_string())?;
    // RFC 4120 says EncTGSRepPart; some KDCs use the EncASRepPart tag
    let got = match picky_asn1_der::from_bytes::<EncTgsRepPart>(&plain) {
        Ok(p) => p.0.nonce.0.as_unsigned_bytes_be().to_vec(),
        Err(_) => picky_asn1_der::from_bytes::<EncAsRepPart>(&plain)
            .map_err(|_| "its reply's encrypted part is malformed".to_string())?
            .0
            .nonce
            .0
            .as_unsigned_bytes_be()
            .to_vec(),
    };
    if got != nonce {
        return Err("its reply carries another request's nonce (a replay)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_ticket_cache_there_is_nothing_to_prove_with() {
        let p = prove_realm(
            Some("FILE:/nonexistent/krb5cc"),
            None,
            Duration::from_secs(1),
        );
        assert!(matches!(p, Proof::NoTicket { .. }), "{p:?}");
        assert!(!p.is_proven());
        let p = prove_realm(Some("KEYRING:persistent:0"), None, Duration::from_secs(1));
        assert!(
            matches!(p, Proof::NoTicket { ref why } if why.contains("only FILE")),
            "{p:?}"
        );
    }

    #[test]
    fn answers_that_are_not_a_sealed_reply_refute_the_network() {
        let tgt = ccache::Tgt {
            client_realm: "EXAMPLE.TEST".into(),
            client_name_type: 1,
            client_components: vec!["alice".into()],
            realm: "EXAMPLE.TEST".into(),
            enctype: 18,
            key: vec![7; 32],
            ticket: Vec::new(),
            endtime: 0,
        };
        let e = check_reply(&tgt, b"\x00\x01garbage", &[1]).unwrap_err();
        assert!(e.contains("not a Kerberos reply"), "{e}");
    }
}

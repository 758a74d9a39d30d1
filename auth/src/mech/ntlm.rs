//! NTLMv2 through sspi: NEGOTIATE, then AUTHENTICATE from the proxy's CHALLENGE. sspi
//! always computes NTLMv2 (never v1/LM) and always adds a MIC (MsvAvFlags 0x2); we add
//! channel bindings (`tls-server-end-point`) when the proxy hop is TLS.

use sspi::ntlm::NtlmConfig;
use sspi::{
    AuthIdentity, AuthIdentityBuffers, BufferType, ClientRequestFlags, CredentialUse,
    DataRepresentation, Ntlm, SecurityBuffer, Sspi, SspiImpl, Username,
};

use super::{MechError, MechErrorKind, MechTarget, Mechanism, Step};
use crate::credentials::{Credentials, Secret};
use crate::scheme::Mech;

pub struct SspiNtlm {
    ntlm: Ntlm,
    handle: Option<AuthIdentityBuffers>,
    spn: String,
    legs: u8,
}

fn err(kind: MechErrorKind, e: impl std::fmt::Display) -> MechError {
    MechError::new(Mech::Ntlm, kind, e.to_string())
}

impl SspiNtlm {
    pub fn new(creds: &Credentials, target: &MechTarget) -> Result<Self, MechError> {
        let (user, domain) = creds
            .ntlm_user()
            .ok_or_else(|| err(MechErrorKind::Unavailable, "no user name"))?;
        let password = match creds.secret() {
            Some(Secret::Password(p)) => p.expose().to_string(),
            Some(Secret::NtHash(h)) => {
                let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
                format!("{}{hex}", sspi::NTLM_HASH_PREFIX)
            }
            None => return Err(err(MechErrorKind::Unavailable, "no password or NTLM hash")),
        };
        let username = Username::new(&user, domain.as_deref().filter(|d| !d.is_empty()))
            .map_err(|e| err(MechErrorKind::Unavailable, format!("user name: {e:?}")))?;
        let identity = AuthIdentity {
            username,
            password: password.into(),
        };
        let workstation = crate::credentials::workstation_name();
        let mut ntlm = Ntlm::with_config(NtlmConfig::new(workstation));
        if let Some(cb) = &target.channel_bindings {
            ntlm.set_channel_bindings(cb);
        }
        let acquired = ntlm
            .acquire_credentials_handle()
            .with_credential_use(CredentialUse::Outbound)
            .with_auth_data(&identity)
            .execute(&mut ntlm)
            .map_err(|e| err(MechErrorKind::Failed, e))?;
        Ok(SspiNtlm {
            ntlm,
            handle: acquired.credentials_handle,
            spn: target.spn.clone(),
            legs: 0,
        })
    }
}

impl Mechanism for SspiNtlm {
    fn step(&mut self, input: Option<&[u8]>) -> Result<Step, MechError> {
        let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
        let mut input_buffers =
            input.map(|t| vec![SecurityBuffer::new(t.to_vec(), BufferType::Token)]);
        let mut builder = self
            .ntlm
            .initialize_security_context()
            .with_credentials_handle(&mut self.handle)
            .with_context_requirements(ClientRequestFlags::empty())
            .with_target_data_representation(DataRepresentation::Native)
            .with_target_name(&self.spn)
            .with_output(&mut output);
        if let Some(inp) = input_buffers.as_mut() {
            builder = builder.with_input(inp);
        }
        let result = self
            .ntlm
            .initialize_security_context_impl(&mut builder)
            .map_err(|e| err(MechErrorKind::Failed, e))?
            .resolve_to_result()
            .map_err(|e| err(MechErrorKind::Failed, e))?;
        self.legs += 1;
        let token = std::mem::take(&mut output[0].buffer);
        let complete =
            !matches!(result.status, sspi::SecurityStatus::ContinueNeeded) || self.legs >= 2;
        Ok(Step { token, complete })
    }
}

#[cfg(test)]
mod tests {
    //! sspi computes the NTLM cryptography; we check what our handling makes of it by
    //! decoding the AUTHENTICATE message built against the MS-NLMP §4.2.4.3 CHALLENGE.
    use super::*;

    /// MS-NLMP §4.2.4.3 CHALLENGE_MESSAGE (NTLM-VECTORS.md).
    const CHALLENGE: &str = "4e544c4d53535000020000000c000c003800000033828ae20123456789abcdef00000000000000002400240044000000060070170000000f53006500720076006500720002000c0044006f006d00610069006e0001000c0053006500720076006500720000000000";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn field(msg: &[u8], at: usize) -> &[u8] {
        let len = u16::from_le_bytes([msg[at], msg[at + 1]]) as usize;
        let off = u32::from_le_bytes(msg[at + 4..at + 8].try_into().unwrap()) as usize;
        &msg[off..off + len]
    }

    fn utf16(b: &[u8]) -> String {
        String::from_utf16_lossy(
            &b.chunks(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect::<Vec<_>>(),
        )
    }

    fn av_pairs(blob: &[u8]) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = 16 + 28; // NTProofStr, then the NTLMv2 client challenge header
        while at + 4 <= blob.len() {
            let id = u16::from_le_bytes([blob[at], blob[at + 1]]);
            let len = u16::from_le_bytes([blob[at + 2], blob[at + 3]]) as usize;
            if id == 0 {
                break;
            }
            out.push((id, blob[at + 4..at + 4 + len].to_vec()));
            at += 4 + len;
        }
        out
    }

    fn authenticate(cb: Option<Vec<u8>>) -> Vec<u8> {
        let creds = Credentials::with_password("User", "Password").with_domain("Domain");
        let target = MechTarget {
            spn: "HTTP/proxy.example.test".into(),
            channel_bindings: cb,
        };
        let mut m = SspiNtlm::new(&creds, &target).unwrap();
        let first = m.step(None).unwrap();
        assert!(first.token.starts_with(b"NTLMSSP\0\x01\0\0\0") && !first.complete);
        let last = m.step(Some(&hex(CHALLENGE))).unwrap();
        assert!(last.complete);
        last.token
    }

    #[test]
    fn the_authenticate_message_is_ntlmv2_with_a_mic_for_the_configured_user() {
        let msg = authenticate(None);
        assert_eq!(&msg[..12], b"NTLMSSP\0\x03\0\0\0");
        assert_eq!(utf16(field(&msg, 28)), "Domain");
        assert_eq!(utf16(field(&msg, 36)), "User");
        let nt = field(&msg, 20);
        assert!(nt.len() > 24, "NTLMv2 response, never v1 (24 bytes)");
        assert_eq!(&nt[16..18], &[1, 1], "NTLMv2 client challenge blob");
        let lm = field(&msg, 12);
        assert!(
            lm.is_empty() || lm.len() == 24 && lm != [0u8; 24],
            "no LM response"
        );
        // MIC: the payload starts after header (64) + version (8) + MIC (16), and it is set
        let payload_start = [12, 20, 28, 36, 44, 52]
            .iter()
            .map(|&at| u32::from_le_bytes(msg[at + 4..at + 8].try_into().unwrap()) as usize)
            .min()
            .unwrap();
        assert!(payload_start >= 88);
        assert_ne!(&msg[72..88], &[0u8; 16], "MIC present");
        let pairs = av_pairs(nt);
        let flags = pairs.iter().find(|(id, _)| *id == 6).expect("MsvAvFlags");
        assert_eq!(
            u32::from_le_bytes(flags.1[..4].try_into().unwrap()) & 2,
            2,
            "MIC announced"
        );
        // the server's target info from the spec vector is echoed back
        assert!(pairs.iter().any(|(id, v)| *id == 2 && utf16(v) == "Domain"));
        assert!(
            pairs.iter().all(|(id, _)| *id != 10),
            "no channel bindings without TLS"
        );
    }

    #[test]
    fn a_tls_proxy_gets_channel_bindings_in_the_authenticate_message() {
        let cb = crate::cbt::tls_server_end_point(b"proxy certificate DER");
        let msg = authenticate(Some(cb.clone()));
        let pairs = av_pairs(field(&msg, 20));
        let bindings = pairs
            .iter()
            .find(|(id, _)| *id == 10)
            .expect("MsvAvChannelBindings");
        assert_eq!(bindings.1.len(), 16);
    }
}

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

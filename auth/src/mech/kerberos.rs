//! Kerberos with explicit credentials (password or keytab key) through sspi's
//! `Negotiate` package restricted to Kerberos (`kerberos,!ntlm`), so the token is
//! SPNEGO and sspi never falls back to SPNEGO-wrapped NTLM on its own (squid rejects
//! that; our handshake does the NTLM fallback itself). sspi talks to the KDC through
//! [`KdcClient`], a small blocking TCP/UDP client with timeouts: a Kerberos step may
//! block for up to a few seconds per KDC round trip.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::time::Duration;

use sspi::network_client::NetworkClient;
use sspi::{
    BufferType, ClientRequestFlags, CredentialUse, Credentials as SspiCredentials,
    CredentialsBuffers, DataRepresentation, KerberosConfig, Negotiate, NegotiateConfig,
    NetworkProtocol, NetworkRequest, SecurityBuffer, SecurityStatus, Sspi, SspiImpl, Username,
};

use super::{MechError, MechErrorKind, MechTarget, Mechanism, Step};
use crate::credentials::KerberosSource;
use crate::scheme::Mech;

const KDC_TIMEOUT: Duration = Duration::from_secs(5);

/// Blocking KDC transport for sspi (TCP with the 4-byte length prefix, or UDP).
#[derive(Debug, Clone, Default)]
pub struct KdcClient {
    /// `host:port` or `tcp://host:port`; `None` lets sspi find it (`SSPI_KDC_URL`,
    /// `$KRB5_CONFIG` `[realms] kdc`, DNS).
    pub kdc: Option<String>,
}

impl KdcClient {
    pub fn new(kdc: Option<String>) -> Self {
        KdcClient { kdc }
    }

    fn addr(url: &url::Url) -> sspi::Result<std::net::SocketAddr> {
        let host = url.host_str().unwrap_or_default();
        (host, url.port().unwrap_or(88))
            .to_socket_addrs()
            .map_err(|e| {
                sspi::Error::new(sspi::ErrorKind::NoAuthenticatingAuthority, e.to_string())
            })?
            .next()
            .ok_or_else(|| {
                sspi::Error::new(
                    sspi::ErrorKind::NoAuthenticatingAuthority,
                    "KDC name has no address",
                )
            })
    }
}

fn io_err(e: std::io::Error) -> sspi::Error {
    sspi::Error::new(
        sspi::ErrorKind::NoAuthenticatingAuthority,
        format!("KDC: {e}"),
    )
}

/// One Kerberos message over TCP (RFC 4120 7.2.2): `framed` already carries its 4-byte length
/// prefix; returns the reply with its own (at most 1 MiB), each step bounded by `timeout`.
pub(crate) fn tcp_round_trip(
    addr: std::net::SocketAddr,
    framed: &[u8],
    timeout: Duration,
) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(framed)?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let n = u32::from_be_bytes(len) as usize;
    if n > 1 << 20 {
        return Err(std::io::Error::other("KDC reply larger than 1 MiB"));
    }
    let mut out = vec![0u8; 4 + n];
    out[..4].copy_from_slice(&len);
    s.read_exact(&mut out[4..])?;
    Ok(out)
}

impl NetworkClient for KdcClient {
    fn send(&self, request: &NetworkRequest) -> sspi::Result<Vec<u8>> {
        let addr = Self::addr(&request.url)?;
        match request.protocol {
            NetworkProtocol::Tcp => {
                tcp_round_trip(addr, &request.data, KDC_TIMEOUT).map_err(io_err)
            }
            NetworkProtocol::Udp => {
                let bind = if addr.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                };
                let s = UdpSocket::bind(bind).map_err(io_err)?;
                s.set_read_timeout(Some(KDC_TIMEOUT)).map_err(io_err)?;
                // sspi hands UDP payloads with the TCP length prefix; strip it on the way out.
                let payload = request.data.get(4..).unwrap_or_default();
                s.send_to(payload, addr).map_err(io_err)?;
                let mut buf = vec![0u8; 65536];
                let n = s.recv(&mut buf).map_err(io_err)?;
                let mut out = (n as u32).to_be_bytes().to_vec();
                out.extend_from_slice(&buf[..n]);
                Ok(out)
            }
            NetworkProtocol::Http | NetworkProtocol::Https => Err(sspi::Error::new(
                sspi::ErrorKind::NoAuthenticatingAuthority,
                "KDC proxy (KKDCP) URLs are not supported",
            )),
        }
    }
}

pub struct SspiKerberos {
    negotiate: Negotiate,
    handle: Option<CredentialsBuffers>,
    spn: String,
    channel_bindings: Option<Vec<u8>>,
    kdc: KdcClient,
}

fn classify(e: sspi::Error) -> MechError {
    use sspi::ErrorKind as K;
    let kind = match e.error_type {
        K::NoAuthenticatingAuthority
        | K::NoCredentials
        | K::TargetUnknown
        | K::WrongPrincipalName
        | K::NoTgtReply => MechErrorKind::Unavailable,
        K::LogonDenied | K::UnknownCredentials => MechErrorKind::CredentialsRejected,
        _ => {
            let text = e.description.to_ascii_uppercase();
            if text.contains("PREAUTH_FAILED") || text.contains("KDC_ERR_PREAUTH") {
                MechErrorKind::CredentialsRejected
            } else if text.contains("S_PRINCIPAL_UNKNOWN")
                || text.contains("CONNECT")
                || text.contains("KDC:")
            {
                MechErrorKind::Unavailable
            } else {
                MechErrorKind::Failed
            }
        }
    };
    MechError::new(
        Mech::Kerberos,
        kind,
        format!("{:?}: {}", e.error_type, e.description),
    )
}

impl SspiKerberos {
    pub fn new(
        source: KerberosSource,
        target: &MechTarget,
        kdc: KdcClient,
    ) -> Result<Self, MechError> {
        let creds: SspiCredentials = match source {
            KerberosSource::Password {
                user,
                realm,
                password,
            } => {
                let username = Username::new(&user, Some(&realm)).map_err(|e| {
                    MechError::new(
                        Mech::Kerberos,
                        MechErrorKind::Unavailable,
                        format!("user name: {e:?}"),
                    )
                })?;
                sspi::AuthIdentity {
                    username,
                    password: password.expose().to_string().into(),
                }
                .into()
            }
            KerberosSource::Keytab { path, user, realm } => {
                let (key, enctype) = crate::keytab::find_key(&path, &user, &realm)
                    .map_err(|e| MechError::new(Mech::Kerberos, MechErrorKind::Unavailable, e))?;
                let principal = Username::new(&user, Some(&realm)).map_err(|e| {
                    MechError::new(
                        Mech::Kerberos,
                        MechErrorKind::Unavailable,
                        format!("user name: {e:?}"),
                    )
                })?;
                let key_enctype = match enctype {
                    17 => picky_krb::crypto::CipherSuite::Aes128CtsHmacSha196,
                    18 => picky_krb::crypto::CipherSuite::Aes256CtsHmacSha196,
                    other => {
                        return Err(MechError::new(
                            Mech::Kerberos,
                            MechErrorKind::Unavailable,
                            format!("keytab enctype {other} is not supported (aes128/aes256 only)"),
                        ))
                    }
                };
                SspiCredentials::Keytab(sspi::KeytabIdentity {
                    principal,
                    key: key.into(),
                    key_enctype,
                })
            }
            KerberosSource::TicketCache(_) => {
                return Err(MechError::new(
                    Mech::Kerberos,
                    MechErrorKind::Unavailable,
                    "sspi has no ticket cache",
                ))
            }
        };
        let kerberos = KerberosConfig::new_with_kdc_url(
            kdc.kdc.as_deref().unwrap_or_default(),
            crate::credentials::workstation_name(),
        );
        let kerberos = if kdc.kdc.is_some() {
            kerberos
        } else {
            KerberosConfig {
                kdc_resolution: sspi::KdcResolution::KdcUrl(None),
                ..kerberos
            }
        };
        let config = NegotiateConfig::new(
            Box::new(kerberos),
            Some("kerberos,!ntlm".to_string()),
            crate::credentials::workstation_name(),
        );
        let mut negotiate = Negotiate::new_client(config).map_err(classify)?;
        let acquired = negotiate
            .acquire_credentials_handle()
            .with_credential_use(CredentialUse::Outbound)
            .with_auth_data(&creds)
            .execute(&mut negotiate)
            .map_err(classify)?;
        Ok(SspiKerberos {
            negotiate,
            handle: acquired.credentials_handle,
            spn: target.spn.clone(),
            channel_bindings: target.channel_bindings.clone(),
            kdc,
        })
    }
}

impl Mechanism for SspiKerberos {
    fn step(&mut self, input: Option<&[u8]>) -> Result<Step, MechError> {
        let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
        let mut inputs = vec![SecurityBuffer::new(
            input.unwrap_or_default().to_vec(),
            BufferType::Token,
        )];
        if let Some(cb) = &self.channel_bindings {
            inputs.push(SecurityBuffer::new(
                crate::cbt::sec_channel_bindings(cb),
                BufferType::ChannelBindings,
            ));
        }
        let mut builder = self
            .negotiate
            .initialize_security_context()
            .with_credentials_handle(&mut self.handle)
            .with_context_requirements(ClientRequestFlags::MUTUAL_AUTH)
            .with_target_data_representation(DataRepresentation::Native)
            .with_target_name(&self.spn)
            .with_input(&mut inputs)
            .with_output(&mut output);
        let result = self
            .negotiate
            .initialize_security_context_impl(&mut builder)
            .map_err(classify)?
            .resolve_with_client(&self.kdc)
            .map_err(classify)?;
        let token = std::mem::take(&mut output[0].buffer);
        let complete = result.status != SecurityStatus::ContinueNeeded;
        Ok(Step { token, complete })
    }
}

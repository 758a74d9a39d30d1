//! Kerberos single sign-on from a ticket cache through the system GSSAPI (MIT, Heimdal):
//! SPNEGO tokens for the proxy's SPN, with krb5.conf, ccache types (FILE/KCM/KEYRING)
//! and canonicalisation exactly as `kinit` and curl see them. A specific cache is
//! selected with MIT's `gss_acquire_cred_from` (no process-wide `KRB5CCNAME` change).
//! No ticket fails here, before anything is sent, as `Unavailable` (fall back to NTLM).

use std::ffi::CString;
use std::ptr;

use libgssapi::context::{ClientCtx, CtxFlags, SecurityContext};
use libgssapi::credential::{Cred, CredUsage};
use libgssapi::name::Name;
use libgssapi::oid::{GSS_MECH_SPNEGO, GSS_NT_HOSTBASED_SERVICE, GSS_NT_KRB5_PRINCIPAL};

use super::{MechError, MechErrorKind, MechTarget, Mechanism, Step};
use crate::scheme::Mech;

pub struct GssKerberos {
    ctx: ClientCtx,
    channel_bindings: Option<Vec<u8>>,
}

fn unavailable(what: &str, e: impl std::fmt::Debug) -> MechError {
    MechError::new(
        Mech::Kerberos,
        MechErrorKind::Unavailable,
        format!("GSSAPI {what}: {e:?}"),
    )
}

/// Credentials from `ccache` (e.g. `FILE:/tmp/krb5cc_1000`), or the default cache.
fn acquire(ccache: Option<&str>) -> Result<Cred, MechError> {
    let Some(ccache) = ccache else {
        return Cred::acquire(None, None, CredUsage::Initiate, None)
            .map_err(|e| unavailable("no ticket", e));
    };
    let key = c"ccache";
    let value = CString::new(ccache).map_err(|e| unavailable("ccache name", e))?;
    let mut element = libgssapi_sys::gss_key_value_element_struct {
        key: key.as_ptr(),
        value: value.as_ptr(),
    };
    let store = libgssapi_sys::gss_key_value_set_struct {
        count: 1,
        elements: &mut element,
    };
    let mut minor = 0u32;
    let mut cred: libgssapi_sys::gss_cred_id_t = ptr::null_mut();
    // SAFETY: every pointer is valid for the call (locals outlive it); a null desired-mech
    // set and null outputs are allowed by the API; on success `cred` is a fresh handle
    // whose ownership `Cred::from_c` takes (it releases it on drop).
    let major = unsafe {
        libgssapi_sys::gss_acquire_cred_from(
            &mut minor,
            ptr::null_mut(),
            libgssapi_sys::_GSS_C_INDEFINITE,
            ptr::null_mut(),
            libgssapi_sys::GSS_C_INITIATE as libgssapi_sys::gss_cred_usage_t,
            &store,
            &mut cred,
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    if major != 0 || cred.is_null() {
        return Err(MechError::new(
            Mech::Kerberos,
            MechErrorKind::Unavailable,
            format!("GSSAPI no ticket in {ccache}: major {major:#x} minor {minor}"),
        ));
    }
    // SAFETY: see above; `cred` is non-null and owned by nobody else.
    Ok(unsafe { Cred::from_c(cred) })
}

impl GssKerberos {
    pub fn new(ccache: Option<&str>, target: &MechTarget) -> Result<Self, MechError> {
        let cred = acquire(ccache)?;
        // `HTTP/host` becomes the host-based name `HTTP@host` (krb5.conf decides realm and
        // canonicalisation); anything with a realm is taken as a principal name.
        let name = match target.spn.split_once('/') {
            Some((service, host)) if !host.contains('@') && !host.contains('/') => Name::new(
                format!("{service}@{host}").as_bytes(),
                Some(GSS_NT_HOSTBASED_SERVICE),
            ),
            _ => Name::new(target.spn.as_bytes(), Some(GSS_NT_KRB5_PRINCIPAL)),
        }
        .map_err(|e| unavailable("target name", e))?;
        let ctx = ClientCtx::new(Some(cred), name, CtxFlags::empty(), Some(GSS_MECH_SPNEGO));
        Ok(GssKerberos {
            ctx,
            channel_bindings: target.channel_bindings.clone(),
        })
    }
}

impl Mechanism for GssKerberos {
    fn step(&mut self, input: Option<&[u8]>) -> Result<Step, MechError> {
        match self.ctx.step(input, self.channel_bindings.as_deref()) {
            Ok(Some(token)) => Ok(Step {
                token: token.to_vec(),
                complete: self.ctx.is_complete(),
            }),
            Ok(None) => Ok(Step {
                token: Vec::new(),
                complete: true,
            }),
            // The first step is where the service ticket is fetched: a failure there means
            // Kerberos is impossible for this proxy (unknown SPN, KDC unreachable).
            Err(e) if input.is_none() => Err(unavailable("init_sec_context", e)),
            Err(e) => Err(MechError::new(
                Mech::Kerberos,
                MechErrorKind::Failed,
                format!("GSSAPI: {e:?}"),
            )),
        }
    }
}

/// Gets a ticket-granting ticket for `principal` (`user@REALM`) with the key in `keytab`
/// into the ticket cache `ccache` (`FILE:/path`): MIT's client-keytab initiation
/// (`gss_acquire_cred_from` with `client_keytab`), the way `kinit -k` does it, but inside
/// waypost. The KDC is found through krb5.conf.
pub fn obtain_from_keytab(keytab: &str, principal: &str, ccache: &str) -> Result<(), MechError> {
    let keys = [c"client_keytab", c"ccache"];
    let values = [
        CString::new(keytab).map_err(|e| unavailable("keytab name", e))?,
        CString::new(ccache).map_err(|e| unavailable("ccache name", e))?,
    ];
    let mut elements: Vec<libgssapi_sys::gss_key_value_element_struct> = keys
        .iter()
        .zip(&values)
        .map(|(k, v)| libgssapi_sys::gss_key_value_element_struct {
            key: k.as_ptr(),
            value: v.as_ptr(),
        })
        .collect();
    let store = libgssapi_sys::gss_key_value_set_struct {
        count: elements.len() as u32,
        elements: elements.as_mut_ptr(),
    };
    let mut minor = 0u32;
    let mut name: libgssapi_sys::gss_name_t = ptr::null_mut();
    let mut buffer = libgssapi_sys::gss_buffer_desc_struct {
        length: principal.len(),
        value: principal.as_ptr() as *mut std::ffi::c_void,
    };
    // SAFETY: `buffer` points at `principal`, alive for the call; GSS_C_NT_USER_NAME is a
    // constant OID the library exports; on success `name` is a fresh name released below.
    let major = unsafe {
        libgssapi_sys::gss_import_name(
            &mut minor,
            &mut buffer,
            libgssapi_sys::GSS_C_NT_USER_NAME,
            &mut name,
        )
    };
    if major != 0 {
        return Err(unavailable("principal name", (major, minor)));
    }
    let mut cred: libgssapi_sys::gss_cred_id_t = ptr::null_mut();
    // SAFETY: as in `acquire`; `name` is valid until released below.
    let major = unsafe {
        libgssapi_sys::gss_acquire_cred_from(
            &mut minor,
            name,
            libgssapi_sys::_GSS_C_INDEFINITE,
            ptr::null_mut(),
            libgssapi_sys::GSS_C_INITIATE as libgssapi_sys::gss_cred_usage_t,
            &store,
            &mut cred,
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    let mut release_minor = 0u32;
    // SAFETY: `name` came from gss_import_name and is not used after this.
    unsafe { libgssapi_sys::gss_release_name(&mut release_minor, &mut name) };
    if major != 0 || cred.is_null() {
        return Err(MechError::new(
            Mech::Kerberos,
            MechErrorKind::Unavailable,
            format!("GSSAPI no ticket for {principal} from keytab {keytab}: major {major:#x} minor {minor}"),
        ));
    }
    // SAFETY: `cred` is non-null and owned by nobody else.
    let cred = unsafe { Cred::from_c(cred) };
    // Asking for the lifetime makes MIT resolve the credential: the AS exchange happens
    // here if the acquisition left it for later.
    cred.lifetime()
        .map(|_| ())
        .map_err(|e| unavailable("no ticket from the keytab", e))
}

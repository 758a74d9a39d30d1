//! [`ConnSettings`]: the TLS settings of one connection, decided by the caller for its
//! destination (waypost: the first matching `[[scopes]]` entry per option, else `[tls]`) and
//! handed to [`crate::connect_with`]. A plain value, cheap to clone (the defect set is shared),
//! and hashable: it keys the policy's client-config cache and the proxy's connection pool, so a
//! connection made under one set of settings is never reused under another.

use std::sync::Arc;

use crate::config::{DefectSet, MinVersion};

/// How one TLS connection is made and checked.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConnSettings {
    /// Lowest protocol version offered.
    pub min_version: MinVersion,
    /// Certificate defects accepted (WinHTTP's `SECURITY_FLAG_IGNORE_*`).
    pub allow: Arc<DefectSet>,
    /// The client certificate presented: its place in `tls.client_certs` followed by the
    /// scopes' certificates (`TlsConfig::scope_client_certs`); None: none.
    pub client_cert: Option<usize>,
    /// Check the certificate against CRLs.
    pub check_revocation: bool,
}

impl MinVersion {
    /// `"1.2"` or `"1.3"`, as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            MinVersion::Tls12 => "1.2",
            MinVersion::Tls13 => "1.3",
        }
    }
}

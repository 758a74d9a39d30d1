//! Credentials: who we are to an upstream proxy, gathered from the config, the
//! environment (`WAYPOST_AUTH_USER`, `WAYPOST_AUTH_PASSWORD`), a password file that
//! only its owner may read, an NTLM hash instead of a password, a keytab, or the
//! Kerberos ticket cache (single sign-on). Owns the secrets: they are redacted in
//! `Debug`, zeroed on drop, and never appear in errors; [`Credentials::identity`] is the
//! non-secret name used in pool keys and logs.

use std::fmt;
use std::path::PathBuf;

use crate::config::AuthConfig;
pub use crate::secret::{parse_nt_hash, read_private_file, SecretString};

/// What proves the user: a password or its NT hash (MD4 of the UTF-16LE password).
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Password(SecretString),
    NtHash([u8; 16]),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Password(_) => f.write_str("Password([redacted])"),
            Secret::NtHash(_) => f.write_str("NtHash([redacted])"),
        }
    }
}

/// Where a Kerberos context gets its initial credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KerberosSource {
    /// System GSSAPI; `Some(name)` selects a cache (`FILE:/path`), `None` the default.
    TicketCache(Option<String>),
    /// sspi AS exchange with the password of `user@realm`.
    Password {
        user: String,
        realm: String,
        password: SecretString,
    },
    /// sspi AS exchange with the key of `user@realm` from a keytab.
    Keytab {
        path: PathBuf,
        user: String,
        realm: String,
    },
}

/// A problem loading credentials, with the config key it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("auth.{key}: {message}")]
pub struct CredentialError {
    pub key: &'static str,
    pub message: String,
}

fn problem(key: &'static str, message: impl Into<String>) -> CredentialError {
    CredentialError {
        key,
        message: message.into(),
    }
}

/// The credentials of one identity.
#[derive(Clone, Default)]
pub struct Credentials {
    /// The user as configured: `user`, `DOMAIN\user` or `user@REALM`.
    pub user: Option<String>,
    /// NTLM domain (NetBIOS), overriding one written into `user`.
    pub domain: Option<String>,
    secret: Option<Secret>,
    pub keytab: Option<PathBuf>,
    /// Ticket cache name for single sign-on (`None` = the default cache).
    pub ccache: Option<String>,
    /// Use the ticket cache (no explicit password, hash or keytab, or `ccache` configured).
    pub sso: bool,
    /// KDC for sspi (`host:port`); `None` = from `$KRB5_CONFIG` / `SSPI_KDC_URL` / DNS.
    pub kdc: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("domain", &self.domain)
            .field("secret", &self.secret)
            .field("keytab", &self.keytab)
            .field("ccache", &self.ccache)
            .field("sso", &self.sso)
            .finish()
    }
}

impl Credentials {
    /// Explicit user and password.
    pub fn with_password(user: &str, password: &str) -> Self {
        Credentials {
            user: Some(user.into()),
            secret: Some(Secret::Password(SecretString::new(password))),
            ..Default::default()
        }
    }

    /// A user without a secret yet (add a keytab, hash, ...).
    pub fn with_user(user: &str) -> Self {
        Credentials {
            user: Some(user.into()),
            ..Default::default()
        }
    }

    /// Single sign-on from a ticket cache (`None` = the default one).
    pub fn ticket_cache(ccache: Option<String>) -> Self {
        Credentials {
            sso: true,
            ccache,
            ..Default::default()
        }
    }

    pub fn with_domain(mut self, domain: &str) -> Self {
        self.domain = Some(domain.into());
        self
    }

    pub fn with_nt_hash(mut self, hash: [u8; 16]) -> Self {
        self.secret = Some(Secret::NtHash(hash));
        self
    }

    pub fn with_keytab(mut self, path: impl Into<PathBuf>) -> Self {
        self.keytab = Some(path.into());
        self
    }

    pub fn with_kdc(mut self, kdc: &str) -> Self {
        self.kdc = Some(kdc.into());
        self
    }

    /// Gathers credentials from `cfg` and the environment (`env("WAYPOST_AUTH_USER")`, ...).
    pub fn load(
        cfg: &AuthConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, Vec<CredentialError>> {
        let mut errors = Vec::new();
        let user = cfg
            .user
            .clone()
            .or_else(|| env("WAYPOST_AUTH_USER"))
            .filter(|u| !u.is_empty());
        let mut secret = None;
        if let Some(p) = &cfg.password {
            secret = Some(Secret::Password(SecretString::new(p.expose())));
        }
        if let Some(path) = &cfg.password_file {
            match read_private_file(path) {
                Ok(p) => secret = Some(Secret::Password(p)),
                Err(e) => errors.push(problem("password_file", e)),
            }
        }
        if let Some(hash) = &cfg.ntlm_hash {
            match parse_nt_hash(hash.expose()) {
                Some(h) => secret = Some(Secret::NtHash(h)),
                None => errors.push(problem(
                    "ntlm_hash",
                    "expected 32 hexadecimal digits (the NT hash)",
                )),
            }
        }
        if secret.is_none() {
            if let Some(p) = env("WAYPOST_AUTH_PASSWORD") {
                secret = Some(Secret::Password(SecretString::new(p)));
            }
        }
        if secret.is_none() && cfg.keytab.is_none() {
            if let Some(p) = user.as_deref().and_then(crate::keyring::lookup) {
                secret = Some(Secret::Password(SecretString::new(p)));
            }
        }
        if secret.is_some() && user.is_none() {
            errors.push(problem(
                "user",
                "a password or hash needs a user (auth.user or WAYPOST_AUTH_USER)",
            ));
        }
        if cfg.keytab.is_some() && user.is_none() {
            errors.push(problem(
                "keytab",
                "a keytab needs the client principal in auth.user (user@REALM)",
            ));
        }
        if let Some(kt) = &cfg.keytab {
            if let Err(e) = std::fs::metadata(kt) {
                errors.push(problem("keytab", format!("{}: {e}", kt.display())));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        // The ticket cache is the last Kerberos source whenever no keytab is configured: a
        // password without a realm cannot do Kerberos, but the user may hold a ticket.
        let sso = cfg.ccache.is_some() || cfg.keytab.is_none();
        Ok(Credentials {
            user,
            domain: cfg.domain.clone(),
            secret,
            keytab: cfg.keytab.clone(),
            ccache: cfg.ccache.clone(),
            sso,
            kdc: cfg.kdc.clone(),
        })
    }

    pub fn secret(&self) -> Option<&Secret> {
        self.secret.as_ref()
    }

    /// Replaces the secret (a re-read password file); false when it is the same.
    pub fn replace_secret(&mut self, secret: Secret) -> bool {
        if self.secret.as_ref() == Some(&secret) {
            return false;
        }
        self.secret = Some(secret);
        true
    }

    /// The password, when one (not a hash) was configured.
    pub fn password(&self) -> Option<&str> {
        match &self.secret {
            Some(Secret::Password(p)) => Some(p.expose()),
            _ => None,
        }
    }

    /// The account name without `DOMAIN\` or `@REALM`.
    pub fn account(&self) -> Option<&str> {
        let user = self.user.as_deref()?;
        let user = user.rsplit_once('\\').map_or(user, |(_, u)| u);
        Some(user.split_once('@').map_or(user, |(u, _)| u))
    }

    /// The Kerberos realm: from `user@REALM`, a dotted `REALM\user`, or a dotted `domain`.
    pub fn realm(&self) -> Option<String> {
        let user = self.user.as_deref()?;
        if let Some((_, realm)) = user.rsplit_once('@') {
            return Some(realm.to_ascii_uppercase());
        }
        if let Some((dom, _)) = user.split_once('\\') {
            if dom.contains('.') {
                return Some(dom.to_ascii_uppercase());
            }
        }
        self.domain
            .as_deref()
            .filter(|d| d.contains('.'))
            .map(str::to_ascii_uppercase)
    }

    /// NTLM `(user, domain)`: with `domain` configured the bare account in that domain;
    /// otherwise `DOMAIN\user` split, or the user as written (a UPN goes as is).
    pub fn ntlm_user(&self) -> Option<(String, Option<String>)> {
        let user = self.user.as_deref()?;
        if let Some(domain) = &self.domain {
            return Some((self.account()?.to_string(), Some(domain.clone())));
        }
        match user.split_once('\\') {
            Some((dom, u)) => Some((u.to_string(), Some(dom.to_string()))),
            None => Some((user.to_string(), None)),
        }
    }

    /// The user for Basic: as written.
    pub fn basic_user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    pub fn can_ntlm(&self) -> bool {
        self.user.is_some() && self.secret.is_some()
    }

    pub fn can_basic(&self) -> bool {
        self.user.is_some() && self.password().is_some()
    }

    pub fn can_kerberos(&self) -> bool {
        self.kerberos_source().is_some()
    }

    /// Where Kerberos would get its credentials: keytab, then password, then the ticket cache.
    pub fn kerberos_source(&self) -> Option<KerberosSource> {
        if let (Some(path), Some(user), Some(realm)) = (&self.keytab, self.account(), self.realm())
        {
            return Some(KerberosSource::Keytab {
                path: path.clone(),
                user: user.to_string(),
                realm,
            });
        }
        if let (Some(password), Some(user), Some(realm)) =
            (self.password(), self.account(), self.realm())
        {
            return Some(KerberosSource::Password {
                user: user.to_string(),
                realm,
                password: SecretString::new(password),
            });
        }
        if self.sso {
            return Some(KerberosSource::TicketCache(self.ccache.clone()));
        }
        None
    }

    /// A non-secret name for this identity (pool keys, logs, lockout):
    /// `EXAMPLE\user`, `user@EXAMPLE.TEST`, `keytab:user@REALM`, `kerberos:ccache:NAME`.
    pub fn identity(&self) -> String {
        match (&self.user, &self.secret, &self.keytab) {
            (Some(_), Some(_), _) => match self.ntlm_user() {
                Some((u, Some(d))) => format!("{d}\\{u}"),
                Some((u, None)) => u,
                None => String::new(),
            },
            (Some(u), None, Some(_)) => format!(
                "keytab:{}@{}",
                self.account().unwrap_or(u),
                self.realm().unwrap_or_default()
            ),
            _ => format!(
                "kerberos:ccache:{}",
                self.ccache.as_deref().unwrap_or("default")
            ),
        }
    }
}

/// Our workstation name for NTLM and Kerberos (short host name, upper case).
pub fn workstation_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .and_then(|h| h.trim().split('.').next().map(str::to_ascii_uppercase))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "WAYPOST".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_redacts_passwords_and_hashes() {
        let c = Credentials::with_password("EXAMPLE\\user", "Secret-Pass-1");
        let d = format!("{c:?}");
        assert!(!d.contains("Secret-Pass-1"), "{d}");
        assert!(d.contains("redacted"));
        let h = Credentials::with_password("u", "x").with_nt_hash([0xab; 16]);
        assert!(!format!("{h:?}").to_lowercase().contains("abab"));
    }

    #[test]
    fn identity_names_the_user_and_domain_without_secrets() {
        assert_eq!(
            Credentials::with_password("EXAMPLE\\user", "p").identity(),
            "EXAMPLE\\user"
        );
        assert_eq!(
            Credentials::with_password("user@EXAMPLE.TEST", "p")
                .with_domain("EXAMPLE")
                .identity(),
            "EXAMPLE\\user"
        );
        assert_eq!(
            Credentials::ticket_cache(None).identity(),
            "kerberos:ccache:default"
        );
    }

    #[test]
    fn the_realm_comes_from_a_upn_or_a_dotted_domain() {
        assert_eq!(
            Credentials::with_password("user@example.test", "p")
                .realm()
                .as_deref(),
            Some("EXAMPLE.TEST")
        );
        assert_eq!(
            Credentials::with_password("EXAMPLE.TEST\\user", "p")
                .realm()
                .as_deref(),
            Some("EXAMPLE.TEST")
        );
        assert_eq!(
            Credentials::with_password("EXAMPLE\\user", "p").realm(),
            None
        );
        assert!(!Credentials::with_password("EXAMPLE\\user", "p").can_kerberos());
    }

    #[test]
    fn ntlm_uses_the_configured_domain_over_the_upn() {
        let c = Credentials::with_password("user@EXAMPLE.TEST", "p").with_domain("EXAMPLE");
        assert_eq!(c.ntlm_user(), Some(("user".into(), Some("EXAMPLE".into()))));
        let c = Credentials::with_password("EXAMPLE\\user", "p");
        assert_eq!(c.ntlm_user(), Some(("user".into(), Some("EXAMPLE".into()))));
    }

    #[test]
    fn basic_needs_a_password_not_a_hash() {
        let c = Credentials {
            user: Some("u".into()),
            ..Default::default()
        }
        .with_nt_hash([1; 16]);
        assert!(c.can_ntlm() && !c.can_basic());
    }

    #[test]
    fn nt_hashes_parse_from_hex() {
        assert_eq!(
            parse_nt_hash("a4f49c406510bdcab6824ee7c30fd852").map(|h| h[0]),
            Some(0xa4)
        );
        assert_eq!(parse_nt_hash("zz"), None);
    }

    #[cfg(unix)]
    #[test]
    fn a_password_file_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "Secret-Pass-1\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_private_file(&p).unwrap_err();
        assert!(
            e.contains("chmod 600") && !e.contains("Secret-Pass-1"),
            "{e}"
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_private_file(&p).unwrap().expose(), "Secret-Pass-1");
    }
}

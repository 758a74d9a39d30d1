//! The `[tls]` section as the user wrote it (`TlsConfig`, serde, every field defaulted) and
//! its validation into typed settings (`Settings`), reporting every bad key at once with its
//! path (`tls.exceptions[0].allow[1]: ...`).
//!
//! This module parses strings and checks shapes; reading files (CA bundles, CRLs, client
//! keys) happens in `material`, which adds its problems to the same list. Nothing here does
//! network I/O.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use crate::pattern::HostPattern;

/// Raw TLS configuration, close to what the user typed.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Lowest protocol version accepted: `"1.2"` (default) or `"1.3"`.
    pub min_version: String,
    /// Extra PEM bundles of trusted CA certificates.
    pub ca_files: Vec<PathBuf>,
    /// Trust the operating system's root store (default true).
    pub use_system_roots: bool,
    /// Check certificates against CRLs (default false).
    pub check_revocation: bool,
    /// CRL files (PEM or DER), used when `check_revocation` is on.
    pub crl_files: Vec<PathBuf>,
    /// Fetching CRLs from the certificate's http distribution points.
    pub crl_fetch: CrlFetchConfig,
    /// What to do when no CRL covers a certificate: `"fail"` (default) or `"pass"`.
    pub revocation_unknown: String,
    /// Named, per-host exceptions to certificate checks (WinHTTP's SECURITY_FLAG_IGNORE_*).
    pub exceptions: Vec<ExceptionConfig>,
    /// Client certificates presented to matching hosts (first match wins).
    pub client_certs: Vec<ClientCertConfig>,
    /// TLS interception of CONNECT tunnels to matching hosts.
    pub intercept: InterceptConfig,
    /// SNI allow/deny rules for tunnels that are not intercepted.
    pub sni_rules: SniRulesConfig,
    /// Ports a CONNECT may target (default 443 and 8443, see [`DEFAULT_CONNECT_PORTS`]);
    /// an empty list means any port.
    pub connect_ports: Vec<u16>,
    /// Client certificates of `[[scopes]]` (`scopes[i].tls.client_cert`), loaded with
    /// `client_certs` and named by their place after them ([`crate::ConnSettings::client_cert`]);
    /// set by the proxy, never read from the `[tls]` section.
    #[serde(skip)]
    pub scope_client_certs: Vec<(String, ClientCertConfig)>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            min_version: "1.2".into(),
            ca_files: Vec::new(),
            use_system_roots: true,
            check_revocation: false,
            crl_files: Vec::new(),
            crl_fetch: CrlFetchConfig::default(),
            revocation_unknown: "fail".into(),
            exceptions: Vec::new(),
            client_certs: Vec::new(),
            intercept: InterceptConfig::default(),
            sni_rules: SniRulesConfig::default(),
            connect_ports: DEFAULT_CONNECT_PORTS.to_vec(),
            scope_client_certs: Vec::new(),
        }
    }
}

/// The default `tls.connect_ports`: 443 (squid's `SSL_ports`) and 8443, the common alternate
/// HTTPS port (application servers, admin consoles, many internal APIs). A CONNECT is an
/// opaque byte pipe, so an open port list lets any client speak SMTP (25), Redis (6379) or
/// SSH (22) through the proxy; other ports are an explicit choice.
pub const DEFAULT_CONNECT_PORTS: [u16; 2] = [443, 8443];

/// `tls.crl_fetch`: downloading CRLs named in certificates.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CrlFetchConfig {
    /// Fetch CRLs from `http://` distribution points (default true).
    pub enabled: bool,
    /// Budget for one download, connect to last byte (default 5s).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How long a fetched CRL is reused when it has no earlier nextUpdate (default 1h).
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// How long a failed download is remembered before trying again (default 1m).
    #[serde(with = "humantime_serde")]
    pub retry_after: Duration,
    /// Largest CRL accepted, in bytes (default 16 MiB).
    pub max_bytes: usize,
}

impl Default for CrlFetchConfig {
    fn default() -> Self {
        CrlFetchConfig {
            enabled: true,
            timeout: Duration::from_secs(5),
            max_age: Duration::from_secs(3600),
            retry_after: Duration::from_secs(60),
            max_bytes: 16 << 20,
        }
    }
}

/// One `tls.exceptions[]` entry.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ExceptionConfig {
    /// Host patterns this exception applies to.
    pub hosts: Vec<String>,
    /// Defects accepted for those hosts, by name (see [`Defect`]).
    pub allow: Vec<String>,
}

/// One `tls.client_certs[]` entry.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClientCertConfig {
    /// Host patterns that get this certificate.
    pub hosts: Vec<String>,
    /// PEM file with the certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// `tls.intercept`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct InterceptConfig {
    /// Intercept matching CONNECT tunnels (default false).
    pub enabled: bool,
    /// Host patterns to intercept.
    pub hosts: Vec<String>,
    /// Directory holding the local CA (`waypost ca init --dir ...`).
    pub ca_dir: PathBuf,
    /// Lifetime of a minted leaf certificate (default 24h).
    #[serde(with = "humantime_serde")]
    pub cert_ttl: Duration,
    /// Leaf certificates kept in memory (default 1000).
    pub cache_size: usize,
}

impl Default for InterceptConfig {
    fn default() -> Self {
        InterceptConfig {
            enabled: false,
            hosts: Vec::new(),
            ca_dir: PathBuf::new(),
            cert_ttl: Duration::from_secs(24 * 3600),
            cache_size: 1000,
        }
    }
}

/// `tls.sni_rules`: for tunnels that are not intercepted.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SniRulesConfig {
    /// If non-empty, the SNI must match one of these.
    pub allow: Vec<String>,
    /// An SNI matching one of these is refused (deny wins over allow).
    pub deny: Vec<String>,
    /// Refuse a ClientHello without SNI (default false).
    pub require_sni: bool,
}

/// Minimum protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MinVersion {
    /// TLS 1.2 and 1.3.
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

/// A certificate defect that an exception may accept; WinHTTP's `SECURITY_FLAG_IGNORE_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Defect {
    /// The chain does not end at a trusted root (`SECURITY_FLAG_IGNORE_UNKNOWN_CA`).
    UnknownCa,
    /// Expired or not yet valid (`SECURITY_FLAG_IGNORE_CERT_DATE_INVALID`).
    CertDateInvalid,
    /// The name does not match the host (`SECURITY_FLAG_IGNORE_CERT_CN_INVALID`).
    CertCnInvalid,
    /// Not a server certificate by its extended key usage (`..._CERT_WRONG_USAGE`).
    CertWrongUsage,
    /// Signed with a weak algorithm such as SHA-1 (`SECURITY_FLAG_IGNORE_WEAK_SIGNATURE`).
    WeakSignature,
}

impl Defect {
    /// Every defect, in a fixed order.
    pub const ALL: [Defect; 5] = [
        Defect::UnknownCa,
        Defect::CertDateInvalid,
        Defect::CertCnInvalid,
        Defect::CertWrongUsage,
        Defect::WeakSignature,
    ];

    /// The config name of this defect.
    pub fn as_str(self) -> &'static str {
        match self {
            Defect::UnknownCa => "unknown-ca",
            Defect::CertDateInvalid => "cert-date-invalid",
            Defect::CertCnInvalid => "cert-cn-invalid",
            Defect::CertWrongUsage => "cert-wrong-usage",
            Defect::WeakSignature => "weak-signature",
        }
    }
}

impl fmt::Display for Defect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Defect {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Defect::ALL.into_iter().find(|d| d.as_str() == s).ok_or(())
    }
}

/// A set of defects; ordered so it can key a cache.
pub type DefectSet = BTreeSet<Defect>;

/// One problem in the configuration, with the key it concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Key path, e.g. `tls.exceptions[0].allow[1]`.
    pub path: String,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

/// Every problem found in the TLS configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct TlsConfigError {
    /// The problems, in the order of the keys.
    pub problems: Vec<Problem>,
}

impl fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}: {}", p.path, p.message)?;
        }
        Ok(())
    }
}

/// Collects problems while validating.
#[derive(Default)]
pub(crate) struct Problems(pub(crate) Vec<Problem>);

impl Problems {
    pub(crate) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// Validated, typed settings derived from [`TlsConfig`] (files not yet read).
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub min_version: MinVersion,
    pub revocation_unknown_passes: bool,
    pub exceptions: Vec<(Vec<HostPattern>, std::sync::Arc<DefectSet>)>,
    pub client_cert_hosts: Vec<Vec<HostPattern>>,
    pub intercept_hosts: Vec<HostPattern>,
    pub sni_allow: Vec<HostPattern>,
    pub sni_deny: Vec<HostPattern>,
}

fn patterns(list: &[String], path: &str, problems: &mut Problems) -> Vec<HostPattern> {
    let mut out = Vec::new();
    for (i, s) in list.iter().enumerate() {
        match s.parse::<HostPattern>() {
            Ok(p) => out.push(p),
            Err(e) => problems.push(format!("{path}[{i}]"), e.to_string()),
        }
    }
    out
}

fn parse_min_version(s: &str, problems: &mut Problems) -> MinVersion {
    min_version_from(s).unwrap_or_else(|e| {
        problems.push("tls.min_version", e);
        MinVersion::Tls12
    })
}

/// `"1.2"` or `"1.3"` (`"TLS1.3"` too); an older version is refused with the reason.
pub fn min_version_from(s: &str) -> Result<MinVersion, String> {
    match s
        .trim()
        .to_ascii_lowercase()
        .trim_start_matches("tls")
        .trim()
    {
        "1.2" => Ok(MinVersion::Tls12),
        "1.3" => Ok(MinVersion::Tls13),
        "1.0" | "1" | "1.1" | "ssl3" | "ssl2" | "sslv3" | "sslv2" | "3" | "2" => Err(format!(
            "{s:?} is refused: rustls does not speak SSL 2/3, TLS 1.0 or TLS 1.1 \
             (waypost's TLS library; those versions are deprecated by RFC 8996); use \"1.2\" or \"1.3\""
        )),
        _ => Err(format!("unknown version {s:?} (expected \"1.2\" or \"1.3\")")),
    }
}

/// The defects named in `list`, and each name that is not one (its index and the message).
pub fn defects_from(list: &[String]) -> (DefectSet, Vec<(usize, String)>) {
    let expected = Defect::ALL.map(Defect::as_str).join(", ");
    let mut set = DefectSet::new();
    let mut bad = Vec::new();
    for (j, flag) in list.iter().enumerate() {
        match flag.parse::<Defect>() {
            Ok(d) => {
                set.insert(d);
            }
            Err(()) => bad.push((
                j,
                format!("unknown flag {flag:?} (expected one of {expected})"),
            )),
        }
    }
    (set, bad)
}

/// Checks every key that needs no file access; problems are appended to `problems`.
pub(crate) fn validate(cfg: &TlsConfig, problems: &mut Problems) -> Settings {
    let min_version = parse_min_version(&cfg.min_version, problems);
    let revocation_unknown_passes = match cfg.revocation_unknown.as_str() {
        "fail" => false,
        "pass" => true,
        other => {
            problems.push(
                "tls.revocation_unknown",
                format!("unknown value {other:?} (expected \"fail\" or \"pass\")"),
            );
            false
        }
    };
    let mut exceptions = Vec::new();
    for (i, ex) in cfg.exceptions.iter().enumerate() {
        let hosts = patterns(&ex.hosts, &format!("tls.exceptions[{i}].hosts"), problems);
        if ex.hosts.is_empty() {
            problems.push(
                format!("tls.exceptions[{i}].hosts"),
                "empty: name the hosts this exception is for",
            );
        }
        let (allow, bad) = defects_from(&ex.allow);
        for (j, message) in bad {
            problems.push(format!("tls.exceptions[{i}].allow[{j}]"), message);
        }
        let allow = std::sync::Arc::new(allow);
        exceptions.push((hosts, allow));
    }
    let mut client_cert_hosts = Vec::new();
    for (i, cc) in cfg.client_certs.iter().enumerate() {
        let path = format!("tls.client_certs[{i}]");
        client_cert_hosts.push(patterns(&cc.hosts, &format!("{path}.hosts"), problems));
        if cc.hosts.is_empty() {
            problems.push(
                format!("{path}.hosts"),
                "empty: name the hosts that get this certificate",
            );
        }
    }
    let intercept_hosts = patterns(&cfg.intercept.hosts, "tls.intercept.hosts", problems);
    if cfg.intercept.enabled {
        if cfg.intercept.ca_dir.as_os_str().is_empty() {
            problems.push("tls.intercept.ca_dir", "required when interception is enabled (create one with `waypost ca init --dir DIR`)");
        }
        if cfg.intercept.hosts.is_empty() {
            problems.push(
                "tls.intercept.hosts",
                "empty while interception is enabled: name the hosts to intercept",
            );
        }
        if cfg.intercept.cert_ttl < Duration::from_secs(60) {
            problems.push("tls.intercept.cert_ttl", "must be at least 1m");
        }
        if cfg.intercept.cache_size == 0 {
            problems.push("tls.intercept.cache_size", "must be at least 1");
        }
    }
    if cfg.crl_fetch.timeout.is_zero() {
        problems.push("tls.crl_fetch.timeout", "must be more than 0s");
    }
    for (i, port) in cfg.connect_ports.iter().enumerate() {
        if *port == 0 {
            problems.push(
                format!("tls.connect_ports[{i}]"),
                "port 0 is not a destination",
            );
        }
    }
    Settings {
        min_version,
        revocation_unknown_passes,
        exceptions,
        client_cert_hosts,
        intercept_hosts,
        sni_allow: patterns(&cfg.sni_rules.allow, "tls.sni_rules.allow", problems),
        sni_deny: patterns(&cfg.sni_rules.deny, "tls.sni_rules.deny", problems),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems_of(cfg: &TlsConfig) -> Vec<String> {
        let mut p = Problems::default();
        validate(cfg, &mut p);
        p.0.into_iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()
    }

    #[test]
    fn defaults_validate_cleanly() {
        assert!(problems_of(&TlsConfig::default()).is_empty());
    }

    #[test]
    fn old_protocol_versions_are_refused_with_the_reason() {
        for v in ["1.0", "1.1", "ssl3", "TLS1.1"] {
            let cfg = TlsConfig {
                min_version: v.into(),
                ..TlsConfig::default()
            };
            let p = problems_of(&cfg);
            assert_eq!(p.len(), 1, "{v}");
            assert!(
                p[0].starts_with("tls.min_version: ") && p[0].contains("rustls does not speak"),
                "{}",
                p[0]
            );
        }
    }

    #[test]
    fn every_bad_key_is_reported_with_its_path() {
        let cfg = TlsConfig {
            revocation_unknown: "maybe".into(),
            exceptions: vec![ExceptionConfig {
                hosts: vec!["ok.example".into(), "bad host".into()],
                allow: vec!["unknown-ca".into(), "foo".into()],
            }],
            ..TlsConfig::default()
        };
        let p = problems_of(&cfg);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].starts_with("tls.revocation_unknown: "));
        assert!(p[1].starts_with("tls.exceptions[0].hosts[1]: "));
        assert!(p[2].starts_with(
            "tls.exceptions[0].allow[1]: unknown flag \"foo\" (expected one of unknown-ca,"
        ));
    }

    #[test]
    fn unknown_keys_are_refused_by_serde() {
        use serde::de::value::{Error, MapDeserializer};
        let typo = MapDeserializer::<_, Error>::new(vec![("min_versoin", "1.3")].into_iter());
        assert!(TlsConfig::deserialize(typo).is_err());
        let fine = MapDeserializer::<_, Error>::new(vec![("min_version", "1.3")].into_iter());
        assert_eq!(
            TlsConfig::deserialize(fine).map(|c| c.min_version),
            Ok("1.3".to_string())
        );
    }
}

//! Schemes (what the header says), mechanisms (what makes the tokens) and the choice
//! between them: Negotiate > NTLM > Basic among the offered schemes we hold usable
//! credentials for, WinHTTP style, with raw NTLM under `Negotiate` when that is all
//! the proxy offers and Kerberos is impossible. Also [`SchemeMemory`], which remembers
//! per proxy what worked so that the next connection can send its first token at once.
//! Pure decisions; no I/O.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

/// An HTTP authentication scheme as named in `Proxy-Authenticate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    Negotiate,
    Ntlm,
    Basic,
}

impl Scheme {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Negotiate => "Negotiate",
            Scheme::Ntlm => "NTLM",
            Scheme::Basic => "Basic",
        }
    }

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Scheme::Negotiate => "negotiate",
            Scheme::Ntlm => "ntlm",
            Scheme::Basic => "basic",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error of [`Scheme::from_str`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown authentication scheme {0:?} (expected negotiate, ntlm or basic)")]
pub struct UnknownScheme(pub String);

impl FromStr for Scheme {
    type Err = UnknownScheme;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "negotiate" => Ok(Scheme::Negotiate),
            "ntlm" => Ok(Scheme::Ntlm),
            "basic" => Ok(Scheme::Basic),
            _ => Err(UnknownScheme(s.to_string())),
        }
    }
}

/// What produces the tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mech {
    /// Kerberos wrapped in SPNEGO (system GSSAPI or sspi).
    Kerberos,
    /// NTLMv2 with MIC (sspi).
    Ntlm,
    /// `user:password` in base64.
    Basic,
}

impl fmt::Display for Mech {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mech::Kerberos => "kerberos",
            Mech::Ntlm => "ntlm",
            Mech::Basic => "basic",
        })
    }
}

/// A scheme on the wire and the mechanism behind it (`Negotiate` + `Ntlm` is raw
/// NTLMSSP inside `Negotiate`, as Windows sends it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Plan {
    pub scheme: Scheme,
    pub mech: Mech,
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.scheme, self.mech)
    }
}

/// Which mechanisms our credentials (and the configured `scheme`) make usable for one proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usable {
    pub kerberos: bool,
    pub ntlm: bool,
    pub basic: bool,
    /// Only the `Negotiate` header scheme may be used (config `scheme = "negotiate"`).
    pub negotiate_only: bool,
    /// Basic was left out only because the proxy connection is plain HTTP and `scheme` is
    /// `auto` (the password would travel in clear; an on-path attacker can strip the other
    /// schemes from a 407 to force it). A 407 offering Basic then says why it is refused.
    pub basic_needs_tls: bool,
}

/// The plans worth trying against `offered`, best first. The first is the choice; the
/// rest are fallbacks (Kerberos impossible -> NTLM).
pub fn plans(offered: &[Scheme], usable: Usable) -> Vec<Plan> {
    let has = |s| offered.contains(&s) && (!usable.negotiate_only || s == Scheme::Negotiate);
    let mut out = Vec::new();
    if has(Scheme::Negotiate) && usable.kerberos {
        out.push(Plan {
            scheme: Scheme::Negotiate,
            mech: Mech::Kerberos,
        });
    }
    if usable.ntlm {
        if has(Scheme::Ntlm) {
            out.push(Plan {
                scheme: Scheme::Ntlm,
                mech: Mech::Ntlm,
            });
        } else if has(Scheme::Negotiate) {
            out.push(Plan {
                scheme: Scheme::Negotiate,
                mech: Mech::Ntlm,
            });
        }
    }
    if has(Scheme::Basic) && usable.basic {
        out.push(Plan {
            scheme: Scheme::Basic,
            mech: Mech::Basic,
        });
    }
    out
}

/// What worked last per proxy (`host:port` as configured), for pre-emptive first tokens.
#[derive(Debug, Default)]
pub struct SchemeMemory {
    known: Mutex<HashMap<String, Plan>>,
}

impl SchemeMemory {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, proxy: &str) -> Option<Plan> {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(proxy)
            .copied()
    }

    pub fn remember(&self, proxy: &str, plan: Plan) {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(proxy.to_string(), plan);
    }

    pub fn forget(&self, proxy: &str) {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(proxy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Usable = Usable {
        kerberos: true,
        ntlm: true,
        basic: true,
        negotiate_only: false,
        basic_needs_tls: false,
    };

    fn p(scheme: Scheme, mech: Mech) -> Plan {
        Plan { scheme, mech }
    }

    #[test]
    fn negotiate_is_preferred_over_ntlm_over_basic() {
        let got = plans(&[Scheme::Basic, Scheme::Ntlm, Scheme::Negotiate], ALL);
        assert_eq!(
            got,
            [
                p(Scheme::Negotiate, Mech::Kerberos),
                p(Scheme::Ntlm, Mech::Ntlm),
                p(Scheme::Basic, Mech::Basic)
            ]
        );
    }

    #[test]
    fn without_kerberos_ntlm_is_chosen_even_when_negotiate_is_offered() {
        let got = plans(
            &[Scheme::Negotiate, Scheme::Ntlm],
            Usable {
                kerberos: false,
                ..ALL
            },
        );
        assert_eq!(got[0], p(Scheme::Ntlm, Mech::Ntlm));
    }

    #[test]
    fn raw_ntlm_goes_under_negotiate_when_only_negotiate_is_offered() {
        let got = plans(
            &[Scheme::Negotiate],
            Usable {
                kerberos: false,
                ntlm: true,
                basic: false,
                negotiate_only: false,
                basic_needs_tls: false,
            },
        );
        assert_eq!(got, [p(Scheme::Negotiate, Mech::Ntlm)]);
        let got = plans(&[Scheme::Negotiate], ALL);
        assert_eq!(
            got,
            [
                p(Scheme::Negotiate, Mech::Kerberos),
                p(Scheme::Negotiate, Mech::Ntlm)
            ]
        );
    }

    #[test]
    fn basic_is_never_chosen_without_explicit_credentials() {
        let got = plans(
            &[Scheme::Basic],
            Usable {
                kerberos: true,
                ntlm: true,
                basic: false,
                negotiate_only: false,
                basic_needs_tls: false,
            },
        );
        assert!(got.is_empty());
    }

    #[test]
    fn negotiate_only_uses_raw_ntlm_inside_negotiate_even_when_ntlm_is_offered() {
        let got = plans(
            &[Scheme::Negotiate, Scheme::Ntlm],
            Usable {
                kerberos: false,
                negotiate_only: true,
                ..ALL
            },
        );
        assert_eq!(got, [p(Scheme::Negotiate, Mech::Ntlm)]);
    }

    #[test]
    fn scheme_names_round_trip() {
        for s in [Scheme::Negotiate, Scheme::Ntlm, Scheme::Basic] {
            assert_eq!(s.to_string().parse::<Scheme>(), Ok(s));
        }
        assert!("Digest".parse::<Scheme>().is_err());
    }

    #[test]
    fn memory_is_kept_per_proxy() {
        let m = SchemeMemory::new();
        m.remember("a:3128", p(Scheme::Ntlm, Mech::Ntlm));
        assert_eq!(m.get("a:3128"), Some(p(Scheme::Ntlm, Mech::Ntlm)));
        assert_eq!(m.get("b:3128"), None);
        m.forget("a:3128");
        assert_eq!(m.get("a:3128"), None);
    }
}

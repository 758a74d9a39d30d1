//! The service principal name of a proxy, as Chromium builds it: `HTTP/<host>`, where the
//! host is the proxy's canonical name (CNAMEs followed, a short name completed) when
//! `canonicalize_spn` is on (the default; off = Chromium's `DisableAuthNegotiateCnameLookup`),
//! else the name as configured; the port only when `spn_include_port` is set (Chromium's
//! `EnableAuthNegotiatePort`); a full override wins over both. Pure: the caller looks the
//! canonical name up (DNS) and hands it in; without one the name as given is used.

/// How SPNs are built.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpnRule {
    pub include_port: bool,
    pub override_spn: Option<String>,
    /// Use the proxy's canonical name when the caller found one.
    pub canonicalize: bool,
}

impl SpnRule {
    /// The SPN for the proxy `host:port` as configured; `canonical`: the name DNS gives for
    /// `host` (ignored unless canonicalisation is on).
    pub fn spn(&self, host: &str, canonical: Option<&str>, port: u16) -> String {
        if let Some(spn) = &self.override_spn {
            return spn.clone();
        }
        let trim = |h: &str| {
            h.trim_start_matches('[')
                .trim_end_matches(']')
                .trim_end_matches('.')
                .to_string()
        };
        let host = canonical
            .filter(|_| self.canonicalize)
            .map(trim)
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| trim(host));
        if self.include_port {
            format!("HTTP/{host}:{port}")
        } else {
            format!("HTTP/{host}")
        }
    }

    /// The rule in words, for `auth status` (which knows no proxy).
    pub fn describe(&self) -> String {
        if let Some(spn) = &self.override_spn {
            return spn.clone();
        }
        let host = match self.canonicalize {
            true => "<canonical name of the proxy>",
            false => "<proxy name as given>",
        };
        match self.include_port {
            true => format!("HTTP/{host}:<port>"),
            false => format!("HTTP/{host}"),
        }
    }

    /// Whether a canonical name for `host` would change anything (a lookup is worth it).
    pub fn wants_canonical_name(&self, host: &str) -> bool {
        self.canonicalize && self.override_spn.is_none() && !host_is_ip(host)
    }
}

/// Kerberos needs a name: a proxy given as an IP address has no usable SPN.
pub fn host_is_ip(host: &str) -> bool {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spn_is_the_configured_host_without_port() {
        assert_eq!(
            SpnRule::default().spn("proxy.example.test", None, 3128),
            "HTTP/proxy.example.test"
        );
    }

    #[test]
    fn the_port_is_appended_only_when_asked() {
        let r = SpnRule {
            include_port: true,
            ..Default::default()
        };
        assert_eq!(
            r.spn("proxy.example.test", None, 3128),
            "HTTP/proxy.example.test:3128"
        );
    }

    fn on() -> SpnRule {
        SpnRule {
            canonicalize: true,
            ..Default::default()
        }
    }

    #[test]
    fn the_canonical_name_is_used_when_canonicalisation_is_on() {
        assert_eq!(
            on().spn("proxy", Some("px-01.corp.example."), 8080),
            "HTTP/px-01.corp.example"
        );
    }

    #[test]
    fn the_name_as_given_is_used_when_canonicalisation_is_off() {
        assert_eq!(
            SpnRule::default().spn("proxy.corp.example", Some("px-01.corp.example"), 8080),
            "HTTP/proxy.corp.example"
        );
    }

    #[test]
    fn a_failed_lookup_leaves_the_name_as_given() {
        assert_eq!(
            on().spn("proxy.corp.example.", None, 8080),
            "HTTP/proxy.corp.example"
        );
        assert_eq!(on().spn("proxy", Some("."), 8080), "HTTP/proxy");
    }

    #[test]
    fn the_port_is_never_in_the_spn_unless_asked_even_when_canonical() {
        assert_eq!(
            on().spn("proxy", Some("px-01.corp.example"), 3128),
            "HTTP/px-01.corp.example"
        );
        let with_port = SpnRule {
            include_port: true,
            ..on()
        };
        assert_eq!(
            with_port.spn("proxy", Some("px-01.corp.example"), 3128),
            "HTTP/px-01.corp.example:3128"
        );
    }

    #[test]
    fn no_lookup_is_wanted_for_an_address_an_override_or_when_off() {
        assert!(on().wants_canonical_name("proxy"));
        assert!(!on().wants_canonical_name("10.0.0.1") && !on().wants_canonical_name("[::1]"));
        assert!(!SpnRule::default().wants_canonical_name("proxy"));
        let fixed = SpnRule {
            override_spn: Some("HTTP/x".into()),
            ..on()
        };
        assert!(!fixed.wants_canonical_name("proxy"));
    }

    #[test]
    fn an_override_wins() {
        let r = SpnRule {
            override_spn: Some("HTTP/fixed@EXAMPLE.TEST".into()),
            include_port: true,
            canonicalize: true,
        };
        assert_eq!(r.spn("proxy", Some("other"), 1), "HTTP/fixed@EXAMPLE.TEST");
    }

    #[test]
    fn ip_addresses_are_recognised() {
        assert!(host_is_ip("127.0.0.1") && host_is_ip("[::1]") && !host_is_ip("localhost"));
    }
}

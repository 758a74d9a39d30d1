//! The service principal name of a proxy: `HTTP/<proxy host as configured>`, with the
//! port only when `spn_include_port` is set (WinHTTP's `WINHTTP_OPTION_SPN` default),
//! an optional CNAME canonicalisation hook, and a full override. Pure; the
//! canonicaliser is supplied by the caller (it may do DNS).

use std::sync::Arc;

/// Maps a host name to its canonical name (e.g. by following CNAMEs); `None` = keep it.
pub type Canonicalizer = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// How SPNs are built.
#[derive(Clone, Default)]
pub struct SpnRule {
    pub include_port: bool,
    pub override_spn: Option<String>,
    pub canonicalize: Option<Canonicalizer>,
}

impl std::fmt::Debug for SpnRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpnRule")
            .field("include_port", &self.include_port)
            .field("override_spn", &self.override_spn)
            .field("canonicalize", &self.canonicalize.is_some())
            .finish()
    }
}

impl SpnRule {
    /// The SPN for the proxy `host:port` as configured.
    pub fn spn(&self, host: &str, port: u16) -> String {
        if let Some(spn) = &self.override_spn {
            return spn.clone();
        }
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.');
        let host = self
            .canonicalize
            .as_ref()
            .and_then(|c| c(host))
            .map(|h| h.trim_end_matches('.').to_string())
            .unwrap_or_else(|| host.to_string());
        if self.include_port {
            format!("HTTP/{host}:{port}")
        } else {
            format!("HTTP/{host}")
        }
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
            SpnRule::default().spn("proxy.example.test", 3128),
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
            r.spn("proxy.example.test", 3128),
            "HTTP/proxy.example.test:3128"
        );
    }

    #[test]
    fn canonicalisation_follows_the_hook() {
        let r = SpnRule {
            canonicalize: Some(Arc::new(|h: &str| {
                (h == "proxy").then(|| "real.example.test.".to_string())
            })),
            ..Default::default()
        };
        assert_eq!(r.spn("proxy", 8080), "HTTP/real.example.test");
        assert_eq!(r.spn("other", 8080), "HTTP/other");
    }

    #[test]
    fn an_override_wins() {
        let r = SpnRule {
            override_spn: Some("HTTP/fixed@EXAMPLE.TEST".into()),
            include_port: true,
            ..Default::default()
        };
        assert_eq!(r.spn("proxy", 1), "HTTP/fixed@EXAMPLE.TEST");
    }

    #[test]
    fn ip_addresses_are_recognised() {
        assert!(host_is_ip("127.0.0.1") && host_is_ip("[::1]") && !host_is_ip("localhost"));
    }
}

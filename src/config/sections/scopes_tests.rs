//! The builder's pieces that the rule's tests do not reach.

use super::*;

#[test]
fn a_scope_s_client_certificate_is_numbered_after_the_legacy_ones() {
    let mut raw = RawConfig::default();
    raw.tls.client_certs = vec![ClientCertConfig::default()];
    raw.scopes = vec![RawScope {
        matches: vec!["mtls.example".into()],
        tls: crate::config::raw::RawScopeTls {
            client_cert: Some(crate::config::raw::RawClientCert {
                cert: "/c.pem".into(),
                key: "/k.pem".into(),
            }),
            ..Default::default()
        },
        ..RawScope::default()
    }];
    let mut p = Problems(Vec::new());
    let b = scopes(&raw, &mut p);
    assert_eq!(b.list[0].set.client_cert, Some(1));
    assert_eq!(b.client_certs[0].0, "scopes[0].tls.client_cert");
    assert_eq!(b.list[1].name, "tls.client_certs[0]");
}

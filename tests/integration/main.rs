//! The root crate's integration tests, one binary (linked once) with a module per subject.
//! Real peers (squid, an MIT KDC, SOCKS servers, nginx, chromium, ...) are started on loopback
//! by `tests/peers/` through `support`; each module's own comment says what it covers.
//!
//! Two suites have binaries of their own because they read or change what is process-wide:
//! `proxy_auth_kerberos` sets `KRB5_CONFIG`/`KRB5CCNAME` (GSSAPI reads them in-process), and
//! `pac_isolation` measures this process's own memory and CPU.

#[path = "../support/mod.rs"]
mod support;

mod admission;
mod autoproxy;
mod autoproxy_more;
mod client_access;
mod clients;
mod config_files;
mod config_reference;
mod credential_leaks;
mod credential_trust;
mod dashboard;
mod deploy_container;
mod deploy_kubernetes;
mod deploy_systemd;
mod doctor;
mod faults;
mod hardening;
mod http_forwarding;
mod intercept;
mod laptop_network;
mod limits;
mod module_graph;
mod no_secrets_in_logs;
mod operations;
mod own_destinations;
mod pac_command;
mod pac_parent_death;
mod peers_smoke;
mod proxy_auth;
mod proxy_auth_keytab;
mod request_path;
mod scopes;
mod secrets_never_echoed;
mod security_and_shutdown;
mod socket_activation;
mod socks_upstream;
mod spn_canonical;
mod squid_upstream;
mod status_page;
mod tls_upstream;
mod tunnels;
mod wpad_discovery;
mod wpad_proxy;

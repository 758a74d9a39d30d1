//! Name resolution for upstream connections: static hosts, then hickory or getaddrinfo.
//!
//! Answers come from `[dns.hosts]` first, then the configured resolver, bounded by the resolve
//! timeout. IP literals never reach a resolver. Errors are [`ProxyError`]s of kind `dns` or
//! `dns-timeout`; the detail names the host, never anything else of the request.
//!
//! The resolver is rebuilt on a network change ([`Resolver::rebuild`]: resolv.conf read again,
//! cached answers dropped); clones share it, so the PAC engine's lookups follow too.
//!
//! [`Resolver::canonical_name`] asks the same resolver for a proxy's canonical name (the
//! Kerberos SPN's host): the `[dns]` settings that decide where a connection goes decide the
//! SPN too (hickory's answer, or getaddrinfo's `AI_CANONNAME` with `resolver = "system"`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;

mod canonical_name;

use self::canonical_name::Cache as CanonicalCache;
use crate::config::{DnsConfig, ResolverKind};
use crate::error::{ErrorKind, ProxyError};
use crate::target::Host;

#[derive(Clone)]
pub struct Resolver {
    /// hickory (`resolver = "hickory"`), replaced on [`Resolver::rebuild`]; `None` =
    /// getaddrinfo.
    hickory: Arc<RwLock<Option<Arc<TokioResolver>>>>,
    cfg: Arc<DnsConfig>,
    hosts: Arc<HashMap<String, Vec<IpAddr>>>,
    timeout: Option<Duration>,
    /// Canonical names found for SPNs, shared by clones, dropped on a rebuild.
    canonical: Arc<CanonicalCache>,
    /// resolv.conf as it was when hickory read it: a lookup that finds it changed rebuilds
    /// first, so the new nameservers answer at once (not after the network observer's poll).
    resolv_stamp: Arc<std::sync::Mutex<Option<ResolvStamp>>>,
}

/// What tells a rewritten resolv.conf apart: (modification time, inode, length).
type ResolvStamp = (std::time::SystemTime, u64, u64);

fn resolv_stamp() -> Option<ResolvStamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata("/etc/resolv.conf").ok()?;
    Some((m.modified().ok()?, m.ino(), m.len()))
}

fn hickory(cfg: &DnsConfig) -> Result<TokioResolver, hickory_resolver::net::NetError> {
    if cfg.servers.is_empty() {
        return TokioResolver::builder_tokio()?.build();
    }
    let servers = cfg
        .servers
        .iter()
        .map(|a| {
            let mut ns = NameServerConfig::udp_and_tcp(a.ip());
            for c in &mut ns.connections {
                c.port = a.port();
            }
            ns
        })
        .collect();
    TokioResolver::builder_with_config(
        ResolverConfig::from_name_servers(servers),
        TokioRuntimeProvider::default(),
    )
    .build()
}

impl Resolver {
    pub fn new(cfg: &DnsConfig, timeout: Option<Duration>) -> Resolver {
        Resolver {
            hickory: Arc::new(RwLock::new(Self::build(cfg))),
            cfg: Arc::new(cfg.clone()),
            hosts: Arc::new(cfg.hosts.clone()),
            timeout,
            canonical: Arc::default(),
            resolv_stamp: Arc::new(std::sync::Mutex::new(resolv_stamp())),
        }
    }

    /// Rebuilds when resolv.conf changed since hickory read it (hickory with the system's
    /// servers only; `dns.servers` and getaddrinfo do not depend on it here).
    fn follow_resolv_conf(&self) {
        if self.cfg.resolver != ResolverKind::Hickory || !self.cfg.servers.is_empty() {
            return;
        }
        let now = resolv_stamp();
        let changed = {
            let mut seen = self.resolv_stamp.lock().unwrap_or_else(|p| p.into_inner());
            let changed = *seen != now;
            *seen = now;
            changed
        };
        if changed {
            self.rebuild();
        }
    }

    /// Builds the resolver again (every clone sees the new one): resolv.conf is read anew
    /// and cached answers are gone. For a network change.
    pub fn rebuild(&self) {
        *self.resolv_stamp.lock().unwrap_or_else(|p| p.into_inner()) = resolv_stamp();
        let fresh = Self::build(&self.cfg);
        *self.hickory.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        self.canonical.clear();
    }

    fn build(cfg: &DnsConfig) -> Option<Arc<TokioResolver>> {
        match cfg.resolver {
            ResolverKind::System => None,
            ResolverKind::Hickory => match hickory(cfg) {
                Ok(r) => Some(Arc::new(r)),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the system DNS configuration; using getaddrinfo");
                    None
                }
            },
        }
    }

    /// All addresses of `host`, in the resolver's preference order, with `port` attached.
    pub async fn resolve(&self, host: &Host, port: u16) -> Result<Vec<SocketAddr>, ProxyError> {
        self.resolve_within(host, port, self.timeout).await
    }

    /// As [`Resolver::resolve`], within `timeout` (a scope's `timeouts.resolve`; None: no limit).
    pub async fn resolve_within(
        &self,
        host: &Host,
        port: u16,
        timeout: Option<Duration>,
    ) -> Result<Vec<SocketAddr>, ProxyError> {
        let name = match host {
            Host::Ip(ip) => return Ok(vec![SocketAddr::new(*ip, port)]),
            Host::Name(n) => n,
        };
        if let Some(ips) = self.hosts.get(name) {
            return Ok(ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect());
        }
        self.follow_resolv_conf();
        let lookup = self.lookup(name, port);
        let result = match timeout {
            Some(t) => tokio::time::timeout(t, lookup).await.map_err(|_| {
                ProxyError::new(
                    ErrorKind::DnsTimeout,
                    format!("resolving {name} took longer than {t:?}"),
                )
            })?,
            None => lookup.await,
        };
        match result {
            Ok(addrs) if !addrs.is_empty() => Ok(addrs),
            Ok(_) => Err(ProxyError::new(
                ErrorKind::Dns,
                format!("no addresses for {name}"),
            )),
            Err(why) => Err(ProxyError::new(
                ErrorKind::Dns,
                format!("cannot resolve {name}: {why}"),
            )),
        }
    }

    /// The canonical name of `host` for its Kerberos SPN, as Chromium finds it (CNAMEs
    /// followed, a short name completed); `None` = use the name as given: an address, a
    /// `[dns.hosts]` name, `localhost`, or a lookup that failed or outran the resolve timeout
    /// ([`canonical_name::DEFAULT_BUDGET`] when that is infinite). Answers are cached briefly.
    pub async fn canonical_name(&self, host: &str) -> Option<String> {
        let name = canonical_name::normalize(host.trim_start_matches('[').trim_end_matches(']'))?;
        if name.parse::<IpAddr>().is_ok()
            || self.hosts.contains_key(&name)
            || name == "localhost"
            || name.ends_with(".localhost")
        {
            return None;
        }
        if let Some(known) = self.canonical.get(&name, tokio::time::Instant::now()) {
            return known;
        }
        let budget = self.timeout.unwrap_or(canonical_name::DEFAULT_BUDGET);
        let found = tokio::time::timeout(budget, self.lookup_canonical(&name))
            .await
            .ok()
            .flatten();
        match &found {
            Some(c) => tracing::debug!(proxy = %name, canonical = %c, "canonical name for the SPN"),
            None => {
                tracing::debug!(proxy = %name, "no canonical name for the SPN; using the name as given")
            }
        }
        self.canonical
            .put(&name, found.clone(), tokio::time::Instant::now());
        found
    }

    async fn lookup_canonical(&self, name: &str) -> Option<String> {
        let hickory = self
            .hickory
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match hickory {
            Some(r) => {
                let fqdn = if name.contains('.') {
                    format!("{name}.")
                } else {
                    name.to_string()
                };
                let answer = r.lookup_ip(fqdn.as_str()).await.ok()?;
                canonical_name::from_answers(answer.as_lookup().answers())
            }
            None => {
                let name = name.to_string();
                tokio::task::spawn_blocking(move || canonical_name::getaddrinfo_canonical(&name))
                    .await
                    .ok()
                    .flatten()
            }
        }
    }

    async fn lookup(&self, name: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        if name == "localhost" || name.ends_with(".localhost") {
            return Ok(vec![
                SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), port),
                SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), port),
            ]);
        }
        let hickory = self
            .hickory
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match hickory {
            Some(r) => {
                let fqdn = if name.contains('.') {
                    format!("{name}.")
                } else {
                    name.to_string()
                };
                let answer = r.lookup_ip(fqdn.as_str()).await.map_err(|e| {
                    if e.is_no_records_found() || e.is_nx_domain() {
                        "no such host".to_string()
                    } else {
                        e.to_string()
                    }
                })?;
                Ok(answer.iter().map(|ip| SocketAddr::new(ip, port)).collect())
            }
            None => tokio::net::lookup_host((name, port))
                .await
                .map(|it| it.collect())
                .map_err(|e| e.to_string()),
        }
    }
}

/// PAC scripts resolve with the proxy's resolver (static hosts, then hickory or getaddrinfo):
/// `dnsResolve()` answers what a connection to that name would use.
impl waypost_pac::DnsLookup for Resolver {
    fn lookup<'a>(&'a self, name: &'a str) -> waypost_pac::LookupFuture<'a> {
        Box::pin(async move {
            let host = Host::Name(name.to_string());
            let addrs = self.resolve(&host, 0).await.map_err(|e| e.detail)?;
            Ok(addrs.into_iter().map(|a| a.ip()).collect())
        })
    }
}

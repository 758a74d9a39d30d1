//! DNS for scripts: fixed answers, a small positive/negative cache, and lookups through a
//! pluggable async backend (hickory by default) run on the caller's tokio runtime with a
//! deadline. Workers block only themselves while waiting, so a slow server never stalls other
//! evaluations. Also finds the machine's own addresses for `myIpAddress()`, again after every
//! network change ([`DnsService::network_changed`]: re-probed unless pinned, cache emptied).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::metrics::Metrics;
use crate::options::PacOptions;

pub use crate::lookup::{DnsLookup, HickoryLookup, LookupFuture};

/// Outcome of one script lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resolved {
    /// Addresses, in resolver order.
    Found(Vec<IpAddr>),
    /// Not resolvable (NXDOMAIN, error, deadline, or DNS disabled).
    NotFound,
    /// The evaluation's lookup budget is spent.
    OverBudget,
}

type CacheEntry = (Instant, Option<Vec<IpAddr>>);

/// A blocking lookup answered by someone else: in a worker process, the proxy (which resolves
/// with its own resolver and deadline). `None` = not resolvable.
pub(crate) type RemoteLookup = Box<dyn Fn(&str) -> Option<Vec<IpAddr>> + Send + Sync>;

/// Shared by all workers of one engine.
pub(crate) struct DnsService {
    fixed: HashMap<String, Vec<IpAddr>>,
    backend: Option<Arc<dyn DnsLookup>>,
    runtime: Option<tokio::runtime::Handle>,
    cache: Mutex<HashMap<String, CacheEntry>>,
    timeout: Duration,
    positive_ttl: Duration,
    negative_ttl: Duration,
    cache_size: usize,
    my_ips: RwLock<Vec<IpAddr>>,
    /// `options.my_ip` was given: the addresses never change.
    pinned: bool,
    metrics: Metrics,
    remote: Option<RemoteLookup>,
}

impl DnsService {
    pub fn new(options: &PacOptions, metrics: Metrics) -> DnsService {
        let runtime = tokio::runtime::Handle::try_current().ok();
        let backend = if options.no_dns {
            None
        } else if let Some(b) = &options.dns_backend {
            Some(b.clone())
        } else if runtime.is_some() {
            match HickoryLookup::from_system() {
                Ok(h) => Some(Arc::new(h) as Arc<dyn DnsLookup>),
                Err(err) => {
                    tracing::warn!(%err, "no system DNS configuration; PAC DNS lookups will fail");
                    None
                }
            }
        } else {
            None
        };
        let fixed = options
            .dns_fixed
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        let my_ips = if options.my_ip.is_empty() {
            probe_local_addresses()
        } else {
            options.my_ip.clone()
        };
        DnsService {
            fixed,
            backend,
            runtime,
            cache: Mutex::new(HashMap::new()),
            timeout: options.dns_timeout,
            positive_ttl: options.dns_cache_ttl,
            negative_ttl: options.dns_negative_ttl,
            cache_size: options.dns_cache_size,
            my_ips: RwLock::new(my_ips),
            pinned: !options.my_ip.is_empty(),
            metrics,
            remote: None,
        }
    }

    /// A service whose lookups are answered by `remote` (fixed answers, literals, the cache
    /// and the budget still apply here).
    pub fn with_remote(mut self, remote: RemoteLookup) -> DnsService {
        self.remote = Some(remote);
        self
    }

    /// One lookup for a worker process: fixed answers, the cache, then the backend within
    /// the DNS deadline. `None` = not resolvable.
    pub async fn lookup_for_worker(&self, name: &str) -> Option<Vec<IpAddr>> {
        if let Some(ip) = literal(name) {
            return Some(vec![ip]);
        }
        let name = idna_name(name)?;
        if let Some(ips) = self.fixed.get(&name) {
            return Some(ips.clone());
        }
        let backend = self.backend.as_ref()?;
        if let Some(hit) = self.cached(&name) {
            self.metrics.dns.with_label_values(&["cached"]).inc();
            return hit;
        }
        let answer = tokio::time::timeout(self.timeout, backend.lookup(&name)).await;
        let (outcome, ips) = match answer {
            Ok(Ok(ips)) if !ips.is_empty() => ("ok", Some(ips)),
            Ok(_) => ("nxdomain", None),
            Err(_) => ("timeout", None),
        };
        self.metrics.dns.with_label_values(&[outcome]).inc();
        self.store(name, ips.clone());
        ips
    }

    /// Resolves `name`. `budget` counts lookups that go to the backend in this evaluation.
    /// Blocks the calling (worker) thread for at most the DNS deadline.
    pub fn resolve(&self, name: &str, budget: &std::cell::Cell<u32>) -> Resolved {
        if let Some(ip) = literal(name) {
            return Resolved::Found(vec![ip]);
        }
        let Some(name) = idna_name(name) else {
            return Resolved::NotFound;
        };
        if let Some(ips) = self.fixed.get(&name) {
            return found_or_not(Some(ips.clone()));
        }
        if self.remote.is_none() && (self.backend.is_none() || self.runtime.is_none()) {
            return Resolved::NotFound;
        }
        if let Some(hit) = self.cached(&name) {
            self.metrics.dns.with_label_values(&["cached"]).inc();
            return found_or_not(hit);
        }
        if budget.get() == 0 {
            self.metrics.dns.with_label_values(&["budget"]).inc();
            return Resolved::OverBudget;
        }
        budget.set(budget.get() - 1);
        if let Some(remote) = &self.remote {
            let ips = remote(&name);
            self.store(name, ips.clone());
            return found_or_not(ips);
        }
        let (Some(backend), Some(runtime)) = (&self.backend, &self.runtime) else {
            return Resolved::NotFound;
        };
        let timeout = self.timeout;
        let answer =
            runtime.block_on(async { tokio::time::timeout(timeout, backend.lookup(&name)).await });
        let (outcome, ips) = match answer {
            Ok(Ok(ips)) if !ips.is_empty() => ("ok", Some(ips)),
            Ok(_) => ("nxdomain", None),
            Err(_) => ("timeout", None),
        };
        self.metrics.dns.with_label_values(&[outcome]).inc();
        self.store(name, ips.clone());
        found_or_not(ips)
    }

    fn cached(&self, name: &str) -> Option<Option<Vec<IpAddr>>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let (at, ips) = cache.get(name)?;
        let ttl = if ips.is_some() {
            self.positive_ttl
        } else {
            self.negative_ttl
        };
        (at.elapsed() < ttl).then(|| ips.clone())
    }

    fn store(&self, name: String, ips: Option<Vec<IpAddr>>) {
        if self.cache_size == 0 {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= self.cache_size {
            let now = Instant::now();
            let max_ttl = self.positive_ttl.max(self.negative_ttl);
            cache.retain(|_, (at, _)| now.duration_since(*at) < max_ttl);
            if cache.len() >= self.cache_size {
                cache.clear();
            }
        }
        cache.insert(name, (Instant::now(), ips));
    }

    /// The machine's addresses, best first (pinned or probed).
    pub fn my_ips(&self) -> Vec<IpAddr> {
        self.my_ips
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The network changed: local addresses are probed again (unless pinned) and cached
    /// answers are forgotten. Returns the addresses now in force.
    pub fn network_changed(&self) -> Vec<IpAddr> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
        if !self.pinned {
            self.set_my_ips(probe_local_addresses());
        }
        self.my_ips()
    }

    /// Sets the local addresses (a worker process told by the proxy) and forgets cached
    /// answers.
    pub fn set_my_ips(&self, ips: Vec<IpAddr>) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
        *self.my_ips.write().unwrap_or_else(|p| p.into_inner()) = ips;
    }
}

fn found_or_not(ips: Option<Vec<IpAddr>>) -> Resolved {
    match ips {
        Some(ips) if !ips.is_empty() => Resolved::Found(ips),
        _ => Resolved::NotFound,
    }
}

fn literal(name: &str) -> Option<IpAddr> {
    name.parse::<IpAddr>().ok()
}

/// Lower-case punycode form of a host name; `None` when IDNA conversion fails.
fn idna_name(name: &str) -> Option<String> {
    if name.is_ascii() {
        return Some(name.to_ascii_lowercase());
    }
    match url::Host::parse(name).ok()? {
        url::Host::Domain(d) => Some(d),
        other => Some(other.to_string()),
    }
}

/// Source addresses of UDP sockets "connected" to public resolvers (no packet is sent), so the
/// answer is the address of the interface that routes to the internet. Without a route there
/// (an isolated network, a VPN that routes only its own subnets) the interfaces' own addresses,
/// as Chromium does: loopback and link-local never; empty when nothing else exists.
pub(crate) fn probe_local_addresses() -> Vec<IpAddr> {
    let routed = routed_addresses();
    if !routed.is_empty() {
        return routed;
    }
    interface_addresses()
}

/// Non-loopback, non-link-local addresses of the interfaces that are up, IPv4 first.
fn interface_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut found: Vec<IpAddr> = Vec::new();
    for a in addrs {
        if !a.flags.contains(nix::net::if_::InterfaceFlags::IFF_UP) {
            continue;
        }
        let Some(addr) = a.address else { continue };
        let ip = if let Some(v4) = addr.as_sockaddr_in() {
            IpAddr::V4(v4.ip())
        } else if let Some(v6) = addr.as_sockaddr_in6() {
            IpAddr::V6(v6.ip())
        } else {
            continue;
        };
        let link_local = match ip {
            IpAddr::V4(v4) => v4.is_link_local(),
            IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
        };
        if !ip.is_loopback() && !ip.is_unspecified() && !link_local && !found.contains(&ip) {
            found.push(ip);
        }
    }
    found.sort_by_key(|ip| ip.is_ipv6());
    found
}

fn routed_addresses() -> Vec<IpAddr> {
    let targets: [(SocketAddr, SocketAddr); 2] = [
        (
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            SocketAddr::from(([8, 8, 8, 8], 53)),
        ),
        (
            SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)),
            SocketAddr::from(([0x2001, 0x4860, 0x4860, 0, 0, 0, 0, 0x8888], 53)),
        ),
    ];
    let mut found = Vec::new();
    for (bind, target) in targets {
        let Ok(socket) = UdpSocket::bind(bind) else {
            continue;
        };
        if socket.connect(target).is_err() {
            continue;
        }
        if let Ok(local) = socket.local_addr() {
            let ip = local.ip();
            if !ip.is_loopback() && !ip.is_unspecified() && !found.contains(&ip) {
                found.push(ip);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    struct Slow(Duration);
    impl DnsLookup for Slow {
        fn lookup<'a>(&'a self, _: &'a str) -> LookupFuture<'a> {
            let d = self.0;
            Box::pin(async move {
                tokio::time::sleep(d).await;
                Ok(vec![IpAddr::from([10, 0, 0, 1])])
            })
        }
    }

    fn service(options: PacOptions) -> DnsService {
        DnsService::new(&options, Metrics::new(None))
    }

    #[test]
    fn fixed_answers_and_literals_resolve_without_a_backend() {
        let mut o = PacOptions {
            no_dns: true,
            ..PacOptions::default()
        };
        o.dns_fixed
            .insert("Intranet.Example".into(), vec![IpAddr::from([10, 1, 1, 1])]);
        let s = service(o);
        let budget = Cell::new(0);
        assert_eq!(
            s.resolve("intranet.example", &budget),
            Resolved::Found(vec![IpAddr::from([10, 1, 1, 1])])
        );
        assert_eq!(
            s.resolve("::1", &budget),
            Resolved::Found(vec!["::1".parse().unwrap()])
        );
        assert_eq!(s.resolve("elsewhere.example", &budget), Resolved::NotFound);
    }

    #[test]
    fn a_slow_server_hits_the_deadline_and_the_answer_is_cached_negatively() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let o = PacOptions {
            dns_backend: Some(Arc::new(Slow(Duration::from_secs(5)))),
            dns_timeout: Duration::from_millis(50),
            ..PacOptions::default()
        };
        let s = {
            let _guard = rt.enter();
            service(o)
        };
        let budget = Cell::new(4);
        let start = Instant::now();
        assert_eq!(s.resolve("slow.example", &budget), Resolved::NotFound);
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_eq!(s.resolve("slow.example", &budget), Resolved::NotFound);
        assert_eq!(
            budget.get(),
            3,
            "the second lookup came from the negative cache"
        );
    }

    #[test]
    fn lookups_past_the_budget_are_refused() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let o = PacOptions {
            dns_backend: Some(Arc::new(Slow(Duration::ZERO))),
            ..PacOptions::default()
        };
        let s = {
            let _guard = rt.enter();
            service(o)
        };
        let budget = Cell::new(2);
        assert!(matches!(
            s.resolve("a.example", &budget),
            Resolved::Found(_)
        ));
        assert!(matches!(
            s.resolve("b.example", &budget),
            Resolved::Found(_)
        ));
        assert_eq!(s.resolve("c.example", &budget), Resolved::OverBudget);
        assert!(
            matches!(s.resolve("a.example", &budget), Resolved::Found(_)),
            "cached names are free"
        );
    }

    #[test]
    fn the_local_address_probe_never_returns_loopback() {
        assert!(probe_local_addresses().iter().all(|ip| !ip.is_loopback()));
    }
}

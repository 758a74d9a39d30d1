//! The seam to a DNS implementation for scripts: the [`DnsLookup`] trait (all addresses of a
//! name) and its default backend, hickory with the system configuration. Below both the
//! options that carry a backend ([`crate::options`]) and the service that uses it
//! ([`crate::dns`]).

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

/// A boxed lookup future.
pub type LookupFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<IpAddr>, String>> + Send + 'a>>;

/// The seam to a DNS implementation: all addresses of a name, any family.
pub trait DnsLookup: Send + Sync {
    /// Looks `name` up (already IDNA-encoded, lower-case).
    fn lookup<'a>(&'a self, name: &'a str) -> LookupFuture<'a>;
}

/// The default backend: hickory with the system configuration.
pub struct HickoryLookup(hickory_resolver::TokioResolver);

impl HickoryLookup {
    /// Builds a resolver from `/etc/resolv.conf` (and `/etc/hosts`).
    pub fn from_system() -> Result<HickoryLookup, String> {
        let builder =
            hickory_resolver::TokioResolver::builder_tokio().map_err(|e| e.to_string())?;
        builder
            .build()
            .map(HickoryLookup)
            .map_err(|e| e.to_string())
    }
}

impl DnsLookup for HickoryLookup {
    fn lookup<'a>(&'a self, name: &'a str) -> LookupFuture<'a> {
        Box::pin(async move {
            let answer = self.0.lookup_ip(name).await.map_err(|e| e.to_string())?;
            Ok(answer.iter().collect())
        })
    }
}

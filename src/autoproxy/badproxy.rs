//! Proxies that failed recently: tried last until their retry interval is over.
//!
//! A proxy is marked bad when connecting to it fails (refused, timeout, TLS, a 5xx to CONNECT);
//! while marked it moves to the end of every PAC list (as Chrome and WinHTTP do) but is still
//! tried when nothing else works. One short lock, never held across `.await`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::target::ProxyAddr;

pub struct BadProxies {
    retry: Duration,
    marked: Mutex<HashMap<ProxyAddr, Instant>>,
    gauge: prometheus::IntGauge,
}

impl BadProxies {
    pub fn new(retry: Duration, gauge: prometheus::IntGauge) -> BadProxies {
        BadProxies {
            retry,
            marked: Mutex::new(HashMap::new()),
            gauge,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ProxyAddr, Instant>> {
        self.marked.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn mark(&self, proxy: &ProxyAddr) {
        let mut m = self.lock();
        m.insert(proxy.clone(), Instant::now() + self.retry);
        self.gauge.set(m.len() as i64);
    }

    /// Forgets every mark (the network changed: a proxy unreachable from the last network
    /// may be reachable from this one).
    pub fn clear(&self) {
        let mut m = self.lock();
        m.clear();
        self.gauge.set(0);
    }

    /// The proxies still marked, with the time left until they are tried first again.
    pub fn snapshot(&self) -> Vec<(ProxyAddr, Duration)> {
        let now = Instant::now();
        let mut m = self.lock();
        m.retain(|_, until| *until > now);
        self.gauge.set(m.len() as i64);
        let mut v: Vec<_> = m
            .iter()
            .map(|(p, until)| (p.clone(), *until - now))
            .collect();
        v.sort_by_key(|(p, _)| p.label());
        v
    }

    /// Whether `proxy` is marked now. Expired marks are dropped here too, so the gauge counts
    /// only proxies still marked (also without anyone asking `/explain`).
    pub fn is_bad(&self, proxy: &ProxyAddr) -> bool {
        let now = Instant::now();
        let mut m = self.lock();
        let bad = m.get(proxy).is_some_and(|until| *until > now);
        if !bad && m.remove(proxy).is_some() {
            m.retain(|_, until| *until > now);
            self.gauge.set(m.len() as i64);
        }
        bad
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clearing_forgets_every_mark_and_resets_the_gauge() {
        let gauge = prometheus::IntGauge::new("marked", "test").unwrap();
        let bad = BadProxies::new(Duration::from_secs(300), gauge.clone());
        let p = ProxyAddr::parse("http://10.66.0.1:8080").unwrap();
        bad.mark(&p);
        assert!(bad.is_bad(&p));
        assert_eq!(gauge.get(), 1);
        bad.clear();
        assert!(!bad.is_bad(&p));
        assert_eq!(gauge.get(), 0);
    }
}

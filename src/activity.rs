//! What the proxy has been doing lately, kept in process for the status page: the last
//! requests (a bounded ring) and one sample every [`SAMPLE_EVERY`] of request rate, errors,
//! pool use and tunnels over the last [`HISTORY`] (another bounded ring).
//!
//! It owns only these two rings, each behind one short lock never held across `.await`. It
//! stores no path, query, header or credential: a request is recorded as the access log
//! records it (method, `host:port`, route, status, outcome, duration, request id).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// How many finished requests the status page lists.
pub const RECENT: usize = 50;
/// Time between two samples of the charts.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// How far back the charts go.
pub const HISTORY: Duration = Duration::from_secs(15 * 60);

/// One finished request or tunnel, as the access log has it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecentRequest {
    pub id: String,
    /// Unix time (seconds) the request ended.
    pub at: f64,
    pub kind: &'static str,
    pub method: String,
    /// `scheme://host:port` or `host:port`: never a path, query or userinfo.
    pub target: String,
    pub route: String,
    pub status: u16,
    pub outcome: &'static str,
    pub duration_ms: u64,
}

/// One point of the charts: counts over the interval before `at`, gauges at `at`.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Sample {
    pub at: f64,
    pub requests: u64,
    pub errors: u64,
    pub pool_active: i64,
    pub pool_idle: i64,
    pub tunnels: i64,
}

/// Running totals the sampler turns into per-interval counts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    pub requests: u64,
    pub errors: u64,
    pub pool_active: i64,
    pub pool_idle: i64,
    pub tunnels: i64,
}

#[derive(Default)]
pub struct Activity {
    recent: Mutex<VecDeque<RecentRequest>>,
    samples: Mutex<(VecDeque<Sample>, Option<Totals>)>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked mid-update of plain data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Activity {
    pub fn record(&self, r: RecentRequest) {
        let mut q = lock(&self.recent);
        if q.len() == RECENT {
            q.pop_front();
        }
        q.push_back(r);
    }

    /// The last requests, newest first.
    pub fn recent(&self) -> Vec<RecentRequest> {
        lock(&self.recent).iter().rev().cloned().collect()
    }

    /// Adds a sample from the running totals now (the first call only sets the baseline).
    pub fn sample(&self, now: SystemTime, t: Totals) {
        let mut g = lock(&self.samples);
        let (ring, last) = &mut *g;
        if let Some(prev) = last {
            let cap = (HISTORY.as_secs() / SAMPLE_EVERY.as_secs()) as usize;
            if ring.len() == cap {
                ring.pop_front();
            }
            ring.push_back(Sample {
                at: unix(now),
                requests: t.requests.saturating_sub(prev.requests),
                errors: t.errors.saturating_sub(prev.errors),
                pool_active: t.pool_active,
                pool_idle: t.pool_idle,
                tunnels: t.tunnels,
            });
        }
        *last = Some(t);
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        lock(&self.samples).0.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(n: usize) -> RecentRequest {
        RecentRequest {
            id: n.to_string(),
            at: 0.0,
            kind: "http",
            method: "GET".into(),
            target: "http://a:80".into(),
            route: "DIRECT".into(),
            status: 200,
            outcome: "ok",
            duration_ms: 1,
        }
    }

    #[test]
    fn recent_requests_keep_only_the_newest_ones_newest_first() {
        let a = Activity::default();
        for n in 0..RECENT + 5 {
            a.record(req(n));
        }
        let r = a.recent();
        assert_eq!(r.len(), RECENT);
        assert_eq!(r[0].id, (RECENT + 4).to_string());
        assert_eq!(r[RECENT - 1].id, "5");
    }

    #[test]
    fn samples_count_what_happened_since_the_previous_one() {
        let a = Activity::default();
        let t = |requests, errors| Totals {
            requests,
            errors,
            pool_active: 2,
            ..Totals::default()
        };
        a.sample(SystemTime::now(), t(10, 1));
        assert!(a.samples().is_empty(), "the first call is the baseline");
        a.sample(SystemTime::now(), t(25, 4));
        let s = a.samples();
        assert_eq!((s[0].requests, s[0].errors, s[0].pool_active), (15, 3, 2));
    }
}

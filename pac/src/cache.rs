//! The result cache, as WinHTTP caches autoproxy results: keyed by the sanitised URL (all https
//! requests to one origin share an entry), with a TTL and a size bound, and tagged with the
//! script generation so answers of a replaced script are never served.
//!
//! A flush names the generation now in force and the cache keeps it as a floor, under the same
//! lock as the entries: an insert from an older generation (an evaluation that was in flight
//! during the flush) is refused, so no answer of a replaced script or of the old network's
//! addresses enters the cache after the flush, whatever the interleaving.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::verdict::ProxyEntry;

#[derive(Clone)]
pub(crate) struct CachedAnswer {
    pub raw: String,
    pub entries: Vec<ProxyEntry>,
}

pub(crate) struct ResultCache {
    ttl: Duration,
    capacity: usize,
    map: Mutex<Entries>,
}

struct Entries {
    /// The generation of the last flush: inserts from older generations are refused.
    floor: u64,
    map: HashMap<String, (Instant, u64, CachedAnswer)>,
}

impl ResultCache {
    pub fn new(ttl: Duration, capacity: usize) -> ResultCache {
        ResultCache {
            ttl,
            capacity,
            map: Mutex::new(Entries {
                floor: 0,
                map: HashMap::new(),
            }),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero() && self.capacity > 0
    }

    pub fn get(&self, key: &str, generation: u64) -> Option<CachedAnswer> {
        let entries = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let (at, g, answer) = entries.map.get(key)?;
        (*g == generation && at.elapsed() < self.ttl).then(|| answer.clone())
    }

    /// Stores `answer`, evaluated under `generation`; refused when a flush for a newer
    /// generation came first.
    pub fn insert(&self, key: String, generation: u64, answer: CachedAnswer) {
        if !self.enabled() {
            return;
        }
        let mut entries = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if generation < entries.floor {
            return;
        }
        let map = &mut entries.map;
        if map.len() >= self.capacity && !map.contains_key(&key) {
            let ttl = self.ttl;
            map.retain(|_, (at, g, _)| *g == generation && at.elapsed() < ttl);
            if map.len() >= self.capacity {
                // Still full of live entries: drop an arbitrary eighth to make room in bulk.
                let drop: Vec<String> = map.keys().take(self.capacity / 8 + 1).cloned().collect();
                for k in drop {
                    map.remove(&k);
                }
            }
        }
        map.insert(key, (Instant::now(), generation, answer));
    }

    /// Empties the cache for `generation` (the one now in force): from now on, inserts from
    /// older generations are refused.
    pub fn flush(&self, generation: u64) {
        let mut entries = self.map.lock().unwrap_or_else(|p| p.into_inner());
        entries.floor = entries.floor.max(generation);
        entries.map.clear();
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(raw: &str) -> CachedAnswer {
        CachedAnswer {
            raw: raw.into(),
            entries: vec![ProxyEntry::Direct],
        }
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire_after_the_ttl() {
        let c = ResultCache::new(Duration::from_secs(10), 8);
        c.insert("k".into(), 1, answer("DIRECT"));
        assert!(c.get("k", 1).is_some());
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(c.get("k", 1).is_none());
    }

    #[tokio::test]
    async fn answers_of_another_script_generation_are_not_served() {
        let c = ResultCache::new(Duration::from_secs(10), 8);
        c.insert("k".into(), 1, answer("DIRECT"));
        assert!(c.get("k", 2).is_none());
    }

    #[tokio::test]
    async fn an_answer_evaluated_before_a_flush_is_not_cached_after_it() {
        let c = ResultCache::new(Duration::from_secs(10), 8);
        c.flush(3);
        c.insert("old".into(), 2, answer("PROXY old.example:1"));
        assert_eq!(
            c.len(),
            0,
            "an insert from generation 2 after the flush for 3"
        );
        assert!(c.get("old", 2).is_none());
        c.insert("new".into(), 3, answer("PROXY new.example:1"));
        assert!(c.get("new", 3).is_some());
        c.flush(1);
        c.insert("older".into(), 2, answer("DIRECT"));
        assert!(c.get("older", 2).is_none(), "the floor never goes down");
    }

    #[tokio::test]
    async fn the_cache_never_grows_past_its_capacity() {
        let c = ResultCache::new(Duration::from_secs(10), 16);
        for i in 0..100 {
            c.insert(format!("k{i}"), 1, answer("DIRECT"));
            assert!(c.len() <= 16);
        }
        assert!(c.get("k99", 1).is_some());
    }
}

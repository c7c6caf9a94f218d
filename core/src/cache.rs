//! A bounded, time-limited memory of successful verifications, one per worker VM.
//!
//! Every entry lives for the same time, so the order of insertion is the order of
//! expiry (`insert_until` aside, see `push_order`): a queue beside the map is enough
//! to drop the oldest first, with no scan and no dependency.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// A SHA-256 digest, as the external answers are keyed (see `Credentials::digest`).
pub type Key = [u8; 32];

/// Keyed by `K`, a digest of a whole credential: never the credential itself,
/// so the cache holds no secret.
#[derive(Debug)]
pub struct VerifiedCache<K, V> {
    ttl_ms: u64,
    max_entries: usize,
    entries: HashMap<K, (V, u64)>,
    // (key, expiry) in insertion order; an item whose expiry no longer matches
    // the map's entry is stale and skipped.
    order: VecDeque<(K, u64)>,
}

impl<K: Copy + Eq + Hash, V: Clone> VerifiedCache<K, V> {
    /// A cache that remembers nothing when `ttl_ms` or `max_entries` is zero.
    pub fn new(ttl_ms: u64, max_entries: usize) -> Self {
        Self {
            ttl_ms,
            max_entries,
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn enabled(&self) -> bool {
        self.ttl_ms > 0 && self.max_entries > 0
    }

    pub fn get(&mut self, key: &K, now_ms: u64) -> Option<V> {
        let (value, expires) = self.entries.get(key)?;
        if now_ms < *expires {
            return Some(value.clone());
        }
        self.entries.remove(key);
        None
    }

    pub fn insert(&mut self, key: K, value: V, now_ms: u64) {
        if !self.enabled() {
            return;
        }
        self.evict(now_ms);
        let expires = now_ms.saturating_add(self.ttl_ms);
        self.entries.insert(key, (value, expires));
        self.push_order(key, expires);
    }

    /// Remembers `value` until `expires_ms`, for entries whose lifetime was
    /// set elsewhere (an answer read from the cache the workers share).
    pub fn insert_until(&mut self, key: K, value: V, expires_ms: u64, now_ms: u64) {
        if self.max_entries == 0 || expires_ms <= now_ms {
            return;
        }
        self.evict(now_ms);
        self.entries.insert(key, (value, expires_ms));
        self.push_order(key, expires_ms);
    }

    /// Queues a new entry. With lifetimes set elsewhere (`insert_until`) the queue
    /// is not in expiry order: `evict` stops at a long-lived entry in front while
    /// stale items pile up behind it (those `get` dropped from the map, or replaced).
    /// So once the queue holds twice the bound, it keeps only its live items, which
    /// the bound on the map limits: memory stays bounded, at amortised O(1).
    fn push_order(&mut self, key: K, expires: u64) {
        self.order.push_back((key, expires));
        if self.order.len() > 2 * self.max_entries.max(1) {
            let entries = &self.entries;
            self.order
                .retain(|(k, e)| entries.get(k).map(|(_, live)| *live) == Some(*e));
        }
    }

    /// Drops expired entries, then the oldest until one more fits.
    fn evict(&mut self, now_ms: u64) {
        while let Some(&(key, expires)) = self.order.front() {
            let live = self.entries.get(&key).map(|(_, e)| *e) == Some(expires);
            if live && expires > now_ms && self.entries.len() < self.max_entries {
                break;
            }
            self.order.pop_front();
            if live {
                self.entries.remove(&key);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Key {
        [n; 32]
    }

    fn cache<V: Clone>(ttl_ms: u64, max_entries: usize) -> VerifiedCache<Key, V> {
        VerifiedCache::new(ttl_ms, max_entries)
    }

    #[test]
    fn entry_is_found_until_it_expires() {
        let mut cache = cache(1_000, 10);
        cache.insert(key(1), "alice", 5_000);
        assert_eq!(cache.get(&key(1), 5_000), Some("alice"));
        assert_eq!(cache.get(&key(1), 5_999), Some("alice"));
        assert_eq!(cache.get(&key(1), 6_000), None);
        assert!(cache.is_empty());
    }

    #[test]
    fn queue_stays_bounded_behind_a_long_lived_entry() {
        // Regression: answers of the external service live for their own time (allow
        // 60 s, deny 5 s). One long-lived answer in front, then short ones read after
        // they expired: the queue once grew by one item for each of them.
        let mut cache = cache::<u32>(0, 10);
        cache.insert_until(key(0), 0, 3_600_000, 0);
        for n in 1..100_000u32 {
            let now = u64::from(n) * 10;
            let k = {
                let mut k = [0u8; 32];
                k[..4].copy_from_slice(&n.to_le_bytes());
                k[31] = 1;
                k
            };
            cache.insert_until(k, n, now + 5, now);
            assert_eq!(cache.get(&k, now + 5), None);
        }
        assert!(cache.order.len() <= 21, "queue of {}", cache.order.len());
        assert_eq!(cache.get(&key(0), 1_000_000), Some(0));
    }

    #[test]
    fn unknown_key_is_not_found() {
        let mut cache = cache(1_000, 10);
        cache.insert(key(1), 1, 0);
        assert_eq!(cache.get(&key(2), 0), None);
    }

    #[test]
    fn oldest_entry_goes_first_when_full() {
        let mut cache = cache(60_000, 3);
        for n in 1..=5 {
            cache.insert(key(n), n, u64::from(n));
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(&key(1), 10), None);
        assert_eq!(cache.get(&key(2), 10), None);
        assert_eq!(cache.get(&key(5), 10), Some(5));
        assert_eq!(cache.get(&key(3), 10), Some(3));
    }

    #[test]
    fn expired_entries_are_dropped_on_insert() {
        let mut cache = cache(100, 1_000);
        for n in 0..200u8 {
            cache.insert(key(n), n, u64::from(n) * 10);
        }
        // Only the last ten inserted (within 100 ms of the newest) remain.
        assert_eq!(cache.len(), 10);
        assert!(cache.order.len() <= 11);
    }

    #[test]
    fn reinserting_a_key_does_not_grow_beyond_the_bound() {
        let mut cache = cache(10, 2);
        for t in 0..10_000u64 {
            cache.insert(key(1), 1, t);
        }
        assert_eq!(cache.len(), 1);
        assert!(
            cache.order.len() <= 12,
            "queue grew to {}",
            cache.order.len()
        );
    }

    #[test]
    fn entries_with_their_own_expiry_stay_bounded_and_expire() {
        let mut cache = cache(0, 2);
        cache.insert_until(key(1), 1, 100, 0);
        cache.insert_until(key(2), 2, 50, 0);
        cache.insert_until(key(3), 3, 10, 20); // already expired: not kept
        assert_eq!(cache.get(&key(2), 49), Some(2));
        assert_eq!(cache.get(&key(2), 50), None);
        assert_eq!(cache.get(&key(1), 99), Some(1));
        for n in 4..40 {
            cache.insert_until(key(n), n, 1_000, 0);
        }
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn zero_ttl_or_size_remembers_nothing() {
        for (ttl, max) in [(0, 10), (1_000, 0)] {
            let mut cache = cache(ttl, max);
            cache.insert(key(1), 1, 0);
            assert_eq!(cache.get(&key(1), 0), None);
        }
    }
}

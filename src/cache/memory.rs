//! The embedded store: entries in this process, least recently used evicted first once their
//! bytes (bodies, headers, keys and bookkeeping) pass `max_bytes`, each dropped at its ttl. One
//! lock, held for a map operation and never across an await.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::entry::Entry;
use super::key::Key;

pub struct MemoryStore {
    inner: Mutex<Lru>,
    max_bytes: usize,
}

#[derive(Default)]
struct Lru {
    slots: HashMap<[u8; 32], Slot>,
    /// Use stamp → digest, least recently used first.
    order: BTreeMap<u64, [u8; 32]>,
    next_use: u64,
    bytes: usize,
}

struct Slot {
    entry: Entry,
    model: String,
    expires: Instant,
    used: u64,
}

/// What an entry costs besides its encoded size: its key, model name and the two maps' nodes.
const OVERHEAD: usize = std::mem::size_of::<Slot>() + 2 * 32 + 64;

// === impl MemoryStore ===

impl MemoryStore {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            inner: Mutex::new(Lru::default()),
            max_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The live entry under `key`, now the most recently used.
    pub fn get(&self, key: &Key) -> Option<Entry> {
        let now = Instant::now();
        let mut lru = self.lock();
        let lru = &mut *lru;
        let slot = lru.slots.get_mut(&key.digest)?;
        if slot.expires <= now {
            lru.remove(&key.digest);
            return None;
        }
        lru.order.remove(&slot.used);
        slot.used = lru.next_use;
        lru.order.insert(slot.used, key.digest);
        lru.next_use += 1;
        Some(slot.entry.clone())
    }

    /// Stores `entry` for `ttl`, replacing any under the same key; the least recently used go
    /// until the store fits its bound. An entry larger than the whole store is not kept.
    pub fn put(&self, key: &Key, entry: Entry, ttl: Duration) {
        let size = Lru::size(&entry, &key.model);
        if size > self.max_bytes {
            return;
        }
        let mut lru = self.lock();
        lru.remove(&key.digest);
        while lru.bytes + size > self.max_bytes {
            let Some((_, oldest)) = lru.order.pop_first() else {
                break;
            };
            lru.remove(&oldest);
            crate::metrics::cache_evicted();
        }
        let used = lru.next_use;
        lru.next_use += 1;
        lru.order.insert(used, key.digest);
        lru.bytes += size;
        lru.slots.insert(
            key.digest,
            Slot {
                entry,
                model: key.model.clone(),
                expires: Instant::now() + ttl,
                used,
            },
        );
    }

    /// Removes every entry (of `model` only, if given); how many went.
    pub fn clear(&self, model: Option<&str>) -> u64 {
        let mut lru = self.lock();
        let doomed: Vec<[u8; 32]> = lru
            .slots
            .iter()
            .filter(|(_, s)| model.is_none_or(|m| s.model == m))
            .map(|(d, _)| *d)
            .collect();
        for digest in &doomed {
            lru.remove(digest);
        }
        doomed.len() as u64
    }

    /// The bytes its entries take (the gauge, and the bound's test).
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

// === impl Lru ===

impl Lru {
    fn size(entry: &Entry, model: &str) -> usize {
        entry.size() + model.len() + OVERHEAD
    }

    fn remove(&mut self, digest: &[u8; 32]) {
        if let Some(slot) = self.slots.remove(digest) {
            self.order.remove(&slot.used);
            self.bytes -= Self::size(&slot.entry, &slot.model);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::{MemoryStore, OVERHEAD};
    use crate::cache::entry::Entry;
    use crate::cache::key::Key;

    fn key(n: u8, model: &str) -> Key {
        Key {
            digest: [n; 32],
            model: model.into(),
        }
    }

    fn entry(len: usize) -> Entry {
        Entry {
            body: Bytes::from(vec![b'x'; len]),
            usage: None,
            stored_at_ms: 0,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_least_recently_used_go_first_and_the_bound_holds() {
        let one = entry(1000).size() + 1 + OVERHEAD;
        let store = MemoryStore::new(3 * one);
        let ttl = Duration::from_secs(60);
        for n in 1..=3 {
            store.put(&key(n, "m"), entry(1000), ttl);
        }
        assert_eq!(store.bytes(), 3 * one);
        assert!(store.get(&key(1, "m")).is_some()); // 2 is now the least recently used
        store.put(&key(4, "m"), entry(1000), ttl);
        assert!(store.get(&key(2, "m")).is_none());
        assert!(store.get(&key(1, "m")).is_some() && store.get(&key(4, "m")).is_some());
        assert!(store.bytes() <= 3 * one);
        // Replacing an entry does not count it twice; one larger than the store is not kept.
        store.put(&key(4, "m"), entry(1000), ttl);
        assert_eq!(store.bytes(), 3 * one);
        store.put(&key(9, "m"), entry(4 * one), ttl);
        assert!(store.get(&key(9, "m")).is_none());
        assert_eq!(store.bytes(), 3 * one);
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire_and_clear_by_model() {
        let store = MemoryStore::new(1 << 20);
        store.put(&key(1, "a"), entry(10), Duration::from_secs(10));
        store.put(&key(2, "b"), entry(10), Duration::from_secs(100));
        store.put(&key(3, "b"), entry(10), Duration::from_secs(100));
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(store.get(&key(1, "a")).is_none(), "expired");
        assert_eq!(store.clear(Some("b")), 2);
        assert_eq!(store.bytes(), 0);
        store.put(&key(1, "a"), entry(10), Duration::from_secs(10));
        assert_eq!(store.clear(None), 1);
    }
}

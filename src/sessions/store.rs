//! The two session stores: in memory (bounded, TTL) and Redis
//! ([`super::redis`]). Both apply every change atomically: appends go to the end of the list
//! (two concurrent turns both land), and a compression replaces the front of the list only if
//! nobody compressed it since it was read (`offset` is the fence).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::redis::RedisStore;
use super::session::{Append, Compaction, Session, StoreError};

pub enum Store {
    Memory(MemoryStore),
    Redis(RedisStore),
}

/// Sessions in this process: bounded (least recently active evicted first) with TTL expiry.
pub struct MemoryStore {
    sessions: Mutex<HashMap<String, Entry>>,
    max_sessions: usize,
    ttl: Duration,
}

struct Entry {
    session: Session,
    expires: Instant,
    /// Monotonic activity stamp, for eviction order.
    touched: Instant,
}

// === impl Store ===

impl Store {
    pub async fn load(&self, id: &str) -> Result<Option<Session>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.load(id)),
            Store::Redis(r) => r.load(id).await,
        }
    }

    pub async fn append(&self, id: &str, append: Append<'_>) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => m.append(id, append),
            Store::Redis(r) => r.append(id, append).await,
        }
    }

    /// Whether the compaction applied (false: the session changed or is gone).
    pub async fn compact(&self, id: &str, compaction: Compaction) -> Result<bool, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.compact(id, compaction)),
            Store::Redis(r) => r.compact(id, compaction).await,
        }
    }

    /// Live sessions: `(count, complete)` (a Redis count stops after `COUNT_CAP` keys).
    pub async fn count(&self) -> Result<(u64, bool), StoreError> {
        match self {
            Store::Memory(m) => {
                let now = Instant::now();
                Ok((
                    m.lock().values().filter(|e| e.expires > now).count() as u64,
                    true,
                ))
            }
            Store::Redis(r) => r.count().await,
        }
    }

    pub async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.delete(id)),
            Store::Redis(r) => r.delete(id).await,
        }
    }
}

// === impl MemoryStore ===

impl MemoryStore {
    pub fn new(max_sessions: usize, ttl: Duration) -> Self {
        Self {
            sessions: Mutex::new(HashMap::new()),
            max_sessions,
            ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the session (its messages are shared, not copied).
    fn load(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut sessions = self.lock();
        match sessions.get(id) {
            Some(e) if e.expires > now => Some(e.session.clone()),
            Some(_) => {
                sessions.remove(id);
                None
            }
            None => None,
        }
    }

    fn append(&self, id: &str, append: Append<'_>) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut sessions = self.lock();
        if let Some(e) = sessions.get(id)
            && e.expires <= now
        {
            sessions.remove(id);
        }
        if !sessions.contains_key(id) && sessions.len() >= self.max_sessions {
            evict(&mut sessions, now);
        }
        let entry = sessions.entry(id.to_owned()).or_insert_with(|| Entry {
            session: Session {
                owner: append.owner.map(str::to_owned),
                created_at: append.now,
                ..Session::default()
            },
            expires: now,
            touched: now,
        });
        if entry.session.owner.as_deref() != append.owner {
            return Err(StoreError::Forbidden);
        }
        entry.expires = now + self.ttl;
        entry.touched = now;
        entry.session.last_activity = append.now;
        if let Some(system) = append.system {
            entry.session.system = Some(system);
        }
        entry.session.messages.extend(append.messages);
        Ok(())
    }

    fn compact(&self, id: &str, c: Compaction) -> bool {
        let mut sessions = self.lock();
        let Some(e) = sessions.get_mut(id) else {
            return false;
        };
        let s = &mut e.session;
        if s.offset != c.offset || c.remove > s.messages.len() {
            return false;
        }
        s.messages.drain(..c.remove);
        s.offset += c.remove as u64;
        if c.summary.is_some() {
            s.summary = c.summary;
        }
        s.compressions += 1;
        true
    }

    fn delete(&self, id: &str) -> bool {
        self.lock().remove(id).is_some()
    }
}

/// Makes room for one more: expired sessions go first, else the least recently active one.
/// A scan, run only when the store is full.
fn evict(sessions: &mut HashMap<String, Entry>, now: Instant) {
    let before = sessions.len();
    sessions.retain(|_, e| e.expires > now);
    if sessions.len() < before {
        return;
    }
    let oldest = sessions
        .iter()
        .min_by_key(|(_, e)| e.touched)
        .map(|(id, _)| id.clone());
    if let Some(id) = oldest {
        sessions.remove(&id);
        crate::metrics::session_evicted();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sessions::session::StoredMessage;
    use serde_json::value::RawValue;

    fn message(text: &str) -> StoredMessage {
        let json = serde_json::json!({"role": "user", "content": text}).to_string();
        StoredMessage::new(5, RawValue::from_string(json).unwrap())
    }

    fn append<'a>(owner: Option<&'a str>, texts: &[&str]) -> Append<'a> {
        Append {
            owner,
            now: 1,
            system: None,
            messages: texts.iter().map(|t| message(t)).collect(),
        }
    }

    #[test]
    fn appends_accumulate_and_owners_are_enforced() {
        let store = MemoryStore::new(10, Duration::from_secs(60));
        store.append("s", append(Some("a"), &["1", "2"])).unwrap();
        store.append("s", append(Some("a"), &["3"])).unwrap();
        let s = store.load("s").unwrap();
        assert_eq!(s.messages.len(), 3);
        assert_eq!(s.tokens(), 15);
        assert!(matches!(
            store.append("s", append(Some("b"), &["x"])),
            Err(StoreError::Forbidden)
        ));
    }

    #[test]
    fn a_compaction_applies_only_at_the_offset_it_read() {
        let store = MemoryStore::new(10, Duration::from_secs(60));
        store
            .append("s", append(None, &["1", "2", "3", "4"]))
            .unwrap();
        let compaction = |offset| Compaction {
            offset,
            remove: 2,
            summary: Some(message("summary")),
        };
        assert!(store.compact("s", compaction(0)));
        assert!(
            !store.compact("s", compaction(0)),
            "a stale compaction is refused"
        );
        let s = store.load("s").unwrap();
        assert_eq!((s.messages.len(), s.offset, s.compressions), (2, 2, 1));
        assert!(s.summary.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn sessions_expire_and_the_least_recently_active_is_evicted_when_full() {
        let store = MemoryStore::new(2, Duration::from_secs(60));
        store.append("a", append(None, &["1"])).unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        store.append("b", append(None, &["1"])).unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        store.append("a", append(None, &["2"])).unwrap(); // a is now the most recent
        store.append("c", append(None, &["1"])).unwrap();
        assert!(store.load("b").is_none(), "b was least recently active");
        assert!(store.load("a").is_some() && store.load("c").is_some());
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(store.load("a").is_none(), "expired after its TTL");
    }
}

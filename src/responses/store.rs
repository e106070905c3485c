//! Stored responses (PROTOCOLS.md §10.4): each response with its input items, its response
//! object and the context the next response of its chain starts from, for `responses.ttl`; and
//! an index from item id to response, so an `item_reference` finds its item. In memory
//! (bounded) or in Redis, shared by every replica.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use crate::config::{RedisTarget, ResponsesConfig, SessionStoreKind, SessionsConfig};
use crate::redis::{Guarded, Redis, RedisError};
use crate::sessions::session::StoredMessage;

/// One stored response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredResponse {
    pub id: String,
    /// The key name that created it (`None` on an open gateway).
    pub owner: Option<String>,
    /// The response object, as `POST` answered it and `GET` returns it.
    pub response: Value,
    /// This request's input items, references resolved, each with an id.
    pub input: Vec<Value>,
    /// What a response continuing this one starts from: the chain's chat messages (instructions
    /// excluded), oldest first, each with its token count; a summary replaces older turns.
    pub context: Vec<StoredMessage>,
    /// Whether the context's token counts are exact (tiktoken). New messages are stored with an
    /// upper bound (their bytes plus the per-message overhead: a token is at least a byte), so a
    /// short chain never pays for counting; a chain whose bound passes the compression threshold
    /// is counted exactly, off the request path, before anything is compressed.
    #[serde(default)]
    pub exact: bool,
    pub summary: Option<StoredMessage>,
    /// Times the context was compressed.
    #[serde(default)]
    pub compressions: u32,
}

#[derive(Debug)]
pub enum StoreError {
    /// Redis did not answer in time, or failed.
    Unavailable(String),
}

pub enum ResponseStore {
    Memory(MemoryStore),
    Redis(RedisStore),
}

/// Responses in this process, with their TTL; the oldest are evicted beyond `max`. Every
/// response lives `ttl` from its first put, so insertion order is expiry order: a queue of ids
/// makes eviction O(1) per put.
pub struct MemoryStore {
    inner: Mutex<Memory>,
    ttl: Duration,
    max: usize,
}

#[derive(Default)]
struct Memory {
    responses: HashMap<String, (StoredResponse, Instant)>,
    /// item id → response id
    items: HashMap<String, String>,
    /// Response ids, oldest first (a deleted one stays until it reaches the front).
    order: VecDeque<String>,
}

/// A response under its key, and each of its items under a key that names the response: every
/// command touches one key, so a cluster spreads them over its shards as it likes. The response
/// is written before its items point to it, so an item never leads to a response not yet there.
pub struct RedisStore {
    redis: Guarded,
    ttl: Duration,
}

// === impl StoredResponse ===

impl StoredResponse {
    /// The stored item with `id`, among this response's input and output items.
    pub fn item(&self, id: &str) -> Option<&Value> {
        let output = self.response["output"].as_array().into_iter().flatten();
        self.input
            .iter()
            .chain(output)
            .find(|item| item["id"] == id)
    }

    /// Ids of every item, input and output.
    fn item_ids(&self) -> impl Iterator<Item = &str> {
        let output = self.response["output"].as_array().into_iter().flatten();
        self.input
            .iter()
            .chain(output)
            .filter_map(|item| item["id"].as_str())
    }

    /// Tokens the context carries (summary included).
    pub fn context_tokens(&self) -> u64 {
        self.summary
            .iter()
            .chain(&self.context)
            .map(|m| u64::from(m.tokens))
            .sum()
    }
}

// === impl ResponseStore ===

impl ResponseStore {
    /// The configured store: `responses.store`, else the sessions' store; `redis`: its Redis
    /// (`responses.redis_url`, the sessions', or `redis.url`).
    pub fn new(
        config: &ResponsesConfig,
        sessions: &SessionsConfig,
        redis: Option<RedisTarget>,
    ) -> Result<Self, String> {
        let ttl = config.ttl.0;
        Ok(match (config.store.unwrap_or(sessions.store), redis) {
            (SessionStoreKind::Memory, _) => {
                ResponseStore::Memory(MemoryStore::new(ttl, config.max_responses))
            }
            (SessionStoreKind::Redis, Some(target)) => {
                ResponseStore::Redis(RedisStore::connect(&target, ttl, sessions.timeout.0)?)
            }
            (SessionStoreKind::Redis, None) => {
                return Err("responses.redis_url: required with store: redis".into());
            }
        })
    }

    pub async fn put(&self, response: StoredResponse) -> Result<(), StoreError> {
        match self {
            ResponseStore::Memory(m) => {
                m.put(response);
                Ok(())
            }
            ResponseStore::Redis(r) => r.put(&response).await,
        }
    }

    pub async fn get(&self, id: &str) -> Result<Option<StoredResponse>, StoreError> {
        match self {
            ResponseStore::Memory(m) => Ok(m.get(id)),
            ResponseStore::Redis(r) => r.get(&response_key(id), false).await,
        }
    }

    /// The response holding item `id`.
    pub async fn by_item(&self, id: &str) -> Result<Option<StoredResponse>, StoreError> {
        match self {
            ResponseStore::Memory(m) => Ok(m.by_item(id)),
            ResponseStore::Redis(r) => r.get(&item_key(id), true).await,
        }
    }

    /// Whether it existed. Its items' index entries expire with their TTL; a lookup through
    /// them finds nothing once the response is gone.
    /// Stored responses, for the dashboard: `(count, complete)` (a Redis count stops after
    /// 200,000 keys).
    pub async fn count(&self) -> Option<(u64, bool)> {
        match self {
            ResponseStore::Memory(m) => {
                let now = Instant::now();
                let inner = m.inner.lock().unwrap_or_else(|p| p.into_inner());
                Some((
                    inner.responses.values().filter(|(_, t)| *t > now).count() as u64,
                    true,
                ))
            }
            ResponseStore::Redis(r) => {
                let count = r
                    .redis
                    .redis
                    .count_keys("switchyard:response:*", "", 200_000);
                r.redis.call(count).await.ok()
            }
        }
    }

    pub async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        match self {
            ResponseStore::Memory(m) => Ok(m.delete(id)),
            ResponseStore::Redis(r) => {
                let deleted = r.redis.redis.del(vec![response_key(id)]);
                r.redis
                    .call(deleted)
                    .await
                    .map(|n| n > 0)
                    .map_err(unavailable)
            }
        }
    }
}

// === impl MemoryStore ===

impl MemoryStore {
    pub fn new(ttl: Duration, max: usize) -> Self {
        Self {
            inner: Mutex::new(Memory::default()),
            ttl,
            max: max.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn put(&self, response: StoredResponse) {
        let now = Instant::now();
        let mut memory = self.lock();
        memory.evict(now, self.max);
        for item in response.item_ids() {
            memory.items.insert(item.to_owned(), response.id.clone());
        }
        // A second put (a compaction) keeps the response's place and expiry.
        let expires = match memory.responses.get(&response.id) {
            Some((_, expires)) => *expires,
            None => {
                memory.order.push_back(response.id.clone());
                now + self.ttl
            }
        };
        memory
            .responses
            .insert(response.id.clone(), (response, expires));
    }

    fn get(&self, id: &str) -> Option<StoredResponse> {
        let memory = self.lock();
        let (response, expires) = memory.responses.get(id)?;
        (*expires > Instant::now()).then(|| response.clone())
    }

    fn by_item(&self, id: &str) -> Option<StoredResponse> {
        let response = self.lock().items.get(id).cloned()?;
        self.get(&response)
    }

    fn delete(&self, id: &str) -> bool {
        let mut memory = self.lock();
        let Some((response, _)) = memory.responses.remove(id) else {
            return false;
        };
        memory.unindex(&response);
        true
    }
}

// === impl Memory ===

impl Memory {
    /// Forgets `response`'s items (those a later response has not taken over).
    fn unindex(&mut self, response: &StoredResponse) {
        for item in response.item_ids() {
            if self.items.get(item) == Some(&response.id) {
                self.items.remove(item);
            }
        }
    }

    /// Drops expired responses from the front, then the oldest until there is room for one.
    fn evict(&mut self, now: Instant, max: usize) {
        while let Some(id) = self.order.front() {
            let live = self.responses.get(id).map(|(_, expires)| *expires > now);
            match live {
                Some(true) if self.responses.len() < max => break,
                _ => {
                    if let Some(id) = self.order.pop_front()
                        && let Some((response, _)) = self.responses.remove(&id)
                    {
                        self.unindex(&response);
                    }
                }
            }
        }
    }
}

// === impl RedisStore ===

impl RedisStore {
    /// Connects in the background: a Redis that is down fails Responses requests that need the
    /// store, not the gateway.
    pub fn connect(target: &RedisTarget, ttl: Duration, timeout: Duration) -> Result<Self, String> {
        Ok(Self {
            redis: Guarded::new(Redis::connect(target, timeout)?, "stored responses"),
            ttl,
        })
    }

    async fn put(&self, response: &StoredResponse) -> Result<(), StoreError> {
        let json =
            serde_json::to_vec(response).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let key = response_key(&response.id);
        let redis = &self.redis.redis;
        let stored = redis.set_px(key.clone(), Bytes::from(json), self.ttl);
        self.redis.call(stored).await.map_err(unavailable)?;
        let pointer = Bytes::from(key);
        let items = response
            .item_ids()
            .map(|id| redis.set_px(item_key(id), pointer.clone(), self.ttl));
        let items = futures_util::future::try_join_all(items);
        self.redis.call(items).await.map(drop).map_err(unavailable)
    }

    async fn get(
        &self,
        key: &str,
        through_item: bool,
    ) -> Result<Option<StoredResponse>, StoreError> {
        let mut key = key.to_owned();
        if through_item {
            let pointer = self.redis.call(self.redis.redis.get_bytes(key));
            let pointer = pointer.await.map_err(unavailable)?;
            match pointer.map(|p| String::from_utf8(p.to_vec())) {
                Some(Ok(response)) => key = response,
                _ => return Ok(None),
            }
        }
        let value = self.redis.call(self.redis.redis.get_bytes(key));
        let value = value.await.map_err(unavailable)?;
        Ok(value.and_then(|json| serde_json::from_slice(&json).ok()))
    }
}

/// A response's key; its items' keys hold it, for a lookup by item.
fn response_key(id: &str) -> String {
    format!("switchyard:response:{id}")
}

fn item_key(id: &str) -> String {
    format!("switchyard:response-item:{id}")
}

fn unavailable(e: RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn response(id: &str, item: &str) -> StoredResponse {
        StoredResponse {
            id: id.into(),
            owner: None,
            response: json!({"id": id, "output": [{"id": format!("{item}-out")}]}),
            input: vec![json!({"id": item, "type": "message"})],
            context: Vec::new(),
            summary: None,
            compressions: 0,
            exact: true,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_memory_store_is_bounded_expires_and_indexes_items() {
        let store = MemoryStore::new(Duration::from_secs(60), 3);
        for i in 0..5 {
            store.put(response(&format!("resp_{i}"), &format!("msg_{i}")));
        }
        assert!(
            store.get("resp_0").is_none() && store.get("resp_1").is_none(),
            "oldest evicted"
        );
        assert!(store.get("resp_4").is_some());
        assert_eq!(store.by_item("msg_3-out").unwrap().id, "resp_3");
        assert!(
            store.by_item("msg_0").is_none(),
            "an evicted response's items are gone"
        );
        assert!(store.delete("resp_3") && !store.delete("resp_3"));
        assert!(store.by_item("msg_3").is_none());
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(store.get("resp_4").is_none(), "expired after its ttl");
        store.put(response("resp_5", "msg_5"));
        assert_eq!(
            store.lock().responses.len(),
            1,
            "expired ones are dropped on the next put"
        );
    }

    #[test]
    fn a_reused_item_id_points_at_the_latest_response() {
        let store = MemoryStore::new(Duration::from_secs(60), 10);
        store.put(response("resp_a", "msg_same"));
        store.put(response("resp_b", "msg_same"));
        assert!(store.delete("resp_a"));
        assert_eq!(store.by_item("msg_same").unwrap().id, "resp_b");
    }
}

//! The result cache (DESIGN §5 "Result cache"): an identical request answered from a stored
//! answer, without an upstream call. Here: the canonical key ([`key`]), the stored entry and
//! its encoding ([`entry`]), the stores ([`memory`], [`redis`]), what a request's headers ask of the cache
//! ([`Directives`]), and the two conversions between a stream and a whole answer
//! ([`assemble`]: what a streamed miss stores; [`replay`]: how a stored answer streams). The
//! pipeline calls it from one place, `call::cached`.

pub mod assemble;
pub mod entry;
pub mod key;
pub mod memory;
pub mod redis;
pub mod replay;

use std::time::Duration;

/// What a request's headers ask of the cache (read with the request, in `request`).
pub use crate::request::CacheControl as Directives;
pub use entry::Entry;
pub use key::{Endpoint, Key};
use memory::MemoryStore;
use redis::RedisStore;
pub use redis::Unavailable;

use crate::config::{
    CacheConfig, CacheScope, ConfigDuration, ModelCache, RedisTarget, SessionStoreKind,
};
use crate::error::{ErrorKind, GatewayError};

/// The configured cache: its store and what the `cache` section says.
pub struct Cache {
    store: Store,
    ttl: Duration,
    pub max_entry_bytes: usize,
    pub scope: CacheScope,
}

pub enum Store {
    Memory(MemoryStore),
    Redis(RedisStore),
}

/// What the cache did for a request, as `x-switchyard-cache` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Hit { age: u64 },
    Miss,
    Bypass,
}

pub const VERDICT_HEADER: &str = "x-switchyard-cache";

// === impl Cache ===

impl Cache {
    /// `redis`: the cache's Redis (`cache.redis_url`, the sessions', or `redis.url`), for
    /// `store: redis`.
    pub fn from_config(config: &CacheConfig, redis: Option<RedisTarget>) -> Result<Self, String> {
        let store = match config.store {
            SessionStoreKind::Memory => Store::Memory(MemoryStore::new(
                usize::try_from(config.max_bytes.0).unwrap_or(usize::MAX),
            )),
            SessionStoreKind::Redis => {
                let target = redis.ok_or("cache.redis_url: required with store: redis")?;
                Store::Redis(RedisStore::connect(&target, config.timeout.0)?)
            }
        };
        Ok(Self {
            store,
            ttl: config.ttl.0,
            max_entry_bytes: usize::try_from(config.max_entry_bytes.0).unwrap_or(usize::MAX),
            scope: config.scope,
        })
    }

    /// How long a model's answers are kept: its own `cache.ttl`, else the section's; `None`
    /// when its cache is off.
    pub fn ttl_for(&self, model: ModelCache) -> Option<Duration> {
        match model {
            ModelCache::Off => None,
            ModelCache::Inherit => Some(self.ttl),
            ModelCache::Ttl(ConfigDuration(ttl)) => Some(ttl),
        }
    }

    /// The live entry under `key`; `Unavailable` when a shared store cannot answer in time.
    pub async fn get(&self, key: &Key) -> Result<Option<Entry>, Unavailable> {
        match &self.store {
            Store::Memory(m) => Ok(m.get(key)),
            Store::Redis(r) => r.get(key).await,
        }
    }

    /// Stores `entry` for `ttl` (a shared store that cannot take it now is skipped).
    pub async fn put(&self, key: &Key, entry: Entry, ttl: Duration) {
        match &self.store {
            Store::Memory(m) => {
                m.put(key, entry, ttl);
                crate::metrics::cache_bytes(m.bytes());
            }
            Store::Redis(r) => {
                let _ = r.put(key, &entry, ttl).await;
            }
        }
    }

    /// Empties the cache, or one model's entries; how many entries went.
    pub async fn clear(&self, model: Option<&str>) -> Result<u64, GatewayError> {
        match &self.store {
            Store::Memory(m) => {
                let removed = m.clear(model);
                crate::metrics::cache_bytes(m.bytes());
                Ok(removed)
            }
            // An admin call: a 503 naming the store, as the control plane's are.
            Store::Redis(r) => r.clear(model).await.map_err(|e| {
                GatewayError::new(
                    ErrorKind::ControlUnavailable,
                    format!("the result cache's Redis cannot be emptied now: {e}"),
                )
                .with_code("cache_unavailable")
            }),
        }
    }
}

// === impl Verdict ===

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Hit { .. } => "hit",
            Verdict::Miss => "miss",
            Verdict::Bypass => "bypass",
        }
    }
}

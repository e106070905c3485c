//! The shared store: entries in Redis, one key per entry (`switchyard:cache:<model>:<digest>`,
//! a plain `GET`/`SET … PX ttl`, so it works unchanged wherever the key's slot lives), shared by
//! every replica, each entry with its own ttl. Redis failing or slow never fails or slows a
//! request past `cache.timeout`: the call gives up, the breaker opens, and requests go on as
//! `bypass` (no lookup, no store) until a probe finds Redis again.

use std::sync::Arc;
use std::time::Duration;

use fred::types::scripts::Script;

use super::entry::Entry;
use super::key::Key;
use crate::config::RedisTarget;
use crate::redis::{Breaker, Redis, RedisError};

pub struct RedisStore {
    redis: Arc<Redis>,
    breaker: Arc<Breaker>,
    clear: Script,
}

/// The store cannot answer now (down, slow, or known down): the request bypasses the cache.
#[derive(Debug)]
pub struct Unavailable;

/// One SCAN step over the entries matching ARGV[2] from cursor ARGV[1], deleting what it found:
/// `{next cursor, deleted}`. The client loops, so Redis is never blocked for a whole pass.
const CLEAR_STEP: &str = r"
local r = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', 1000)
local n = 0
for _, k in ipairs(r[2]) do n = n + redis.call('UNLINK', k) end
return {r[1], n}
";

const PREFIX: &str = "switchyard:cache:";

// === impl RedisStore ===

impl RedisStore {
    pub fn connect(target: &RedisTarget, timeout: Duration) -> Result<Self, String> {
        Ok(Self {
            redis: Arc::new(Redis::connect(target, timeout)?),
            breaker: Arc::new(Breaker::new("result cache")),
            clear: Script::from_lua(CLEAR_STEP),
        })
    }

    pub async fn get(&self, key: &Key) -> Result<Option<Entry>, Unavailable> {
        if self.breaker.is_open() {
            return Err(Unavailable);
        }
        match self.redis.get_bytes(redis_key(key)).await {
            // A value this version cannot read is a miss (and is overwritten by the next store).
            Ok(value) => Ok(value.and_then(Entry::decode)),
            Err(e) => Err(self.failed(&e)),
        }
    }

    pub async fn put(&self, key: &Key, entry: &Entry, ttl: Duration) -> Result<(), Unavailable> {
        if self.breaker.is_open() {
            return Err(Unavailable);
        }
        self.redis
            .set_px(redis_key(key), entry.encode(), ttl)
            .await
            .map_err(|e| self.failed(&e))
    }

    /// Deletes every entry, or one model's; how many went.
    pub async fn clear(&self, model: Option<&str>) -> Result<u64, RedisError> {
        // A model's entries are its name then exactly 64 hex digits: `*` would also match the
        // entries of a model whose name continues with `:`.
        let pattern = match model {
            Some(model) => format!("{PREFIX}{}:{}", glob_escape(model), "?".repeat(64)),
            None => format!("{PREFIX}*"),
        };
        // SCAN sees one node's keys: a cluster's primaries are each walked to the end.
        let mut deleted = 0u64;
        for node in self.redis.primaries()? {
            let mut cursor = "0".to_owned();
            loop {
                let args = vec![cursor, pattern.clone()];
                let (next, n): (String, i64) = self
                    .redis
                    .script_on(node.as_ref(), &self.clear, args)
                    .await?;
                deleted += u64::try_from(n).unwrap_or(0);
                if next == "0" {
                    break;
                }
                cursor = next;
            }
        }
        Ok(deleted)
    }

    fn failed(&self, error: &RedisError) -> Unavailable {
        crate::metrics::cache_redis_error();
        self.breaker.trip(&self.redis, error);
        Unavailable
    }
}

/// `switchyard:cache:<model>:<digest>`: the model first, so one model's entries are one pattern.
fn redis_key(key: &Key) -> String {
    format!("{PREFIX}{}:{}", key.model, key.hex())
}

/// `text` matched literally in a SCAN pattern.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn model_names_match_literally_in_patterns() {
        assert_eq!(super::glob_escape("qwen-plus"), "qwen-plus");
        assert_eq!(super::glob_escape(r"a*b?[c]\d"), r"a\*b\?\[c\]\\d");
    }
}

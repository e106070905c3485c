//! Sessions in Redis (fred): a hash of metadata and a list of messages per session, both under
//! one hash tag so they live on one cluster slot. Every change is one Lua script, so it is atomic
//! on the server: appends push onto the list (two concurrent turns both land), a compaction trims
//! the list's front only if `offset` is what the compressor read. Every call has a timeout; a
//! Redis that does not answer fails session requests with 503 and never hangs them.

use std::time::Duration;

use fred::prelude::Value;
use fred::types::scripts::Script;

use super::session::{Append, Compaction, Session, StoreError, StoredMessage};
use crate::config::RedisTarget;
use crate::redis::{Guarded, Redis, RedisError};

/// Atomic read of a session: its metadata and its messages.
const LOAD: &str = r"
return {redis.call('HGETALL', KEYS[1]), redis.call('LRANGE', KEYS[2], 0, -1)}
";

/// ARGV: owner ('' = none), now, ttl in ms, system message ('' = keep), messages…
const APPEND: &str = r"
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner == false then
  redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'created_at', ARGV[2], 'compressions', 0, 'offset', 0)
elseif owner ~= ARGV[1] then
  return redis.error_reply('FORBIDDEN session belongs to another key')
end
redis.call('HSET', KEYS[1], 'last_activity', ARGV[2])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'system', ARGV[4]) end
for i = 5, #ARGV do redis.call('RPUSH', KEYS[2], ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
";

/// ARGV: offset read, messages to remove, summary ('' = keep the current one).
const COMPACT: &str = r"
local offset = redis.call('HGET', KEYS[1], 'offset')
if offset == false or tonumber(offset) ~= tonumber(ARGV[1]) then return 0 end
if tonumber(ARGV[2]) > redis.call('LLEN', KEYS[2]) then return 0 end
redis.call('LTRIM', KEYS[2], ARGV[2], -1)
redis.call('HSET', KEYS[1], 'offset', tonumber(offset) + tonumber(ARGV[2]))
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'summary', ARGV[3]) end
redis.call('HINCRBY', KEYS[1], 'compressions', 1)
return 1
";

pub struct RedisStore {
    redis: Guarded,
    ttl: Duration,
    load: Script,
    append: Script,
    compact: Script,
}

// === impl RedisStore ===

impl RedisStore {
    /// Connects in the background: a Redis that is down at start-up fails session requests,
    /// not the gateway.
    pub fn connect(target: &RedisTarget, ttl: Duration, timeout: Duration) -> Result<Self, String> {
        Ok(Self {
            redis: Guarded::new(Redis::connect(target, timeout)?, "sessions"),
            ttl,
            load: Script::from_lua(LOAD),
            append: Script::from_lua(APPEND),
            compact: Script::from_lua(COMPACT),
        })
    }

    /// Live sessions (each has a state key and a `:messages` list; the state keys are counted).
    pub async fn count(&self) -> Result<(u64, bool), StoreError> {
        let count = self
            .redis
            .redis
            .count_keys("switchyard:session:*", ":messages", COUNT_CAP);
        self.redis
            .call(count)
            .await
            .map_err(|e| StoreError::Unavailable(e.0))
    }

    pub async fn load(&self, id: &str) -> Result<Option<Session>, StoreError> {
        let value: Value = self.run(&self.load, id, Vec::new()).await?;
        let mut parts: Vec<Value> = value.convert().map_err(unavailable)?;
        if parts.len() != 2 {
            return Err(StoreError::Unavailable(
                "unexpected session script reply".into(),
            ));
        }
        let messages: Vec<String> = parts
            .pop()
            .unwrap_or(Value::Null)
            .convert()
            .map_err(unavailable)?;
        let fields: Vec<String> = parts
            .pop()
            .unwrap_or(Value::Null)
            .convert()
            .map_err(unavailable)?;
        if fields.is_empty() {
            return Ok(None);
        }
        let mut session = Session::default();
        for pair in fields.chunks_exact(2) {
            let value = &pair[1];
            match pair[0].as_str() {
                "owner" => session.owner = Some(value.clone()).filter(|o| !o.is_empty()),
                "created_at" => session.created_at = value.parse().unwrap_or(0),
                "last_activity" => session.last_activity = value.parse().unwrap_or(0),
                "compressions" => session.compressions = value.parse().unwrap_or(0),
                "offset" => session.offset = value.parse().unwrap_or(0),
                "system" => session.system = Some(decode(value)?),
                "summary" => session.summary = Some(decode(value)?),
                _ => {}
            }
        }
        session.messages = messages
            .iter()
            .map(|m| decode(m))
            .collect::<Result<_, _>>()?;
        Ok(Some(session))
    }

    pub async fn append(&self, id: &str, a: Append<'_>) -> Result<(), StoreError> {
        let mut args = vec![
            a.owner.unwrap_or("").to_owned(),
            a.now.to_string(),
            self.ttl.as_millis().to_string(),
            a.system.as_ref().map(encode).unwrap_or_default(),
        ];
        args.extend(a.messages.iter().map(encode));
        let _: Value = self.run(&self.append, id, args).await?;
        Ok(())
    }

    pub async fn compact(&self, id: &str, c: Compaction) -> Result<bool, StoreError> {
        let args = vec![
            c.offset.to_string(),
            c.remove.to_string(),
            c.summary.as_ref().map(encode).unwrap_or_default(),
        ];
        let applied: i64 = self.run(&self.compact, id, args).await?;
        Ok(applied == 1)
    }

    pub async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let (meta, messages) = keys(id);
        let removed = self
            .redis
            .call(self.redis.redis.del(vec![meta, messages]))
            .await
            .map_err(store_error)?;
        Ok(removed > 0)
    }

    async fn run<R: fred::types::FromValue>(
        &self,
        script: &Script,
        id: &str,
        args: Vec<String>,
    ) -> Result<R, StoreError> {
        let (meta, messages) = keys(id);
        let call = self.redis.redis.script(script, vec![meta, messages], args);
        self.redis.call(call).await.map_err(store_error)
    }
}

fn store_error(e: RedisError) -> StoreError {
    match e.0.contains("FORBIDDEN") {
        true => StoreError::Forbidden,
        false => StoreError::Unavailable(e.to_string()),
    }
}

/// Most keys a count visits (the dashboard's; a larger store shows "at least").
const COUNT_CAP: u64 = 200_000;

fn keys(id: &str) -> (String, String) {
    (
        format!("switchyard:session:{{{id}}}"),
        format!("switchyard:session:{{{id}}}:messages"),
    )
}

fn encode(m: &StoredMessage) -> String {
    serde_json::to_string(m).unwrap_or_default()
}

fn decode(text: &str) -> Result<StoredMessage, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Unavailable(format!("a stored session message is corrupt: {e}")))
}

fn unavailable(e: fred::error::Error) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

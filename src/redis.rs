//! The gateway's Redis client (fred), shared by the session store and the rate limits: a small
//! pool that connects in the background and reconnects for ever, Lua scripts run by hash, and
//! every call under a timeout, so a Redis that is down or slow fails its callers fast and never
//! hangs a request.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;

use fred::prelude::{
    Builder, ClientLike, Config, Expiration, KeysInterface, LuaInterface, Pool, ReconnectPolicy,
};
use fred::types::FromValue;
use fred::types::scripts::Script;

const POOL_SIZE: usize = 4;

/// ARGV: a MATCH pattern, a suffix to leave out ('' for none), the most keys to visit.
const COUNT_KEYS: &str = r"
local cursor, n, seen = '0', 0, 0
local except = ARGV[2]
repeat
  local r = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
  cursor = r[1]
  for _, k in ipairs(r[2]) do
    seen = seen + 1
    if except == '' or string.sub(k, -#except) ~= except then n = n + 1 end
  end
until cursor == '0' or seen >= tonumber(ARGV[3])
if cursor == '0' then return {n, 1} end
return {n, 0}
";

pub struct Redis {
    pool: Pool,
    timeout: Duration,
}

/// A failed or timed-out call, or an error a script raised (its message as the script gave it).
#[derive(Debug)]
pub struct RedisError(pub String);

// === impl Redis ===

impl Redis {
    /// `field` names the config key in errors (`sessions.redis_url`, `limits.redis_url`).
    pub fn connect(url: &str, timeout: Duration, field: &str) -> Result<Self, String> {
        let config = Config::from_url(url).map_err(|e| format!("{field}: {e}"))?;
        let pool = Builder::from_config(config)
            .with_performance_config(|p| p.default_command_timeout = timeout)
            .with_connection_config(|c| {
                // Connecting may take longer than one call is allowed to wait; calls meanwhile fail.
                c.connection_timeout = timeout.max(Duration::from_secs(2));
                c.internal_command_timeout = timeout.max(Duration::from_secs(2));
                // Never resent: a script that ran but whose reply was lost would apply twice.
                c.max_command_attempts = 1;
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
            .build_pool(POOL_SIZE)
            .map_err(|e| format!("{field}: {e}"))?;
        // The trait's `connect` spawns the connection tasks and returns at once (the inherent
        // async one would wait); the handle is not needed: fred reconnects by itself.
        drop(ClientLike::connect(&pool));
        Ok(Self { pool, timeout })
    }

    /// Runs a script by its hash, sending its text only if this Redis has not seen it yet.
    pub async fn script<R: FromValue>(
        &self,
        script: &Script,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> Result<R, RedisError> {
        let by_hash = self
            .pool
            .evalsha(script.sha1().clone(), keys.clone(), args.clone());
        match self.bounded(by_hash).await {
            Err(RedisError(e)) if e.contains("NOSCRIPT") => {
                let lua = script.lua().cloned().unwrap_or_default();
                self.bounded(self.pool.eval(lua, keys, args)).await
            }
            other => other,
        }
    }

    /// How many keys match `pattern` (leaving out those ending in `except`), visiting at most
    /// `cap` keys: `(count, complete)`. For the dashboard, cached by its caller; SCAN in steps
    /// of 1,000 keys, so Redis is never blocked for long.
    pub async fn count_keys(
        &self,
        pattern: &str,
        except: &str,
        cap: u64,
    ) -> Result<(u64, bool), RedisError> {
        static COUNT: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
        let script = COUNT.get_or_init(|| Script::from_lua(COUNT_KEYS));
        let args = vec![pattern.to_owned(), except.to_owned(), cap.to_string()];
        let reply: Vec<i64> = self.script(script, vec![], args).await?;
        Ok((
            reply.first().copied().unwrap_or(0).max(0) as u64,
            reply.get(1) == Some(&1),
        ))
    }

    /// One round trip that changes nothing (a health probe).
    pub async fn ping(&self) -> Result<(), RedisError> {
        self.bounded(self.pool.ping::<String>(None)).await.map(drop)
    }

    pub async fn del(&self, keys: Vec<String>) -> Result<i64, RedisError> {
        self.bounded(self.pool.del(keys)).await
    }

    /// A value as its bytes (`None`: no such key).
    pub async fn get_bytes(&self, key: String) -> Result<Option<Bytes>, RedisError> {
        self.bounded(self.pool.get(key)).await
    }

    /// Sets a value that expires after `ttl` (whole milliseconds, at least one).
    pub async fn set_px(&self, key: String, value: Bytes, ttl: Duration) -> Result<(), RedisError> {
        let ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1);
        self.bounded(
            self.pool
                .set::<(), _, _>(key, value, Some(Expiration::PX(ms)), None, false),
        )
        .await
    }

    /// One call under the timeout (on top of fred's own, which a reconnecting client may not
    /// reach).
    async fn bounded<R>(
        &self,
        call: impl Future<Output = Result<R, fred::error::Error>>,
    ) -> Result<R, RedisError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(RedisError(e.to_string())),
            Err(_) => Err(RedisError(format!(
                "redis did not answer within {:?}",
                self.timeout
            ))),
        }
    }
}

/// Trips on a failed call to one Redis, so that its callers skip it at once (and do what their
/// feature does without it) instead of each waiting out the timeout; one background probe
/// closes it when Redis answers again. One per feature that can go on without Redis.
pub struct Breaker {
    open: AtomicBool,
    probing: AtomicBool,
    /// The feature, for its log lines ("rate limits", "result cache").
    what: &'static str,
}

// === impl Breaker ===

impl Breaker {
    pub fn new(what: &'static str) -> Self {
        Self {
            open: AtomicBool::new(false),
            probing: AtomicBool::new(false),
            what,
        }
    }

    /// Whether Redis is known to be down (a probe will say when it is back).
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Opens the breaker and starts the one probe that closes it when `redis` answers again.
    pub fn trip(self: &Arc<Self>, redis: &Arc<Redis>, error: &RedisError) {
        if self.open.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::warn!(error = %error, "{}: redis unavailable; not asking it again until a background probe gets an answer", self.what);
        if self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let (redis, breaker) = (redis.clone(), self.clone());
        // The probe ends when Redis answers; it holds nothing that needs flushing at shutdown.
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(500));
            loop {
                every.tick().await;
                if redis.ping().await.is_ok() {
                    breaker.open.store(false, Ordering::Release);
                    breaker.probing.store(false, Ordering::Release);
                    tracing::info!("{}: redis answers again", breaker.what);
                    return;
                }
            }
        });
    }
}

impl std::fmt::Display for RedisError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "redis: {}", self.0)
    }
}

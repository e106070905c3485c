//! Per-key requests/minute and tokens/minute (DESIGN.md §5 "Limits"). A request is admitted if
//! one more request and its reservation (prompt tokens plus `max_tokens`, or
//! `limits.default_max_tokens` when it sets none) fit; the reservation is settled to the real
//! usage when the request ends. Without `limits.redis_url` the buckets live in this process;
//! with it they live in Redis (one script per check, Redis's clock), so the limits hold across
//! replicas, and a Redis error falls back to this process's buckets (`fail_open`) or refuses
//! (`fail_closed`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::types::scripts::Script;
use tokio::time::Instant;

use super::bucket::Bucket;
use super::keys::ApiKey;
use super::shared::SharedRedis;
use super::spend::{Budgets, Spend};
use crate::config::{LimitsConfig, OnRedisError, RedisTarget};
use crate::error::{ErrorKind, GatewayError};

/// Both buckets of a key, in Redis: refill, check, take, in one step on the server's clock.
/// ARGV: rpm (0 = none), tpm (0 = none), tokens. Returns {admitted, wait_ms, requests_left,
/// tokens_left}.
const ADMIT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function level(field, cap)
  local l = tonumber(redis.call('HGET', KEYS[1], field) or cap)
  local at = tonumber(redis.call('HGET', KEYS[1], field .. '_at') or now)
  return math.min(cap, l + (now - at) * cap / 60000)
end
local rpm, tpm, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local r, k, wait = 0, 0, 0
if rpm > 0 then
  r = level('r', rpm)
  if r < 1 then wait = math.max(wait, (1 - r) * 60000 / rpm) end
end
if tpm > 0 then
  k = level('t', tpm)
  if k < n then wait = math.max(wait, (n - k) * 60000 / tpm) end
end
if wait > 0 then return {0, math.ceil(wait), math.floor(r), math.floor(k)} end
if rpm > 0 then redis.call('HSET', KEYS[1], 'r', r - 1, 'r_at', now) end
if tpm > 0 then redis.call('HSET', KEYS[1], 't', k - n, 't_at', now) end
redis.call('PEXPIRE', KEYS[1], 120000)
return {1, 0, math.floor(r - 1), math.floor(k - n)}
";

/// ARGV: tpm, delta (positive: give back; negative: charge more).
const SETTLE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cap = tonumber(ARGV[1])
local l = tonumber(redis.call('HGET', KEYS[1], 't') or cap)
local at = tonumber(redis.call('HGET', KEYS[1], 't_at') or now)
l = math.min(cap, l + (now - at) * cap / 60000 + tonumber(ARGV[2]))
redis.call('HSET', KEYS[1], 't', l, 't_at', now)
redis.call('PEXPIRE', KEYS[1], 120000)
return 1
";

pub struct Limiter {
    local: Mutex<HashMap<Arc<str>, Buckets>>,
    redis: Option<Shared>,
    /// Spend against budgets (held with the limits: the same Redis, or this process).
    pub budgets: Budgets,
    pub default_max_tokens: u32,
}

struct Shared {
    store: Arc<SharedRedis>,
    admit: Script,
    settle: Script,
}

#[derive(Default)]
struct Buckets {
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
}

/// An admitted request's reservation, settled when it ends.
#[derive(Debug, Clone, Default)]
pub struct Admission {
    key: Option<Arc<str>>,
    tpm: u32,
    reserved: u64,
    /// Taken from Redis's buckets (else this process's).
    shared: bool,
    /// The key's budget reservation, settled to the request's exact cost.
    pub spend: Option<Spend>,
    /// For `x-ratelimit-*` headers: (limit, remaining) of requests and of tokens.
    pub requests: Option<(u64, u64)>,
    pub tokens: Option<(u64, u64)>,
}

enum Decision {
    Admitted {
        requests_left: u64,
        tokens_left: u64,
    },
    Wait(Duration),
}

// === impl Admission ===

impl Admission {
    /// Whether a limit applied (and there is something to settle).
    pub fn is_limited(&self) -> bool {
        self.key.is_some()
    }
}

// === impl Limiter ===

impl Limiter {
    /// `redis`: where limits and budgets are shared (`limits.redis_url`, else `redis.url`);
    /// `None`: held per replica.
    pub fn new(config: &LimitsConfig, redis: Option<RedisTarget>) -> Result<Self, String> {
        let redis = match redis {
            None => None,
            Some(target) => Some(Shared {
                store: Arc::new(SharedRedis::connect(&target, config.on_redis_error)?),
                admit: Script::from_lua(ADMIT),
                settle: Script::from_lua(SETTLE),
            }),
        };
        Ok(Self {
            local: Mutex::new(HashMap::new()),
            budgets: Budgets::new(redis.as_ref().map(|s| s.store.clone())),
            redis,
            default_max_tokens: config.default_max_tokens,
        })
    }

    /// Admits one request reserving `tokens`, or refuses it with a 429 and when to retry.
    pub async fn admit(&self, key: &ApiKey, tokens: u64) -> Result<Admission, GatewayError> {
        self.decide(key, true, tokens).await
    }

    /// Admits a request that generates nothing (a result-cache hit): its key's rpm only, the
    /// token bucket neither checked nor touched.
    pub async fn admit_request(&self, key: &ApiKey) -> Result<Admission, GatewayError> {
        self.decide(key, false, 0).await
    }

    /// `limit_tokens`: the key's tpm applies (else its token bucket is left alone).
    async fn decide(
        &self,
        key: &ApiKey,
        limit_tokens: bool,
        tokens: u64,
    ) -> Result<Admission, GatewayError> {
        let rpm = key.rpm.unwrap_or(0);
        let tpm = if limit_tokens {
            key.tpm.unwrap_or(0)
        } else {
            0
        };
        let buckets = limit_tokens.then_some(tpm);
        if rpm == 0 && tpm == 0 {
            return Ok(Admission::default());
        }
        let tokens = if tpm == 0 { 0 } else { tokens };
        if tpm > 0 && tokens > u64::from(tpm) {
            return Err(GatewayError::new(
                ErrorKind::RateLimited,
                format!(
                    "Request too large for key {}: it needs {tokens} tokens (prompt plus max_tokens), more than its limit of {tpm} tokens per minute.",
                    key.name
                ),
            )
            .with_code("rate_limit_exceeded"));
        }
        let (decision, shared) = match &self.redis {
            None => (self.admit_local(key, rpm, buckets, tokens), false),
            // Redis's script leaves the token bucket alone for a tpm of 0.
            Some(shared) => match shared.admit(key, rpm, tpm, tokens).await {
                Ok(decision) => (decision, true),
                Err(_) => match shared.store.on_error {
                    OnRedisError::FailOpen => (self.admit_local(key, rpm, buckets, tokens), false),
                    OnRedisError::FailClosed => {
                        return Err(GatewayError::new(
                                ErrorKind::RateLimited,
                                "Rate limits cannot be checked right now (limits.on_redis_error: fail_closed).",
                            )
                            .with_code("rate_limit_unavailable")
                            .with_retry_after(Some(Duration::from_secs(1))));
                    }
                },
            },
        };
        match decision {
            Decision::Admitted {
                requests_left,
                tokens_left,
            } => Ok(Admission {
                key: Some(key.name.clone()),
                tpm,
                reserved: tokens,
                shared,
                spend: None,
                requests: (rpm > 0).then_some((u64::from(rpm), requests_left)),
                tokens: (tpm > 0).then_some((u64::from(tpm), tokens_left)),
            }),
            Decision::Wait(wait) => {
                crate::metrics::rate_limited(&key.name);
                let what = match (rpm, tpm) {
                    (0, _) => format!("{tpm} tokens per minute"),
                    (_, 0) => format!("{rpm} requests per minute"),
                    _ => format!("{rpm} requests and {tpm} tokens per minute"),
                };
                Err(GatewayError::new(
                    ErrorKind::RateLimited,
                    format!(
                        "Rate limit reached for key {}: {what}. Retry after {:.1}s.",
                        key.name,
                        wait.as_secs_f64()
                    ),
                )
                .with_code("rate_limit_exceeded")
                .with_retry_after(Some(wait.max(Duration::from_millis(1)))))
            }
        }
    }

    /// Corrects the reservation to what the request really used (off the request path).
    pub async fn settle(&self, admission: &Admission, used: u64) {
        let Some(name) = &admission.key else {
            return;
        };
        if admission.tpm == 0 || used == admission.reserved {
            return;
        }
        let delta = admission.reserved as i64 - used as i64;
        if let (true, Some(shared)) = (admission.shared, &self.redis) {
            let args = vec![admission.tpm.to_string(), delta.to_string()];
            let settled: Result<i64, _> = shared
                .store
                .redis
                .script(&shared.settle, vec![redis_key(name)], args)
                .await;
            if let Err(e) = settled {
                tracing::warn!(error = %e, key = %name, "rate limits: a token reservation could not be settled");
            }
            return;
        }
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(bucket) = local.get_mut(name).and_then(|b| b.tokens.as_mut()) {
            bucket.settle(delta, Instant::now());
        }
    }

    /// `tpm`: `None` leaves the token bucket alone (a request that generates nothing).
    fn admit_local(&self, key: &ApiKey, rpm: u32, tpm: Option<u32>, tokens: u64) -> Decision {
        let now = Instant::now();
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        let buckets = local.entry(key.name.clone()).or_default();
        let mut requests = sized(&mut buckets.requests, rpm, now);
        let mut tokens_bucket = match tpm {
            Some(tpm) => sized(&mut buckets.tokens, tpm, now),
            None => None,
        };
        let mut wait = Duration::ZERO;
        if let Some(b) = requests.as_deref_mut()
            && let Err(w) = b.check(1, now)
        {
            wait = wait.max(w);
        }
        if let Some(b) = tokens_bucket.as_deref_mut()
            && let Err(w) = b.check(tokens, now)
        {
            wait = wait.max(w);
        }
        if !wait.is_zero() {
            return Decision::Wait(wait);
        }
        let left = |b: Option<&mut Bucket>, n: u64| {
            b.map(|b| {
                b.take(n);
                b.remaining()
            })
            .unwrap_or(0)
        };
        Decision::Admitted {
            requests_left: left(requests, 1),
            tokens_left: left(tokens_bucket, tokens),
        }
    }
}

/// The bucket for a limit (made or resized to it), or none when the limit is off.
fn sized(slot: &mut Option<Bucket>, per_minute: u32, now: Instant) -> Option<&mut Bucket> {
    if per_minute == 0 {
        *slot = None;
        return None;
    }
    let bucket = slot.get_or_insert_with(|| Bucket::full(per_minute, now));
    if bucket.capacity() != u64::from(per_minute) {
        bucket.resize(per_minute);
    }
    Some(bucket)
}

fn redis_key(name: &str) -> String {
    format!("switchyard:limit:{{{name}}}")
}

// === impl Shared ===

impl Shared {
    /// The shared decision, or why there is none: Redis failed now, or is known to be down (the
    /// breaker is open and no request waits for it).
    async fn admit(
        &self,
        key: &ApiKey,
        rpm: u32,
        tpm: u32,
        tokens: u64,
    ) -> Result<Decision, crate::redis::RedisError> {
        if self.store.is_down() {
            return Err(crate::redis::RedisError(
                "redis is down (waiting for the background probe)".into(),
            ));
        }
        let args = vec![rpm.to_string(), tpm.to_string(), tokens.to_string()];
        let reply = self
            .store
            .redis
            .script::<Vec<i64>>(&self.admit, vec![redis_key(&key.name)], args)
            .await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(e) => {
                self.store.trip(&e);
                return Err(e);
            }
        };
        let at = |i: usize| reply.get(i).copied().unwrap_or(0).max(0) as u64;
        Ok(match at(0) {
            1 => Decision::Admitted {
                requests_left: at(2),
                tokens_left: at(3),
            },
            _ => Decision::Wait(Duration::from_millis(at(1).max(1))),
        })
    }
}

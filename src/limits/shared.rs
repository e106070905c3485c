//! The limits' Redis (`limits.redis_url`), shared by rate limits and budgets: one client, the
//! policy for its errors (`limits.on_redis_error`), and a breaker that trips on a failure so
//! later requests skip Redis at once (this replica's counts, or `fail_closed`'s 429) instead of
//! each waiting out the Redis timeout; a background probe closes it when Redis answers again.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{OnRedisError, RedisTarget};
use crate::redis::{Breaker, Redis, RedisError};

pub struct SharedRedis {
    pub redis: Arc<Redis>,
    pub on_error: OnRedisError,
    breaker: Arc<Breaker>,
}

// === impl SharedRedis ===

impl SharedRedis {
    pub fn connect(target: &RedisTarget, on_error: OnRedisError) -> Result<Self, String> {
        Ok(Self {
            redis: Arc::new(Redis::connect(target, Duration::from_millis(500))?),
            on_error,
            breaker: Arc::new(Breaker::new("rate limits")),
        })
    }

    /// Whether Redis is known to be down (a probe will say when it is back).
    pub fn is_down(&self) -> bool {
        self.breaker.is_open()
    }

    /// Opens the breaker and starts the one probe that closes it when Redis answers again.
    pub fn trip(&self, error: &RedisError) {
        crate::metrics::limiter_redis_error();
        self.breaker.trip(&self.redis, error);
    }
}

//! The limits' Redis (`limits.redis_url`), shared by rate limits and budgets: one client, the
//! policy for its errors (`limits.on_redis_error`), and a breaker that trips on a failure so
//! later requests skip Redis at once (this replica's counts, or `fail_closed`'s 429) instead of
//! each waiting out the Redis timeout; a background probe closes it when Redis answers again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::config::OnRedisError;
use crate::redis::{Redis, RedisError};

pub struct SharedRedis {
    pub redis: Arc<Redis>,
    pub on_error: OnRedisError,
    breaker: Arc<Breaker>,
}

#[derive(Default)]
struct Breaker {
    open: AtomicBool,
    probing: AtomicBool,
}

// === impl SharedRedis ===

impl SharedRedis {
    pub fn connect(url: &str, on_error: OnRedisError) -> Result<Self, String> {
        Ok(Self {
            redis: Arc::new(Redis::connect(
                url,
                Duration::from_millis(500),
                "limits.redis_url",
            )?),
            on_error,
            breaker: Arc::new(Breaker::default()),
        })
    }

    /// Whether Redis is known to be down (a probe will say when it is back).
    pub fn is_down(&self) -> bool {
        self.breaker.open.load(Ordering::Acquire)
    }

    /// Opens the breaker and starts the one probe that closes it when Redis answers again.
    pub fn trip(&self, error: &RedisError) {
        crate::metrics::limiter_redis_error();
        if self.breaker.open.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::warn!(error = %error, "rate limits: redis unavailable; not asking it again until a background probe gets an answer");
        if self.breaker.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let (redis, breaker) = (self.redis.clone(), self.breaker.clone());
        // The probe ends when Redis answers; it holds nothing that needs flushing at shutdown.
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(500));
            loop {
                every.tick().await;
                if redis.ping().await.is_ok() {
                    breaker.open.store(false, Ordering::Release);
                    breaker.probing.store(false, Ordering::Release);
                    tracing::info!("rate limits: redis answers again; limits are shared again");
                    return;
                }
            }
        });
    }
}

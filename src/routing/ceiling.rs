//! A `max_rps` ceiling (a provider's, or one route's): a GCRA limiter that lets `max_rps`
//! requests through per second, a second's worth at once. A request that finds it full is not
//! sent there; the retry loop skips that route like an unhealthy one.

use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// No ceiling, or `max_rps` requests per second.
pub struct Ceiling(Option<DefaultDirectRateLimiter>);

// === impl Ceiling ===

impl Ceiling {
    pub fn new(max_rps: Option<u32>) -> Self {
        Self(
            max_rps
                .and_then(NonZeroU32::new)
                .map(|rps| RateLimiter::direct(Quota::per_second(rps))),
        )
    }

    /// Whether one more request may go now (and counts it if so).
    pub fn admit(&self) -> bool {
        self.0.as_ref().is_none_or(|l| l.check().is_ok())
    }
}

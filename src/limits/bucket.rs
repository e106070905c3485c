//! A token bucket that refills continuously: `capacity` per minute, never above `capacity`.
//! Takes may be settled afterwards (a TPM reservation corrected to the real usage), so the level
//! can go below zero: the debt is paid by refilling before the next take succeeds.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct Bucket {
    capacity: f64,
    level: f64,
    at: Instant,
}

// === impl Bucket ===

impl Bucket {
    pub fn full(per_minute: u32, now: Instant) -> Self {
        Self {
            capacity: f64::from(per_minute),
            level: f64::from(per_minute),
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.level = (self.level + elapsed * self.capacity / 60.0).min(self.capacity);
        self.at = now;
    }

    /// A limit that changed on reload applies from now on; the level is kept within it.
    pub fn resize(&mut self, per_minute: u32) {
        self.capacity = f64::from(per_minute);
        self.level = self.level.min(self.capacity);
    }

    /// Whether `n` fit now; if not, how long until they will. More than the capacity never
    /// fits: the caller reports it as too large rather than waiting forever.
    pub fn check(&mut self, n: u64, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        let n = n as f64;
        if n <= self.level {
            return Ok(());
        }
        let missing = n - self.level;
        Err(Duration::from_secs_f64(
            missing * 60.0 / self.capacity.max(1.0),
        ))
    }

    pub fn take(&mut self, n: u64) {
        self.level -= n as f64;
    }

    /// Corrects an earlier take by `delta` (positive: give back; negative: charge more).
    pub fn settle(&mut self, delta: i64, now: Instant) {
        self.refill(now);
        self.level = (self.level + delta as f64).min(self.capacity);
    }

    pub fn remaining(&self) -> u64 {
        self.level.max(0.0) as u64
    }

    pub fn capacity(&self) -> u64 {
        self.capacity as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_bucket_refills_per_minute_and_reports_when_the_next_fits() {
        let mut b = Bucket::full(60, Instant::now());
        for _ in 0..60 {
            b.check(1, Instant::now()).unwrap();
            b.take(1);
        }
        let wait = b.check(1, Instant::now()).unwrap_err();
        assert_eq!(
            wait,
            Duration::from_secs(1),
            "60/min refills one per second"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(b.check(1, Instant::now()).is_ok());
        tokio::time::advance(Duration::from_secs(600)).await;
        b.check(0, Instant::now()).unwrap();
        assert_eq!(b.remaining(), 60, "never above the capacity");
    }

    #[tokio::test(start_paused = true)]
    async fn settling_gives_back_or_charges_more() {
        let mut b = Bucket::full(1_000, Instant::now());
        b.take(900); // reserved: prompt + max_tokens
        b.settle(800, Instant::now()); // the request used 100
        assert_eq!(b.remaining(), 900);
        b.take(900);
        b.settle(-200, Instant::now()); // it used 1,100
        assert!(
            b.check(1, Instant::now()).is_err(),
            "in debt until refilled"
        );
    }
}

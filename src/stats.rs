//! The last 15 minutes of traffic for the dashboard: requests, client and server errors, and a
//! latency histogram per 10-second slot, in a ring of atomics. Recording a request is a handful
//! of relaxed atomic adds on the slot of the current 10 seconds (no lock, no allocation); the
//! dashboard's reader turns the ring into series and quantiles.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Seconds per slot, and slots kept (15 minutes).
pub const STEP_SECS: u64 = 10;
pub const SLOTS: usize = 90;

/// Latency buckets: upper bounds of 100 µs × √2^i, so 40 buckets reach ~105 s (an answer slower
/// than that is counted in the last); a quantile is within a factor √2 of the truth.
const BUCKETS: usize = 40;

struct Slot {
    /// Which 10 seconds (Unix seconds / STEP_SECS) this slot counts; a stale slot is reset by
    /// the first request of its new period.
    period: AtomicU64,
    requests: AtomicU64,
    client_errors: AtomicU64,
    server_errors: AtomicU64,
    latency: [AtomicU64; BUCKETS],
}

static RING: [Slot; SLOTS] = [const { Slot::new() }; SLOTS];

/// One slot as the reader sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Point {
    /// Unix seconds at the slot's start.
    pub at: u64,
    pub requests: u64,
    pub client_errors: u64,
    pub server_errors: u64,
    /// `None` without requests.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

// === impl Slot ===

impl Slot {
    const fn new() -> Self {
        Self {
            period: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            client_errors: AtomicU64::new(0),
            server_errors: AtomicU64::new(0),
            latency: [const { AtomicU64::new(0) }; BUCKETS],
        }
    }

    /// Makes the slot count `period`, clearing it if it counted an older one. Two requests that
    /// race to reset it may lose a count between them: a dashboard can afford that, a lock on
    /// the request path cannot.
    fn enter(&self, period: u64) {
        let seen = self.period.load(Ordering::Relaxed);
        if seen != period
            && self
                .period
                .compare_exchange(seen, period, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.requests.store(0, Ordering::Relaxed);
            self.client_errors.store(0, Ordering::Relaxed);
            self.server_errors.store(0, Ordering::Relaxed);
            for b in &self.latency {
                b.store(0, Ordering::Relaxed);
            }
        }
    }
}

/// Counts one answered request: its status and how long it took to answer (for a stream, to
/// its first byte).
pub fn record(status: u16, took: Duration) {
    record_at(crate::clock::unix_now(), status, took);
}

fn record_at(unix_secs: u64, status: u16, took: Duration) {
    let period = unix_secs / STEP_SECS;
    let slot = &RING[(period % SLOTS as u64) as usize];
    slot.enter(period);
    slot.requests.fetch_add(1, Ordering::Relaxed);
    match status {
        400..=499 => slot.client_errors.fetch_add(1, Ordering::Relaxed),
        500..=599 => slot.server_errors.fetch_add(1, Ordering::Relaxed),
        _ => 0,
    };
    slot.latency[bucket(took)].fetch_add(1, Ordering::Relaxed);
}

/// The last 15 minutes, oldest first, one point per slot (empty slots included).
pub fn series() -> Vec<Point> {
    series_at(crate::clock::unix_now())
}

fn series_at(unix_secs: u64) -> Vec<Point> {
    let current = unix_secs / STEP_SECS;
    (0..SLOTS as u64)
        .rev()
        .map(|back| {
            let period = current.saturating_sub(back);
            let slot = &RING[(period % SLOTS as u64) as usize];
            let mut point = Point {
                at: period * STEP_SECS,
                ..Point::default()
            };
            if slot.period.load(Ordering::Acquire) != period {
                return point;
            }
            point.requests = slot.requests.load(Ordering::Relaxed);
            point.client_errors = slot.client_errors.load(Ordering::Relaxed);
            point.server_errors = slot.server_errors.load(Ordering::Relaxed);
            let counts: Vec<u64> = slot
                .latency
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect();
            point.p50_ms = quantile(&counts, 0.50);
            point.p99_ms = quantile(&counts, 0.99);
            point
        })
        .collect()
}

/// Bucket upper bounds in microseconds: 100 × √2^i (√2 as 1414/1000, rounded up).
const BOUNDS_US: [u64; BUCKETS] = {
    let mut bounds = [0u64; BUCKETS];
    let mut i = 0;
    while i < BUCKETS {
        let octave = 100u64 << (i / 2);
        bounds[i] = if i % 2 == 0 {
            octave
        } else {
            (octave * 1414).div_ceil(1000)
        };
        i += 1;
    }
    bounds
};

/// The first bucket whose bound holds `took` (a binary search: no float math per request).
fn bucket(took: Duration) -> usize {
    let us = took.as_micros().min(u128::from(u64::MAX)) as u64;
    BOUNDS_US.partition_point(|b| *b < us).min(BUCKETS - 1)
}

/// The upper bound of bucket `i`, in milliseconds.
fn bound_ms(i: usize) -> f64 {
    BOUNDS_US[i] as f64 / 1000.0
}

fn quantile(counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, c) in counts.iter().enumerate() {
        seen += c;
        if seen >= rank {
            return Some(bound_ms(i));
        }
    }
    Some(bound_ms(counts.len() - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_their_bounds() {
        assert_eq!(bucket(Duration::from_micros(50)), 0);
        assert_eq!(bucket(Duration::from_micros(100)), 0);
        assert_eq!(bucket(Duration::from_micros(101)), 1);
        assert_eq!(bucket(Duration::from_micros(200)), 2);
        assert_eq!(bucket(Duration::from_secs(1000)), BUCKETS - 1);
        for us in [150u64, 900, 12_345, 3_000_000] {
            let i = bucket(Duration::from_micros(us));
            assert!(bound_ms(i) * 1000.0 >= us as f64 - 1e-6, "{us}");
            assert!(i == 0 || bound_ms(i - 1) * 1000.0 < us as f64, "{us}");
        }
    }

    #[test]
    fn a_slot_counts_its_own_ten_seconds_and_quantiles_follow_the_latencies() {
        // Far from the real clock, so the process's real traffic cannot touch these slots.
        let t = 10_000_000_000;
        for i in 0..100 {
            let status = match i {
                0..=89 => 200,
                90..=97 => 429,
                _ => 502,
            };
            record_at(
                t,
                status,
                Duration::from_millis(if i < 98 { 2 } else { 500 }),
            );
        }
        let points = series_at(t + 5);
        let last = points.last().unwrap();
        assert_eq!(points.len(), SLOTS);
        assert_eq!(last.at, t);
        assert_eq!(
            (last.requests, last.client_errors, last.server_errors),
            (100, 8, 2)
        );
        let p50 = last.p50_ms.unwrap();
        assert!(
            (2.0..2.0 * std::f64::consts::SQRT_2).contains(&p50),
            "{p50}"
        );
        let p99 = last.p99_ms.unwrap();
        assert!(
            (500.0..500.0 * std::f64::consts::SQRT_2).contains(&p99),
            "{p99}"
        );
        // 15 minutes later the slot is reused: the old counts are gone.
        let later = t + SLOTS as u64 * STEP_SECS;
        record_at(later, 200, Duration::from_millis(1));
        let last = *series_at(later).last().unwrap();
        assert_eq!((last.requests, last.server_errors), (1, 0));
        assert_eq!(
            series_at(later)[0].requests,
            0,
            "an old period reads as empty"
        );
    }
}

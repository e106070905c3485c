//! Passive health of one route: ejected after `unhealthy_after` consecutive failures (connect
//! error, timeout, 5xx, 429), for `ejection` doubled on each repeat up to `max_ejection`; when the
//! ejection expires the route is half-open and admits exactly one trial request, whose outcome
//! re-admits or re-ejects it. A successful active probe of the provider re-admits at once.
//!
//! The healthy case is one atomic load; the mutex is taken only on failures and transitions, and
//! never across an `.await`. Time is `tokio::time::Instant` so tests can pause it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct HealthPolicy {
    pub unhealthy_after: u32,
    pub ejection: Duration,
    pub max_ejection: Duration,
}

/// What a route can take right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    Healthy,
    /// Ejection expired and no trial is running: one request may try it.
    HalfOpen,
    Ejected,
}

pub struct RouteHealth {
    policy: HealthPolicy,
    /// True while there is nothing to record: no failure streak, no ejection.
    clean: AtomicBool,
    inner: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    consecutive_failures: u32,
    ejected_until: Option<Instant>,
    trial_running: bool,
    /// How many times in a row the route was ejected (the backoff exponent).
    level: u32,
    /// The current ejection is a cool-down after the upstream rate limited us.
    cooling: bool,
    last_ejected_at: Option<Instant>,
}

// === impl RouteHealth ===

impl RouteHealth {
    pub fn new(policy: HealthPolicy) -> Self {
        Self {
            policy,
            clean: AtomicBool::new(true),
            inner: Mutex::new(State::default()),
        }
    }

    pub fn availability(&self, now: Instant) -> Availability {
        if self.clean.load(Ordering::Acquire) {
            return Availability::Healthy;
        }
        let state = self.lock();
        match state.ejected_until {
            None => Availability::Healthy,
            Some(until) if until > now || state.trial_running => Availability::Ejected,
            Some(_) => Availability::HalfOpen,
        }
    }

    /// Claims the single half-open trial; false if the route is not half-open or another request
    /// already holds the trial.
    pub fn begin_trial(&self, now: Instant) -> bool {
        let mut state = self.lock();
        match state.ejected_until {
            Some(until) if until <= now && !state.trial_running => {
                state.trial_running = true;
                true
            }
            _ => false,
        }
    }

    pub fn record_success(&self) {
        if self.clean.load(Ordering::Acquire) {
            return;
        }
        let mut state = self.lock();
        state.consecutive_failures = 0;
        state.ejected_until = None;
        state.trial_running = false;
        self.clean.store(true, Ordering::Release);
    }

    /// Counts a failure; returns the ejection length when this failure ejected the route.
    pub fn record_failure(&self, now: Instant) -> Option<Duration> {
        let mut state = self.lock();
        self.clean.store(false, Ordering::Release);
        state.consecutive_failures += 1;
        let failed_trial = std::mem::take(&mut state.trial_running);
        let already_ejected = state.ejected_until.is_some_and(|u| u > now);
        if already_ejected
            || (!failed_trial && state.consecutive_failures < self.policy.unhealthy_after)
        {
            return None;
        }
        // The backoff resets once the route has stayed clear of ejections for the longest one.
        if state
            .last_ejected_at
            .is_none_or(|at| now.duration_since(at) > self.policy.max_ejection * 2)
        {
            state.level = 0;
        }
        let factor = 1u32.checked_shl(state.level.min(16)).unwrap_or(u32::MAX);
        let length = self
            .policy
            .ejection
            .saturating_mul(factor)
            .min(self.policy.max_ejection);
        state.level += 1;
        state.last_ejected_at = Some(now);
        state.ejected_until = Some(now + length);
        state.cooling = false;
        Some(length)
    }

    /// Marks the current ejection as a cool-down after upstream 429s.
    pub fn cooling(&self) {
        self.lock().cooling = true;
    }

    /// When the route's current ejection ends (a cool-down included), if it is ejected: for the
    /// dashboard.
    pub fn ejected_until(&self, now: Instant) -> Option<Instant> {
        if self.clean.load(Ordering::Acquire) {
            return None;
        }
        self.lock().ejected_until.filter(|until| *until > now)
    }

    /// When a cool-down after upstream 429s ends, if the route is in one.
    pub fn cooling_until(&self, now: Instant) -> Option<Instant> {
        if self.clean.load(Ordering::Acquire) {
            return None;
        }
        let state = self.lock();
        match state.ejected_until {
            Some(until) if until > now && state.cooling => Some(until),
            _ => None,
        }
    }

    /// A trial that ended without a verdict (the client left): let the next request try.
    pub fn release_trial(&self) {
        self.lock().trial_running = false;
    }

    /// A successful active probe vouches for the route: back in service now.
    pub fn readmit(&self) {
        self.record_success();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; the state is still consistent.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> RouteHealth {
        RouteHealth::new(HealthPolicy {
            unhealthy_after: 3,
            ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(100),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn ejects_after_consecutive_failures_only() {
        let h = health();
        let now = Instant::now();
        assert_eq!(h.record_failure(now), None);
        assert_eq!(h.record_failure(now), None);
        h.record_success();
        assert_eq!(h.record_failure(now), None, "a success resets the streak");
        assert_eq!(h.record_failure(now), None);
        assert_eq!(h.record_failure(now), Some(Duration::from_secs(30)));
        assert_eq!(h.availability(now), Availability::Ejected);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_admits_one_trial_and_backoff_grows_to_the_cap() {
        let h = health();
        let t0 = Instant::now();
        for _ in 0..3 {
            h.record_failure(t0);
        }
        tokio::time::advance(Duration::from_secs(31)).await;
        let t1 = Instant::now();
        assert_eq!(h.availability(t1), Availability::HalfOpen);
        assert!(h.begin_trial(t1));
        assert!(!h.begin_trial(t1), "only one trial at a time");
        assert_eq!(h.availability(t1), Availability::Ejected);
        assert_eq!(
            h.record_failure(t1),
            Some(Duration::from_secs(60)),
            "a failed trial re-ejects, longer"
        );
        tokio::time::advance(Duration::from_secs(61)).await;
        let t2 = Instant::now();
        assert!(h.begin_trial(t2));
        assert_eq!(
            h.record_failure(t2),
            Some(Duration::from_secs(100)),
            "capped at max_ejection"
        );
        tokio::time::advance(Duration::from_secs(101)).await;
        assert!(h.begin_trial(Instant::now()));
        h.record_success();
        assert_eq!(h.availability(Instant::now()), Availability::Healthy);
    }

    #[tokio::test(start_paused = true)]
    async fn abandoned_trial_frees_the_slot_and_probe_readmits() {
        let h = health();
        for _ in 0..3 {
            h.record_failure(Instant::now());
        }
        tokio::time::advance(Duration::from_secs(31)).await;
        assert!(h.begin_trial(Instant::now()));
        h.release_trial();
        assert!(h.begin_trial(Instant::now()));
        h.readmit();
        assert_eq!(h.availability(Instant::now()), Availability::Healthy);
    }
}

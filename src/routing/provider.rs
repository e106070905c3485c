//! A provider as the gateway runs it: its transport, its `max_rps` ceiling and the probe state
//! shared by its routes. What it speaks is its adapter's business (`providers/`); this side only
//! moves bytes and keeps score.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::ceiling::Ceiling;
use super::transport::Transport;
use crate::config::ProviderKind;

/// A provider as it runs: how it is reached, its `max_rps` ceiling and its probe state.
pub struct Provider {
    pub id: Arc<str>,
    /// `id` as a response header value (`x-switchyard-provider`), made once.
    pub id_header: Option<http::HeaderValue>,
    /// What it speaks; only `providers::Adapter::of` reads it.
    pub kind: ProviderKind,
    pub transport: Transport,
    pub timeout: Duration,
    pub probe: Option<ProbeSpec>,
    pub max_rps: Option<u32>,
    /// The vendor's own API (`api.anthropic.com`), which takes every documented field; a
    /// compatible endpoint may refuse some (see `providers::anthropic::passthrough`).
    pub first_party: bool,
    ceiling: Ceiling,
    up: AtomicBool,
    probe_failures: AtomicU32,
    /// Milliseconds since `epoch` of the last request this provider answered (any answer).
    last_answer_ms: AtomicU64,
    /// Milliseconds since `epoch` of the last probe tick (0: none yet). Kept here, not in the
    /// probe task, so a task respawned for a new route table (every control-plane change)
    /// continues the schedule instead of probing at once.
    last_probe_tick_ms: AtomicU64,
    epoch: Instant,
}

/// How and how often the provider is probed (never spending tokens).
#[derive(Debug, Clone)]
pub struct ProbeSpec {
    pub url: String,
    pub interval: Duration,
    pub timeout: Duration,
}

// === impl Provider ===

impl Provider {
    pub fn new(
        id: Arc<str>,
        kind: ProviderKind,
        transport: Transport,
        timeout: Duration,
        probe: Option<ProbeSpec>,
        max_rps: Option<u32>,
    ) -> Self {
        Self {
            id_header: http::HeaderValue::from_str(&id).ok(),
            id,
            kind,
            transport,
            timeout,
            probe,
            max_rps,
            first_party: false,
            ceiling: Ceiling::new(max_rps),
            up: AtomicBool::new(true),
            probe_failures: AtomicU32::new(0),
            last_answer_ms: AtomicU64::new(0),
            last_probe_tick_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Whether the provider's `max_rps` ceiling lets one more request through now.
    pub fn admit(&self) -> bool {
        self.ceiling.admit()
    }

    /// False once active probes have failed `unhealthy_after` times in a row.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// A real request got an answer from this provider: evidence that it is up.
    pub fn note_answer(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64 + 1;
        self.last_answer_ms.store(ms, Ordering::Relaxed);
    }

    /// Whether a real request got an answer within `window`.
    pub fn answered_within(&self, window: Duration) -> bool {
        let last = self.last_answer_ms.load(Ordering::Relaxed);
        last != 0
            && (self.epoch.elapsed().as_millis() as u64 + 1).saturating_sub(last)
                <= window.as_millis() as u64
    }

    /// When the next probe tick is due: now for a provider never probed, else one `interval`
    /// after the last tick.
    pub fn next_probe_tick(&self, interval: Duration) -> Instant {
        match self.last_probe_tick_ms.load(Ordering::Relaxed) {
            0 => Instant::now(),
            ms => self.epoch + Duration::from_millis(ms - 1) + interval,
        }
    }

    /// A probe tick happened (whether it probed or found traffic vouching for the provider).
    pub fn note_probe_tick(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64 + 1;
        self.last_probe_tick_ms.store(ms, Ordering::Relaxed);
    }

    /// Records a probe result; returns true when the provider changed state.
    pub fn record_probe(&self, ok: bool, unhealthy_after: u32) -> bool {
        if ok {
            self.probe_failures.store(0, Ordering::Relaxed);
            return !self.up.swap(true, Ordering::Relaxed);
        }
        let failures = self.probe_failures.fetch_add(1, Ordering::Relaxed) + 1;
        failures >= unhealthy_after && self.up.swap(false, Ordering::Relaxed)
    }
}

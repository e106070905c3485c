//! Active health: each HTTP provider is probed on its interval with a GET that spends no tokens:
//! `{base_url}/models` for OpenAI-kind providers; for DashScope, whose native API has no cheap
//! read, the OpenAI-compatible `/compatible-mode/v1/models` on the same host (a metadata list:
//! no tokens, not billed); or `health_check.url`. A provider whose probes fail `unhealthy_after`
//! times in a row takes all its routes out; a successful probe puts the provider back and
//! re-admits its ejected routes at once.
//!
//! Probes run only when they can tell something traffic has not: a tick is skipped while the
//! provider is up, none of its routes is ejected, and a real request got an answer within the
//! last interval. An idle provider, a provider marked down, or one with an ejected route is
//! probed every interval; a busy healthy one is not probed at all.
//!
//! Probe tasks belong to the runtime generation that spawned them: dropping [`Probes`] (on
//! reload, a control-plane change or shutdown) aborts them. The schedule belongs to the
//! provider, so the next generation's task ticks where the last one would have: a change to the
//! route table probes nothing by itself.

use std::sync::Arc;

use tokio::task::AbortHandle;
use tokio::time::{Instant, MissedTickBehavior, interval_at};

use super::Route;
use super::health::Availability;
use super::provider::Provider;

#[derive(Default)]
pub struct Probes {
    tasks: Vec<AbortHandle>,
}

// === impl Probes ===

impl Probes {
    pub fn spawn(
        &mut self,
        provider: Arc<Provider>,
        routes: Vec<Arc<Route>>,
        unhealthy_after: u32,
    ) {
        if provider.probe.is_none() {
            return;
        }
        let task = tokio::spawn(probe_loop(provider, routes, unhealthy_after));
        self.tasks.push(task.abort_handle());
    }
}

impl Drop for Probes {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn probe_loop(provider: Arc<Provider>, routes: Vec<Arc<Route>>, unhealthy_after: u32) {
    let Some(spec) = provider.probe.clone() else {
        return;
    };
    let mut ticker = interval_at(provider.next_probe_tick(spec.interval), spec.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        provider.note_probe_tick();
        let now = Instant::now();
        let ejected = routes
            .iter()
            .any(|r| r.health.availability(now) != Availability::Healthy);
        if provider.is_up() && !ejected && provider.answered_within(spec.interval) {
            continue;
        }
        let ok = provider.transport.probe(&spec.url, spec.timeout).await;
        if provider.record_probe(ok, unhealthy_after) {
            match ok {
                true => {
                    tracing::info!(provider = %provider.id, "provider is back: probe succeeded")
                }
                false => {
                    tracing::warn!(provider = %provider.id, probe = %spec.url, "provider marked down: probes failing")
                }
            }
        }
        if ok {
            let now = Instant::now();
            for route in routes
                .iter()
                .filter(|r| r.health.availability(now) != Availability::Healthy)
            {
                route.health.readmit();
                tracing::info!(route = %route.label(), "route re-admitted after a successful probe");
            }
        }
    }
}

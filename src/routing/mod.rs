//! Routing: which route serves a request. Priority tiers, smooth weighted round-robin inside a
//! tier, passive health per route, active probes per provider, the running providers and their
//! transport, and the retry loop that tries another route before the commit point. Nothing here
//! knows a wire format: that is `providers/`, composed with this by `call/`.

pub mod affinity;
pub mod ceiling;
pub mod dispatch;
pub mod h1;
pub mod health;
pub mod probe;
pub mod provider;
pub mod transport;
pub mod wrr;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::time::Instant;

use crate::config::{ModelCache, ModelType, PriceConfig};
use crate::metrics::{ModelMetrics, RouteMetrics};
use crate::tokens::Encoding;
use health::{Availability, RouteHealth};
use provider::Provider;
use wrr::SmoothWrr;

/// One way to serve a model: a provider and the upstream's name for the model.
pub struct Route {
    /// Unique in the process ([`Route::next_id`]): a route kept across a reload keeps its id.
    pub id: usize,
    pub provider: Arc<Provider>,
    pub upstream_model: Arc<str>,
    /// `upstream_model` as a JSON string, ready to splice into a request body.
    pub upstream_model_json: Bytes,
    pub weight: u32,
    pub priority: u32,
    pub health: RouteHealth,
    pub metrics: RouteMetrics,
    /// How this route's tokens are counted when the upstream reports none.
    pub encoding: Encoding,
    /// `provider/upstream_model`: stable across reloads and replicas (logs, session affinity).
    pub label: String,
    /// The route's own `max_rps` (its provider may have one too).
    pub max_rps: Option<u32>,
    /// Its model's `max_output_tokens`: `max_tokens` for upstreams that need one (Anthropic)
    /// when the client sets none.
    pub max_output_tokens: Option<u32>,
    pub ceiling: ceiling::Ceiling,
}

/// A model clients can ask for, with its routes grouped into priority tiers (best first).
pub struct ModelEntry {
    pub name: Arc<str>,
    pub kind: ModelType,
    pub context_window: Option<u32>,
    pub price: Option<PriceConfig>,
    /// Its result-cache setting (`models[].cache`).
    pub cache: ModelCache,
    pub metrics: ModelMetrics,
    pub tiers: Vec<Tier>,
}

pub struct Tier {
    pub priority: u32,
    pub routes: Vec<Arc<Route>>,
    weights: Vec<u32>,
    wrr: Mutex<SmoothWrr>,
}

/// A chosen route. Dropping it without a verdict releases a half-open trial, so a client that
/// leaves mid-attempt cannot wedge a route in "trial running" forever.
pub struct Pick {
    pub route: Arc<Route>,
    trial: bool,
}

// === impl Route ===

impl Route {
    /// A fresh route id.
    pub fn next_id() -> usize {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    pub fn availability(&self, now: Instant) -> Availability {
        match self.provider.is_up() {
            true => self.health.availability(now),
            false => Availability::Ejected,
        }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// Whether the route's ceiling and its provider's let one more request through now.
    pub fn admit(&self) -> bool {
        self.ceiling.admit() && self.provider.admit()
    }
}

// === impl ModelEntry ===

impl ModelEntry {
    pub fn new(
        name: String,
        kind: ModelType,
        context_window: Option<u32>,
        price: Option<PriceConfig>,
        cache: ModelCache,
        mut routes: Vec<Arc<Route>>,
    ) -> Self {
        routes.sort_by_key(|r| r.priority);
        let mut tiers: Vec<Tier> = Vec::new();
        for route in routes {
            match tiers.last_mut() {
                Some(t) if t.priority == route.priority => {
                    t.weights.push(route.weight);
                    t.routes.push(route);
                }
                _ => tiers.push(Tier {
                    priority: route.priority,
                    weights: vec![route.weight],
                    routes: vec![route],
                    wrr: Mutex::new(SmoothWrr::new(0)),
                }),
            }
        }
        for t in &mut tiers {
            t.wrr = Mutex::new(SmoothWrr::new(t.routes.len()));
        }
        Self {
            metrics: ModelMetrics::new(&name),
            name: name.into(),
            kind,
            context_window,
            price,
            cache,
            tiers,
        }
    }

    /// Whether this entry already is what these fields and routes (compared by identity) make.
    pub fn same_as(
        &self,
        kind: ModelType,
        context_window: Option<u32>,
        price: Option<&PriceConfig>,
        cache: ModelCache,
        routes: &[Arc<Route>],
    ) -> bool {
        self.cache == cache
            && self.kind == kind
            && self.context_window == context_window
            && self.price.as_ref() == price
            && self.routes().count() == routes.len()
            && routes
                .iter()
                .all(|r| self.routes().any(|old| Arc::ptr_eq(old, r)))
    }

    /// The GenAI semantic conventions' `gen_ai.operation.name` for this model's requests.
    pub fn kind_operation(&self) -> &'static str {
        match self.kind {
            ModelType::Chat => "chat",
            ModelType::Embedding => "embeddings",
            ModelType::Rerank => "rerank",
            ModelType::Moderation => "moderations",
            ModelType::Image => "image_generation",
            ModelType::Transcription => "transcription",
            ModelType::Speech => "speech",
        }
    }

    /// How this model's tokens are counted for session budgets and limits: as its first route
    /// counts them.
    pub fn encoding(&self) -> Encoding {
        self.routes()
            .next()
            .map_or(Encoding::O200kBase, |r| r.encoding)
    }

    pub fn routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.tiers.iter().flat_map(|t| t.routes.iter())
    }

    /// Whether some route could serve a request now (readiness).
    pub fn has_available_route(&self, now: Instant) -> bool {
        self.routes()
            .any(|r| r.availability(now) != Availability::Ejected)
    }

    /// A session's route: in the best tier with a healthy untried route, the one weighted
    /// rendezvous hashing gives this session (see [`affinity`]). Without a healthy route
    /// anywhere, the ordinary pick (which may take a half-open trial).
    pub fn pick_pinned(&self, session_key: u64, tried: &[usize], now: Instant) -> Option<Pick> {
        for tier in &self.tiers {
            let healthy: Vec<&Arc<Route>> = tier
                .routes
                .iter()
                .filter(|r| !tried.contains(&r.id) && r.availability(now) == Availability::Healthy)
                .collect();
            let candidates = healthy.iter().map(|r| (r.label(), r.weight));
            if let Some(i) = affinity::choose(session_key, candidates) {
                return Some(Pick {
                    route: healthy[i].clone(),
                    trial: false,
                });
            }
        }
        self.pick(tried, now)
    }

    /// The next route to try: the best tier with an untried route that can serve, then smooth
    /// WRR inside it. `tried` holds the ids of routes this request already used.
    pub fn pick(&self, tried: &[usize], now: Instant) -> Option<Pick> {
        for tier in &self.tiers {
            // Routes that turned out to be half-open with their trial taken by someone else.
            let mut busy: Vec<usize> = Vec::new();
            loop {
                let chosen = {
                    let mut wrr = tier.wrr.lock().unwrap_or_else(|p| p.into_inner());
                    wrr.pick(&tier.weights, |i| {
                        let r = &tier.routes[i];
                        !tried.contains(&r.id)
                            && !busy.contains(&i)
                            && r.availability(now) != Availability::Ejected
                    })
                };
                let Some(i) = chosen else { break };
                let route = &tier.routes[i];
                match route.availability(now) {
                    Availability::Healthy => {
                        return Some(Pick {
                            route: route.clone(),
                            trial: false,
                        });
                    }
                    Availability::HalfOpen if route.health.begin_trial(now) => {
                        return Some(Pick {
                            route: route.clone(),
                            trial: true,
                        });
                    }
                    _ => busy.push(i),
                }
            }
        }
        None
    }
}

// === impl Pick ===

impl Pick {
    pub fn succeeded(mut self) {
        self.route.health.record_success();
        self.trial = false;
    }

    /// Returns the ejection length if this failure ejected the route.
    pub fn failed(mut self, now: Instant) -> Option<std::time::Duration> {
        self.trial = false;
        self.route.health.record_failure(now)
    }
}

impl Drop for Pick {
    fn drop(&mut self) {
        if self.trial {
            self.route.health.release_trial();
        }
    }
}

//! What the control plane decides: the models (with their routes) and the gateway keys. Read
//! from the config file, or from PostgreSQL when `control` is configured; the runtime is built
//! from one of these plus the config's providers and settings.

use crate::config::{Config, ModelCache, ModelConfig, ModelType, PriceConfig, Tokenizer};
use crate::limits::keys::KeySpec;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    pub models: Vec<ModelSpec>,
    pub keys: Vec<KeySpec>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    pub name: String,
    pub kind: ModelType,
    pub context_window: Option<u32>,
    /// `max_tokens` for upstreams that need one when the client sets none.
    pub max_output_tokens: Option<u32>,
    pub price: Option<PriceConfig>,
    pub tokenizer: Option<Tokenizer>,
    /// The result cache's ttl for it (control-plane models: the section's).
    pub cache: ModelCache,
    /// When its control-plane row was created (Unix seconds); `None` for a model of the config
    /// file, which lists as created when the gateway started.
    pub created: Option<u64>,
    pub routes: Vec<RouteSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// `routing_rules.id`; `None` for a route of the config file.
    pub id: Option<i64>,
    pub provider: String,
    pub upstream_model: String,
    pub weight: u32,
    pub priority: u32,
    pub max_rps: Option<u32>,
}

// === impl Catalog ===

impl Catalog {
    /// The config file's own models and keys.
    pub fn from_config(config: &Config) -> Result<Self, String> {
        Ok(Self {
            models: config.models.iter().map(ModelSpec::from_config).collect(),
            keys: config
                .auth
                .keys
                .iter()
                .enumerate()
                .map(|(i, k)| KeySpec::from_config(i, k))
                .collect::<Result<_, _>>()?,
        })
    }
}

// === impl ModelSpec ===

impl ModelSpec {
    pub fn from_config(m: &ModelConfig) -> Self {
        Self {
            name: m.name.clone(),
            kind: m.kind,
            context_window: m.context_window,
            max_output_tokens: m.max_output_tokens,
            price: m.price.clone(),
            tokenizer: m.tokenizer,
            cache: m.cache,
            created: None,
            routes: m
                .routes
                .iter()
                .map(|r| RouteSpec {
                    id: None,
                    provider: r.provider.clone(),
                    upstream_model: r.model.clone(),
                    weight: r.weight,
                    priority: r.priority,
                    max_rps: r.max_rps,
                })
                .collect(),
        }
    }
}

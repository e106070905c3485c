//! What one config generation (and one control-plane catalog) defines: settings, the running
//! providers, and the table of models, routes and keys a request is served from. Built whole
//! and swapped in by `state::App`; a control-plane change rebuilds only the table, reusing every
//! route and model that did not change.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;

use crate::config::{Config, ModelType, ProviderConfig};
use crate::control::catalog::Catalog;
use crate::error::{ErrorKind, GatewayError};
use crate::limits::keys::KeyStore;
use crate::metrics::RouteMetrics;
use crate::providers::Adapter;
use crate::routing::ceiling::Ceiling;
use crate::routing::health::{HealthPolicy, RouteHealth};
use crate::routing::probe::Probes;
use crate::routing::provider::{ProbeSpec, Provider};
use crate::routing::transport::Transport;
use crate::routing::{ModelEntry, Route};
use crate::tokens::Encoding;
use crate::usage::price::Price;

/// Everything one config generation defines.
pub struct Runtime {
    pub max_body_bytes: usize,
    /// Multipart uploads' limit (`server.max_upload_bytes`).
    pub max_upload_bytes: usize,
    /// A stalled request body gets 408 after this.
    pub body_read_timeout: Duration,
    /// Most choices (`n`) one request may ask for.
    pub max_n: u64,
    /// Origins a browser may call from (`server.cors`); `None`: no CORS at all.
    pub cors_origins: Option<Vec<String>>,
    pub request_timeout: Duration,
    pub max_attempts: u32,
    pub unhealthy_after: u32,
    policy: HealthPolicy,
    pub providers: Vec<Arc<Provider>>,
    /// The catalog's models and keys, built.
    pub table: Table,
    probes: Probes,
}

/// A catalog built on a runtime's providers: what a control-plane change replaces.
pub struct Table {
    pub keys: KeyStore,
    /// Catalog order, for listings.
    pub models: Vec<Arc<ModelEntry>>,
    by_name: HashMap<String, Arc<ModelEntry>>,
    /// `GET /v1/models` and each `GET /v1/models/{id}`, rendered once.
    models_json: Bytes,
    model_json: HashMap<String, Bytes>,
    routes_by_provider: Vec<(Arc<Provider>, Vec<Arc<Route>>)>,
}

// === impl Runtime ===

impl Runtime {
    /// The runtime of a config, serving `catalog`'s models and keys (the config's own, or the
    /// control plane's).
    pub fn build(config: &Config, catalog: &Catalog) -> Result<Self, String> {
        let providers: Vec<Arc<Provider>> = config
            .providers
            .iter()
            .map(|p| build_provider(p).map(Arc::new))
            .collect::<Result<_, _>>()?;
        let policy = HealthPolicy {
            unhealthy_after: config.routing.unhealthy_after,
            ejection: config.routing.ejection.0,
            max_ejection: config.routing.max_ejection.0,
        };
        let table = Table::build(&providers, policy, catalog, None)?;
        Ok(Self {
            max_body_bytes: config.server.max_body_bytes,
            max_upload_bytes: config.server.max_upload_bytes,
            body_read_timeout: config.server.body_read_timeout.0,
            max_n: u64::from(config.limits.max_n),
            cors_origins: config
                .server
                .cors
                .as_ref()
                .map(|c| c.allowed_origins.clone()),
            request_timeout: config.server.request_timeout.0,
            max_attempts: config.routing.max_attempts,
            unhealthy_after: config.routing.unhealthy_after,
            policy,
            providers,
            table,
            probes: Probes::default(),
        })
    }

    /// The same settings and providers serving another catalog. A route that did not change is
    /// the same route, its health and smooth-WRR position included; a new one starts healthy.
    pub fn with_catalog(&self, catalog: &Catalog) -> Result<Self, String> {
        Ok(Self {
            max_body_bytes: self.max_body_bytes,
            max_upload_bytes: self.max_upload_bytes,
            body_read_timeout: self.body_read_timeout,
            max_n: self.max_n,
            cors_origins: self.cors_origins.clone(),
            request_timeout: self.request_timeout,
            max_attempts: self.max_attempts,
            unhealthy_after: self.unhealthy_after,
            policy: self.policy,
            table: Table::build(&self.providers, self.policy, catalog, Some(&self.table))?,
            providers: self.providers.clone(),
            probes: Probes::default(),
        })
    }

    pub(crate) fn start_probes(&mut self) {
        for (provider, routes) in &self.table.routes_by_provider {
            self.probes
                .spawn(provider.clone(), routes.clone(), self.unhealthy_after);
        }
    }

    /// The model a client asked for, if it is configured with the right type.
    pub fn model(&self, name: &str, kind: ModelType) -> Result<&Arc<ModelEntry>, GatewayError> {
        self.table.model(name, kind)
    }

    pub fn keys(&self) -> &KeyStore {
        &self.table.keys
    }

    pub fn models(&self) -> &[Arc<ModelEntry>] {
        &self.table.models
    }

    pub fn models_json(&self) -> &Bytes {
        &self.table.models_json
    }

    pub fn model_json(&self, name: &str) -> Option<&Bytes> {
        self.table.model_json.get(name)
    }

    /// Providers with their routes, for health gauges and readiness.
    pub fn provider_routes(&self) -> &[(Arc<Provider>, Vec<Arc<Route>>)] {
        &self.table.routes_by_provider
    }
}

// === impl Table ===

impl Table {
    fn build(
        providers: &[Arc<Provider>],
        policy: HealthPolicy,
        catalog: &Catalog,
        previous: Option<&Table>,
    ) -> Result<Self, String> {
        let keys = KeyStore::from_specs(&catalog.keys)
            .map_err(|i| format!("key {:?}: the same key twice", catalog.keys[i].name))?;
        crate::metrics::known_series(
            providers.iter().map(|p| &*p.id),
            catalog
                .keys
                .iter()
                .filter(|k| k.rpm.is_some() || k.tpm.is_some() || k.budget.is_some())
                .map(|k| k.name.as_str()),
        );
        let mut routes_by_provider: Vec<(Arc<Provider>, Vec<Arc<Route>>)> =
            providers.iter().map(|p| (p.clone(), Vec::new())).collect();
        let mut models = Vec::with_capacity(catalog.models.len());
        for m in &catalog.models {
            let kept = previous.and_then(|t| t.by_name.get(&m.name));
            let mut reused: Vec<usize> = Vec::new();
            let mut routes = Vec::with_capacity(m.routes.len());
            for r in &m.routes {
                let Some(slot) = routes_by_provider
                    .iter_mut()
                    .find(|(p, _)| *p.id == *r.provider)
                else {
                    // The config validates its own routes; a control-plane row may name a
                    // provider this replica's config does not have (or has disabled).
                    tracing::warn!(model = %m.name, provider = %r.provider, "route skipped: no such provider in this gateway's config");
                    continue;
                };
                let encoding = Encoding::for_route(m.tokenizer, &r.upstream_model, &m.name);
                let same = kept.and_then(|k| {
                    k.routes().find(|old| {
                        !reused.contains(&old.id)
                            && Arc::ptr_eq(&old.provider, &slot.0)
                            && *old.upstream_model == *r.upstream_model
                            && old.weight == r.weight
                            && old.priority == r.priority
                            && old.max_rps == r.max_rps
                            && old.max_output_tokens == m.max_output_tokens
                            && old.encoding == encoding
                    })
                });
                let route = match same {
                    Some(old) => old.clone(),
                    None => Arc::new(Route {
                        id: Route::next_id(),
                        provider: slot.0.clone(),
                        upstream_model: r.upstream_model.as_str().into(),
                        upstream_model_json: Bytes::from(
                            serde_json::to_vec(&r.upstream_model).map_err(|e| e.to_string())?,
                        ),
                        weight: r.weight,
                        priority: r.priority,
                        health: RouteHealth::new(policy),
                        metrics: RouteMetrics::new(
                            &r.provider,
                            &m.name,
                            Price::from_config(m.price.as_ref()).nanos_per_1m(),
                        ),
                        encoding,
                        label: format!("{}/{}", r.provider, r.upstream_model),
                        max_rps: r.max_rps,
                        max_output_tokens: m.max_output_tokens,
                        ceiling: Ceiling::new(r.max_rps),
                    }),
                };
                reused.push(route.id);
                slot.1.push(route.clone());
                routes.push(route);
            }
            let entry = match kept {
                // Nothing changed: the same entry, so its smooth-WRR state carries on.
                Some(k)
                    if k.same_as(m.kind, m.context_window, m.price.as_ref(), m.cache, &routes) =>
                {
                    k.clone()
                }
                _ => Arc::new(ModelEntry::new(
                    m.name.clone(),
                    m.kind,
                    m.context_window,
                    m.price.clone(),
                    m.cache,
                    routes,
                )),
            };
            models.push(entry);
        }
        // `created` stays put across reloads and table changes: clients cache model lists.
        static STARTED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        let started = *STARTED.get_or_init(crate::clock::unix_now);
        let objects: Vec<serde_json::Value> = (catalog.models.iter().zip(&models))
            .map(|(spec, m)| model_object(m, spec.created.unwrap_or(started)))
            .collect();
        let model_json: HashMap<String, Bytes> = (models.iter().zip(&objects))
            .map(|(m, object)| (m.name.to_string(), Bytes::from(object.to_string())))
            .collect();
        let models_json = Bytes::from(json!({"object": "list", "data": objects}).to_string());
        Ok(Self {
            keys,
            by_name: models
                .iter()
                .map(|m| (m.name.to_string(), m.clone()))
                .collect(),
            models,
            models_json,
            model_json,
            routes_by_provider,
        })
    }

    fn model(&self, name: &str, kind: ModelType) -> Result<&Arc<ModelEntry>, GatewayError> {
        let model = self.by_name.get(name).ok_or_else(|| {
            GatewayError::new(
                ErrorKind::ModelNotFound,
                format!("The model `{name}` does not exist or you do not have access to it."),
            )
            .with_param("model")
        })?;
        if model.kind != kind {
            let serves = |kind: ModelType| match kind {
                ModelType::Chat => "chat completions",
                ModelType::Embedding => "embeddings",
                ModelType::Rerank => "rerank",
                ModelType::Moderation => "moderations",
                ModelType::Image => "image generations and edits",
                ModelType::Transcription => "audio transcriptions and translations",
                ModelType::Speech => "speech",
            };
            return Err(GatewayError::invalid_request(format!(
                "The model `{name}` is a {} model; it serves {}, not {}.",
                model.kind.name(),
                serves(model.kind),
                serves(kind)
            ))
            .with_param("model")
            .with_code("model_not_supported"));
        }
        Ok(model)
    }
}

fn build_provider(p: &ProviderConfig) -> Result<Provider, String> {
    let reach = Adapter::of(p.kind).reach(p)?;
    let (transport, probe_url) = Transport::new(&p.id, reach, p.api_key.clone())
        .map_err(|e| format!("provider {:?}: {e}", p.id))?;
    let hc = &p.health_check;
    let probe = match (hc.enabled, probe_url) {
        (true, Some(default)) => Some(ProbeSpec {
            url: hc.url.clone().unwrap_or(default),
            interval: hc.interval.0,
            timeout: hc.timeout.0,
        }),
        _ => None,
    };
    let mut provider = Provider::new(
        p.id.as_str().into(),
        p.kind,
        transport,
        p.timeout.0,
        probe,
        p.max_rps,
    );
    provider.first_party = Adapter::of(p.kind).first_party(p);
    Ok(provider)
}

/// A `/v1/models` entry: the OpenAI fields plus what a gateway user wants to know.
fn model_object(m: &ModelEntry, created: u64) -> serde_json::Value {
    let mut providers: Vec<&str> = Vec::new();
    for r in m.routes() {
        if !providers.contains(&&*r.provider.id) {
            providers.push(&r.provider.id);
        }
    }
    json!({
        "id": m.name,
        "object": "model",
        "created": created,
        "owned_by": providers.first().copied().unwrap_or("switchyard"),
        "type": m.kind.name(),
        "providers": providers,
        "context_window": m.context_window,
        "input_price": m.price.as_ref().map(|p| p.input_per_1m),
        "output_price": m.price.as_ref().map(|p| p.output_per_1m),
    })
}

//! Semantic checks the types cannot express, each error naming its field path; and the pruning
//! of providers whose key variable is unset (a warning, not an error, so the embedded default
//! starts on a machine that has no keys).

use std::collections::{HashMap, HashSet};

use super::duration::ConfigDuration;
use super::error::ConfigError;
use super::schema::*;

pub(super) fn validate(config: &mut Config) -> Result<Vec<String>, ConfigError> {
    let mut warnings = Vec::new();
    check_server(&config.server)?;
    check_routing(&config.routing)?;
    let kinds = check_providers(&config.providers)?;
    check_models(&config.models, &kinds)?;
    check_keys(&config.auth)?;
    check_sections(config)?;
    prune_disabled(config, &mut warnings);
    if config.auth.keys.is_empty() {
        warnings.push("auth.keys is empty: the gateway is open to anyone who can reach it".into());
    }
    Ok(warnings)
}

fn check_server(server: &ServerConfig) -> Result<(), ConfigError> {
    // hyper's HTTP/1 read buffer cannot be smaller than 8 KiB.
    if !(8 * 1024..=1024 * 1024).contains(&server.max_header_bytes) {
        return Err(ConfigError::new(
            "server.max_header_bytes",
            "must be between 8192 and 1048576",
        ));
    }
    for (i, origin) in server
        .cors
        .iter()
        .flat_map(|c| &c.allowed_origins)
        .enumerate()
    {
        let valid = origin == "*"
            || ((origin.starts_with("https://") || origin.starts_with("http://"))
                && !origin.ends_with('/')
                && http::HeaderValue::from_str(origin).is_ok());
        if !valid {
            return Err(ConfigError::new(
                format!("server.cors.allowed_origins[{i}]"),
                format!("{origin:?} is not an origin (scheme://host[:port], no path) or \"*\""),
            ));
        }
    }
    if server.max_body_bytes == 0 {
        return Err(ConfigError::new(
            "server.max_body_bytes",
            "must be greater than 0",
        ));
    }
    if server.max_upload_bytes == 0 {
        return Err(ConfigError::new(
            "server.max_upload_bytes",
            "must be greater than 0",
        ));
    }
    if server.max_connections == 0 {
        return Err(ConfigError::new(
            "server.max_connections",
            "must be greater than 0",
        ));
    }
    for (path, d) in [
        ("server.request_timeout", server.request_timeout),
        ("server.header_read_timeout", server.header_read_timeout),
    ] {
        if d.0.is_zero() {
            return Err(ConfigError::new(path, "must be greater than 0"));
        }
    }
    Ok(())
}

fn check_routing(routing: &RoutingConfig) -> Result<(), ConfigError> {
    if routing.max_attempts == 0 {
        return Err(ConfigError::new(
            "routing.max_attempts",
            "must be at least 1",
        ));
    }
    if routing.unhealthy_after == 0 {
        return Err(ConfigError::new(
            "routing.unhealthy_after",
            "must be at least 1",
        ));
    }
    if routing.max_ejection.0 < routing.ejection.0 {
        return Err(ConfigError::new(
            "routing.max_ejection",
            "must not be shorter than routing.ejection",
        ));
    }
    Ok(())
}

fn check_providers(
    providers: &[ProviderConfig],
) -> Result<HashMap<&str, ProviderKind>, ConfigError> {
    let mut kinds = HashMap::new();
    for (i, p) in providers.iter().enumerate() {
        let at = |field: &str| format!("providers[{i}].{field}");
        if p.id.is_empty()
            || !p
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(ConfigError::new(
                at("id"),
                format!(
                    "{:?} must be non-empty and use only A-Z a-z 0-9 . _ -",
                    p.id
                ),
            ));
        }
        if kinds.insert(p.id.as_str(), p.kind).is_some() {
            return Err(ConfigError::new(
                at("id"),
                format!("duplicate provider id {:?}", p.id),
            ));
        }
        match (p.kind, &p.base_url) {
            (ProviderKind::Openai | ProviderKind::Dashscope | ProviderKind::Anthropic, None) => {
                return Err(ConfigError::new(
                    at("base_url"),
                    "is required for this provider kind",
                ));
            }
            (_, Some(url)) => check_url(url).map_err(|m| ConfigError::new(at("base_url"), m))?,
            (ProviderKind::Mock, None) => {}
        }
        if p.mock.is_some() && p.kind != ProviderKind::Mock {
            return Err(ConfigError::new(
                at("mock"),
                "is only valid with kind: mock",
            ));
        }
        if p.timeout.0.is_zero() {
            return Err(ConfigError::new(at("timeout"), "must be greater than 0"));
        }
        if p.max_rps == Some(0) {
            return Err(ConfigError::new(
                at("max_rps"),
                "must be greater than 0 (omit it for no ceiling)",
            ));
        }
        let hc = &p.health_check;
        if hc.enabled && (hc.interval.0.is_zero() || hc.timeout.0.is_zero()) {
            return Err(ConfigError::new(
                at("health_check"),
                "interval and timeout must be greater than 0",
            ));
        }
        if let Some(url) = &hc.url {
            check_url(url).map_err(|m| ConfigError::new(at("health_check.url"), m))?;
        }
    }
    Ok(kinds)
}

fn check_url(url: &str) -> Result<(), String> {
    match url.parse::<http::Uri>() {
        Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() => {
            Ok(())
        }
        _ => Err(format!("{url:?} is not an http(s) URL")),
    }
}

fn check_models(
    models: &[ModelConfig],
    providers: &HashMap<&str, ProviderKind>,
) -> Result<(), ConfigError> {
    let mut names = HashSet::new();
    for (i, m) in models.iter().enumerate() {
        if m.name.is_empty() {
            return Err(ConfigError::new(
                format!("models[{i}].name"),
                "must not be empty",
            ));
        }
        if !names.insert(m.name.as_str()) {
            return Err(ConfigError::new(
                format!("models[{i}].name"),
                format!("duplicate model name {:?}", m.name),
            ));
        }
        if m.routes.is_empty() {
            return Err(ConfigError::new(
                format!("models[{i}].routes"),
                "must list at least one route",
            ));
        }
        if let Some(price) = &m.price
            && !(price.input_per_1m >= 0.0 && price.output_per_1m >= 0.0)
        {
            return Err(ConfigError::new(
                format!("models[{i}].price"),
                "prices must be non-negative numbers",
            ));
        }
        if m.max_output_tokens == Some(0) {
            return Err(ConfigError::new(
                format!("models[{i}].max_output_tokens"),
                "must be at least 1 (omit it for the 4096 default)",
            ));
        }
        for (j, r) in m.routes.iter().enumerate() {
            let at = |field: &str| format!("models[{i}].routes[{j}].{field}");
            let Some(kind) = providers.get(r.provider.as_str()) else {
                return Err(ConfigError::new(
                    at("provider"),
                    format!("unknown provider {:?}", r.provider),
                ));
            };
            if !kind.serves(m.kind) {
                return Err(ConfigError::new(
                    at("provider"),
                    format!(
                        "{:?} is kind: {}, which cannot serve {} models",
                        r.provider,
                        kind.name(),
                        m.kind.name()
                    ),
                ));
            }
            if r.model.is_empty() {
                return Err(ConfigError::new(at("model"), "must not be empty"));
            }
            if r.max_rps == Some(0) {
                return Err(ConfigError::new(
                    at("max_rps"),
                    "must be greater than 0 (omit it for no ceiling)",
                ));
            }
            if r.weight == 0 {
                return Err(ConfigError::new(
                    at("weight"),
                    "must be at least 1 (remove the route to stop using it)",
                ));
            }
        }
    }
    Ok(())
}

fn check_keys(auth: &AuthConfig) -> Result<(), ConfigError> {
    let mut names = HashSet::new();
    for (i, k) in auth.keys.iter().enumerate() {
        let at = |field: &str| format!("auth.keys[{i}].{field}");
        if k.name.is_empty() || !names.insert(k.name.as_str()) {
            return Err(ConfigError::new(
                at("name"),
                format!("{:?} must be non-empty and unique", k.name),
            ));
        }
        match (&k.key, &k.key_sha256) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(ConfigError::new(
                    format!("auth.keys[{i}]"),
                    "set exactly one of key or key_sha256",
                ));
            }
            (Some(key), None) if key.is_empty() => {
                return Err(ConfigError::new(
                    at("key"),
                    "is empty (is its environment variable set?)",
                ));
            }
            (None, Some(hex)) if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) => {
                return Err(ConfigError::new(
                    at("key_sha256"),
                    "must be 64 hex characters (sha256 of the key)",
                ));
            }
            _ => {}
        }
        if k.budget.as_ref().is_some_and(|b| !b.is_valid()) {
            return Err(ConfigError::new(
                at("budget.usd"),
                "must be a number of dollars, from 0 to 100000000",
            ));
        }
        if k.rpm == Some(0) || k.tpm == Some(0) {
            return Err(ConfigError::new(
                format!("auth.keys[{i}]"),
                "rpm and tpm must be greater than 0 (omit for unlimited)",
            ));
        }
    }
    Ok(())
}

fn check_sections(config: &Config) -> Result<(), ConfigError> {
    let s = &config.sessions;
    if s.keep_recent == 0 || s.compression_threshold == 0 || s.max_tokens < s.compression_threshold
    {
        return Err(ConfigError::new(
            "sessions",
            "keep_recent and compression_threshold must be > 0, and max_tokens >= compression_threshold",
        ));
    }
    if s.max_sessions == 0 || s.timeout.0.is_zero() {
        return Err(ConfigError::new(
            "sessions",
            "max_sessions and timeout must be > 0",
        ));
    }
    if s.store == SessionStoreKind::Redis && config.redis_for(RedisUser::Sessions).is_none() {
        return Err(ConfigError::new(
            "sessions.redis_url",
            "is required with store: redis (or redis.url)",
        ));
    }
    if config.usage.max_file_bytes < 4096 {
        return Err(ConfigError::new(
            "usage.max_file_bytes",
            "must be at least 4096",
        ));
    }
    if config.limits.max_n == 0 {
        return Err(ConfigError::new("limits.max_n", "must be at least 1"));
    }
    let r = &config.responses;
    if r.ttl.0.is_zero() || r.max_responses == 0 {
        return Err(ConfigError::new(
            "responses",
            "ttl and max_responses must be > 0",
        ));
    }
    if r.store.unwrap_or(s.store) == SessionStoreKind::Redis
        && config.redis_for(RedisUser::Responses).is_none()
    {
        return Err(ConfigError::new(
            "responses.redis_url",
            "is required with store: redis (or sessions.redis_url, or redis.url)",
        ));
    }
    if let Some(c) = &config.cache {
        if c.max_bytes.0 == 0
            || c.max_entry_bytes.0 == 0
            || c.ttl.0.is_zero()
            || c.timeout.0.is_zero()
        {
            return Err(ConfigError::new(
                "cache",
                "max_bytes, max_entry_bytes, ttl and timeout must be > 0",
            ));
        }
        if c.max_entry_bytes.0 > c.max_bytes.0 {
            return Err(ConfigError::new(
                "cache.max_entry_bytes",
                format!("is larger than cache.max_bytes ({})", c.max_bytes),
            ));
        }
        if c.store == SessionStoreKind::Redis && config.redis_for(RedisUser::Cache).is_none() {
            return Err(ConfigError::new(
                "cache.redis_url",
                "is required with store: redis (or sessions.redis_url, or redis.url)",
            ));
        }
    }
    for (i, m) in config.models.iter().enumerate() {
        if m.cache == ModelCache::Ttl(ConfigDuration(std::time::Duration::ZERO)) {
            return Err(ConfigError::new(
                format!("models[{i}].cache.ttl"),
                "must be > 0 (use cache: false to turn the cache off)",
            ));
        }
    }
    if let Some(name) = &s.summary_model {
        match config.models.iter().find(|m| &m.name == name) {
            Some(m) if m.kind == ModelType::Chat => {}
            _ => {
                return Err(ConfigError::new(
                    "sessions.summary_model",
                    format!("{name:?} is not a configured chat model"),
                ));
            }
        }
    }
    if config.usage.sink == UsageSinkKind::Postgres
        && config
            .usage
            .database_url
            .as_deref()
            .is_none_or(str::is_empty)
    {
        return Err(ConfigError::new(
            "usage.database_url",
            "is required when usage.sink is postgres",
        ));
    }
    if let Some(t) = &config.tracing {
        check_url(&t.otlp_endpoint).map_err(|m| ConfigError::new("tracing.otlp_endpoint", m))?;
        if !(0.0..=1.0).contains(&t.sample_ratio) {
            return Err(ConfigError::new(
                "tracing.sample_ratio",
                "must be between 0 and 1",
            ));
        }
        if t.max_queue == 0 || t.service_name.is_empty() || t.batch_delay.0.is_zero() {
            return Err(ConfigError::new(
                "tracing",
                "max_queue and batch_delay must be > 0 and service_name non-empty",
            ));
        }
    }
    if let Some(control) = &config.control {
        if control.database_url.is_empty() {
            return Err(ConfigError::new(
                "control.database_url",
                "is required (or leave out the control section)",
            ));
        }
        if control.resync.0 < std::time::Duration::from_millis(100) {
            return Err(ConfigError::new("control.resync", "must be at least 100ms"));
        }
    }
    if config.usage.retention_months == 0 {
        return Err(ConfigError::new(
            "usage.retention_months",
            "must be at least 1",
        ));
    }
    Ok(())
}

/// Drops providers whose `api_key` expanded to an empty string, then routes that pointed at them,
/// then models left without a route, warning about each.
fn prune_disabled(config: &mut Config, warnings: &mut Vec<String>) {
    let disabled: HashSet<String> = config
        .providers
        .iter()
        .filter(|p| p.api_key.as_ref().is_some_and(|k| k.is_empty()))
        .map(|p| p.id.clone())
        .collect();
    if disabled.is_empty() {
        return;
    }
    for id in &disabled {
        warnings.push(format!(
            "provider {id:?} skipped: its api_key is empty (set its key variable to enable it)"
        ));
    }
    config.providers.retain(|p| !disabled.contains(&p.id));
    config.models.retain_mut(|m| {
        m.routes.retain(|r| !disabled.contains(&r.provider));
        if m.routes.is_empty() {
            warnings.push(format!(
                "model {:?} skipped: none of its providers is enabled",
                m.name
            ));
        }
        !m.routes.is_empty()
    });
    if let Some(name) = &config.sessions.summary_model
        && !config.models.iter().any(|m| &m.name == name)
    {
        warnings.push(format!(
            "sessions.summary_model {name:?} has no enabled provider; summaries will fall back to dropping old turns"
        ));
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;

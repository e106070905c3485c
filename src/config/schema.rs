//! The configuration file as serde data (DESIGN.md §3). Unknown keys are errors everywhere.
//!
//! These types are what the file says; `state.rs` builds the running gateway from them.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::duration::ConfigDuration;
use super::size::ConfigBytes;
use crate::secret::Secret;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
    #[serde(default)]
    pub models: Vec<ModelConfig>,
    #[serde(default)]
    pub routing: RoutingConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub sessions: SessionsConfig,
    #[serde(default)]
    pub responses: ResponsesConfig,
    #[serde(default)]
    pub usage: UsageConfig,
    /// Models, routes and keys held in PostgreSQL and shared live by every replica; absent =
    /// this file is the source of truth.
    #[serde(default)]
    pub control: Option<ControlConfig>,
    /// OpenTelemetry traces over OTLP/HTTP; absent = no traces.
    #[serde(default)]
    pub tracing: Option<TracingConfig>,
    /// The result cache; absent = no cache.
    #[serde(default)]
    pub cache: Option<CacheConfig>,
    /// The one Redis every feature uses unless it names its own `redis_url`: with it, limits and
    /// budgets are shared and `store: redis` anywhere needs no URL of its own.
    #[serde(default)]
    pub redis: Option<RedisConfig>,
}

/// `redis:` (DESIGN §3): a URL of any form fred reads (`redis://`, `rediss://`,
/// `redis-cluster://…?node=…`, `redis-sentinel://…?sentinelServiceName=…`) and its TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    pub url: String,
    #[serde(default)]
    pub tls: Option<RedisTls>,
}

/// TLS to Redis: a private CA (instead of the public roots), and a client certificate for mutual
/// TLS. Applies to every Redis URL of the config that uses TLS (`rediss…`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisTls {
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    #[serde(default)]
    pub cert_file: Option<std::path::PathBuf>,
    #[serde(default)]
    pub key_file: Option<std::path::PathBuf>,
}

/// A feature's Redis as the config resolves it: the URL, the config key it came from (named in
/// errors) and the TLS settings of `redis.tls`.
#[derive(Debug, Clone)]
pub struct RedisTarget {
    pub url: String,
    pub field: &'static str,
    pub tls: Option<RedisTls>,
}

/// The features that keep state in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisUser {
    Limits,
    Sessions,
    Responses,
    Cache,
}

// === impl Config (Redis) ===

impl Config {
    /// The Redis `user` uses: its own `redis_url`; for stored responses and the cache the
    /// sessions' next; then `redis.url`. `None`: the feature keeps its state in memory (limits
    /// per replica; a store that is `redis` without any URL is refused by the validator).
    pub fn redis_for(&self, user: RedisUser) -> Option<RedisTarget> {
        let own = |url: &Option<String>, field| url.clone().map(|url| (url, field));
        let sessions = || own(&self.sessions.redis_url, "sessions.redis_url");
        let found = match user {
            RedisUser::Limits => own(&self.limits.redis_url, "limits.redis_url"),
            RedisUser::Sessions => sessions(),
            RedisUser::Responses => {
                own(&self.responses.redis_url, "responses.redis_url").or_else(sessions)
            }
            RedisUser::Cache => self
                .cache
                .as_ref()
                .and_then(|c| own(&c.redis_url, "cache.redis_url"))
                .or_else(sessions),
        };
        let (url, field) =
            found.or_else(|| self.redis.as_ref().map(|r| (r.url.clone(), "redis.url")))?;
        Some(RedisTarget {
            url,
            field,
            tls: self.redis.as_ref().and_then(|r| r.tls.clone()),
        })
    }
}

/// The result cache (DESIGN §5 "Result cache").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    pub store: SessionStoreKind,
    /// For `store: redis`; absent: the sessions' `redis_url`.
    pub redis_url: Option<String>,
    /// The memory store's bound, in bytes of entries (bodies, keys and bookkeeping).
    pub max_bytes: ConfigBytes,
    /// Larger answers are served, never stored.
    pub max_entry_bytes: ConfigBytes,
    /// For every model without its own `cache:`.
    pub ttl: ConfigDuration,
    pub scope: CacheScope,
    /// Longest wait for one Redis call; past it the request goes on as a `bypass`.
    pub timeout: ConfigDuration,
}

/// Whose entries a request may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheScope {
    /// A key reads only what it stored (an open gateway's requests share one scope).
    Key,
    /// Every key of a model shares its entries.
    Shared,
}

/// A model's `cache:`: absent (the section's ttl), `false` (never cached), `true`, or
/// `{ ttl: 24h }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModelCache {
    #[default]
    Inherit,
    Off,
    Ttl(ConfigDuration),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    /// The collector's OTLP/HTTP root (`/v1/traces` is appended).
    pub otlp_endpoint: String,
    #[serde(default = "defaults::service_name")]
    pub service_name: String,
    /// Share of new traces recorded (a client's sampled `traceparent` is always followed).
    #[serde(default = "defaults::sample_ratio")]
    pub sample_ratio: f64,
    /// Finished spans waiting for export; beyond it spans are dropped (and counted).
    #[serde(default = "defaults::trace_queue")]
    pub max_queue: usize,
    /// How long the exporter waits for a batch to fill (512 spans) before it sends what it has.
    #[serde(default = "defaults::trace_batch_delay")]
    pub batch_delay: ConfigDuration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    pub database_url: String,
    /// A full re-read this often, for notifications missed while disconnected.
    #[serde(default = "defaults::resync")]
    pub resync: ConfigDuration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    /// Multipart uploads (audio, image edits), streamed upstream as they arrive.
    pub max_upload_bytes: usize,
    /// Request line plus headers; a larger head gets 431.
    pub max_header_bytes: usize,
    pub request_timeout: ConfigDuration,
    pub shutdown_grace: ConfigDuration,
    /// A client must finish sending its request head within this, or the connection is closed.
    pub header_read_timeout: ConfigDuration,
    /// A request body that sends nothing for this long gets 408.
    pub body_read_timeout: ConfigDuration,
    /// Connections beyond this wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Worker threads, each with its own runtime, listener (SO_REUSEPORT) and upstream pool;
    /// 0 = one per CPU.
    pub workers: usize,
    /// Browser access; absent = no CORS headers at all.
    pub cors: Option<CorsConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins (`https://app.example.com`) allowed to call the gateway from a browser; `"*"`
    /// allows any.
    pub allowed_origins: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Openai,
    Dashscope,
    Anthropic,
    Mock,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub id: String,
    pub kind: ProviderKind,
    #[serde(default)]
    pub base_url: Option<String>,
    /// Absent: no `Authorization` header is sent (local servers). Present but empty after
    /// expansion: the provider is skipped with a warning (its key variable is not set).
    #[serde(default)]
    pub api_key: Option<Secret>,
    #[serde(default = "defaults::provider_timeout")]
    pub timeout: ConfigDuration,
    #[serde(default)]
    pub max_rps: Option<u32>,
    #[serde(default)]
    pub health_check: HealthCheckConfig,
    /// Only for `kind: mock`.
    #[serde(default)]
    pub mock: Option<MockConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheckConfig {
    pub enabled: bool,
    pub interval: ConfigDuration,
    pub timeout: ConfigDuration,
    /// Overrides the probe URL (DashScope: any cheap GET on the same account).
    pub url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MockConfig {
    /// Delay before the response (non-stream) or before the first chunk (stream).
    pub latency: ConfigDuration,
    /// Delay between stream chunks.
    pub chunk_interval: ConfigDuration,
    /// Fixed reply text; default echoes the last user message.
    pub reply: Option<String>,
    /// Embedding dimensions when the request sets none.
    pub embedding_dimensions: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelType {
    Chat,
    Embedding,
    /// `/v1/rerank` and `/v2/rerank` (Cohere/Jina shape).
    Rerank,
    /// `/v1/moderations`.
    Moderation,
    /// `/v1/images/generations`, `/v1/images/edits`.
    Image,
    /// `/v1/audio/transcriptions`, `/v1/audio/translations`.
    Transcription,
    /// `/v1/audio/speech`.
    Speech,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub name: String,
    #[serde(rename = "type", default = "defaults::model_type")]
    pub kind: ModelType,
    #[serde(default)]
    pub context_window: Option<u32>,
    /// Sent upstream as `max_tokens` where a client sets none and the upstream needs one
    /// (Anthropic); a client's own value is never changed.
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    #[serde(default)]
    pub price: Option<PriceConfig>,
    /// The BPE encoding that counts this model's tokens where the gateway counts them itself
    /// (no upstream usage; session budgets). Default: by the upstream model's name
    /// (PROTOCOLS.md §7), else `o200k_base`.
    #[serde(default)]
    pub tokenizer: Option<Tokenizer>,
    /// The result cache for this model (with a `cache` section).
    #[serde(default)]
    pub cache: ModelCache,
    pub routes: Vec<RouteConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tokenizer {
    O200kBase,
    Cl100kBase,
    O200kHarmony,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PriceConfig {
    /// Token prices: required for chat and embedding models, 0 where a model is priced per unit.
    #[serde(default)]
    pub input_per_1m: f64,
    #[serde(default)]
    pub output_per_1m: f64,
    /// Input read from the provider's prompt cache; absent: the input price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input_per_1m: Option<f64>,
    /// Input written to the provider's prompt cache (Anthropic); absent: the input price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_per_1m: Option<f64>,
    /// Rerank: dollars per 1,000 searches (a search: one query over up to 100 documents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_1k_searches: Option<f64>,
    /// Image generation: dollars per image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_image: Option<f64>,
    /// Transcription and translation: dollars per minute of audio (billed by the second).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_minute: Option<f64>,
    /// Speech: dollars per million characters of input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_1m_chars: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub provider: String,
    pub model: String,
    #[serde(default = "defaults::one")]
    pub weight: u32,
    #[serde(default = "defaults::one")]
    pub priority: u32,
    /// This route's ceiling in requests per second (its provider's `max_rps` applies too).
    #[serde(default)]
    pub max_rps: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    pub max_attempts: u32,
    pub unhealthy_after: u32,
    pub ejection: ConfigDuration,
    /// Repeated ejections double up to this ceiling.
    pub max_ejection: ConfigDuration,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub keys: Vec<KeyConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    pub name: String,
    #[serde(default)]
    pub key: Option<Secret>,
    #[serde(default)]
    pub key_sha256: Option<String>,
    #[serde(default)]
    pub rpm: Option<u32>,
    #[serde(default)]
    pub tpm: Option<u32>,
    #[serde(default)]
    pub admin: bool,
    /// Allow-list of model names (`*` and trailing-`*` prefixes allowed); absent = all.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// A spend ceiling per UTC day or month.
    #[serde(default)]
    pub budget: Option<BudgetConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    pub usd: f64,
    pub period: BudgetPeriod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetPeriod {
    Day,
    Month,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnRedisError {
    FailOpen,
    FailClosed,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub redis_url: Option<String>,
    pub on_redis_error: OnRedisError,
    pub default_max_tokens: u32,
    /// Most choices one request may ask for (`n`): each is paid for.
    pub max_n: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionStoreKind {
    Memory,
    Redis,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    pub store: SessionStoreKind,
    pub redis_url: Option<String>,
    pub ttl: ConfigDuration,
    pub max_tokens: u32,
    pub compression_threshold: u32,
    pub keep_recent: u32,
    pub summary_model: Option<String>,
    /// The memory store's bound: beyond it the least recently active session is evicted.
    pub max_sessions: usize,
    /// Longest wait for one Redis call; a session request fails with 503 after it.
    pub timeout: ConfigDuration,
}

/// Stored Responses (`previous_response_id`, `item_reference`, `GET /v1/responses/{id}`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponsesConfig {
    /// Absent: the sessions' store (and its `redis_url`).
    pub store: Option<SessionStoreKind>,
    pub redis_url: Option<String>,
    pub ttl: ConfigDuration,
    /// The memory store's bound: beyond it the oldest responses are evicted.
    pub max_responses: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UsageSinkKind {
    File,
    Postgres,
    None,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsageConfig {
    pub sink: UsageSinkKind,
    pub path: String,
    pub database_url: Option<String>,
    /// Where rows go while the database is unreachable (fsync'd JSON lines, replayed after).
    pub spill_path: String,
    pub retention_months: u32,
    pub migrate_on_start: bool,
    /// The file sink rotates `path` past this size…
    pub max_file_bytes: u64,
    /// …keeping this many rotated files (`path.1` newest … `path.N` oldest).
    pub keep_files: u32,
}

mod defaults {
    use super::*;

    pub fn provider_timeout() -> ConfigDuration {
        ConfigDuration::secs(60)
    }
    pub fn model_type() -> ModelType {
        ModelType::Chat
    }
    pub fn one() -> u32 {
        1
    }
    pub fn resync() -> ConfigDuration {
        ConfigDuration::secs(30)
    }
    pub fn service_name() -> String {
        "switchyard".into()
    }
    pub fn sample_ratio() -> f64 {
        1.0
    }
    pub fn trace_queue() -> usize {
        4096
    }
    pub fn trace_batch_delay() -> ConfigDuration {
        ConfigDuration::secs(1)
    }
}

// === impl ModelType ===

impl ModelType {
    /// As the config writes it.
    pub fn name(self) -> &'static str {
        match self {
            ModelType::Chat => "chat",
            ModelType::Embedding => "embedding",
            ModelType::Rerank => "rerank",
            ModelType::Moderation => "moderation",
            ModelType::Image => "image",
            ModelType::Transcription => "transcription",
            ModelType::Speech => "speech",
        }
    }
}

// === impl ProviderKind (what each serves) ===

impl ProviderKind {
    /// Whether routes of this kind can serve models of type `t`: Anthropic's API is chat only;
    /// DashScope's native API has no moderations or image generations the gateway speaks.
    pub fn serves(self, t: ModelType) -> bool {
        match (self, t) {
            (ProviderKind::Anthropic, ModelType::Chat) => true,
            (ProviderKind::Anthropic, _) => false,
            (
                ProviderKind::Dashscope,
                ModelType::Moderation
                | ModelType::Image
                | ModelType::Transcription
                | ModelType::Speech,
            ) => false,
            _ => true,
        }
    }
}

// === impl ProviderKind ===

impl ProviderKind {
    /// As the config writes it (and traces' `gen_ai.system`).
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::Dashscope => "dashscope",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Mock => "mock",
        }
    }
}

// === impl BudgetConfig ===

impl BudgetConfig {
    /// The largest budget: its 1e-10 dollar units still fit the budget counters' i64.
    pub const MAX_USD: f64 = 1e8;

    /// Whether `usd` is a budget the gateway can count: finite, 0 to `MAX_USD`.
    pub fn is_valid(&self) -> bool {
        self.usd.is_finite() && (0.0..=Self::MAX_USD).contains(&self.usd)
    }
}

// === impl KeyConfig ===

impl KeyConfig {
    /// A key with no limits, no allow-list and no admin rights (tests, benchmarks).
    pub fn plain(name: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            key: Some(Secret::new(key)),
            key_sha256: None,
            rpm: None,
            tpm: None,
            admin: false,
            models: None,
            budget: None,
        }
    }
}

// === impl Defaults ===

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            max_body_bytes: 8 * 1024 * 1024,
            max_upload_bytes: 25 * 1024 * 1024,
            max_header_bytes: 32 * 1024,
            request_timeout: ConfigDuration::secs(600),
            shutdown_grace: ConfigDuration::secs(30),
            header_read_timeout: ConfigDuration::secs(10),
            body_read_timeout: ConfigDuration::secs(30),
            max_connections: 10_000,
            workers: 0,
            cors: None,
        }
    }
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: ConfigDuration::secs(10),
            timeout: ConfigDuration::secs(3),
            url: None,
        }
    }
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            latency: ConfigDuration::secs(0),
            chunk_interval: ConfigDuration(std::time::Duration::from_millis(20)),
            reply: None,
            embedding_dimensions: 16,
        }
    }
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            unhealthy_after: 3,
            ejection: ConfigDuration::secs(30),
            max_ejection: ConfigDuration::secs(300),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            redis_url: None,
            on_redis_error: OnRedisError::FailOpen,
            default_max_tokens: 1024,
            max_n: 8,
        }
    }
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            store: SessionStoreKind::Memory,
            redis_url: None,
            ttl: ConfigDuration::secs(3600),
            max_tokens: 6000,
            compression_threshold: 4000,
            keep_recent: 6,
            summary_model: None,
            max_sessions: 100_000,
            timeout: ConfigDuration::secs(1),
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            store: SessionStoreKind::Memory,
            redis_url: None,
            max_bytes: ConfigBytes::mib(256),
            max_entry_bytes: ConfigBytes::mib(1),
            ttl: ConfigDuration::secs(3600),
            scope: CacheScope::Key,
            timeout: ConfigDuration(std::time::Duration::from_millis(250)),
        }
    }
}

// === impl ModelCache ===

impl<'de> Deserialize<'de> for ModelCache {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Switch(bool),
            Ttl(TtlOnly),
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct TtlOnly {
            ttl: ConfigDuration,
        }
        match Written::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom(
                "expected false, true or { ttl: <duration> } such as { ttl: 24h }",
            )
        })? {
            Written::Switch(false) => Ok(ModelCache::Off),
            Written::Switch(true) => Ok(ModelCache::Inherit),
            Written::Ttl(t) => Ok(ModelCache::Ttl(t.ttl)),
        }
    }
}

impl Default for ResponsesConfig {
    fn default() -> Self {
        Self {
            store: None,
            redis_url: None,
            ttl: ConfigDuration::secs(720 * 3600),
            max_responses: 10_000,
        }
    }
}

impl Default for UsageConfig {
    fn default() -> Self {
        Self {
            sink: UsageSinkKind::File,
            path: "data/usage.jsonl".into(),
            database_url: None,
            spill_path: "data/usage-spill.jsonl".into(),
            retention_months: 12,
            migrate_on_start: true,
            max_file_bytes: 64 * 1024 * 1024,
            keep_files: 4,
        }
    }
}

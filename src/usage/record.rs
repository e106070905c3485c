//! One row of the ledger, with its typed outcome.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::estimate::{Counted, Estimate};

/// One client request (or summary call). Serialised as a JSON line for the file sink and the
/// spill file, inserted as a row of `request_logs` otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub request_id: String,
    /// Microseconds since the Unix epoch (UTC).
    pub created_at_us: i64,
    // The names the configuration holds are shared with it (`Arc<str>`), not copied per row.
    pub key_name: Option<Arc<str>>,
    pub session_id: Option<String>,
    pub model_name: Arc<str>,
    pub provider_id: Option<Arc<str>>,
    pub upstream_model: Option<Arc<str>>,
    pub stream: bool,
    /// All input, the cached and cache-written parts included.
    pub input_tokens: i64,
    /// All output, reasoning included.
    pub output_tokens: i64,
    /// Parts of the counts above (0 where the upstream reports none; rows written before they
    /// were recorded read as 0).
    #[serde(default)]
    pub cached_input_tokens: i64,
    #[serde(default)]
    pub cache_write_tokens: i64,
    #[serde(default)]
    pub reasoning_tokens: i64,
    pub usage_source: UsageSource,
    /// Exact decimal, 10 places, as text (the column is `numeric(20,10)`).
    pub cost: String,
    /// A cache hit's saved cost: what the stored answer cost when it was generated, at the
    /// model's prices (`0` for every other row). Exact decimal as `cost`.
    #[serde(default = "zero_cost", skip_serializing_if = "is_zero_cost")]
    pub cache_saved_cost: String,
    /// Units the request is priced by besides tokens, and what they count (rerank searches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<Unit>,
    pub latency_ms: i32,
    pub ttft_ms: Option<i32>,
    pub attempts: i16,
    pub status: Status,
    pub http_status: i16,
    pub error_message: Option<String>,
    pub purpose: Purpose,
    /// Set when the upstream reported no usage: the writer counts the tokens (and the cost)
    /// before the row is written. Never serialised.
    #[serde(skip)]
    pub estimate: Option<Box<Estimate>>,
    /// The crash-journal segment holding this row (0: none). Never serialised.
    #[serde(skip)]
    pub journal: u64,
}

fn zero_cost() -> String {
    "0".into()
}

fn is_zero_cost(cost: &String) -> bool {
    cost == "0"
}

/// How a request ended, as the ledger's `status` column says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Error,
    /// The client left before the answer was complete (a stream it dropped).
    Cancelled,
}

/// Where a row's token counts come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UsageSource {
    /// The upstream reported them.
    Upstream,
    /// The gateway counted them (tiktoken) because the upstream reported none.
    Estimated,
    /// Answered from the result cache: nothing generated, zero tokens and cost.
    Cache,
}

/// Why the gateway made the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    Chat,
    Embedding,
    /// A session compression's summary call.
    Summary,
    /// `POST /v1/responses`.
    Responses,
    /// `POST /v1/completions` (legacy).
    Completion,
    /// `POST /v1/messages` (Anthropic's Messages API).
    Messages,
    /// `POST /v1/rerank`, `/v2/rerank`.
    Rerank,
    /// `POST /v1/moderations`.
    Moderation,
    /// `POST /v1/images/generations`, `/v1/images/edits`.
    Image,
    /// `POST /v1/audio/transcriptions`.
    Transcription,
    /// `POST /v1/audio/translations`.
    Translation,
    /// `POST /v1/audio/speech`.
    Speech,
}

/// What a row's `units` count, where a request is priced by what it does (DESIGN §5 "Other
/// endpoints").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// Rerank searches: one query over up to 100 documents.
    Searches,
    /// Images generated.
    Images,
    /// Seconds of audio transcribed or translated (rounded up, as OpenAI bills them).
    Seconds,
    /// Characters of speech input (Unicode scalar values).
    Characters,
}

// === impl Unit ===

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Searches => "searches",
            Unit::Images => "images",
            Unit::Seconds => "seconds",
            Unit::Characters => "characters",
        }
    }
}

// === impl UsageRecord ===

impl UsageRecord {
    /// Takes the writer's own count of a row whose upstream reported no usage.
    pub fn apply(&mut self, counted: Counted) {
        self.input_tokens = counted.input as i64;
        self.output_tokens = counted.output as i64;
        self.cost = counted.cost;
        self.usage_source = UsageSource::Estimated;
    }
}

// === impl Status ===

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Error => "error",
            Status::Cancelled => "cancelled",
        }
    }
}

// === impl UsageSource ===

impl UsageSource {
    pub fn as_str(self) -> &'static str {
        match self {
            UsageSource::Upstream => "upstream",
            UsageSource::Estimated => "estimated",
            UsageSource::Cache => "cache",
        }
    }
}

// === impl Purpose ===

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Chat => "chat",
            Purpose::Embedding => "embedding",
            Purpose::Summary => "summary",
            Purpose::Responses => "responses",
            Purpose::Completion => "completion",
            Purpose::Messages => "messages",
            Purpose::Rerank => "rerank",
            Purpose::Moderation => "moderation",
            Purpose::Image => "image",
            Purpose::Transcription => "transcription",
            Purpose::Translation => "translation",
            Purpose::Speech => "speech",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_are_stored_as_the_ledger_words() {
        for (status, word) in [
            (Status::Ok, "ok"),
            (Status::Error, "error"),
            (Status::Cancelled, "cancelled"),
        ] {
            assert_eq!(serde_json::to_value(status).unwrap(), word);
            assert_eq!(status.as_str(), word);
        }
        for (source, word) in [
            (UsageSource::Upstream, "upstream"),
            (UsageSource::Estimated, "estimated"),
        ] {
            assert_eq!(serde_json::to_value(source).unwrap(), word);
            assert_eq!(source.as_str(), word);
        }
        for (purpose, word) in [
            (Purpose::Chat, "chat"),
            (Purpose::Embedding, "embedding"),
            (Purpose::Summary, "summary"),
        ] {
            assert_eq!(serde_json::to_value(purpose).unwrap(), word);
            assert_eq!(purpose.as_str(), word);
        }
    }
}

//! A request's token counts, as an upstream reported them (or as the gateway estimated them):
//! what every adapter reads from its wire format and what the ledger prices.

use std::sync::LazyLock;

use memchr::memmem;
use serde::Deserialize;

/// Token counts as the upstream reported them (or as we estimated them). `input_tokens` is all
/// input, the cached and cache-written parts included; `output_tokens` all output, reasoning
/// included (DESIGN §5 "Money with prompt caching").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Input read from the provider's prompt cache (billed below the input price).
    pub cached_input_tokens: u64,
    /// Input written to the provider's prompt cache (Anthropic bills it above the input price).
    pub cache_write_tokens: u64,
    /// Output spent on reasoning (thinking), where reported.
    pub reasoning_tokens: u64,
}

// === impl Usage ===

impl Usage {
    /// Plain counts, nothing cached or reasoned.
    pub fn tokens(input_tokens: u64, output_tokens: u64) -> Self {
        Self {
            input_tokens,
            output_tokens,
            ..Self::default()
        }
    }
}

/// Built once: building one per search cost more than the search of a chunk.
static USAGE_KEY: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"usage\""));

#[derive(Deserialize)]
struct ChatUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
}

/// `cached_tokens` is part of `prompt_tokens`. `cache_write_tokens` is not OpenAI's (it does
/// not charge for writes) but OpenAI-compatible servers fronting Anthropic-style caches report
/// it there.
#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
    #[serde(default)]
    cache_write_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

/// The `usage` object of a chat completion body or chunk (OpenAI's shape, which every adapter's
/// answer has by the time it reaches a client), read without parsing the rest: the value of
/// the last `"usage"` that is a key (followed by `:`). Inside a JSON string a quote is escaped,
/// so the only other raw `"usage"` is a string value, which no `:` follows.
pub fn chat_usage(body: &[u8]) -> Option<Usage> {
    let rest = USAGE_KEY
        .find_iter(body)
        .filter_map(|at| {
            body[at + b"\"usage\"".len()..]
                .trim_ascii_start()
                .strip_prefix(b":")
        })
        .last()?;
    usage_object(rest)
}

/// A chat `usage` object itself (what follows its key), `None` for `null` or a malformed one.
fn usage_object(json: &[u8]) -> Option<Usage> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let usage: Option<ChatUsage> = serde::Deserialize::deserialize(&mut de).ok()?;
    usage.map(Usage::from)
}

impl From<ChatUsage> for Usage {
    fn from(u: ChatUsage) -> Self {
        let prompt = u.prompt_tokens_details.as_ref();
        // Parts of the input never exceed it, whatever an upstream says.
        let cached = prompt
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0)
            .min(u.prompt_tokens);
        let written = prompt
            .and_then(|d| d.cache_write_tokens)
            .unwrap_or(0)
            .min(u.prompt_tokens - cached);
        Usage {
            input_tokens: u.prompt_tokens,
            output_tokens: u.completion_tokens,
            cached_input_tokens: cached,
            cache_write_tokens: written,
            reasoning_tokens: u
                .completion_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0)
                .min(u.completion_tokens),
        }
    }
}

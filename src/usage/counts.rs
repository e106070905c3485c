//! A request's token counts, as an upstream reported them (or as the gateway estimated them):
//! what every adapter reads from its wire format and what the ledger prices.

use std::sync::LazyLock;

use memchr::memmem;

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
/// Its few members are walked, not deserialized: this runs for every answer and the last chunk
/// of every stream. `cached_tokens` is part of `prompt_tokens`; `cache_write_tokens` is not
/// OpenAI's (it does not charge for writes) but OpenAI-compatible servers fronting
/// Anthropic-style caches report it there.
fn usage_object(json: &[u8]) -> Option<Usage> {
    let json = json.trim_ascii_start();
    let [prompt, completion, prompt_details, completion_details] = crate::json::object(
        json,
        [
            b"prompt_tokens",
            b"completion_tokens",
            b"prompt_tokens_details",
            b"completion_tokens_details",
        ],
    )?;
    let count = |span: Option<std::ops::Range<usize>>| {
        span.and_then(|s| crate::json::count(&json[s])).unwrap_or(0)
    };
    let (input_tokens, output_tokens) = (count(prompt), count(completion));
    let [cached, written] = nested(
        json,
        prompt_details,
        [b"cached_tokens", b"cache_write_tokens"],
    );
    let [reasoning] = nested(json, completion_details, [b"reasoning_tokens"]);
    // Parts of the input never exceed it, whatever an upstream says.
    let cached = cached.unwrap_or(0).min(input_tokens);
    Some(Usage {
        input_tokens,
        output_tokens,
        cached_input_tokens: cached,
        cache_write_tokens: written.unwrap_or(0).min(input_tokens - cached),
        reasoning_tokens: reasoning.unwrap_or(0).min(output_tokens),
    })
}

/// The counts of a nested object (`…_details`) at `span` of `json`, if there is one.
pub fn nested<const N: usize>(
    json: &[u8],
    span: Option<std::ops::Range<usize>>,
    keys: [&[u8]; N],
) -> [Option<u64>; N] {
    span.and_then(|s| crate::json::counts(&json[s], keys))
        .unwrap_or([None; N])
}

//! Anthropic's Messages API ⇄ chat completions (PROTOCOLS.md §12.7), pure like `responses/`:
//! [`request`] turns a Messages request into the chat body the one pipeline in `call/` routes,
//! [`response`] a chat completion into a `message`, and [`stream`] chat chunks into Anthropic's
//! SSE events, each frame with its `event:` line and blocks indexed from 0, one open at a time.

pub mod request;
pub mod response;
pub mod stream;

use serde_json::{Value, json};

use crate::usage::counts::Usage;

/// A `msg_…` id: the request id where it is usable, else a fresh random one.
pub fn message_id() -> String {
    let mut bytes = [0u8; 12];
    // The OS's generator cannot fail on supported platforms; zeros would still be a valid id.
    let _ = getrandom::getrandom(&mut bytes);
    let mut id = String::with_capacity(4 + 24);
    id.push_str("msg_");
    crate::hex::push(&mut id, &bytes);
    id
}

/// Chat usage as Anthropic's: `input_tokens` is only what was neither read from nor written to
/// the cache (PROTOCOLS.md §12.2: Anthropic's input excludes cache, OpenAI's includes it).
pub fn usage_json(usage: &Usage) -> Value {
    let cached = usage.cached_input_tokens.min(usage.input_tokens);
    let written = usage.cache_write_tokens.min(usage.input_tokens - cached);
    json!({
        "input_tokens": usage.input_tokens - cached - written,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
        "output_tokens": usage.output_tokens,
    })
}

/// The stop reason for a chat `finish_reason` (PROTOCOLS.md §12.7.2).
pub fn stop_reason(finish: Option<&str>, has_tool_calls: bool) -> &'static str {
    match finish {
        Some("tool_calls" | "function_call") => "tool_use",
        Some("stop") | None if has_tool_calls => "tool_use",
        Some("length") => "max_tokens",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// A tool-call id as Anthropic takes it (`^[a-zA-Z0-9_-]+$`); `toolu_…` when there is none.
pub fn tool_id(id: Option<&str>) -> String {
    match id.filter(|id| !id.is_empty()) {
        Some(id) => id
            .chars()
            .map(
                |c| match c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    true => c,
                    false => '_',
                },
            )
            .collect(),
        None => message_id().replacen("msg_", "toolu_", 1),
    }
}

#[cfg(test)]
mod tests;

//! Anthropic's Messages API ⇄ chat completions (PROTOCOLS.md §12.7), pure like `responses/`:
//! [`request`] turns a Messages request into the chat body the one pipeline in `call/` routes,
//! [`response`] a chat completion into a `message`, and [`stream`] chat chunks into Anthropic's
//! SSE events, each frame with its `event:` line and blocks indexed from 0, one open at a time.

pub mod request;
pub mod response;
pub mod stream;

use crate::usage::counts::Usage;

/// A `msg_…` id from the request's id (unique per gateway process and counter, as Anthropic's
/// are); a client's own request id is used only where it has an id's characters.
pub fn message_id(request_id: &str) -> String {
    let body = request_id.strip_prefix("req_").unwrap_or(request_id);
    let usable = !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    match usable {
        true => {
            let mut id = String::with_capacity(body.len() + 4);
            id.push_str("msg_");
            id.push_str(body);
            id
        }
        false => random_id("msg_"),
    }
}

/// `prefix` and 24 random hex digits.
fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 12];
    // The OS's generator cannot fail on supported platforms; zeros still make an id.
    let _ = getrandom::getrandom(&mut bytes);
    let mut id = String::with_capacity(prefix.len() + 24);
    id.push_str(prefix);
    crate::hex::push(&mut id, &bytes);
    id
}

/// The signature of a thinking block the gateway made from another model's reasoning: clients
/// require the field; the marker says it is not Anthropic's (such blocks are never sent to an
/// Anthropic upstream).
pub const SIGNATURE: &str = "sygw1";

/// A JSON string, escaped as serde_json escapes it. Most strings need no escape at all (names,
/// ids, plain text): those are copied between their quotes.
fn json_string(out: &mut Vec<u8>, text: &str) {
    if !needs_escape(text.as_bytes()) {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
        return;
    }
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// Whether any byte of `bytes` is a control character, `"` or `\\` (what JSON escapes), eight
/// bytes at a time.
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // A byte of `x` is zero: its high bit is set in the result (no false negatives; a false
    // positive only sends the string to the careful path).
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let control = x.wrapping_sub(0x20 * ONES) & !x & HIGHS;
        if control | zero(x ^ (u64::from(b'"') * ONES)) | zero(x ^ (u64::from(b'\\') * ONES)) != 0 {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// Chat usage as Anthropic's usage object, written into `out`: `input_tokens` is only what was
/// neither read from nor written to the cache (PROTOCOLS.md §12.2: Anthropic's input excludes
/// the cache, OpenAI's includes it). Written from fixed pieces: it ends every answer.
fn write_usage(out: &mut Vec<u8>, usage: &Usage) {
    let cached = usage.cached_input_tokens.min(usage.input_tokens);
    let written = usage.cache_write_tokens.min(usage.input_tokens - cached);
    let mut number = itoa::Buffer::new();
    out.extend_from_slice(b"{\"input_tokens\":");
    out.extend_from_slice(
        number
            .format(usage.input_tokens - cached - written)
            .as_bytes(),
    );
    out.extend_from_slice(b",\"cache_creation_input_tokens\":");
    out.extend_from_slice(number.format(written).as_bytes());
    out.extend_from_slice(b",\"cache_read_input_tokens\":");
    out.extend_from_slice(number.format(cached).as_bytes());
    out.extend_from_slice(b",\"output_tokens\":");
    out.extend_from_slice(number.format(usage.output_tokens).as_bytes());
    out.push(b'}');
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
        None => random_id("toolu_"),
    }
}

#[cfg(test)]
mod tests;

//! Anthropic's Messages API as an upstream (`kind: anthropic`, PROTOCOLS.md §12.9), and
//! DashScope's Anthropic-compatible endpoint by its `base_url`. Chat, legacy completions and
//! Responses requests are translated ([`request`], [`response`], [`stream`]); a Messages client's
//! own body goes up with only `model` rewritten ([`passthrough`]). Pure, no I/O.

pub mod request;
pub mod response;
pub mod stream;

use bytes::Bytes;
use serde_json::Value;

use crate::error::GatewayError;
use crate::request::Native;
use crate::routing::transport::{Auth, Endpoint, HttpSpec};

pub const MESSAGES_PATH: &str = "v1/messages";
/// Sent with every request: the version every SDK pins (any other is accepted from clients).
pub const HEADERS: &[(&str, &str)] = &[("anthropic-version", "2023-06-01")];

/// Where a Messages API is: `/v1/messages` under the base URL (`https://api.anthropic.com`, or
/// DashScope's `…/apps/anthropic`); a base URL given with `/v1` is taken as meaning the same.
/// Its probe: `GET /v1/models?limit=1`, free and token-less (401 is a bad key).
pub fn http_spec(base_url: String) -> HttpSpec {
    let base = base_url.trim_end_matches('/');
    let base = base.strip_suffix("/v1").unwrap_or(base).to_owned();
    HttpSpec {
        probe_url: format!("{base}/v1/models?limit=1"),
        base_url: base,
        // Chat and legacy completions, both translated to Messages; nothing else.
        paths: &[
            (Endpoint::Chat, MESSAGES_PATH),
            (Endpoint::Completions, MESSAGES_PATH),
        ],
        stream_headers: &[],
        auth: Auth::ApiKey,
        headers: HEADERS,
    }
}

/// Whether a `kind: anthropic` base URL is Anthropic's own API, which takes system turns in
/// the middle of a conversation (others, DashScope's among them, refuse them: QwenLM/Qwen#2244).
pub fn is_first_party(base_url: &str) -> bool {
    let host = base_url
        .split_once("://")
        .map_or(base_url, |(_, rest)| rest)
        .split(['/', ':'])
        .next()
        .unwrap_or_default();
    host.eq_ignore_ascii_case("api.anthropic.com")
}

/// A Messages client's body for an Anthropic upstream: its bytes with only `model` rewritten
/// (`cache_control`, signatures and unknown fields intact). Only when the body holds what the
/// upstream would refuse is it rewritten: thinking blocks the gateway signed (another model's
/// reasoning: "Invalid `signature` in `thinking` block") are removed, and, for upstreams other
/// than Anthropic's own, system turns are moved into `system`.
pub fn passthrough(
    native: &Native,
    upstream_model_json: &[u8],
    first_party: bool,
) -> Result<Bytes, GatewayError> {
    let system_turns = native.system_turns && !first_party;
    let mend = native.foreign_thinking || system_turns;
    if !mend {
        return Ok(super::openai::splice(
            &native.body,
            &native.model_span,
            upstream_model_json,
        ));
    }
    let mut body: serde_json::Map<String, Value> = serde_json::from_slice(&native.body)
        .map_err(|e| GatewayError::invalid_request(e.to_string()))?;
    body.insert(
        "model".into(),
        serde_json::from_slice(upstream_model_json).unwrap_or(Value::Null),
    );
    let mut messages = match body.remove("messages") {
        Some(Value::Array(messages)) => messages,
        _ => Vec::new(),
    };
    if native.foreign_thinking {
        strip_foreign_thinking(&mut messages, &mut body);
    }
    if system_turns {
        hoist_system_turns(&mut messages, &mut body);
    }
    body.insert("messages".into(), Value::Array(messages));
    serde_json::to_vec(&body)
        .map(Bytes::from)
        .map_err(|e| GatewayError::invalid_request(e.to_string()))
}

/// Removes thinking blocks the gateway signed. A final assistant turn with tool use must start
/// with a thinking block when thinking is on; if stripping left it without one, thinking is
/// turned off for this request (what Anthropic's error tells clients to do).
fn strip_foreign_thinking(messages: &mut [Value], body: &mut serde_json::Map<String, Value>) {
    // Unsigned, or signed by the gateway. (`redacted_thinking` only ever comes from Anthropic.)
    let foreign = |block: &Value| {
        block["type"] == "thinking"
            && block["signature"]
                .as_str()
                .is_none_or(|s| s.is_empty() || s.starts_with(crate::anthropic::SIGNATURE))
    };
    let mut stripped_last = false;
    let last_assistant = messages.iter().rposition(|m| m["role"] == "assistant");
    for (i, message) in messages.iter_mut().enumerate() {
        if let Some(Value::Array(blocks)) = message.get_mut("content") {
            let before = blocks.len();
            blocks.retain(|b| !foreign(b));
            if Some(i) == last_assistant
                && blocks.len() != before
                && blocks.iter().any(|b| b["type"] == "tool_use")
            {
                stripped_last = true;
            }
            if blocks.is_empty() {
                blocks.push(serde_json::json!({"type": "text", "text": "(no content)"}));
            }
        }
    }
    if stripped_last {
        body.remove("thinking");
    }
}

/// System turns in the conversation, appended to the top-level `system` in order.
fn hoist_system_turns(messages: &mut Vec<Value>, body: &mut serde_json::Map<String, Value>) {
    let mut system: Vec<Value> = match body.remove("system") {
        Some(Value::String(s)) => vec![serde_json::json!({"type": "text", "text": s})],
        Some(Value::Array(blocks)) => blocks,
        _ => Vec::new(),
    };
    messages.retain(|m| {
        if m["role"] != "system" {
            return true;
        }
        match &m["content"] {
            Value::String(s) => system.push(serde_json::json!({"type": "text", "text": s})),
            Value::Array(blocks) => system.extend(blocks.iter().cloned()),
            _ => {}
        }
        false
    });
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
}

#[cfg(test)]
mod tests;

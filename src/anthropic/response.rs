//! A chat completion as an Anthropic `message` (PROTOCOLS.md §12.7.2): thinking, then text,
//! then one `tool_use` block per tool call, in that order.

use serde_json::{Value, json};

use super::{message_id, stop_reason, tool_id, usage_json};
use crate::error::{ErrorKind, GatewayError};
use crate::usage::counts::Usage;

/// The `message` for a chat completion `body`; `model` is the name the client asked for.
pub fn from_completion(
    body: &[u8],
    model: &str,
    thinking: bool,
    usage: Option<Usage>,
) -> Result<Value, GatewayError> {
    let completion: Value = serde_json::from_slice(body).map_err(|_| {
        GatewayError::new(
            ErrorKind::UpstreamFailed,
            "upstream returned a response that is not a JSON object",
        )
    })?;
    let choice = &completion["choices"][0];
    let message = &choice["message"];
    let mut content = Vec::new();
    if thinking
        && let Some(reasoning) = message["reasoning_content"]
            .as_str()
            .filter(|r| !r.is_empty())
    {
        content.push(json!({"type": "thinking", "thinking": reasoning, "signature": SIGNATURE}));
    }
    if let Some(text) = message["content"].as_str().filter(|t| !t.is_empty()) {
        content.push(json!({"type": "text", "text": text}));
    }
    let calls = message["tool_calls"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    for call in calls {
        let arguments = call["function"]["arguments"].as_str().unwrap_or("{}");
        let input = serde_json::from_str::<Value>(arguments)
            .ok()
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({}));
        content.push(json!({
            "type": "tool_use",
            "id": tool_id(call["id"].as_str()),
            "name": call["function"]["name"].as_str().unwrap_or_default(),
            "input": input,
        }));
    }
    Ok(json!({
        "id": message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(choice["finish_reason"].as_str(), !calls.is_empty()),
        "stop_sequence": null,
        "usage": usage_json(&usage.unwrap_or_default()),
    }))
}

/// The signature of a thinking block the gateway made from another model's reasoning: clients
/// require the field; the marker says it is not Anthropic's (such blocks are never sent to an
/// Anthropic upstream).
pub const SIGNATURE: &str = "sygw1";

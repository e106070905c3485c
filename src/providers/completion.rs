//! Legacy completions (PROTOCOLS.md §11) from adapters that answer in chat's shape: a
//! `chat.completion` as a `text_completion`, and chat chunk frames as `text_completion` chunk
//! frames (one for one, as they arrive). OpenAI-kind upstreams answer `/completions` themselves
//! and pass through untouched. Pure.

use bytes::{Bytes, BytesMut};
use serde_json::{Value, json};

use crate::error::{ErrorKind, GatewayError};
use crate::sse::{DONE_FRAME, SseEvent};

/// A `chat.completion` body as a `text_completion` body.
pub fn from_chat(body: &[u8]) -> Result<Bytes, GatewayError> {
    let chat: Value = serde_json::from_slice(body).map_err(|e| {
        GatewayError::new(ErrorKind::UpstreamFailed, format!("malformed answer: {e}"))
    })?;
    let choices: Vec<Value> = chat["choices"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let text = c["message"]["content"].as_str().unwrap_or_default();
            text_choice(c, text, finish_reason(&c["finish_reason"]))
        })
        .collect();
    let completion = text_completion(&chat, choices, chat["usage"].clone());
    Ok(Bytes::from(completion.to_string()))
}

/// Chat chunk frames (`data: {…}\n\n`, `[DONE]` included) as `text_completion` chunk frames.
/// A role-only or empty chunk becomes nothing; a usage chunk stays a usage chunk.
pub fn chunks_from_chat(frames: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(frames.len());
    for frame in crate::sse::frames(frames) {
        let Some(data) = SseEvent::data(frame) else {
            continue;
        };
        if data.trim_ascii() == b"[DONE]" {
            out.extend_from_slice(DONE_FRAME);
            continue;
        }
        let Ok(chunk) = serde_json::from_slice::<Value>(&data) else {
            continue;
        };
        let choices: Vec<Value> = chunk["choices"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| {
                let text = c["delta"]["content"].as_str().unwrap_or_default();
                let finish = finish_reason(&c["finish_reason"]);
                (!text.is_empty() || !finish.is_null()).then(|| text_choice(c, text, finish))
            })
            .collect();
        let usage = chunk.get("usage").cloned().unwrap_or(Value::Null);
        if choices.is_empty() && usage.is_null() {
            continue;
        }
        let text_chunk = text_completion(&chunk, choices, usage);
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(text_chunk.to_string().as_bytes());
        out.extend_from_slice(b"\n\n");
    }
    out.freeze()
}

/// A `text_completion` (or chunk) with the chat answer's id, time and model.
fn text_completion(chat: &Value, choices: Vec<Value>, usage: Value) -> Value {
    json!({
        "id": completion_id(&chat["id"]),
        "object": "text_completion",
        "created": chat["created"],
        "model": chat["model"],
        "choices": choices,
        "usage": usage,
    })
}

/// One `text_completion` choice for chat choice `c`.
fn text_choice(c: &Value, text: &str, finish_reason: Value) -> Value {
    json!({"text": text, "index": c["index"], "logprobs": null, "finish_reason": finish_reason})
}

/// `cmpl-…` for the chat answer's id.
fn completion_id(chat_id: &Value) -> String {
    let id = chat_id.as_str().unwrap_or_default();
    format!("cmpl-{}", id.strip_prefix("chatcmpl-").unwrap_or(id))
}

/// Legacy completions know `stop`, `length` and `content_filter` (tools are never offered).
fn finish_reason(chat: &Value) -> Value {
    match chat.as_str() {
        None => Value::Null,
        Some(r @ ("length" | "content_filter")) => json!(r),
        Some(_) => json!("stop"),
    }
}

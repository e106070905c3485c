//! A Messages answer as a chat completion (PROTOCOLS.md §12.7.5), and Anthropic's usage as
//! ours: its `input_tokens` excludes the cache, ours is all input.

use std::sync::LazyLock;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::error::{ErrorKind, GatewayError};
use crate::json::Key;
use crate::providers::types::{ResponseContext, Usage};

/// The fields of a `message` the translation reads.
#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    id: Option<&'a str>,
    #[serde(borrow, default)]
    content: Vec<Block<'a>>,
    #[serde(borrow, default)]
    stop_reason: Option<&'a str>,
    #[serde(default)]
    usage: WireUsage,
}

#[derive(Deserialize)]
struct Block<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(borrow, default)]
    id: Option<&'a str>,
    #[serde(default)]
    name: Option<String>,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
}

/// Anthropic's usage object; every field optional (stream events carry some of them).
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub struct WireUsage {
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens_details: Option<OutputDetails>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub struct OutputDetails {
    #[serde(default)]
    pub thinking_tokens: Option<u64>,
}

// === impl WireUsage ===

impl WireUsage {
    /// Later counts replace earlier ones field by field (stream events are cumulative, and a
    /// field an event leaves out keeps its value).
    pub fn merge(&mut self, later: &WireUsage) {
        let take = |mine: &mut Option<u64>, theirs: Option<u64>| {
            if theirs.is_some() {
                *mine = theirs;
            }
        };
        take(&mut self.input_tokens, later.input_tokens);
        take(&mut self.output_tokens, later.output_tokens);
        take(
            &mut self.cache_read_input_tokens,
            later.cache_read_input_tokens,
        );
        take(
            &mut self.cache_creation_input_tokens,
            later.cache_creation_input_tokens,
        );
        if let Some(details) = later.output_tokens_details {
            self.output_tokens_details = Some(details);
        }
    }

    /// A `usage` object read by a walk over its members, not deserialized (it is read from every
    /// pass-through answer and stream); `None` if it is not an object.
    pub fn read(json: &[u8]) -> Option<Self> {
        crate::json::object(json, Self::FIELDS).map(|spans| Self::from_spans(json, spans))
    }

    /// The `usage` member of a `message` or an event: Anthropic writes it last, where it is found
    /// from the end of the body and walked once; anywhere else, by a walk over the body.
    pub fn member(body: &[u8]) -> Option<Self> {
        static USAGE: LazyLock<Key> = LazyLock::new(|| Key::new(br#""usage""#));
        match crate::json::last_object(body, &USAGE, Self::FIELDS) {
            Some(spans) => Some(Self::from_spans(body, spans)),
            None => crate::json::member(body, b"usage").and_then(Self::read),
        }
    }

    /// The members [`WireUsage::read`] reads.
    const FIELDS: [&[u8]; 5] = [
        b"input_tokens",
        b"output_tokens",
        b"cache_read_input_tokens",
        b"cache_creation_input_tokens",
        b"output_tokens_details",
    ];

    /// The usage whose [`WireUsage::FIELDS`] are at `spans` of `json`.
    fn from_spans(json: &[u8], spans: [Option<std::ops::Range<usize>>; 5]) -> Self {
        let [input, output, read, creation, details] = spans;
        let count = |span: Option<std::ops::Range<usize>>| crate::json::count(&json[span?]);
        Self {
            input_tokens: count(input),
            output_tokens: count(output),
            cache_read_input_tokens: count(read),
            cache_creation_input_tokens: count(creation),
            output_tokens_details: details.map(|span| {
                let [thinking_tokens] =
                    crate::usage::counts::nested(json, Some(span), [b"thinking_tokens"]);
                OutputDetails { thinking_tokens }
            }),
        }
    }

    /// Ours: input is all input, the cache's reads and writes included.
    pub fn canonical(&self) -> Usage {
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let written = self.cache_creation_input_tokens.unwrap_or(0);
        Usage {
            input_tokens: self.input_tokens.unwrap_or(0) + read + written,
            output_tokens: self.output_tokens.unwrap_or(0),
            cached_input_tokens: read,
            cache_write_tokens: written,
            reasoning_tokens: self
                .output_tokens_details
                .and_then(|d| d.thinking_tokens)
                .unwrap_or(0),
        }
    }
}

/// Chat's usage object for ours.
pub fn chat_usage_json(usage: &Usage) -> Value {
    json!({
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {
            "cached_tokens": usage.cached_input_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    })
}

/// Chat's `finish_reason` for a stop reason.
pub fn finish_reason(stop: Option<&str>) -> &'static str {
    match stop {
        Some("tool_use") => "tool_calls",
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

/// The chat completion id for a message id.
pub fn completion_id(message_id: Option<&str>) -> String {
    format!("chatcmpl-{}", message_id.unwrap_or_default())
}

/// A `message` body as a `chat.completion`, with its usage.
pub fn to_chat(body: &[u8], ctx: &ResponseContext) -> Result<(Bytes, Usage), GatewayError> {
    let message: Message<'_> = serde_json::from_slice(body).map_err(|e| {
        GatewayError::new(
            ErrorKind::UpstreamFailed,
            format!("the upstream's message is malformed: {e}"),
        )
    })?;
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for block in message.content {
        match block.kind {
            "text" => text.push_str(block.text.as_deref().unwrap_or_default()),
            "thinking" => reasoning.push_str(block.thinking.as_deref().unwrap_or_default()),
            "tool_use" => calls.push(json!({
                "id": block.id.unwrap_or_default(),
                "type": "function",
                "function": {
                    "name": block.name.unwrap_or_default(),
                    "arguments": block.input.map_or("{}", RawValue::get),
                },
            })),
            _ => {}
        }
    }
    let mut reply = json!({"role": "assistant", "content": (!text.is_empty()).then_some(text)});
    if !reasoning.is_empty() {
        reply["reasoning_content"] = json!(reasoning);
    }
    if !calls.is_empty() {
        reply["tool_calls"] = Value::Array(calls);
    }
    let usage = message.usage.canonical();
    let completion = json!({
        "id": completion_id(message.id),
        "object": "chat.completion",
        "created": ctx.created,
        "model": ctx.client_model,
        "choices": [{
            "index": 0,
            "message": reply,
            "finish_reason": finish_reason(message.stop_reason),
            "logprobs": null,
        }],
        "usage": chat_usage_json(&usage),
    });
    Ok((Bytes::from(completion.to_string()), usage))
}

/// A native `message` (a Messages client's pass-through) with the client's model name, and
/// its usage. Anthropic writes `model` before the content and `usage` last, so each is found
/// from its end of the body; any other order, by one pass over the body's structure.
/// `client_model` is the name as the client wrote it (a JSON string).
pub fn native(body: Bytes, client_model: &[u8]) -> (Bytes, Option<Usage>) {
    let usage = WireUsage::member(&body).map(|u| u.canonical());
    static MODEL: LazyLock<Key> = LazyLock::new(|| Key::new(br#""model""#));
    let model = crate::json::leading_member(&body, &MODEL);
    match model.filter(|span| body[span.start] == b'"') {
        Some(span) => (
            crate::providers::openai::splice(&body, &span, client_model),
            usage,
        ),
        None => (body, usage),
    }
}

//! Native SSE events → OpenAI `chat.completion.chunk` events (PROTOCOLS.md §6.3), one native
//! event at a time: nothing is held back, each event's chunks go out as soon as it is decoded.
//!
//! - the first chunk of each choice carries `delta.role`; every chunk has the same id/created/model;
//! - tool-call fragments keep `index`; `id`, `type` and `name` only on a call's first fragment
//!   (DashScope repeats `type` and sends `id: ""` on continuations);
//! - a native `finish_reason` other than `"null"` becomes its own `{"delta":{}}` chunk;
//! - after the last choice finishes: the usage chunk if the client asked, then `[DONE]`
//!   (DashScope sends no terminator; the stream just ends).
//!
//! We always ask for `incremental_output: true`. An upstream that ignores it repeats the whole
//! text in every event; that is detected on the second content event (it starts with all the
//! text so far and is longer) and from then on only the new suffix is sent, so deltas never
//! repeat text and the cumulative final event adds nothing.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use serde_json::{Value, json};

use super::types::{DashScopeGenerationResponse, DashScopeToolCall, DashScopeUsage};
use super::{completion_id, finish_reason, map_error, to_usage, usage_json};
use crate::error::{ErrorKind, GatewayError};
use crate::providers::types::ResponseContext;
use crate::providers::types::{Relayed, Usage};
use crate::sse::{DONE_FRAME, SseEvent};

pub struct StreamRelay {
    ctx: ResponseContext,
    provider: Arc<str>,
    id: Option<String>,
    choices: Vec<ChoiceState>,
    usage: Option<DashScopeUsage>,
}

#[derive(Default)]
struct ChoiceState {
    index: u32,
    sent_role: bool,
    finished: bool,
    content: Text,
    reasoning: Text,
    tool_indices: Vec<u32>,
}

/// Text received so far for one field of one choice, and whether the upstream is cumulative.
#[derive(Default)]
struct Text {
    so_far: String,
    events: u32,
    cumulative: Option<bool>,
}

// === impl StreamRelay ===

impl StreamRelay {
    pub fn new(ctx: ResponseContext, provider: Arc<str>) -> Self {
        Self {
            ctx,
            provider,
            id: None,
            choices: Vec::new(),
            usage: None,
        }
    }

    pub fn usage(&self) -> Option<Usage> {
        self.usage.as_ref().map(to_usage)
    }

    pub fn on_frame(&mut self, frame: Bytes) -> Result<Relayed, GatewayError> {
        let event = SseEvent::parse(&frame);
        let Some(data) = event.data.as_deref() else {
            return Ok(Relayed::Forward(Bytes::new()));
        };
        let status = http_status(&event.comments);
        let is_error = event.event == Some(&b"error"[..]) || status.is_some_and(|s| s >= 400);
        let native: DashScopeGenerationResponse = match serde_json::from_slice(data) {
            Ok(native) => native,
            Err(e) if is_error => {
                return Err(self.error(
                    status,
                    None,
                    String::from_utf8_lossy(data).into_owned(),
                    e.to_string(),
                ));
            }
            Err(e) => {
                return Err(GatewayError::new(
                    ErrorKind::UpstreamFailed,
                    format!("DashScope sent a malformed event: {e}"),
                ));
            }
        };
        if is_error
            || (native.output.is_none() && native.code.as_deref().is_some_and(|c| !c.is_empty()))
        {
            let message = native.message.clone().unwrap_or_default();
            return Err(self.error(status, native.code.as_deref(), message, String::new()));
        }
        if self.id.is_none() {
            self.id = Some(completion_id(native.request_id.as_deref()));
        }
        if native.usage.is_some() {
            self.usage = native.usage;
        }
        let mut out = BytesMut::new();
        let choices = native.output.map(|o| o.into_choices()).unwrap_or_default();
        for (position, choice) in choices.into_iter().enumerate() {
            let index = choice.index.unwrap_or(position as u32);
            let slot = self.choice(index);
            let mut delta = serde_json::Map::new();
            if !self.choices[slot].sent_role {
                self.choices[slot].sent_role = true;
                let role = self.chunk(
                    index,
                    json!({"role": "assistant", "content": ""}),
                    Value::Null,
                );
                out.extend_from_slice(&role);
            }
            let state = &mut self.choices[slot];
            if let Some(message) = &choice.message {
                let content = state.content.delta(&message.text());
                if !content.is_empty() {
                    delta.insert("content".into(), json!(content));
                }
                let reasoning = state
                    .reasoning
                    .delta(message.reasoning_content.as_deref().unwrap_or(""));
                if !reasoning.is_empty() {
                    delta.insert("reasoning_content".into(), json!(reasoning));
                }
                let calls: Vec<Value> = message
                    .tool_calls
                    .iter()
                    .flatten()
                    .map(|t| tool_fragment(&mut state.tool_indices, t))
                    .collect();
                if !calls.is_empty() {
                    delta.insert("tool_calls".into(), Value::Array(calls));
                }
            }
            let has_tools = !state.tool_indices.is_empty();
            let finish = finish_reason(choice.finish_reason.as_deref(), has_tools);
            if !finish.is_null() {
                state.finished = true;
            }
            if !delta.is_empty() {
                out.extend_from_slice(&self.chunk(index, Value::Object(delta), Value::Null));
            }
            if !finish.is_null() {
                out.extend_from_slice(&self.chunk(index, json!({}), finish));
            }
        }
        if !self.choices.is_empty() && self.choices.iter().all(|c| c.finished) {
            if self.ctx.include_usage
                && let Some(usage) = &self.usage
            {
                let chunk = json!({"id": self.id, "object": "chat.completion.chunk", "created": self.ctx.created,
                    "model": self.ctx.client_model, "choices": [], "usage": usage_json(usage)});
                out.extend_from_slice(&frame_of(&chunk));
            }
            out.extend_from_slice(DONE_FRAME);
            return Ok(Relayed::Done(out.freeze()));
        }
        Ok(Relayed::Forward(out.freeze()))
    }

    fn choice(&mut self, index: u32) -> usize {
        match self.choices.iter().position(|c| c.index == index) {
            Some(slot) => slot,
            None => {
                self.choices.push(ChoiceState {
                    index,
                    ..ChoiceState::default()
                });
                self.choices.len() - 1
            }
        }
    }

    fn chunk(&self, index: u32, delta: Value, finish: Value) -> Bytes {
        let chunk = json!({"id": self.id, "object": "chat.completion.chunk", "created": self.ctx.created, "model": self.ctx.client_model,
            "choices": [{"index": index, "delta": delta, "logprobs": null, "finish_reason": finish}]});
        frame_of(&chunk)
    }

    fn error(
        &self,
        status: Option<u16>,
        code: Option<&str>,
        message: String,
        detail: String,
    ) -> GatewayError {
        let status = status
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::BAD_GATEWAY);
        let message = if message.is_empty() { detail } else { message };
        map_error(&self.provider, status, code.unwrap_or(""), message)
    }
}

// === impl Text ===

impl Text {
    /// What of `text` is new, given everything received before.
    fn delta(&mut self, text: &str) -> String {
        if text.is_empty() {
            return String::new();
        }
        self.events += 1;
        if self.cumulative.is_none() && self.events == 2 {
            self.cumulative =
                Some(text.len() > self.so_far.len() && text.starts_with(&self.so_far));
        }
        if self.cumulative == Some(true)
            && let Some(rest) = text.strip_prefix(self.so_far.as_str())
        {
            let delta = rest.to_owned();
            self.so_far = text.to_owned();
            return delta;
        }
        // Incremental, or (cumulative) not a continuation after all: new text.
        self.so_far.push_str(text);
        text.to_owned()
    }
}

/// One OpenAI tool-call delta: the first fragment of a call names it, the rest only add
/// arguments.
fn tool_fragment(seen: &mut Vec<u32>, t: &DashScopeToolCall) -> Value {
    let index = t.index.unwrap_or(0);
    let arguments = t
        .function
        .as_ref()
        .and_then(|f| f.arguments.clone())
        .unwrap_or_default();
    if seen.contains(&index) {
        return json!({"index": index, "function": {"arguments": arguments}});
    }
    seen.push(index);
    let mut fragment = json!({"index": index, "type": "function",
        "function": {"name": t.function.as_ref().and_then(|f| f.name.clone()).unwrap_or_default(), "arguments": arguments}});
    if let Some(id) = t.id.as_ref().filter(|id| !id.is_empty()) {
        fragment["id"] = json!(id);
    }
    fragment
}

/// The status in a `:HTTP_STATUS/400` comment.
fn http_status(comments: &[&[u8]]) -> Option<u16> {
    comments.iter().find_map(|c| {
        std::str::from_utf8(c)
            .ok()?
            .trim()
            .strip_prefix("HTTP_STATUS/")?
            .trim()
            .parse()
            .ok()
    })
}

fn frame_of(chunk: &Value) -> Bytes {
    crate::sse::data_frame(chunk.to_string().as_bytes())
}

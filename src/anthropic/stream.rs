//! Chat chunks as Anthropic stream events (PROTOCOLS.md §12.7.3). Every frame has its `event:`
//! line (the SDKs drop frames without one); block indexes run from 0, strictly in order, one
//! block open at a time. Text and thinking stream as they arrive; tool calls are gathered and
//! each sent whole before `message_delta`, since a chat stream may interleave the fragments of
//! parallel calls and a closed block cannot be reopened.

use serde_json::{Value, json};

use super::response::SIGNATURE;
use super::{stop_reason, tool_id, usage_json};
use crate::usage::counts::{Usage, chat_usage};

/// One message's events, written as its chat chunks arrive.
pub struct EventStream {
    id: String,
    model: String,
    thinking: bool,
    open: Open,
    next_index: usize,
    tools: Vec<ToolCall>,
    finish: Option<String>,
    usage: Option<Usage>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Nothing,
    Thinking(usize),
    Text(usize),
}

/// A tool call gathered from its fragments, under the chat chunk's `index`.
struct ToolCall {
    index: u64,
    id: String,
    name: String,
    arguments: String,
}

// === impl EventStream ===

impl EventStream {
    /// `model` is the name the client asked for; with `thinking`, reasoning becomes thinking
    /// blocks.
    pub fn new(model: String, thinking: bool) -> Self {
        Self {
            id: super::message_id(),
            model,
            thinking,
            open: Open::Nothing,
            next_index: 0,
            tools: Vec::new(),
            finish: None,
            usage: None,
        }
    }

    /// `message_start` (usage zeros, both cache fields present: Claude Code reads them as "prompt
    /// caching is supported"; the totals come in `message_delta`), and a first `ping`.
    pub fn start(&self, out: &mut Vec<u8>) {
        let message = json!({
            "id": self.id, "type": "message", "role": "assistant", "content": [],
            "model": self.model, "stop_reason": null, "stop_sequence": null,
            "usage": usage_json(&Usage::default()),
        });
        event(
            out,
            "message_start",
            &json!({"type": "message_start", "message": message}),
        );
        ping(out);
    }

    /// One chat chunk's `data`.
    pub fn on_chunk(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let Ok(chunk) = serde_json::from_slice::<Value>(data) else {
            return;
        };
        if chunk.get("usage").is_some_and(|u| !u.is_null())
            && let Some(usage) = chat_usage(data)
        {
            self.usage = Some(usage);
        }
        let Some(choice) = chunk["choices"].get(0) else {
            return;
        };
        let delta = &choice["delta"];
        if let Some(reasoning) = delta["reasoning_content"]
            .as_str()
            .filter(|r| !r.is_empty())
            && self.thinking
        {
            let index = self.enter(Open::Thinking(0), out);
            event(
                out,
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index,
                        "delta": {"type": "thinking_delta", "thinking": reasoning}}),
            );
        }
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            let index = self.enter(Open::Text(0), out);
            event(
                out,
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index,
                        "delta": {"type": "text_delta", "text": text}}),
            );
        }
        if let Some(calls) = delta["tool_calls"].as_array() {
            for call in calls {
                self.gather(call);
            }
        }
        if let Some(finish) = choice["finish_reason"].as_str() {
            self.finish = Some(finish.to_owned());
        }
    }

    /// The upstream's end: the open block closed, the gathered tool calls, `message_delta` with
    /// the stop reason and the usage, `message_stop`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.close(out);
        let had_tools = !self.tools.is_empty();
        for call in std::mem::take(&mut self.tools) {
            let index = self.next_index;
            self.next_index += 1;
            let block = json!({"type": "tool_use", "id": tool_id(Some(&call.id)),
                               "name": call.name, "input": {}});
            event(
                out,
                "content_block_start",
                &json!({"type": "content_block_start", "index": index, "content_block": block}),
            );
            if !call.arguments.is_empty() {
                event(
                    out,
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": call.arguments}}),
                );
            }
            event(
                out,
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            );
        }
        let reason = stop_reason(self.finish.as_deref(), had_tools);
        event(
            out,
            "message_delta",
            &json!({"type": "message_delta",
                    "delta": {"stop_reason": reason, "stop_sequence": null},
                    "usage": usage_json(&self.usage.unwrap_or_default())}),
        );
        event(out, "message_stop", &json!({"type": "message_stop"}));
    }

    /// Makes `kind` the open block (closing another first) and returns its index.
    fn enter(&mut self, kind: Open, out: &mut Vec<u8>) -> usize {
        match (self.open, kind) {
            (Open::Thinking(i), Open::Thinking(_)) | (Open::Text(i), Open::Text(_)) => return i,
            _ => self.close(out),
        }
        let index = self.next_index;
        self.next_index += 1;
        let block = match kind {
            Open::Thinking(_) => {
                self.open = Open::Thinking(index);
                json!({"type": "thinking", "thinking": "", "signature": ""})
            }
            _ => {
                self.open = Open::Text(index);
                json!({"type": "text", "text": ""})
            }
        };
        event(
            out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        );
        index
    }

    /// Closes the open block; a thinking block gets its signature first.
    fn close(&mut self, out: &mut Vec<u8>) {
        let index = match self.open {
            Open::Nothing => return,
            Open::Thinking(i) => {
                event(
                    out,
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": i,
                            "delta": {"type": "signature_delta", "signature": SIGNATURE}}),
                );
                i
            }
            Open::Text(i) => i,
        };
        event(
            out,
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        );
        self.open = Open::Nothing;
    }

    /// One tool-call fragment: a new `index` starts a call (its `id` and `name`), the rest add
    /// to its arguments. Repeated ids and types in continuations (DashScope) change nothing.
    fn gather(&mut self, call: &Value) {
        let index = call["index"].as_u64().unwrap_or(0);
        let function = &call["function"];
        let at = match self.tools.iter().position(|t| t.index == index) {
            Some(at) => at,
            None => {
                self.tools.push(ToolCall {
                    index,
                    id: call["id"].as_str().unwrap_or_default().to_owned(),
                    name: String::new(),
                    arguments: String::new(),
                });
                self.tools.len() - 1
            }
        };
        let tool = &mut self.tools[at];
        if tool.name.is_empty()
            && let Some(name) = function["name"].as_str()
        {
            tool.name = name.to_owned();
        }
        if tool.id.is_empty()
            && let Some(id) = call["id"].as_str()
        {
            tool.id = id.to_owned();
        }
        if let Some(fragment) = function["arguments"].as_str() {
            tool.arguments.push_str(fragment);
        }
    }
}

/// `event: ping`, for the start and for silences (Claude Code gives up after 5 minutes without
/// a byte).
pub fn ping(out: &mut Vec<u8>) {
    out.extend_from_slice(b"event: ping\ndata: {\"type\":\"ping\"}\n\n");
}

fn event(out: &mut Vec<u8>, name: &str, data: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    // Writing a Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, data);
    out.extend_from_slice(b"\n\n");
}
